"""Every bad input is a ugr exception carrying libugr's status name; none crashes the
interpreter, and the engine stays usable after each."""

from __future__ import annotations

import numpy as np
import pytest

import ugr

INVALID = "UGR_STATUS_INVALID_ARGUMENT"
UNKNOWN = "UGR_STATUS_UNKNOWN_ITEM"


@pytest.fixture(scope="module")
def engine(tiny_model) -> ugr.Engine:
    return ugr.Engine(tiny_model)


def check(status, fn, *args, **kwargs):
    with pytest.raises(ugr.UgrError) as e:
        fn(*args, **kwargs)
    assert e.value.status == status, f"{e.value!r}"
    assert str(e.value)


def test_bad_sources(tmp_path, tiny_model):
    check("UGR_STATUS_IO", ugr.Engine, tmp_path / "missing.ugr")
    check("UGR_STATUS_IO", ugr.Engine, tmp_path)  # a directory
    data = tiny_model.read_bytes()
    check("UGR_STATUS_CORRUPT_MODEL", ugr.Engine, data[: len(data) // 2])
    check("UGR_STATUS_CORRUPT_MODEL", ugr.Engine, b"")
    check("UGR_STATUS_CORRUPT_MODEL", ugr.Engine, b"not an artifact at all")
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    check("UGR_STATUS_CORRUPT_MODEL", ugr.Engine, bytes(flipped))
    newer = bytearray(data)
    newer[8] = 99  # format version
    with pytest.raises(ugr.UgrError):
        ugr.Engine(bytes(newer))
    check(INVALID, ugr.Engine, 12)
    check(INVALID, ugr.Engine, None)
    for threads in (0, -1, 2.5, "2", True):
        check(INVALID, ugr.Engine, tiny_model, threads=threads)
    assert isinstance(pytest.raises(OSError, ugr.Engine, tmp_path / "missing.ugr").value, ugr.ArtifactIOError)


BAD_HISTORIES = [
    [-1],
    [2**32],
    [1.5],
    ["3"],
    [None],
    "1 2 3",
    b"\x01",
    5,
    None,
    [[1, 2]],
    np.array([[1, 2], [3, 4]]),
    np.array([0.5]),
    [True],
]


@pytest.mark.parametrize("history", BAD_HISTORIES, ids=repr)
def test_bad_histories(engine, history):
    check(INVALID, engine.recommend, history)


def test_unknown_items(engine):
    check(UNKNOWN, engine.recommend, [10**6])
    check(UNKNOWN, engine.recommend_batch, [[1], [10**6]])
    check(UNKNOWN, engine.recommend, [1], deny=[10**6])
    check(UNKNOWN, engine.recommend, [1], allow=[1, 10**6])
    check(UNKNOWN, engine.is_available, 10**6)
    check(UNKNOWN, engine.title, 10**6)
    check(UNKNOWN, engine.sid, 10**6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": 0},
        {"k": -1},
        {"k": 10**6},
        {"k": 2.0},
        {"k": "10"},
        {"beam": 0},
        {"beam": 10**7},
        {"min_confidence": 1.5},
        {"min_confidence": -0.1},
        {"min_confidence": float("nan")},
        {"min_confidence": "high"},
        {"prefix": "garbage"},
        {"prefix": "<a_999>"},
        {"prefix": "<a_1><b_2><c_3><d_4><e_5><f_6><g_7><h_8><i_9>"},
        {"prefix": 5},
        {"prefix": [b"<a_1>"]},
        {"deny": [-1]},
        {"deny": "abc"},
        {"allow": 3},
        {"allow": [1.5]},
        {"exclude_history": "yes"},
    ],
    ids=repr,
)
def test_bad_options(engine, kwargs):
    check(INVALID, engine.recommend, [1, 2], **kwargs)
    check(INVALID, engine.recommend_batch, [[1, 2]], **kwargs)


def test_bad_batches(engine):
    pa = pytest.importorskip("pyarrow")
    v = np.array([1, 2, 3])
    check(INVALID, engine.recommend_batch, v, offsets=[0, 2, 1])  # decreasing
    check(INVALID, engine.recommend_batch, v, offsets=[0, 4])  # past the values
    check(INVALID, engine.recommend_batch, v, offsets=[-1, 2])
    check(INVALID, engine.recommend_batch, v, offsets=[])
    check(INVALID, engine.recommend_batch, v, offsets=[[0, 3]])
    check(INVALID, engine.recommend_batch, v, offsets=[0.0, 3.0])
    check(INVALID, engine.recommend_batch, [[1], 2])
    check(INVALID, engine.recommend_batch, [[1], "2"])
    check(INVALID, engine.recommend_batch, np.array([1, 2, 3]))
    check(INVALID, engine.recommend_batch, {"a": [1]})
    check(INVALID, engine.recommend_batch, pa.array([[1, None]], type=pa.list_(pa.int64())))
    check(INVALID, engine.recommend_batch, pa.array([["a"]]))
    check(INVALID, engine.recommend_batch, pa.array([1, 2]))
    check(INVALID, engine.recommend_batch, pa.array([[1.5]]))
    check(INVALID, engine.recommend_batch, [[1]], output="pandas")
    check(INVALID, engine.recommend_batch, [[1]], threads=0)
    assert len(engine.recommend_batch([], output="numpy")["item"]) == 0


def test_bad_availability(engine):
    check(INVALID, engine.update_availability, [(1, "no")])
    check(INVALID, engine.update_availability, [1, 2])
    check(INVALID, engine.update_availability, [(-1, True)])
    check(INVALID, engine.set_available, [1], available=None)
    check(UNKNOWN, engine.set_available, [1, 10**6], available=False)
    assert engine.unavailable_count == 0


def test_still_serving_after_every_error(engine):
    assert len(engine.recommend([1, 2, 3], k=5)) == 5
