"""Per-partition profiles of a staging table (asset metadata) and the money at stake."""

import pyarrow as pa

from dq_assets.contract.tables import DECIMAL, INTEGER, REVENUE_STATUSES, TIMESTAMP, Table
from dq_assets.rules.values import parse_decimal, trimmed
from dq_assets.storage.sql import sql_list

REVENUE_IN = sql_list(REVENUE_STATUSES)


def column_profiles(conn, t: Table, staging: pa.Table, partition_keys: list[str]) -> dict[str, list[dict]]:
    """Per partition: row count, nulls, distinct values (approximate: HyperLogLog, in fixed
    memory; an exact count of 10M distinct keys cost more than validating them), and
    min/max/mean of numeric and time columns."""
    conn.register("_profiled", staging)
    parts = []
    for col in t.columns:
        c = f'"{col.name}"'
        numeric = col.kind in (DECIMAL, INTEGER)
        ordered = numeric or col.kind == TIMESTAMP
        parts.append(
            f"""SELECT CAST(ingest_date AS VARCHAR) AS partition_key, {len(parts)} AS position,
                       '{col.name}' AS "column", '{col.kind}' AS kind, count(*) AS rows,
                       count(*) - count({c}) AS nulls,
                       approx_count_distinct({c}) AS distinct_values,
                       {f"CAST(min({c}) AS VARCHAR)" if ordered else "NULL"} AS min,
                       {f"CAST(max({c}) AS VARCHAR)" if ordered else "NULL"} AS max,
                       {f"CAST(round(avg({c}), 4) AS VARCHAR)" if numeric else "NULL"} AS mean
                FROM _profiled GROUP BY ingest_date"""
        )
    rows = conn.execute(" UNION ALL ".join(parts) + " ORDER BY partition_key, position").fetchall()
    conn.unregister("_profiled")
    names = ["column", "kind", "rows", "nulls", "distinct_values", "min", "max", "mean"]
    empty = [dict(zip(names, (col.name, col.kind, 0, 0, 0, None, None, None))) for col in t.columns]
    out: dict[str, list[dict]] = {k: [] for k in partition_keys}
    for key, _position, *values in rows:
        out.setdefault(key, []).append(dict(zip(names, values)))
    return {k: v or [dict(e) for e in empty] for k, v in out.items()}


def profile_markdown(profile: list[dict]) -> str:
    head = "| column | kind | nulls | distinct (approx.) | min | max | mean |\n|---|---|---|---|---|---|---|\n"
    return head + "\n".join(
        f"| {p['column']} | {p['kind']} | {p['nulls']} | {p['distinct_values']} | "
        f"{p['min'] or ''} | {p['max'] or ''} | {p['mean'] or ''} |" for p in profile
    )


def _as_received(t: Table) -> tuple[str, str]:
    """SQL of a revenue row's amount and status read from the text as received (raw and
    quarantine rows)."""
    return parse_decimal(trimmed(f'"{t.revenue_column}"')), f"lower({trimmed('status')})"


def raw_revenue(conn, t: Table, raw: pa.Table, partition_keys: list[str]) -> dict:
    """Per partition, the raw revenue as landed (see `revenue`), of the raw rows themselves:
    taken before they are let go. None for a table without a revenue column."""
    if not t.revenue_column:
        return {k: None for k in partition_keys}
    conn.register("_raw_rev", raw)
    amount, status = _as_received(t)
    rows = conn.execute(
        f"""WITH k AS (SELECT unnest(CAST(? AS DATE[])) AS ingest_date),
                r AS (SELECT ingest_date, sum({amount}) AS v FROM _raw_rev
                      WHERE {status} IN {REVENUE_IN} GROUP BY ALL)
            SELECT CAST(k.ingest_date AS VARCHAR), coalesce(r.v, 0) FROM k LEFT JOIN r USING (ingest_date)""",
        [list(partition_keys)],
    ).fetchall()
    conn.unregister("_raw_rev")
    return dict(rows)


def revenue(conn, t: Table, raw_rev: dict, staging: pa.Table, quarantine: pa.Table,
            partition_keys: list[str]) -> dict:
    """Per partition, (raw revenue as landed (`raw_rev`, from `raw_revenue`), clean revenue in
    staging, revenue at risk) of a table with a revenue column: amounts of rows whose status
    counts as revenue. The revenue at risk is the money on the rows held back: the absolute
    amounts of quarantined revenue rows, duplicates left out (their key reached staging).
    Absolute, because a rejected -5.00 is money in doubt as much as a rejected 5.00: netting
    them would hide both. Amounts beyond the supported range (contracts.NUMBER_DIGITS,
    MONEY_SCALE) have no stored value and are in neither: they are quarantined out_of_range.
    (None, None, None) for a table without a revenue column."""
    if not t.revenue_column:
        return {k: (None, None, None) for k in partition_keys}
    conn.register("_stg_rev", staging)
    conn.register("_q_rev", quarantine)
    amount, status = _as_received(t)
    rows = conn.execute(
        f"""WITH k AS (SELECT unnest(CAST(? AS DATE[])) AS ingest_date),
                s AS (SELECT ingest_date, sum("{t.revenue_column}") AS v FROM _stg_rev
                      WHERE status IN {REVENUE_IN} GROUP BY ALL),
                q AS (SELECT ingest_date, sum(abs({amount})) AS v FROM _q_rev
                      WHERE {status} IN {REVENUE_IN}
                        AND NOT list_contains(string_split(reject_reasons, ','), 'duplicate')
                      GROUP BY ALL)
            SELECT CAST(k.ingest_date AS VARCHAR), coalesce(s.v, 0), coalesce(q.v, 0)
            FROM k LEFT JOIN s USING (ingest_date) LEFT JOIN q USING (ingest_date)""",
        [list(partition_keys)],
    ).fetchall()
    for name in ("_stg_rev", "_q_rev"):
        conn.unregister(name)
    return {key: (raw_rev[key], clean_rev, at_risk) for key, clean_rev, at_risk in rows}
