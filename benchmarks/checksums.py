"""What a run left behind, as one checksum per table: a speed-up must leave the big day's tables
identical. `python -m benchmarks.checksums WAREHOUSE [--compare FILE]` prints (or compares) them;
`benchmarks.run` records them for the big day and compares them with the last full run's.

A table's checksum is its row count and the sum of one hash per row over every column but
those that differ between any two runs of the same data (run ids, the moments rows were
written, the gate's inputs version, which is made of write marks, the number of a raw version): order-independent, so a
store may return rows in any order, and duplicates do not cancel out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb

SCHEMAS = ("raw", "staging", "quality", "marts")
VOLATILE = frozenset({"run_id", "loaded_at", "evaluated_at", "decided_at", "profiled_at",
                      "marked_at", "inputs_version", "_version", "version"})


def table_checksums(warehouse: str | Path) -> dict[str, dict]:
    """`{"schema.table": {"rows": n, "checksum": "…"}}` of every table of the warehouse's layers."""
    out: dict[str, dict] = {}
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE list_contains(?, table_schema) ORDER BY 1, 2", [list(SCHEMAS)]).fetchall()
        for schema, table in tables:
            columns = [c for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                "AND table_name = ? ORDER BY column_name", [schema, table]).fetchall()
                if c not in VOLATILE]
            row = ", ".join(f'"{c}"' for c in columns)
            rows, total = conn.execute(
                f'SELECT count(*), coalesce(sum(hash({row})::HUGEINT), 0) FROM "{schema}"."{table}"'
            ).fetchone()
            out[f"{schema}.{table}"] = {"rows": rows, "checksum": format(total, "x")}
    return out


def differences(before: dict[str, dict], after: dict[str, dict]) -> list[str]:
    """The tables whose rows differ (or that only one side has)."""
    return [name for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("warehouse")
    p.add_argument("--compare", type=Path, help="a JSON file of checksums to compare with")
    args = p.parse_args(argv)
    now = table_checksums(args.warehouse)
    if not args.compare:
        print(json.dumps(now, indent=1))
        return 0
    diff = differences(json.loads(args.compare.read_text()), now)
    print("identical" if not diff else "differ: " + ", ".join(diff))
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
