"""The statistical monitors, WARN checks on staging.<table> (severity scope: the table's name):
monitor_volume, monitor_nulls, monitor_distribution, monitor_values. Each evaluates the
partition's metrics (kept in quality.column_metrics) against their history
(dq_assets.rules.monitors), as gate.yaml's `monitors` section configures it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import dagster as dg

from dq_assets.checks.model import CheckDef, Outcome
from dq_assets.contract.gate import ERROR, WARN, GateConfig
from dq_assets.contract.tables import Table
from dq_assets.rules.monitors import (
    DISTRIBUTION,
    FAMILIES,
    NULLS,
    ROWS,
    SHARE,
    TABLE_LEVEL,
    VALUES,
    VOLUME,
    Finding,
    Settings,
    evaluate,
    family,
)
from dq_assets.rules.profiling import COUNTED_KINDS
from dq_assets.storage.sql import check_identifier, sql_str

NUMERIC_KINDS = ("decimal", "integer")
CHECK_OF = {f: f"monitor_{f}" for f in FAMILIES}
_DESCRIBE = {
    VOLUME: "Rows landed within the band of their history (median and MAD of the previous days "
            "and of the same weekday).",
    NULLS: "Each column's share of missing values within the band of its history.",
    DISTRIBUTION: "Mean and quantiles (p01, p50, p99) of each number and money column within "
                  "the band of their history.",
    VALUES: "Each value's share of the enumerations and currencies within the band of its "
            "history; a value that vanishes or appears fails.",
}


def monitored_families(t: Table) -> list[str]:
    """The monitors a table can have (from its contract): volume and nulls always, distribution
    with a number or money column, values with an enumeration or currency."""
    out = [VOLUME, NULLS]
    if any(c.kind in NUMERIC_KINDS and c.name not in t.key for c in t.columns):
        out.append(DISTRIBUTION)
    if any(c.kind in COUNTED_KINDS for c in t.columns):
        out.append(VALUES)
    return out


def monitor_check_defs(t: Table, asset: dg.AssetKey) -> list[CheckDef]:
    return [CheckDef(CHECK_OF[f], asset, _DESCRIBE[f]) for f in monitored_families(t)]


@dataclass(frozen=True)
class MonitorConfig:
    tables: tuple[str, ...]
    settings: Settings
    overrides: dict  # table or table.column -> {setting: value, enabled: bool}

    @classmethod
    def of(cls, cfg: GateConfig) -> MonitorConfig:
        m = cfg.monitors
        known = {f.name for f in fields(Settings)}
        return cls(tuple(m.get("tables") or ()), _settings(Settings(), m, known), dict(m.get("overrides") or {}))

    def settings_for(self, table: str, column: str) -> Settings | None:
        """None: not monitored."""
        if table not in self.tables:
            return None
        settings = self.settings
        for scope in (table, f"{table}.{column}"):
            entry = self.overrides.get(scope) or {}
            if entry.get("enabled") is False:
                return None
            settings = _settings(settings, entry, {f.name for f in fields(Settings)})
        return settings

    def severity_for(self, table: str, column: str, default: str) -> str:
        """A column's `severity` override, else its table's, else `default` (the check's)."""
        for scope in (f"{table}.{column}", table):
            value = (self.overrides.get(scope) or {}).get("severity")
            if value:
                if str(value).upper() not in (ERROR, WARN):
                    raise ValueError(f"gate config: monitors.overrides.{scope}.severity must be ERROR or WARN")
                return str(value).upper()
        return default


def _settings(base: Settings, entry: dict, known: set[str]) -> Settings:
    values = {k: v for k, v in entry.items() if k in known}
    return Settings(**{**base.__dict__, **{k: type(getattr(base, k))(v) for k, v in values.items()}})


def metric_history(rows: list[dict]) -> dict[tuple[str, str], dict[str, float]]:
    """(column, metric) -> {partition: value} from quality.column_metrics rows (the latest of
    each partition). A value of an enumeration or currency absent from a partition whose column
    has shares is a share of 0 there."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        out.setdefault((r["column_name"], r["metric"]), {})[r["partition_key"]] = r["value"]
    with_shares: dict[str, set[str]] = {}
    for (column, metric), by_day in out.items():
        if metric.startswith(SHARE):
            with_shares.setdefault(column, set()).update(by_day)
    for (column, metric), by_day in out.items():
        if metric.startswith(SHARE):
            for day in with_shares[column] - set(by_day):
                by_day[day] = 0.0
    return out


def evaluate_monitors(t: Table, asset: dg.AssetKey, cfg: GateConfig, partition_keys: list[str],
                      history: dict[tuple[str, str], dict[str, float]]) -> list[Outcome]:
    """The monitors of each partition of a run; `history` (see `metric_history`) holds the
    run's own partitions too."""
    mc = MonitorConfig.of(cfg)
    out = []
    for day in partition_keys:
        findings: dict[str, list[Finding]] = {f: [] for f in FAMILIES}
        shortest = None
        for (column, metric), by_day in sorted(history.items()):
            f = family(metric)
            settings = mc.settings_for(t.name, column)
            if f is None or day not in by_day or settings is None:
                continue
            finding = evaluate(day, column, metric, by_day[day], by_day, settings,
                               column_sd=_median_of(history.get((column, "stddev"), {}), day),
                               rows=history.get((TABLE_LEVEL, ROWS), {}).get(day))
            if finding is None:
                earlier = sum(1 for k in by_day if k < day)
                shortest = (earlier, settings.min_history) if shortest is None else min(shortest, (earlier, settings.min_history))
                continue
            findings[f].append(finding)
        for f in monitored_families(t):
            out.append(_outcome(t, asset, day, cfg, mc, f, findings[f], shortest))
    return out


def _median_of(by_day: dict[str, float], day: str) -> float | None:
    earlier = sorted(v for k, v in by_day.items() if k < day)
    return earlier[len(earlier) // 2] if earlier else None


def _outcome(t: Table, asset, day: str, cfg: GateConfig, mc: MonitorConfig, f: str, findings: list[Finding],
             shortest) -> Outcome:
    check = CHECK_OF[f]
    sev = cfg.severity_of(t.name, check)
    table_settings = mc.settings_for(t.name, TABLE_LEVEL)
    if table_settings is None and not findings:
        return Outcome(check, asset, day, passed=True, severity=sev,
                       observed=f"not monitored for {t.name} (gate.yaml monitors)")
    if not findings:
        earlier, needed = shortest or (0, (table_settings or Settings()).min_history)
        return Outcome(check, asset, day, passed=True, severity=sev,
                       observed=f"not evaluated: {earlier} earlier partitions", threshold=f"needs {needed}")
    fired = [x for x in findings if x.fired]
    # the worst of the fired metrics' severities (a column may have its own)
    if any(mc.severity_for(t.name, x.column, sev) == ERROR for x in fired):
        sev = ERROR
    history = max((b for x in findings for b in x.bands), key=lambda b: len(b.days))
    return Outcome(
        check, asset, day, passed=not fired, severity=sev, failing_rows=len(fired),
        observed=("; ".join(x.describe() for x in fired) if fired else
                  f"{len(findings)} metrics within their bands"),
        threshold=(f"within median +- {history.sensitivity:g} x spread of the previous {history.label} "
                   f"({history.days[0]}..{history.days[-1]}) and of the same weekday"),
        detail="\n".join(x.describe() for x in fired[1:]),
        sql=_rows_query(t, day, f, fired[0] if fired else findings[0]),
    )


def _rows_query(t: Table, day: str, f: str, finding: Finding) -> str:
    """A query over the rows behind a finding, the day and its history side by side."""
    first = min(b.days[0] for b in finding.bands)
    span = f"ingest_date BETWEEN DATE '{first}' AND DATE '{day}'"
    # names from the contract, validated identifiers (as in every check's query)
    table = f"staging.{check_identifier(t.name)}"
    if f == VOLUME:
        return f"SELECT ingest_date, count(*) AS landed_rows FROM raw.{t.name} WHERE {span} GROUP BY 1 ORDER BY 1"
    col = check_identifier(finding.column)
    if f == NULLS:
        return (f"SELECT ingest_date, count(*) FILTER (WHERE {col} IS NULL) AS nulls, count(*) AS staged_rows "
                f"FROM {table} WHERE {span} GROUP BY 1 ORDER BY 1 -- and the rows of quality.{t.name}_quarantine "
                f"missing it (reject_reasons 'missing_required')")
    if f == DISTRIBUTION:
        return (f"SELECT ingest_date, avg({col}) AS mean, quantile_cont({col}, 0.01) AS p01, "
                f"quantile_cont({col}, 0.5) AS p50, quantile_cont({col}, 0.99) AS p99 "
                f"FROM {table} WHERE {span} GROUP BY 1 ORDER BY 1")
    return (f"SELECT ingest_date, {col}, count(*) AS rows FROM {table} WHERE {span} "
            f"GROUP BY ALL ORDER BY ALL -- value {sql_str(finding.metric.removeprefix(SHARE))}")
