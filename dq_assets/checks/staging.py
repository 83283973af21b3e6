"""Staging checks, on staging.<table> (severity scope: the table's name): row_conservation,
unique_key, quarantine_rate, volume, partial_load (hourly-covered tables), one
`no_<reason>` per reject reason that can occur in the table (`Table.reject_reasons`: not-null,
parse, accepted values and shapes, ranges, future timestamps, row rules, referential
integrity, duplicates), and the statistical monitors (dq_assets.checks.monitors). Evaluated on the counts and failure statistics the staging step
gathers while it validates (dq_assets.rules.cleaning).
"""

import dataclasses
from dataclasses import dataclass

import dagster as dg

from dq_assets.checks.model import SAMPLE_KEYS, CheckDef, Outcome, Recon, partition_filter
from dq_assets.checks.monitors import monitor_check_defs
from dq_assets.contract.gate import ERROR, WARN, GateConfig
from dq_assets.contract.tables import Table
from dq_assets.rules.cleaning import rows_of_repeated_keys
from dq_assets.storage.sql import quote


def reason_check_name(reason: str) -> str:
    return f"no_{reason}"


def staging_check_defs(t: Table, asset: dg.AssetKey) -> list[CheckDef]:
    defs = [
        CheckDef("row_conservation", asset,
                 f"raw.{t.name} rows = staging.{t.name} rows + quarantined rows: nothing lost."),
        CheckDef("unique_key", asset, f"({', '.join(t.key)}) is unique per partition in staging."),
        CheckDef("quarantine_rate", asset,
                 "Share of rows quarantined: any is WARN, above the threshold ERROR."),
        CheckDef("volume", asset,
                 "Landed rows not below half the median of the previous 7 partitions "
                 "(for the tables gate.yaml lists)."),
    ]
    if t.hourly_coverage_column:
        defs.append(CheckDef("partial_load", asset,
                             f"At most 4 hours of the ingest day without {t.name} "
                             f"(by {t.hourly_coverage_column})."))
    for reason in t.reject_reasons:
        defs.append(CheckDef(reason_check_name(reason), asset,
                             f"No row of {t.file_name} rejected as `{reason}`."))
    return defs + monitor_check_defs(t, asset)


@dataclass(frozen=True)
class PartitionCounts:
    raw_rows: int
    staging_rows: int
    quarantined_rows: int
    duplicate_keys: int  # keys appearing more than once in staging
    duplicate_samples: list[str]
    hours_with_rows: int | None = None  # of the ingest day, for hourly-covered tables
    earlier_raw_rows: tuple[int, ...] = ()  # landed rows of the previous partitions, newest first


def partition_counts(conn, t: Table, partition_keys: list[str], raw_rows: dict[str, int],
                     result) -> dict[str, PartitionCounts]:
    """Rows landed (`raw_rows`, counted on the raw rows themselves), staged and quarantined,
    hours with rows and duplicate keys left in staging, per partition of a chunk."""
    conn.register("_staging", result.staging)
    conn.register("_quarantine", result.quarantine)
    key = ", ".join(quote(k) for k in t.key)
    sample = " || '|' || ".join(f"CAST({quote(k)} AS VARCHAR)" for k in t.key)
    hours = "SELECT NULL::DATE AS ingest_date, NULL::BIGINT AS n WHERE false"
    if t.hourly_coverage_column:
        col = quote(t.hourly_coverage_column)
        hours = (f"SELECT ingest_date, count(DISTINCT hour({col})) AS n FROM _staging "
                 f"WHERE CAST({col} AS DATE) = ingest_date GROUP BY ALL")
    rows = conn.execute(
        f"""WITH k AS (SELECT unnest(CAST(? AS DATE[])) AS ingest_date),
                s AS (SELECT ingest_date, count(*) AS n FROM _staging GROUP BY ALL),
                q AS (SELECT ingest_date, count(*) AS n FROM _quarantine GROUP BY ALL),
                h AS ({hours}),
                d AS (SELECT ingest_date, count(*) AS n, list(k)[1:{SAMPLE_KEYS}] AS samples
                      FROM (SELECT ingest_date, {sample} AS k
                            FROM ({rows_of_repeated_keys("_staging", key)})
                            GROUP BY ingest_date, {key} HAVING count(*) > 1)
                      GROUP BY ALL)
            SELECT CAST(k.ingest_date AS VARCHAR), coalesce(s.n, 0),
                   coalesce(q.n, 0), {"coalesce(h.n, 0)" if t.hourly_coverage_column else "NULL"},
                   coalesce(d.n, 0), d.samples
            FROM k LEFT JOIN s USING (ingest_date)
                   LEFT JOIN q USING (ingest_date) LEFT JOIN h USING (ingest_date)
                   LEFT JOIN d USING (ingest_date)""",
        [list(partition_keys)],
    ).fetchall()
    for name in ("_staging", "_quarantine"):
        conn.unregister(name)
    return {
        pk: PartitionCounts(raw_rows.get(pk, 0), staging_rows, quarantined, dup_keys,
                            list(dup_samples or []), hours_with_rows=hours_with_rows)
        for pk, staging_rows, quarantined, hours_with_rows, dup_keys, dup_samples in rows
    }


