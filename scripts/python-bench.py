"""Measures the Python package against the Rust engine, in one run, on the same model and rows
(docs/results/python.md):

1. recommend_batch against `ugr bench batch` (Engine::recommend_parallel), 1 and 2 threads,
   passes interleaved;
2. 2 Python threads (each recommend_batch with threads=1, GIL released) against 1;
3. Ray Data and Spark (examples/python) with 1 and 2 workers on every row, and each worker's
   peak resident memory.

    ugr data histories --data ../shared/data/Beauty --out runs/beauty-test-h
    python scripts/python-bench.py --model runs/beauty.ugr --histories runs/beauty-test-h \\
        --ugr target/release/ugr --json runs/python-bench.json

Needs the ugr package, pyarrow, and for step 3 ray[data] and pyspark (a Java 17+ runtime).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

import ugr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(histories: str, rows: int):
    values = np.load(f"{histories}/values.npy")
    offsets = np.load(f"{histories}/offsets.npy")
    rows = len(offsets) - 1 if rows == 0 else min(rows, len(offsets) - 1)
    return values[: offsets[rows]], offsets[: rows + 1], rows


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def rust_batch(a, rows: int, threads: int) -> float:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run(
            [a.ugr, "bench", "batch", "--model", a.model, "--histories", a.histories, "--rows", str(rows),
             "--threads", str(threads), "--repeat", "1", "--json", f.name],
            check=True, capture_output=True,
        )
        return json.load(open(f.name))[0]["seconds"]


def engine_vs_python(a, engine: ugr.Engine) -> dict:
    values, offsets, rows = load(a.histories, a.rows)
    half = len(offsets) // 2

    def py(threads: int):
        return lambda: engine.recommend_batch(values, offsets=offsets, k=10, beam=20, threads=threads)

    def two_python_threads():
        parts = [(values, offsets[: half + 1]), (values, offsets[half:])]
        ts = [threading.Thread(target=engine.recommend_batch, args=(v,), kwargs={"offsets": o, "threads": 1}) for v, o in parts]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    times: dict = {k: [] for k in ("python_1", "python_2", "rust_1", "rust_2", "python_threads_2")}
    for rep in range(a.repeat):
        print(f"pass {rep + 1}/{a.repeat}", file=sys.stderr)
        times["python_1"].append(timed(py(1)))
        times["rust_1"].append(rust_batch(a, rows, 1))
        times["python_2"].append(timed(py(2)))
        times["rust_2"].append(rust_batch(a, rows, 2))
        times["python_threads_2"].append(timed(two_python_threads))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "rows": rows,
        "seconds": times,
        "requests_per_s": {k: rows / v for k, v in med.items()},
        "python_vs_rust_1_thread": med["rust_1"] / med["python_1"],
        "python_vs_rust_2_threads": med["rust_2"] / med["python_2"],
        "python_2_threads_vs_1": med["python_1"] / med["python_threads_2"],
        "engine_2_threads_vs_1": med["python_1"] / med["python_2"],
    }


def distributed(a, engine_name: str, workers: int, parquet: str) -> dict:
    script = os.path.join(ROOT, "examples", "python", f"{engine_name}_batch.py")
    with tempfile.TemporaryDirectory() as rss, tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, UGR_RSS_DIR=rss)
        t = time.perf_counter()
        run = subprocess.run(
            [sys.executable, script, "--model", a.model, "--input", parquet, "--out", f"{out}/recs", "--workers", str(workers)],
            check=True, capture_output=True, text=True, env=env,
        )
        wall = time.perf_counter() - t
        line = [l for l in run.stdout.splitlines() if l.startswith(engine_name)][-1]
        job = float(line.split(" in ")[1].split(" s ")[0])
        peaks = [int(open(os.path.join(rss, p)).read()) for p in os.listdir(rss)]
    return {"workers": workers, "job_seconds": job, "process_seconds": wall,
            "worker_peak_rss_mb": [round(p / 2**20, 1) for p in sorted(peaks)], "line": line}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--histories", required=True, help="directory written by `ugr data histories`")
    p.add_argument("--ugr", default=os.path.join(ROOT, "target", "release", "ugr"))
    p.add_argument("--rows", type=int, default=4000, help="rows of the Python vs Rust comparison (0: all)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--parts", default="batch,ray,spark", help="which parts to run, comma separated")
    p.add_argument("--json")
    a = p.parse_args()
    parts = set(a.parts.split(","))
    report: dict = {"model": a.model, "histories": a.histories, "artifact_mb": round(os.path.getsize(a.model) / 2**20, 1)}
    if "batch" in parts:
        report["batch"] = engine_vs_python(a, ugr.Engine(a.model))
        report["python_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(report["batch"], indent=1), file=sys.stderr)
    if parts & {"ray", "spark"}:
        with tempfile.TemporaryDirectory() as d:
            parquet = f"{d}/users.parquet"
            subprocess.run([sys.executable, os.path.join(ROOT, "examples", "python", "histories_parquet.py"),
                            "--histories", a.histories, "--out", parquet], check=True, capture_output=True)
            for name in [n for n in ("ray", "spark") if n in parts]:
                report[name] = [distributed(a, name, w, parquet) for w in (1, 2, 1, 2)]
                print(name, json.dumps(report[name], indent=1), file=sys.stderr)
    text = json.dumps(report, indent=1)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
