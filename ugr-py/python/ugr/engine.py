"""The :class:`Engine`: an artifact opened for serving."""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _inputs, _ugr
from .errors import InvalidArgumentError

__all__ = ["Engine", "EngineInfo", "Recommendation", "default_threads", "shared_engine"]

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]

#: Columns of ``recommend_batch``'s answer, in order.
BATCH_COLUMNS = ("row", "rank", "item", "score", "confidence")


def default_threads() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Recommendation:
    """One recommended item.

    ``score`` ranks the list (mean token log-probability of the SID, fused with the item
    head); ``confidence`` is the calibrated probability that the item is the next one;
    ``posterior`` is the softmax of the scores over the returned list (before abstention);
    ``log_prob`` the SID's summed token log-probability.
    """

    item: int
    score: float
    confidence: float
    posterior: float
    title: Optional[str]
    sid: str
    log_prob: float


@dataclass(frozen=True)
class EngineInfo:
    """What an artifact holds and how it is served."""

    items: int
    sids: int
    levels: int
    codebook_sizes: Tuple[int, ...]
    backend: str
    calibration: bool
    titles: bool
    item_head: bool
    learned_confidence: bool
    max_history: int


def _threads(threads: Any) -> int:
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidArgumentError(f"threads: a positive integer or None, got {threads!r}")
    return threads


def _prefixes(prefix: Any) -> List[str]:
    if prefix is None:
        return []
    if isinstance(prefix, str):
        return [prefix]
    if isinstance(prefix, Iterable) and not isinstance(prefix, bytes):
        out = list(prefix)
        if all(isinstance(p, str) for p in out):
            return out
    raise InvalidArgumentError("prefix: a SID prefix such as '<a_3><b_12>', or a list of them")


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentError(f"{name}: an integer, got {value!r}")
    if not 0 <= value < 2**32:
        raise InvalidArgumentError(f"{name}: out of range ({value})")
    return int(value)


