"""Score every user of a Parquet table with ugr on Ray Data, writing Parquet.

Input: columns user and history (list of item ids, most recent last), e.g. from
histories_parquet.py. Output: one row per recommendation (user, rank, item, score,
confidence). Each Ray worker (an actor of `map_batches`) opens the engine once, with one
thread: Ray runs one worker per CPU.

    pip install ./ugr-py "ray[data]" pyarrow
    python examples/python/ray_batch.py --model model.ugr --input users.parquet --out recs/ --workers 2
"""

import argparse
import os
import time

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


class Scorer:
    """A callable class: Ray builds one per worker, so the engine loads once per worker."""

    def __init__(self, model: str, k: int, beam: int) -> None:
        self.engine = ugr.Engine(model, threads=1)
        self.k, self.beam = k, beam

    def __call__(self, batch: pa.Table) -> pa.Table:
        recs = self.engine.recommend_batch(batch["history"], k=self.k, beam=self.beam)
        note_peak_memory()
        return pa.table(
            {
                "user": batch["user"].take(recs["row"]),
                "rank": recs["rank"],
                "item": recs["item"],
                "score": recs["score"],
                "confidence": recs["confidence"],
            }
        )


def score(model: str, source: str, out: str, workers: int, k: int = 10, beam: int = 20, batch_size: int = 256) -> int:
    """Runs the job; returns the rows written."""
    import ray

    # One block per few hundred users, so that every worker gets some (a single Parquet file
    # reads as one block).
    ds = ray.data.read_parquet(source).repartition(workers * 4)
    recs = ds.map_batches(
        Scorer,
        fn_constructor_args=(model, k, beam),
        batch_format="pyarrow",
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    recs.write_parquet(out)
    return ray.data.read_parquet(out).count()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True, help="directory of Parquet files to write")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--beam", type=int, default=20)
    a = p.parse_args()
    import ray

    # One CPU slot per scoring worker, and one for the tasks that list, read and write files
    # (with none, they wait for the actors and the job never starts).
    ray.init(num_cpus=a.workers + 1, include_dashboard=False, log_to_driver=False)
    t = time.perf_counter()
    rows = score(a.model, a.input, a.out, a.workers, a.k, a.beam)
    print(f"ray: {rows} recommendations in {time.perf_counter() - t:.1f} s with {a.workers} workers -> {a.out}")


if __name__ == "__main__":
    main()
