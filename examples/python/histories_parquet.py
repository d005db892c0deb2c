"""Histories written by `ugr data histories` (users.npy, values.npy, offsets.npy) as one
Parquet file with columns user (uint32) and history (list<uint32>): the input of the Ray and
Spark examples, shaped like a feature table a team already has.

    python examples/python/histories_parquet.py --histories runs/beauty-test-h --out runs/users.parquet
"""

import argparse

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--histories", required=True, help="directory written by `ugr data histories`")
    p.add_argument("--out", required=True, help="Parquet file to write")
    p.add_argument("--repeat", type=int, default=1, help="write every user this many times (a larger job)")
    a = p.parse_args()
    users = np.load(f"{a.histories}/users.npy")
    values = np.load(f"{a.histories}/values.npy")
    offsets = np.load(f"{a.histories}/offsets.npy").astype(np.int64)
    history = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.uint32()))
    table = pa.table({"user": pa.array(users, type=pa.uint32()), "history": history.cast(pa.list_(pa.uint32()))})
    table = pa.concat_tables([table] * a.repeat)
    pq.write_table(table, a.out, row_group_size=4096)
    print(f"wrote {a.out}: {table.num_rows} users")


if __name__ == "__main__":
    main()