class Engine:
    """An artifact written by ``ugr export``, opened for serving.

    ``source`` is a path or the artifact's bytes. ``threads`` is how many threads a
    ``recommend_batch`` call uses by default (None: every CPU this process may run on; in a
    Ray or Spark worker that owns one core, pass 1). The threads live only during a call, so
    the process may fork between calls.

    One engine may be used from any number of Python threads at once: every call releases
    the GIL while it searches. An engine pickles as its source (the path, or the bytes) and
    reopens on the other side; the availability marks of :meth:`update_availability` are live
    state of this process and do not travel.
    """

    def __init__(self, source: Source, threads: Optional[int] = None) -> None:
        self._threads = _threads(threads)
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            self._source: Union[str, bytes] = data
            self._native = _ugr.Engine.from_bytes(data)
        elif isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            self._source = path
            self._native = _ugr.Engine.open(path)
        else:
            raise InvalidArgumentError(
                f"source: a path or the artifact's bytes, got {type(source).__name__}"
            )
        info = self._native.info()
        info.pop("unavailable")
        info["codebook_sizes"] = tuple(info["codebook_sizes"])
        self._info = EngineInfo(**info)

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        return (Engine, (self._source, self._threads))

    def __repr__(self) -> str:
        i = self._info
        where = self._source if isinstance(self._source, str) else f"<{len(self._source)} bytes>"
        return f"ugr.Engine({where!r}, items={i.items}, levels={i.levels}, backend={i.backend!r})"

    @property
    def info(self) -> EngineInfo:
        """Items, SIDs, levels, codebook sizes, backend, calibration, titles, item head."""
        return self._info

    @property
    def threads(self) -> int:
        """Threads a ``recommend_batch`` call uses unless it says otherwise."""
        return self._threads

    def items(self) -> np.ndarray:
        """The catalog's item ids (uint32), in catalog order."""
        return np.frombuffer(self._native.items(), dtype="<u4")

    def title(self, item: int) -> Optional[str]:
        """The item's title, or None when the artifact has no titles."""
        return self._native.title(_count(item, "item"))

    def sid(self, item: int) -> str:
        """The item's Semantic ID as text, e.g. ``'<a_3><b_12><c_7>'``."""
        return self._native.sid(_count(item, "item"))

    def _run(
        self,
        values: np.ndarray,
        offsets: np.ndarray,
        k: int,
        beam: int,
        exclude_history: bool,
        allow: Optional[Iterable[int]],
        deny: Optional[Iterable[int]],
        prefix: Union[None, str, Iterable[str]],
        min_confidence: Optional[float],
        threads: Optional[int],
    ) -> Dict[str, np.ndarray]:
        if not isinstance(exclude_history, (bool, np.bool_)):
            raise InvalidArgumentError(f"exclude_history: a bool, got {exclude_history!r}")
        if min_confidence is not None:
            if isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float, np.floating)):
                raise InvalidArgumentError(f"min_confidence: a number in [0, 1], got {min_confidence!r}")
            min_confidence = float(min_confidence)
        cols = self._native.recommend_flat(
            values.tobytes(),
            offsets.tobytes(),
            _count(k, "k"),
            _count(beam, "beam"),
            bool(exclude_history),
            None if allow is None else _inputs.ids(allow, "allow").tobytes(),
            b"" if deny is None else _inputs.ids(deny, "deny").tobytes(),
            _prefixes(prefix),
            min_confidence,
            self._threads if threads is None else _threads(threads),
        )
        names = ("row", "rank", "item", "sid_index", "score", "confidence", "posterior", "log_prob")
        dtypes = ("<u4", "<u4", "<u4", "<u4", "<f4", "<f4", "<f4", "<f4")
        return {n: np.frombuffer(c, dtype=d) for n, c, d in zip(names, cols, dtypes)}

    def recommend(
        self,
        history: Sequence[int],
        k: int = 10,
        beam: int = 20,
        exclude_history: bool = False,
        allow: Optional[Iterable[int]] = None,
        deny: Optional[Iterable[int]] = None,
        prefix: Union[None, str, Iterable[str]] = None,
        min_confidence: Optional[float] = None,
    ) -> List[Recommendation]:
        """The top ``k`` items for one history (item ids, most recent last), best first.

        Rules are enforced inside the search, so ``k`` items come back whenever the catalog
        holds that many allowed ones: ``allow`` (only these items), ``deny`` (never these),
        ``prefix`` (only items whose SID starts with one of these prefixes),
        ``exclude_history`` (never an item of the history) and the engine's availability.
        ``min_confidence`` drops items whose calibrated confidence is below it.
        """
        values = _inputs.ids(history, "history")
        offsets = np.array([0, len(values)], dtype="<u8")
        c = self._run(values, offsets, k, beam, exclude_history, allow, deny, prefix, min_confidence, 1)
        return [
            Recommendation(
                item=int(c["item"][i]),
                score=float(c["score"][i]),
                confidence=float(c["confidence"][i]),
                posterior=float(c["posterior"][i]),
                title=self._native.title(int(c["item"][i])),
                sid=self._native.sid(int(c["item"][i])),
                log_prob=float(c["log_prob"][i]),
            )
            for i in range(len(c["item"]))
        ]

    def recommend_batch(
        self,
        histories: Any,
        k: int = 10,
        beam: int = 20,
        exclude_history: bool = False,
        allow: Optional[Iterable[int]] = None,
        deny: Optional[Iterable[int]] = None,
        prefix: Union[None, str, Iterable[str]] = None,
        min_confidence: Optional[float] = None,
        *,
        offsets: Optional[Any] = None,
        output: str = "arrow",
        threads: Optional[int] = None,
    ) -> Any:
        """The top ``k`` items of every history, the rules applying to each.

        ``histories``: a list of histories (lists or arrays of item ids); flat item ids with
        ``offsets=`` (rows + 1 offsets, as in Arrow: row ``r`` is
        ``values[offsets[r]:offsets[r + 1]]``); or a pyarrow ``ListArray`` /
        ``LargeListArray`` / ``ChunkedArray`` (a null list is an empty history); a pandas
        Series of lists.

        Returns one row per recommended item, rows in input order and ranks from 1:
        ``output="arrow"`` a ``pyarrow.Table`` with columns row (int64), rank (int32), item
        (uint32), score and confidence (float32); ``output="numpy"`` a dict of the same
        columns as numpy arrays. The whole batch runs with the GIL released, on ``threads``
        threads (default: the engine's).
        """
        if output not in ("arrow", "numpy"):
            raise InvalidArgumentError(f"output: 'arrow' or 'numpy', got {output!r}")
        values, offs = _inputs.histories(histories, offsets)
        c = self._run(values, offs, k, beam, exclude_history, allow, deny, prefix, min_confidence, threads)
        cols = {
            "row": c["row"].astype(np.int64),
            "rank": c["rank"].astype(np.int32) + 1,
            "item": c["item"],
            "score": c["score"],
            "confidence": c["confidence"],
        }
        if output == "numpy":
            return cols
        try:
            import pyarrow as pa
        except ImportError:
            raise ImportError(
                "recommend_batch(output='arrow') needs pyarrow (pip install 'ugr[arrow]'), "
                "or pass output='numpy'"
            ) from None
        return pa.table(cols)

    def update_availability(self, changes: Union[Mapping[int, bool], Iterable[Tuple[int, bool]]]) -> int:
        """Marks items available (True) or unavailable (False), in order, as one batch that
        the next request sees whole. ``changes``: a mapping or pairs ``(item, available)``.
        Every item is checked first (an unknown one raises and nothing changes). Returns how
        many items changed state."""
        pairs = list(changes.items()) if isinstance(changes, Mapping) else list(changes)
        try:
            items = [p[0] for p in pairs]
            flags = [p[1] for p in pairs]
        except (TypeError, IndexError, KeyError):
            raise InvalidArgumentError("changes: a mapping or pairs (item, available)") from None
        if not all(isinstance(f, (bool, np.bool_)) for f in flags):
            raise InvalidArgumentError("changes: availability flags are bools")
        return self._native.update_availability(
            _inputs.ids(items, "changes").tobytes(), bytes(bytearray(int(bool(f)) for f in flags))
        )

    def set_available(self, items: Iterable[int], available: bool = True) -> int:
        """Marks every item of ``items`` available (or unavailable), as one batch."""
        ids = _inputs.ids(items, "items")
        if not isinstance(available, (bool, np.bool_)):
            raise InvalidArgumentError(f"available: a bool, got {available!r}")
        flags = (b"\x01" if available else b"\x00") * len(ids)
        return self._native.update_availability(ids.tobytes(), flags)

    def is_available(self, item: int) -> bool:
        """Whether ``item`` is available now."""
        return self._native.is_available(_count(item, "item"))

    @property
    def unavailable_count(self) -> int:
        """Items marked unavailable now."""
        return self._native.unavailable_count()

    def reset_availability(self) -> None:
        """Marks every item available again."""
        self._native.reset_availability()


_SHARED: Dict[Tuple[int, str, int], Engine] = {}
_SHARED_LOCK = threading.Lock()


def shared_engine(source: Source, threads: Optional[int] = 1) -> Engine:
    """One engine per process for ``source`` and ``threads``: the first call opens it, later
    calls in the same process return it. For code that runs once per batch in a worker (a
    Spark ``mapInArrow`` function, a Ray task) so that the model loads once per worker
    process, not once per batch. A forked child opens its own."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        key = "bytes:" + hashlib.blake2b(bytes(source), digest_size=16).hexdigest()
    elif isinstance(source, (str, os.PathLike)):
        key = "path:" + os.path.abspath(os.fsdecode(os.fspath(source)))
    else:
        raise InvalidArgumentError(f"source: a path or the artifact's bytes, got {type(source).__name__}")
    k = (os.getpid(), key, _threads(threads))
    with _SHARED_LOCK:
        engine = _SHARED.get(k)
        if engine is None:
            engine = _SHARED[k] = Engine(source, threads)
        return engine