def evaluate_partitions(t: Table, asset: dg.AssetKey, cfg: GateConfig, counts: dict[str, PartitionCounts],
                        failures: list[dict], raw_rows_history: dict[str, int]) -> list[Outcome]:
    """The checks of every partition of a run: `counts` by partition, `failures` the rows of
    Validation.failures, `raw_rows_history` the rows landed by partition (for volume)."""
    outcomes = []
    for partition_key, c in counts.items():
        earlier = tuple(raw_rows_history[k] for k in sorted(raw_rows_history, reverse=True) if k < partition_key)
        c = dataclasses.replace(c, earlier_raw_rows=earlier)
        mine = [f for f in failures if f["ingest_date"].isoformat() == partition_key]
        outcomes += evaluate_staging(t, asset, partition_key, cfg, c, mine)
    return outcomes


def evaluate_staging(
    t: Table,
    asset: dg.AssetKey,
    partition_key: str,
    cfg: GateConfig,
    counts: PartitionCounts,
    failures: list[dict],  # rows of Validation.failures for this partition
) -> list[Outcome]:
    sev = lambda check: cfg.severity_of(t.name, check)  # noqa: E731
    where = partition_filter(partition_key)
    key = ", ".join(t.key)
    c = counts
    out = [
        Outcome(
            "row_conservation", asset, partition_key,
            passed=c.raw_rows == c.staging_rows + c.quarantined_rows,
            severity=sev("row_conservation"),
            failing_rows=abs(c.raw_rows - c.staging_rows - c.quarantined_rows),
            observed=f"raw {c.raw_rows} vs staging {c.staging_rows} + quarantine {c.quarantined_rows}",
            threshold="raw = staging + quarantine",
            recons=[Recon("rows", f"{t.name} staging + quarantine vs raw", c.raw_rows,
                          c.staging_rows + c.quarantined_rows)],
            sql=(f"SELECT (SELECT count(*) FROM raw.{t.name} WHERE {where}) AS raw_rows, "
                 f"(SELECT count(*) FROM staging.{t.name} WHERE {where}) AS staging_rows, "
                 f"(SELECT count(*) FROM quality.{t.name}_quarantine WHERE {where}) AS quarantined"),
        ),
        Outcome(
            "unique_key", asset, partition_key, passed=c.duplicate_keys == 0,
            severity=sev("unique_key"), failing_rows=c.duplicate_keys,
            observed=f"{c.duplicate_keys} duplicated keys", threshold="0",
            sample_keys=c.duplicate_samples,
            sql=(f"SELECT {key}, count(*) FROM staging.{t.name} WHERE {where} "
                 f"GROUP BY ALL HAVING count(*) > 1"),
        ),
    ]
    rate = c.quarantined_rows / c.raw_rows if c.raw_rows else 0.0
    rate_sev = ERROR if rate > cfg.quarantine_error_above else WARN
    out.append(
        Outcome(
            "quarantine_rate", asset, partition_key, passed=rate <= cfg.quarantine_warn_above,
            severity=rate_sev, failing_rows=c.quarantined_rows,
            observed=f"{rate:.2%} ({c.quarantined_rows} of {c.raw_rows} rows)",
            threshold=(f"WARN above {cfg.quarantine_warn_above:.0%}, "
                       f"ERROR above {cfg.quarantine_error_above:.0%}"),
            sql=(f"SELECT reject_reason, count(*) FROM quality.{t.name}_quarantine "
                 f"WHERE {where} GROUP BY ALL ORDER BY 2 DESC"),
        )
    )
    out.append(evaluate_volume(t, asset, partition_key, cfg, counts))
    if t.hourly_coverage_column:
        empty = 24 - (c.hours_with_rows or 0)
        col = t.hourly_coverage_column
        out.append(
            Outcome(
                "partial_load", asset, partition_key, passed=empty <= cfg.max_empty_hours,
                severity=sev("partial_load"), failing_rows=empty,
                observed=f"{empty} of 24 hours without rows", threshold=f"<= {cfg.max_empty_hours}",
                sql=(f"SELECT h.hour, count({col}) FROM range(24) h(hour) LEFT JOIN staging.{t.name} "
                     f"ON {where} AND hour({col}) = h.hour AND CAST({col} AS DATE) = DATE "
                     f"'{partition_key}' GROUP BY ALL ORDER BY 1"),
            )
        )
    for reason in t.reject_reasons:
        rows = [f for f in failures if f["reason"] == reason]
        total = next((f for f in rows if f["column"] == "*"), None)
        by_column = {f["column"]: f["failing_rows"] for f in rows if f["column"] != "*"}
        check = reason_check_name(reason)
        out.append(
            Outcome(
                check, asset, partition_key, passed=total is None, severity=sev(check),
                failing_rows=total["failing_rows"] if total else 0,
                observed=", ".join(f"{col}: {n}" for col, n in by_column.items()) or
                (f"{total['failing_rows']} rows" if total else "0"),
                threshold="0", sample_keys=list(total["sample_keys"]) if total else [],
                sql=(f"SELECT * FROM quality.{t.name}_quarantine WHERE {where} "
                     f"AND list_contains(string_split(reject_reasons, ','), '{reason}')"),
            )
        )
    return out


