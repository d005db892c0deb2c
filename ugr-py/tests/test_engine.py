"""The ugr package against the `ugr` command and against itself: parity, input forms,
rules, availability, pickling, fork, threads."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import ugr
from conftest import cli_recommend


def histories(engine: ugr.Engine, n: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    items = engine.items()
    lengths = rng.integers(0, 12, size=n)
    return [[int(i) for i in rng.choice(items, size=int(m))] for m in lengths]


@pytest.fixture(scope="module")
def tiny(tiny_model) -> ugr.Engine:
    return ugr.Engine(tiny_model)


def assert_same(records: list[ugr.Recommendation], cli: list[dict]) -> None:
    assert [r.item for r in records] == [c["item"] for c in cli]
    for r, c in zip(records, cli):
        assert r.score == pytest.approx(c["score"], abs=1e-5)
        assert r.confidence == pytest.approx(c["confidence"], abs=1e-5)
        assert r.posterior == pytest.approx(c["posterior"], abs=1e-5)
        assert r.sid == c["sid"]
        assert r.title == c["title"]


@pytest.mark.parametrize("which", ["tiny", "fresh"])
def test_parity_with_the_cli(which, request, ugr_bin):
    path = request.getfixturevalue("tiny_model" if which == "tiny" else "fresh_model")
    engine = ugr.Engine(path)
    for h in histories(engine, 6, seed=1):
        for k, beam in ((10, 20), (3, 5)):
            assert_same(engine.recommend(h, k=k, beam=beam), cli_recommend(ugr_bin, path, h, k, beam))
            table = engine.recommend_batch([h], k=k, beam=beam, output="numpy")
            assert list(table["item"]) == [r.item for r in engine.recommend(h, k=k, beam=beam)]


def test_rules_parity_with_the_cli(tiny, tiny_model, ugr_bin, tmp_path):
    h = histories(tiny, 1, seed=2)[0] or [1, 2]
    first = [r.item for r in tiny.recommend(h, k=10)]
    deny_file = tmp_path / "deny.txt"
    deny_file.write_text(" ".join(map(str, first[:5])))
    got = tiny.recommend(h, k=10, deny=first[:5], exclude_history=True)
    assert_same(got, cli_recommend(ugr_bin, tiny_model, h, 10, 20, "--deny", str(deny_file), "--exclude-history"))
    assert not set(first[:5]) & {r.item for r in got}
    prefix = tiny.sid(first[0])[: tiny.sid(first[0]).index(">") + 1]
    got = tiny.recommend(h, k=10, prefix=prefix)
    assert_same(got, cli_recommend(ugr_bin, tiny_model, h, 10, 20, "--prefix", prefix))
    assert all(r.sid.startswith(prefix) for r in got)
    allow = [int(i) for i in tiny.items()[::7]]
    allow_file = tmp_path / "allow.txt"
    allow_file.write_text("\n".join(map(str, allow)))
    got = tiny.recommend(h, k=10, allow=allow)
    assert_same(got, cli_recommend(ugr_bin, tiny_model, h, 10, 20, "--allow", str(allow_file)))
    assert len(got) == 10 and {r.item for r in got} <= set(allow)


def test_every_input_form_gives_the_same_table(tiny):
    pa = pytest.importorskip("pyarrow")
    hs = histories(tiny, 40, seed=3)
    want = tiny.recommend_batch(hs, k=5, output="numpy")
    values = np.array([i for h in hs for i in h], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum([len(h) for h in hs])])
    forms = {
        "lists": hs,
        "tuples of arrays": [np.array(h, dtype=np.uint32) for h in hs],
        "values + offsets": (values, offsets),
        "arrow": pa.array(hs, type=pa.list_(pa.uint32())),
        "large arrow": pa.array(hs, type=pa.large_list(pa.int64())),
        "chunked arrow": pa.chunked_array([pa.array(hs[:15]), pa.array(hs[15:])]),
    }
    try:
        import pandas

        forms["pandas"] = pandas.Series(hs)
    except ImportError:
        pass
    for name, form in forms.items():
        if name == "values + offsets":
            got = tiny.recommend_batch(form[0], k=5, offsets=form[1], output="numpy")
        else:
            got = tiny.recommend_batch(form, k=5, output="numpy")
        for col in ("row", "rank", "item", "score", "confidence"):
            np.testing.assert_array_equal(got[col], want[col], err_msg=f"{name}: {col}")
    table = tiny.recommend_batch(forms["arrow"], k=5)
    assert table.column_names == ["row", "rank", "item", "score", "confidence"]
    assert table.num_rows == len(want["item"])
    # A sliced Arrow array (offsets not starting at 0) and a null list (an empty history).
    sliced = forms["arrow"].slice(10, 5)
    got = tiny.recommend_batch(sliced, k=5, output="numpy")
    np.testing.assert_array_equal(got["item"], want["item"][want["row"] >= 10][: len(got["item"])])
    with_null = pa.array([hs[0], None, []], type=pa.list_(pa.uint32()))
    got = tiny.recommend_batch(with_null, k=5, output="numpy")
    empty = tiny.recommend([], k=5)
    assert list(got["item"][got["row"] == 1]) == [r.item for r in empty]
    assert list(got["item"][got["row"] == 2]) == [r.item for r in empty]


def test_batch_rows_and_ranks(tiny):
    hs = histories(tiny, 70, seed=4)  # more than one chunk per thread
    t = tiny.recommend_batch(hs, k=4, output="numpy", threads=2)
    for r, h in enumerate(hs):
        rows = t["row"] == r
        assert list(t["rank"][rows]) == [1, 2, 3, 4]
        assert list(t["item"][rows]) == [x.item for x in tiny.recommend(h, k=4)]
        np.testing.assert_allclose(t["score"][rows], [x.score for x in tiny.recommend(h, k=4)], atol=1e-6)


def test_min_confidence_abstains(tiny):
    h = histories(tiny, 1, seed=5)[0]
    all_ = tiny.recommend(h, k=10)
    kept = tiny.recommend(h, k=10, min_confidence=0.2)
    assert [r.item for r in kept] == [r.item for r in all_ if r.confidence >= 0.2]


def test_availability(tiny_model):
    engine = ugr.Engine(tiny_model)
    h = [1, 2, 3]
    first = [r.item for r in engine.recommend(h, k=10)]
    assert engine.set_available(first[:3], False) == 3
    assert engine.unavailable_count == 3 and not engine.is_available(first[0])
    got = [r.item for r in engine.recommend(h, k=10)]
    assert len(got) == 10 and not set(first[:3]) & set(got)
    assert engine.update_availability({first[0]: True, first[1]: True}) == 2
    assert engine.is_available(first[0]) and not engine.is_available(first[2])
    with pytest.raises(ugr.UnknownItemError):
        engine.update_availability([(first[2], True), (10**6, False)])
    assert not engine.is_available(first[2]), "a refused batch changes nothing"
    engine.reset_availability()
    assert engine.unavailable_count == 0
    assert [r.item for r in engine.recommend(h, k=10)] == first


def test_pickle_round_trip(tiny_model):
    for engine in (ugr.Engine(tiny_model, threads=2), ugr.Engine(tiny_model.read_bytes())):
        copy = pickle.loads(pickle.dumps(engine))
        assert copy.info == engine.info and copy.threads == engine.threads
        hs = histories(engine, 10, seed=6)
        a = engine.recommend_batch(hs, output="numpy")
        b = copy.recommend_batch(hs, output="numpy")
        for col in a:
            np.testing.assert_array_equal(a[col], b[col])


def _score(args):
    engine, hs = args
    return engine.recommend_batch(hs, k=5, output="numpy", threads=2)["item"].tolist()


_FORKED = None


def _score_inherited(hs):
    return _FORKED.recommend_batch(hs, k=5, output="numpy", threads=2)["item"].tolist()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_use_after_fork(tiny_model):
    global _FORKED
    engine = ugr.Engine(tiny_model)
    hs = histories(engine, 64, seed=7)
    want = _score((engine, hs))  # the parent has served (and run threads) before forking
    _FORKED = engine
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        assert pool.map(_score_inherited, [hs, hs]) == [want, want]
        assert pool.map(_score, [(engine, hs)]) == [want]  # pickled into the child too


def test_eight_python_threads_equal_serial(tiny):
    batches = [histories(tiny, 20, seed=100 + i) for i in range(8)]
    serial = [tiny.recommend_batch(b, k=5, output="numpy", threads=1)["item"].tolist() for b in batches]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda b: tiny.recommend_batch(b, k=5, output="numpy", threads=1)["item"].tolist(), batches))
        singles = list(pool.map(lambda b: [r.item for r in tiny.recommend(b[0], k=5)], batches))
    assert parallel == serial
    assert singles == [[r.item for r in tiny.recommend(b[0], k=5)] for b in batches]


def test_info_and_lookups(tiny):
    info = tiny.info
    assert info.items == 800 and info.levels == 3 and info.backend == "native"
    assert len(tiny.items()) == info.items
    assert tiny.sid(0).count("<") == info.levels
    assert tiny.title(0) is not None
    assert "items=800" in repr(tiny)
    assert ugr.__version__
