"""Soda Core scans for the check suite, run INSIDE the Soda virtualenv (benchmarks/peers.py):
it imports nothing of dq_assets and needs only soda-core-duckdb and its duckdb.

    <soda venv>/bin/python benchmarks/soda_scan.py SPEC.json OUT.json

SPEC (written by check_suite.run_soda): {"tables": {name: {"parquet": file, "setup_sql": [...],
"sodacl": text}}, "refs": {name: parquet file}}. Per table: the raw rows are loaded from
parquet into an in-memory DuckDB (timed apart, as `load_s`), the setup SQL creates the view the
checks read (trimmed text and the helper columns), and ONE Soda scan runs the table's SodaCL
checks (timed, `scan_s`). OUT: per table and per check its failing-row count (the check's
value), and per check the seconds of the queries that computed it (`query_s`; Soda computes
many metrics in one aggregation query, whose time every check of it shares).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta

import duckdb
from soda.scan import Scan


def _seconds(d) -> float:
    if d is None:
        return 0.0
    if isinstance(d, timedelta):
        return d.total_seconds()
    h, m, s = str(d).split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def scan_table(conn, name: str, spec: dict) -> dict:
    scan = Scan()
    scan.set_scan_definition_name(f"bench_{name}")
    scan.set_data_source_name("bench")
    scan.add_duckdb_connection(conn, data_source_name="bench")
    scan.add_sodacl_yaml_str(spec["sodacl"])
    t0 = time.perf_counter()
    scan.execute()
    scan_s = time.perf_counter() - t0
    res = scan.get_scan_results()
    counts, outcomes = {}, {}
    for c in res["checks"]:
        value = (c.get("diagnostics") or {}).get("value")
        counts[c["name"]] = None if value is None else int(round(float(value)))
        outcomes[c["name"]] = c.get("outcome")
    # Time per check: the queries that computed its metrics (shared ones counted for each).
    query_s: dict[str, float] = {}
    for check in scan._checks:
        metrics = {id(m) for m in check.metrics.values() if m is not None}
        name = check.name or check.check_cfg.source_line
        total = 0.0
        for q in scan._queries:
            q_metrics = getattr(q, "metrics", None) or [getattr(q, "metric", None)]
            if metrics & {id(m) for m in q_metrics if m is not None}:
                total += _seconds(q.duration)
        query_s[name] = round(total, 4)
    errors = [entry.get("message") for entry in res.get("logs", []) if entry.get("level") == "ERROR"]
    return {"scan_s": round(scan_s, 3), "counts": counts, "outcomes": outcomes,
            "query_s": query_s, "queries": len(res.get("queries", [])),
            "has_errors": bool(res.get("hasErrors")), "errors": errors[:5]}


def main(spec_path: str, out_path: str) -> int:
    spec = json.loads(open(spec_path, encoding="utf-8").read())
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    out = {"versions": {"duckdb": duckdb.__version__}, "tables": {}}
    try:
        import importlib.metadata as md
        out["versions"]["soda-core"] = md.version("soda-core")
        out["versions"]["soda-core-duckdb"] = md.version("soda-core-duckdb")
    except Exception:  # noqa: BLE001 - informative only
        pass
    t0 = time.perf_counter()
    for ref, path in spec["refs"].items():
        conn.execute(f"CREATE TABLE ref_{ref} AS SELECT * FROM read_parquet('{path}')")
    refs_s = time.perf_counter() - t0
    for name, tspec in spec["tables"].items():
        t0 = time.perf_counter()
        conn.execute(f"CREATE TABLE raw_{name} AS SELECT * FROM read_parquet('{tspec['parquet']}')")
        for sql in tspec["setup_sql"]:
            conn.execute(sql)
        load_s = time.perf_counter() - t0
        entry = scan_table(conn, name, tspec)
        entry["load_s"] = round(load_s, 3)
        out["tables"][name] = entry
        conn.execute(f"DROP TABLE raw_{name}")
    out["refs_load_s"] = round(refs_s, 3)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
