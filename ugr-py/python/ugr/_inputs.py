"""Input forms to the flat buffers the native module reads (u32 ids, u64 offsets, little-endian)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any, Optional, Tuple

import numpy as np

from .errors import InvalidArgumentError

_U32_MAX = 2**32 - 1


def _is_arrow(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "pyarrow"


def ids(obj: Any, what: str) -> np.ndarray:
    """Item ids (a sequence, numpy array or pyarrow array of integers) as little-endian u32."""
    if _is_arrow(obj):
        if obj.null_count:
            raise InvalidArgumentError(f"{what}: holds nulls")
        obj = obj.to_numpy(zero_copy_only=False)
    elif isinstance(obj, (str, bytes)) or not isinstance(obj, (Iterable, np.ndarray)):
        raise InvalidArgumentError(f"{what}: expected a sequence of item ids, got {type(obj).__name__}")
    try:
        arr = np.asarray(obj if isinstance(obj, np.ndarray) else list(obj))
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(f"{what}: {e}") from None
    if arr.size == 0:
        return np.zeros(0, dtype="<u4")
    if arr.ndim != 1:
        raise InvalidArgumentError(f"{what}: expected one dimension, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise InvalidArgumentError(f"{what}: item ids are integers, got {arr.dtype}")
    if int(arr.min()) < 0 or int(arr.max()) > _U32_MAX:
        raise InvalidArgumentError(f"{what}: item ids are integers in [0, 2**32)")
    return np.ascontiguousarray(arr, dtype="<u4")


def offsets(obj: Any) -> np.ndarray:
    """Row offsets (rows + 1 non-negative integers) as little-endian u64; the native module
    checks that they do not decrease and stay within the values."""
    arr = np.asarray(obj)
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidArgumentError("offsets: expected one dimension with rows + 1 entries")
    if arr.dtype.kind not in "iu":
        raise InvalidArgumentError(f"offsets: integers, got {arr.dtype}")
    if int(arr.min()) < 0:
        raise InvalidArgumentError("offsets: must not be negative")
    return np.ascontiguousarray(arr, dtype="<u8")


def histories(obj: Any, offsets_: Optional[Any]) -> Tuple[np.ndarray, np.ndarray]:
    """A batch of histories as (values, offsets).

    Forms: a sequence of sequences of ids; flat ``values`` with ``offsets_`` (numpy or any
    array-like, rows + 1 offsets as in Arrow); a pyarrow ``ListArray``/``LargeListArray`` or a
    ``ChunkedArray`` of one (a null list is an empty history); a pandas Series of lists.
    """
    if offsets_ is not None:
        return ids(obj, "values"), offsets(offsets_)
    if _is_arrow(obj):
        return _arrow_histories(obj)
    if type(obj).__module__.split(".")[0] == "pandas" and hasattr(obj, "tolist"):
        obj = obj.tolist()  # a Series of lists or arrays
    if isinstance(obj, (str, bytes, np.ndarray)) or not isinstance(obj, Sequence):
        raise InvalidArgumentError(
            "histories: expected a sequence of histories, values with offsets=, or a pyarrow "
            f"ListArray; got {type(obj).__name__}"
        )
    lengths = []
    for r, h in enumerate(obj):
        if isinstance(h, (str, bytes)) or not isinstance(h, (Sequence, np.ndarray)):
            raise InvalidArgumentError(f"history {r}: expected a sequence of item ids, got {type(h).__name__}")
        lengths.append(len(h))
    offs = np.zeros(len(lengths) + 1, dtype="<u8")
    np.cumsum(lengths, out=offs[1:])
    return ids(list(chain.from_iterable(obj)), "histories"), offs


def _arrow_histories(obj: Any) -> Tuple[np.ndarray, np.ndarray]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(obj, pa.ChunkedArray):
        obj = obj.combine_chunks() if obj.num_chunks else pa.array([], type=obj.type)
    if not isinstance(obj, (pa.ListArray, pa.LargeListArray)):
        raise InvalidArgumentError(f"histories: expected a pyarrow list array, got {obj.type}")
    lengths = pc.fill_null(pc.list_value_length(obj), 0).to_numpy(zero_copy_only=False)
    offs = np.zeros(len(lengths) + 1, dtype="<u8")
    np.cumsum(lengths, out=offs[1:])
    # flatten() honours the array's slice offset and skips null lists.
    return ids(obj.flatten(), "histories"), offs
