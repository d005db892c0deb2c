"""The Ray Data and Spark examples (examples/python) score every user of a Parquet table and
write Parquet equal to the engine's own recommend_batch. Each starts a local cluster (Ray: 2
workers; Spark: local[2]) on the tiny model and a few hundred users."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import ugr
from conftest import ROOT

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

EXAMPLES = str(ROOT / "examples" / "python")


@pytest.fixture(scope="module")
def job(tiny_model, tmp_path_factory):
    """A Parquet table of users and histories, and what the engine recommends for them."""
    # Workers (Ray actors, Spark's Python workers) import the example modules too.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [EXAMPLES, os.environ.get("PYTHONPATH")] if p)
    sys.path.insert(0, EXAMPLES)
    d = tmp_path_factory.mktemp("job")
    engine = ugr.Engine(tiny_model)
    rng = np.random.default_rng(11)
    hs = [rng.choice(engine.items(), size=int(n)).tolist() for n in rng.integers(0, 15, size=300)]
    users = np.arange(1000, 1300, dtype=np.uint32)
    pq.write_table(pa.table({"user": users, "history": pa.array(hs, type=pa.list_(pa.uint32()))}), d / "users.parquet")
    want = engine.recommend_batch(hs, k=5, output="numpy")
    expected = {(int(users[r]), int(k)): (int(i), float(s)) for r, k, i, s in zip(want["row"], want["rank"], want["item"], want["score"])}
    return d, expected


def check(out_dir, expected):
    got = pq.read_table(out_dir).to_pydict()
    seen = {(int(u), int(k)): (int(i), float(s)) for u, k, i, s in zip(got["user"], got["rank"], got["item"], got["score"])}
    assert seen.keys() == expected.keys()
    for key, (item, score) in expected.items():
        assert seen[key][0] == item and seen[key][1] == pytest.approx(score, abs=1e-6), key


def test_ray_data_map_batches(job, tiny_model):
    ray = pytest.importorskip("ray")
    import ray_batch

    d, expected = job
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    try:
        rows = ray_batch.score(str(tiny_model), str(d / "users.parquet"), str(d / "ray-out"), workers=2, k=5, batch_size=64)
    finally:
        ray.shutdown()
    assert rows == len(expected)
    check(d / "ray-out", expected)


def test_spark_map_in_arrow(job, tiny_model):
    pytest.importorskip("pyspark")
    import spark_batch

    d, expected = job
    spark = spark_batch.session(2)
    try:
        rows = spark_batch.score(spark, str(tiny_model), str(d / "users.parquet"), str(d / "spark-out"), workers=2, k=5)
    finally:
        spark.stop()
    assert rows == len(expected)
    check(d / "spark-out", expected)