def evaluate_volume(t: Table, asset, partition_key: str, cfg: GateConfig, c: PartitionCounts) -> Outcome:
    history = c.earlier_raw_rows[: cfg.volume_history]
    sev = cfg.severity_of(t.name, "volume")
    if t.name not in cfg.volume_tables:
        return Outcome("volume", asset, partition_key, passed=True, severity=sev,
                       observed=f"{c.raw_rows} rows; not evaluated for {t.name} (gate.yaml volume.tables)")
    if len(history) < cfg.volume_history:
        return Outcome("volume", asset, partition_key, passed=True, severity=sev,
                       observed=f"{c.raw_rows} rows; only {len(history)} earlier partitions",
                       threshold=f"needs {cfg.volume_history}")
    ordered = sorted(history)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    floor = cfg.volume_ratio * median
    return Outcome(
        "volume", asset, partition_key, passed=c.raw_rows >= floor, severity=sev,
        failing_rows=0 if c.raw_rows >= floor else int(floor - c.raw_rows + 0.999),
        observed=f"{c.raw_rows} rows", threshold=f">= {floor:g} ({cfg.volume_ratio:g} x median {median:g} of previous {len(history)})",
        sql=(f"SELECT partition_key, raw_rows FROM quality.partition_profiles WHERE table_name = "
             f"'{t.name}' ORDER BY partition_key DESC LIMIT {cfg.volume_history + 1}"),
    )
