"""Per-partition profiles of a staging table (asset metadata) and the money at stake."""

import pyarrow as pa

from dq_assets.contract.tables import CURRENCY, DECIMAL, ENUM, INTEGER, REVENUE_STATUSES, TIMESTAMP, Table
from dq_assets.rules.values import parse_decimal, trimmed
from dq_assets.storage.sql import quote, sql_list, sql_str

REVENUE_IN = sql_list(REVENUE_STATUSES)


QUANTILES = (("p01", 0.01), ("p50", 0.5), ("p99", 0.99))  # of numbers and money
COUNTED_KINDS = (ENUM, CURRENCY)  # columns whose values are counted (their shares monitored)
_STATS = ("nulls", "distinct_values", "min", "max", "mean", "stddev", "quantiles")


def column_profiles(conn, t: Table, staging: pa.Table, partition_keys: list[str]) -> dict[str, list[dict]]:
    """Per partition and column: rows, nulls, distinct values (approximate: HyperLogLog, in
    fixed memory; an exact count of 10M distinct keys cost more than validating them),
    min/max of numbers and times; mean of numbers and money, and (but of key columns) their
    standard deviation and quantiles (approximate: a t-digest, in fixed memory, where exact
    ones hold every value of the day); the count of each value of enumerations and
    currencies. One scan for the statistics, one per counted column."""
    conn.register("_profiled", staging)
    aggregates = []
    for i, col in enumerate(t.columns):
        c = quote(col.name)
        number = f"CAST({c} AS DOUBLE)"
        numeric = col.kind in (DECIMAL, INTEGER)
        ordered = numeric or col.kind == TIMESTAMP
        spread = numeric and col.name not in t.key
        stats = {
            "nulls": f"count(*) - count({c})",
            "distinct_values": f"approx_count_distinct({c})",
            "min": f"CAST(min({c}) AS VARCHAR)" if ordered else "NULL",
            "max": f"CAST(max({c}) AS VARCHAR)" if ordered else "NULL",
            "mean": f"avg({number})" if numeric else "NULL",
            "stddev": f"stddev_samp({number})" if spread else "NULL",
            "quantiles": f"approx_quantile({number}, {[at for _, at in QUANTILES]})" if spread else "NULL",
        }
        aggregates += [f"{sql} AS {quote(f'{stat}_{i}')}" for stat, sql in stats.items()]
    rows = conn.execute(
        f"""SELECT CAST(ingest_date AS VARCHAR), count(*), {", ".join(aggregates)}
            FROM _profiled GROUP BY ingest_date"""
    ).fetchall()
    counted = [col for col in t.columns if col.kind in COUNTED_KINDS]
    values: dict[tuple[str, str], dict] = {}
    if counted:
        found = conn.execute(" UNION ALL ".join(
            f"""SELECT CAST(ingest_date AS VARCHAR), {sql_str(col.name)}, CAST({quote(col.name)} AS VARCHAR),
                       count(*) FROM _profiled WHERE {quote(col.name)} IS NOT NULL GROUP BY ALL"""
            for col in counted)).fetchall()
        for key, column, value, n in found:
            values.setdefault((key, column), {})[value] = n
    conn.unregister("_profiled")
    out: dict[str, list[dict]] = {k: [] for k in partition_keys}
    for key, n, *stats in rows:
        out[key] = [_column_profile(t, i, col, n, stats, values.get((key, col.name), {}))
                    for i, col in enumerate(t.columns)]
    return {k: v or [_column_profile(t, i, col, 0, [None] * len(_STATS) * len(t.columns), {})
                     for i, col in enumerate(t.columns)]
            for k, v in out.items()}


def _column_profile(t: Table, i: int, col, rows: int, stats: list, values: dict) -> dict:
    mine = dict(zip(_STATS, stats[i * len(_STATS):(i + 1) * len(_STATS)]))
    mine |= dict(zip((q for q, _ in QUANTILES), mine.pop("quantiles") or (None,) * len(QUANTILES)))
    mean = mine["mean"]
    return {"column": col.name, "kind": col.kind, "rows": rows, **mine,
            "nulls": mine["nulls"] or 0, "distinct_values": mine["distinct_values"] or 0,
            # as the profile table shows it
            "mean": None if mean is None else f"{round(mean, 4)}",
            "mean_value": mean,
            "values": ({v: values.get(v, 0) for v in col.values} | values if col.kind == ENUM else values)
            if col.kind in COUNTED_KINDS else None}


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
