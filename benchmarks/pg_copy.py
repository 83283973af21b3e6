"""The PostgreSQL data path, old and new: write then read a staging.orders-shaped table.

    DQ_TEST_PG_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        python -m benchmarks.pg_copy --rows 1000000 [--paths old,new] [--repeat 1]

`old` is `dq_assets/storage/postgres/tables.py` as it was before ADBC (COPY CSV through
psycopg, git-shown from commit `OLD_COMMIT` into a temporary module, never imported by the
product); `new` is the current `tables` on an ADBC session. Each (path, step) runs in its own
child process: the wall time of `write_table` / `read_table` and the growth of the process's RSS
(peak during the step, polled every 10 ms, minus the RSS before it). The read is checked with
`.equals()` against the frame written. A scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.compute as pc

OLD_COMMIT = "ccd4f77"
REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def frame(rows: int) -> pa.Table:
    """staging.orders / staging.events columns: ids, a UTC timestamp, a status, a currency,
    an exact NUMERIC(38,6) amount, a count, a flag, the DATE partition; some NULLs."""
    i = pa.array(range(rows), pa.int64())
    valid = pc.not_equal(pc.bit_wise_and(i, 63), 7)  # 1 row in 64 has NULLs
    whole = pc.cast(pc.add(pc.multiply(i, 1_000_003), 100_000_000_000_000_000), pa.string())  # 18 digits
    fraction = pc.utf8_lpad(pc.cast(pc.bit_wise_and(pc.multiply(i, 7919), 0x7FFFF), pa.string()), 6, "0")
    amount = pc.cast(pc.binary_join_element_wise(whole, fraction, "."), pa.decimal128(38, 6))
    return pa.table({
        "order_id": pc.binary_join_element_wise("O", pc.cast(i, pa.string()), ""),
        "customer_id": pc.if_else(valid, pc.binary_join_element_wise("C", pc.cast(pc.bit_wise_and(i, 4095), pa.string()), ""), None),
        "placed_at": pc.cast(pc.add(pc.multiply(i, 1_000_001), 1_735_689_600_000_000), pa.timestamp("us", tz="UTC")),
        "status": pc.take(pa.array(["paid", "pending", "refunded", "cancelled"]), pc.bit_wise_and(i, 3)),
        "currency": pc.if_else(valid, pa.scalar("EUR"), None),
        "amount": pc.if_else(valid, amount, None),
        "quantity": pc.if_else(valid, pc.bit_wise_and(i, 15), None),
        "is_test": pc.equal(pc.bit_wise_and(i, 255), 0),
        "ingest_date": pa.array([19723] * rows, pa.int32()).cast(pa.date32()),
    })


def old_tables():
    """The pre-ADBC tables.py, from git, as a throwaway module."""
    text = subprocess.run(["git", "show", f"{OLD_COMMIT}:dq_assets/storage/postgres/tables.py"],
                          cwd=REPO, check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "old_pg_tables.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("old_pg_tables", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(fn):
    proc = psutil.Process()
    base = peak = proc.memory_info().rss
    done = threading.Event()

    def poll():
        nonlocal peak
        while not done.wait(0.01):
            peak = max(peak, proc.memory_info().rss)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    start = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - start
    done.set()
    poller.join()
    peak = max(peak, proc.memory_info().rss)
    return result, wall, (peak - base) / MIB


def child(url: str, path: str, step: str, rows: int) -> dict:
    from dq_assets.storage.postgres.connection import PostgresConnection

    data = frame(rows)
    resource = PostgresConnection(url=url)
    table = f"bench_{path}"
    if path == "old":
        tables = old_tables()
        opener = resource.connect
    else:
        from dq_assets.storage.postgres import tables
        opener = getattr(resource, "session", None) or resource.connect
    with opener("benchmark") as conn:
        if step == "write":
            _, wall, rss = measure(lambda: tables.write_table(conn, "staging", table, data, replace=True))
            return {"wall_s": round(wall, 2), "rss_mib": round(rss)}
        got, wall, rss = measure(lambda: tables.read_table(conn, "staging", table, order_by=["order_id"]))
    want = data.take(pc.sort_indices(data, [("order_id", "ascending")]))
    return {"wall_s": round(wall, 2), "rss_mib": round(rss), "equal": bool(got.equals(want))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--paths", default="old,new")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--url", default=os.environ.get("DQ_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--child", nargs=2, metavar=("PATH", "STEP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.url, *args.child, args.rows)))
        return 0

    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    db = f"dq_bench_{os.getpid()}"
    with psycopg.connect(args.url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    url = make_conninfo(**{**conninfo_to_dict(args.url), "dbname": db})
    ok = True
    try:
        print(f"{args.rows:,} rows, staging.orders-shaped (9 columns)")
        print(f"{'path':<5} {'step':<6} {'wall s':>7} {'RSS +MiB':>9}  equal")
        for _ in range(args.repeat):
            for path in args.paths.split(","):
                for step in ("write", "read"):
                    out = subprocess.run(
                        [sys.executable, "-m", "benchmarks.pg_copy", "--rows", str(args.rows),
                         "--url", url, "--child", path, step],
                        cwd=REPO, capture_output=True, text=True, check=False)
                    if out.returncode:
                        print(f"{path:<5} {step:<6} FAILED\n{out.stderr[-2000:]}")
                        ok = False
                        continue
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    ok &= r.get("equal", True)
                    print(f"{path:<5} {step:<6} {r['wall_s']:>7.2f} {r['rss_mib']:>9}  {r.get('equal', '')}")
    finally:
        with psycopg.connect(args.url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
