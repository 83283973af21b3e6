"""Per-partition profiles of a staging table (asset metadata) and the money at stake."""

import pyarrow as pa

from dq_assets.cleaning import parse_decimal, trimmed
from dq_assets.duck import sql_list
from dq_assets.contracts import DECIMAL, INTEGER, REVENUE_STATUSES, TIMESTAMP, Table

REVENUE_IN = sql_list(REVENUE_STATUSES)


def column_profiles(conn, t: Table, staging: pa.Table, partition_key: str) -> list[dict]:
    """Row count, nulls, distinct values (approximate: HyperLogLog, in fixed memory; an exact
    count of 10M distinct keys cost more than validating them), and min/max/mean of numeric
    and time columns."""
    conn.register("_profiled", staging)
    parts = []
    for col in t.columns:
        c = f'"{col.name}"'
        numeric = col.kind in (DECIMAL, INTEGER)
        ordered = numeric or col.kind == TIMESTAMP
        parts.append(
            f"""SELECT '{col.name}' AS "column", '{col.kind}' AS kind, count(*) AS rows,
                       count(*) - count({c}) AS nulls,
                       approx_count_distinct({c}) AS distinct_values,
                       {f"CAST(min({c}) AS VARCHAR)" if ordered else "NULL"} AS min,
                       {f"CAST(max({c}) AS VARCHAR)" if ordered else "NULL"} AS max,
                       {f"CAST(round(avg({c}), 4) AS VARCHAR)" if numeric else "NULL"} AS mean
                FROM _profiled WHERE ingest_date = CAST(? AS DATE)"""
        )
    rows = conn.execute(" UNION ALL ".join(parts), [partition_key] * len(parts)).fetchall()
    conn.unregister("_profiled")
    names = ["column", "kind", "rows", "nulls", "distinct_values", "min", "max", "mean"]
    return [dict(zip(names, r)) for r in rows]


def profile_markdown(profile: list[dict]) -> str:
    head = "| column | kind | nulls | distinct (approx.) | min | max | mean |\n|---|---|---|---|---|---|---|\n"
    return head + "\n".join(
        f"| {p['column']} | {p['kind']} | {p['nulls']} | {p['distinct_values']} | "
        f"{p['min'] or ''} | {p['max'] or ''} | {p['mean'] or ''} |" for p in profile
    )


def revenue(conn, t: Table, raw: pa.Table, staging: pa.Table, partition_key: str):
    """(raw revenue as landed, clean revenue in staging) of a table with a revenue column:
    amounts of rows whose status counts as revenue. Their difference is revenue at risk."""
    if not t.revenue_column:
        return None, None
    conn.register("_raw_rev", raw)
    conn.register("_stg_rev", staging)
    amount = parse_decimal(trimmed(f'"{t.revenue_column}"'))
    status = f"lower({trimmed('status')})"
    [(raw_rev, clean_rev)] = conn.execute(
        f"""SELECT (SELECT coalesce(sum({amount}), 0) FROM _raw_rev
                    WHERE ingest_date = CAST(? AS DATE) AND {status} IN {REVENUE_IN}),
                   (SELECT coalesce(sum("{t.revenue_column}"), 0) FROM _stg_rev
                    WHERE ingest_date = CAST(? AS DATE) AND status IN {REVENUE_IN})""",
        [partition_key, partition_key],
    ).fetchall()
    conn.unregister("_raw_rev")
    conn.unregister("_stg_rev")
    return raw_rev, clean_rev
