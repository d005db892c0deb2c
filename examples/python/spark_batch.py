"""Score every user of a Parquet table with ugr on Spark (`mapInArrow`), writing Parquet.

Input: columns user and history (list of item ids, most recent last), e.g. from
histories_parquet.py. Output: one row per recommendation (user, rank, item, score,
confidence). Each Python worker opens the engine once (`ugr.shared_engine`), with one
thread: Spark runs one task per core.

    pip install ./ugr-py pyspark pyarrow      # and a Java 17+ runtime
    python examples/python/spark_batch.py --model model.ugr --input users.parquet --out recs/ --workers 2
"""

import argparse
import os
import sys
import time
from typing import Iterator

import pyarrow as pa

import ugr


def note_peak_memory() -> None:
    """With UGR_RSS_DIR set (the benchmark sets it), records this worker's peak resident
    memory in UGR_RSS_DIR/<pid>; otherwise does nothing."""
    out = os.environ.get("UGR_RSS_DIR")
    if out:
        import resource

        with open(os.path.join(out, str(os.getpid())), "w") as f:
            f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))

SCHEMA = "user int, rank int, item long, score float, confidence float"


def scorer(model: str, k: int, beam: int):
    """The function mapInArrow runs on each partition's record batches."""

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        engine = ugr.shared_engine(model, threads=1)  # once per Python worker
        for batch in batches:
            recs = engine.recommend_batch(batch.column("history"), k=k, beam=beam, output="numpy")
            note_peak_memory()
            users = batch.column("user").to_numpy(zero_copy_only=False)
            yield pa.RecordBatch.from_pydict(
                {
                    "user": pa.array(users[recs["row"]], type=pa.int32()),
                    "rank": pa.array(recs["rank"]),
                    "item": pa.array(recs["item"], type=pa.int64()),
                    "score": pa.array(recs["score"]),
                    "confidence": pa.array(recs["confidence"]),
                }
            )

    return score


def session(workers: int):
    from pyspark.sql import SparkSession

    # The Python workers run this interpreter (the one that has ugr and pyarrow installed).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return (
        SparkSession.builder.master(f"local[{workers}]")
        .appName("ugr-batch")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "256")
        .getOrCreate()
    )


def score(spark, model: str, source: str, out: str, workers: int, k: int = 10, beam: int = 20) -> int:
    """Runs the job; returns the rows written."""
    df = spark.read.parquet(source).repartition(workers * 4)
    df.mapInArrow(scorer(model, k, beam), SCHEMA).write.mode("overwrite").parquet(out)
    return spark.read.parquet(out).count()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True, help="directory of Parquet files to write")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--beam", type=int, default=20)
    a = p.parse_args()
    spark = session(a.workers)
    t = time.perf_counter()
    rows = score(spark, a.model, a.input, a.out, a.workers, a.k, a.beam)
    print(f"spark: {rows} recommendations in {time.perf_counter() - t:.1f} s with {a.workers} workers -> {a.out}")
    spark.stop()


if __name__ == "__main__":
    main()
