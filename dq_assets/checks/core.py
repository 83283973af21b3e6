"""The trust gate's checks, derived from the table contracts.

Checks are evaluated inside the step that produces the data (set-based, on the frames that
step already holds), one outcome per check and partition. Every outcome is appended to
`quality.check_results` and reported to Dagster as an asset check result; the
`quality.partition_gate` asset then blocks the marts of any partition with a failed ERROR check.

Check names by dimension:
- landing (raw.<table>): file_listed_and_present, file_readable, manifest_rows, manifest_sha256,
  manifest_<sum field>, required_columns, unknown_columns; raw.landing_files:
  no_unexpected_files
- staging.<table>: row_conservation, unique_key, quarantine_rate, and one `no_<reason>` per
  reject reason that can occur in the table (not-null, parse, accepted values and shapes,
  ranges, future timestamps, row rules, referential integrity, duplicates)
"""

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Context, Decimal, InvalidOperation
from pathlib import Path

import dagster as dg
import pyarrow as pa

from dq_assets.rules.cleaning import column_failures
from dq_assets.contract.tables import REJECT_REASONS, Table
from dq_assets.settings import read_yaml
from dq_assets.contract.suppressions import Suppression, load_suppressions, today_utc

GATE_CONFIG_ENV = "DQ_GATE_CONFIG"
DEFAULT_GATE_CONFIG = Path(__file__).parent.parent / "contract" / "gate.yaml"
ERROR, WARN = "ERROR", "WARN"
SAMPLE_KEYS = 10


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class GateConfig:
    severity: dict[str, str]
    quarantine_error_above: float
    quarantine_warn_above: float
    max_empty_hours: int = 4
    volume_ratio: float = 0.5
    volume_history: int = 7
    volume_tables: tuple[str, ...] = ()
    freshness: dict = field(default_factory=dict)

    def severity_of(self, table: str, check: str) -> str:
        value = self.severity.get(f"{table}.{check}") or self.severity.get(check) or ERROR
        if value not in (ERROR, WARN):
            raise ValueError(f"gate config: severity of {table}.{check} must be ERROR or WARN")
        return value


def load_gate_config(path: str | None = None) -> GateConfig:
    """The default gate.yaml, with `DQ_GATE_CONFIG` (or `path`) entries on top."""
    doc = read_yaml(DEFAULT_GATE_CONFIG)
    override_path = path or os.environ.get(GATE_CONFIG_ENV)
    if override_path:
        override = read_yaml(Path(override_path)) or {}
        for section in ("severity", "quarantine_rate", "partial_load", "volume", "freshness"):
            doc[section] = {**doc.get(section, {}), **(override.get(section) or {})}
    rate, volume = doc["quarantine_rate"], doc["volume"]
    return GateConfig(
        severity={k: str(v).upper() for k, v in doc["severity"].items()},
        quarantine_error_above=float(rate["error_above"]),
        quarantine_warn_above=float(rate["warn_above"]),
        max_empty_hours=int(doc["partial_load"]["max_empty_hours"]),
        volume_ratio=float(volume["ratio"]),
        volume_history=int(volume["history"]),
        volume_tables=tuple(volume.get("tables") or ()),
        freshness=doc.get("freshness") or {},
    )


# ---------------------------------------------------------------- what a check is


@dataclass(frozen=True)
class CheckDef:
    name: str
    asset: dg.AssetKey
    description: str

    def spec(self, partitions_def) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(
            self.name, asset=self.asset, description=self.description, partitions_def=partitions_def
        )


@dataclass
class Outcome:
    """One check evaluated on one partition."""

    check: str
    asset_key: dg.AssetKey
    partition_key: str
    passed: bool
    severity: str
    failing_rows: int = 0
    observed: str = ""
    threshold: str = ""
    detail: str = ""
    sample_keys: list[str] = field(default_factory=list)
    sql: str = ""
    # Metric-level reconciliations behind the outcome, also kept in quality.recon_summary:
    recons: list["Recon"] = field(default_factory=list)
    suppressed_by: str | None = None  # ticket of the suppression that downgraded it to WARN


@dataclass(frozen=True)
class Recon:
    """Two totals that must agree, e.g. landed rows vs the manifest's."""

    metric: str  # rows | sha256 | amount_sum | ... | order_count | revenue
    scope: str  # a table, or table/currency
    expected: object  # the reference side (manifest, raw, staging)
    observed: object

    @property
    def agrees(self) -> bool:
        diff = self._exact_difference()
        return self.expected == self.observed if diff is None else diff == 0

    @property
    def difference(self) -> Decimal | None:
        """observed - expected as stored (DECIMAL(38,6)); None when either side is not a
        number, or the difference (a huge total in a manifest, say) does not fit the column."""
        diff = self._exact_difference()
        if diff is None or not diff.is_finite():
            return None
        if diff.as_tuple().exponent < -6:
            diff = diff.quantize(Decimal("0.000001"), context=_EXACT)
        return diff if abs(diff) < Decimal(10) ** 32 else None

    def _exact_difference(self) -> Decimal | None:
        try:
            return _EXACT.subtract(Decimal(str(self.observed)), Decimal(str(self.expected)))
        except (InvalidOperation, TypeError, ValueError):
            return None


_EXACT = Context(prec=200)  # totals as sent can be any length: subtract them without rounding


def reason_check_name(reason: str) -> str:
    return f"no_{reason}"


def raw_check_defs(t: Table, asset: dg.AssetKey) -> list[CheckDef]:
    defs = [
        CheckDef("file_listed_and_present", asset,
                 f"{t.file_name} is present exactly when _manifest.json lists it."),
        CheckDef("file_readable", asset,
                 f"{t.file_name} can be read as the contract's CSV (UTF-8, one header of distinct "
                 "names, RFC 4180 quoting, every row as many fields as the header). One that "
                 "cannot lands no row and fails its own day only."),
        CheckDef("manifest_rows", asset, "Landed data rows equal the manifest's `rows`."),
        CheckDef("manifest_sha256", asset, "The file's sha256 equals the manifest's."),
        CheckDef("required_columns", asset, "Every contract column is in the file's header."),
        CheckDef("unknown_columns", asset,
                 "No column outside the contract (schema drift; kept in raw as extra_columns)."),
    ]
    if t.manifest_sum:
        column, sum_field = t.manifest_sum
        defs.insert(3, CheckDef(f"manifest_{sum_field}", asset,
                                f"Sum of `{column}` as landed (unparseable = 0) equals the "
                                f"manifest's `{sum_field}`."))
    return defs


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
    for reason in table_reasons(t):
        defs.append(CheckDef(reason_check_name(reason), asset,
                             f"No row of {t.file_name} rejected as `{reason}`."))
    return defs


def table_reasons(t: Table) -> list[str]:
    """Reject reasons that can occur in this table, in the contract's order."""
    present = {f.reason for f in column_failures(t)} | {"duplicate"}
    return [r for r in REJECT_REASONS if r in present]


# ---------------------------------------------------------------- reporting


def worst(outcomes: list[Outcome]) -> str:
    return ERROR if any(o.severity == ERROR for o in outcomes if not o.passed) else WARN


def check_result(outcomes: list[Outcome]) -> dg.AssetCheckResult:
    """One Dagster check result for a check over the partition(s) of this run."""
    first = outcomes[0]
    failed = [o for o in outcomes if not o.passed]
    shown = failed or outcomes
    meta: dict = {
        "failing_rows": dg.MetadataValue.int(sum(o.failing_rows for o in outcomes)),
        "observed": "; ".join(f"{o.partition_key}: {o.observed}" for o in shown[:10]),
        "threshold": first.threshold,
        "severity": first.severity if not failed else worst(failed),
    }
    if failed:
        meta["failed_partitions"] = ", ".join(o.partition_key for o in failed[:20])
        tickets = sorted({o.suppressed_by for o in failed if o.suppressed_by})
        if tickets:
            meta["suppressed_by"] = ", ".join(tickets)
        detail = failed[0]
        if detail.detail:
            meta["detail"] = detail.detail
        if detail.sample_keys:
            meta["sample_key_list"] = ", ".join(detail.sample_keys)
            meta["sample_keys"] = dg.MetadataValue.md(
                "| key |\n|---|\n" + "\n".join(f"| {k} |" for k in detail.sample_keys)
            )
        if detail.sql:
            meta["reproduce_sql"] = dg.MetadataValue.md(f"```sql\n{readable_sql(detail.sql)}\n```")
    return dg.AssetCheckResult(
        asset_key=first.asset_key,
        check_name=first.check,
        passed=not failed,
        severity=dg.AssetCheckSeverity(worst(failed)) if failed else dg.AssetCheckSeverity(first.severity),
        metadata=meta,
        description=_summary(failed[0]) if failed else None,
    )


# Clauses that start a line of their own in `readable_sql` (AND and ON indented).
_SQL_CLAUSES = ("LEFT JOIN", "GROUP BY", "ORDER BY", "FROM", "WHERE", "HAVING", "LIMIT", "JOIN",
                "ON", "AND", "--")
_SELECT_ITEM_WRAP = 30  # a SELECT item longer than this ends its line (subqueries)


def readable_sql(sql: str) -> str:
    """The one-line reproducing SQL over a few lines for the check's page: the UI shows a code
    block no wider than its dialog, and a long line has to be scrolled sideways. Each clause
    of the outer query on a line of its own, long SELECT items one per line; nothing inside
    parentheses or string literals moves, and the words are unchanged."""
    out: list[str] = []
    depth, quoted, in_select, item_start, i = 0, False, True, 0, 0
    while i < len(sql):
        ch = sql[i]
        if quoted:
            quoted = ch != "'"  # a doubled '' closes and reopens: same result
        elif ch == "'":
            quoted = True
        elif ch in "()":
            depth += 1 if ch == "(" else -1
        elif depth == 0 and ch == " ":
            rest = sql[i + 1:]
            clause = next((c for c in _SQL_CLAUSES if rest.upper().startswith(c) and (
                len(rest) == len(c) or not (rest[len(c)].isalnum() or rest[len(c)] == "_"))), None)
            if clause == "--":  # a trailing comment, on its own line
                out.append("\n" + rest)
                break
            if clause:
                out.append(("\n  " if clause in ("AND", "ON") else "\n") + rest[:len(clause)])
                in_select = False
                i += 1 + len(clause)
                continue
        elif depth == 0 and ch == "," and in_select:
            if len("".join(out[item_start:])) > _SELECT_ITEM_WRAP:
                out.append(",\n       ")
                item_start = len(out)
                i += 2 if sql[i + 1:i + 2] == " " else 1
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def _summary(o: Outcome) -> str:
    text = f"{o.partition_key}: {o.check} failed ({o.severity}): observed {o.observed}"
    if o.suppressed_by:
        text += f" [suppressed by {o.suppressed_by}]"
    if o.threshold:
        text += f", expected {o.threshold}"
    return text


CHECK_RESULTS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("partition_key", pa.string()),
        ("asset_key", pa.string()),
        ("check_name", pa.string()),
        ("passed", pa.bool_()),
        ("severity", pa.string()),
        ("failing_rows", pa.int64()),
        ("observed", pa.string()),
        ("threshold", pa.string()),
        ("detail", pa.string()),
        ("sample_keys", pa.string()),  # JSON list
        ("reproduce_sql", pa.string()),
        ("suppressed_by", pa.string()),
        ("evaluated_at", pa.timestamp("us", tz="UTC")),
    ]
)


def check_results_rows(run_id: str, outcomes: list[Outcome]) -> pa.Table:
    now = datetime.now(timezone.utc)
    rows = [
        {
            "run_id": run_id,
            "partition_key": o.partition_key,
            "asset_key": o.asset_key.to_user_string(),
            "check_name": o.check,
            "passed": o.passed,
            "severity": o.severity,
            "failing_rows": int(o.failing_rows),
            "observed": o.observed,
            "threshold": o.threshold,
            "detail": o.detail or None,
            "sample_keys": json.dumps(o.sample_keys) if o.sample_keys else None,
            "reproduce_sql": o.sql or None,
            "suppressed_by": o.suppressed_by,
            "evaluated_at": now,
        }
        for o in outcomes
    ]
    return pa.Table.from_pylist(rows, schema=CHECK_RESULTS_SCHEMA)


RECON_SUMMARY_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("partition_key", pa.string()),
        ("check_name", pa.string()),
        ("metric", pa.string()),
        ("scope", pa.string()),
        ("expected", pa.string()),
        ("observed", pa.string()),
        ("difference", pa.decimal128(38, 6)),  # observed - expected, for numeric metrics
        ("passed", pa.bool_()),
        ("evaluated_at", pa.timestamp("us", tz="UTC")),
    ]
)


def recon_summary_rows(run_id: str, outcomes: list[Outcome]) -> pa.Table:
    now = datetime.now(timezone.utc)
    return pa.Table.from_pylist(
        [
            {"run_id": run_id, "partition_key": o.partition_key, "check_name": o.check,
             "metric": r.metric, "scope": r.scope,
             "expected": None if r.expected is None else str(r.expected),
             "observed": None if r.observed is None else str(r.observed),
             "difference": r.difference, "passed": r.agrees, "evaluated_at": now}
            for o in outcomes for r in o.recons
        ],
        schema=RECON_SUMMARY_SCHEMA,
    )


def apply_suppressions(outcomes: list[Outcome], suppressions: list[Suppression], today) -> None:
    """Downgrade failures matched by an active suppression to WARN; note expired ones."""
    for o in outcomes:
        if o.passed:
            continue
        matching = [s for s in suppressions
                    if s.matches(o.asset_key.to_user_string(), o.check, o.partition_key)
                    and s.covers(o.failing_rows, o.sample_keys)]
        active = [s for s in matching if not s.expired(today)]
        if active:
            o.severity, o.suppressed_by = WARN, active[0].ticket
            o.detail = f"suppressed by {active[0].label}. {o.detail}".strip()
        elif matching:
            o.detail = (f"suppression {matching[0].ticket} expired on "
                        f"{matching[0].expires.isoformat()} and no longer applies. {o.detail}").strip()


def report(context, store, outcomes: list[Outcome], log_failures: bool = True):
    """Apply suppressions, append outcomes to quality.check_results (and recon_summary), log
    failures (unless the step says them another way), and yield Dagster results."""
    if not outcomes:
        return
    apply_suppressions(outcomes, load_suppressions(), today_utc())
    store.append("check_results", check_results_rows(context.run.run_id, outcomes))
    if any(o.recons for o in outcomes):
        store.append("recon_summary", recon_summary_rows(context.run.run_id, outcomes))
    for o in outcomes:
        if not o.passed and log_failures:
            log = context.log.error if o.severity == ERROR else context.log.warning
            keys = f"; sample keys: {', '.join(o.sample_keys)}" if o.sample_keys else ""
            sql = f"\n  reproduce: {o.sql}" if o.sql else ""
            log(f"[{o.severity}] {o.asset_key.to_user_string()} {_summary(o)}{keys}{sql}")
    by_check: dict[tuple, list[Outcome]] = {}
    for o in outcomes:
        by_check.setdefault((o.asset_key, o.check), []).append(o)
    if not per_partition_events(context):
        for group in by_check.values():
            yield check_result(group)
        return
    for group in by_check.values():
        yield from partition_results(context, [(o.partition_key, check_result([o])) for o in group])


# A range run records each partition's check results in Dagster's event log up to this many
# partitions (DQ_CHECK_EVENTS_MAX_PARTITIONS). Each is an event log write, and a year of ~100
# checks a day is 36,000 of them, more than the whole year's data work; beyond it, one result
# per check for the run (as Dagster's own AssetCheckResult gives) and the per-partition results
# are in quality.check_results.
CHECK_EVENTS_ENV = "DQ_CHECK_EVENTS_MAX_PARTITIONS"
DEFAULT_CHECK_EVENTS_MAX_PARTITIONS = 31


def per_partition_events(context) -> bool:
    """Whether this run's check results go to Dagster one per partition (see above)."""
    n = len(context.partition_keys)
    if n == 1:
        return False  # Dagster attaches the run's partition itself
    limit = os.environ.get(CHECK_EVENTS_ENV) or str(DEFAULT_CHECK_EVENTS_MAX_PARTITIONS)
    if not limit.isdigit():
        raise ValueError(f"{CHECK_EVENTS_ENV}={limit!r} is not a number of partitions")
    return n <= int(limit)


def check_output(context, key: dg.AssetCheckKey) -> dg.Output:
    """The (empty) output Dagster expects of a check of the step, with no evaluation: the
    evaluations, if any, are yielded on their own."""
    step = context.op_execution_context.get_step_execution_context()
    return dg.Output(None, output_name=step.job_def.asset_layer.get_op_output_name(key))


def partition_results(context, results: list[tuple[str, dg.AssetCheckResult]]):
    """One check's results in a run over several partitions, one per partition.

    Dagster gives an AssetCheckResult the partition of the step, and a range run has none, so
    it would record one result without a partition and the UI would show every partition's
    check as never run. So each partition's result goes out as an AssetCheckEvaluation that
    names its partition, after the check's (empty) output."""
    step = context.op_execution_context.get_step_execution_context()
    first = results[0][1].to_asset_check_evaluation(step)  # resolves the check's key and spec
    yield check_output(context, first.asset_check_key)
    for partition_key, result in results:
        yield dg.AssetCheckEvaluation(
            asset_key=first.asset_key, check_name=first.check_name, passed=result.passed,
            metadata=result.metadata, severity=result.severity, description=result.description,
            blocking=first.blocking, partition=partition_key,
        )


# ---------------------------------------------------------------- evaluation (pure functions)


def _partition_filter(partition_key: str) -> str:
    return f"ingest_date = DATE '{partition_key}'"


def evaluate_landing(
    t: Table,
    asset: dg.AssetKey,
    partition_key: str,
    cfg: GateConfig,
    *,
    listed: dict | None,
    present: bool,
    landed_rows: int,
    landed_sha256: str | None,
    landed_sum: Decimal | None,
    missing_columns: list[str],
    unknown_columns: list[str],
    unreadable: str | None = None,
) -> list[Outcome]:
    """Landing checks of one table's file in one partition against its manifest entry.
    `unreadable` says why a present file cannot be read (its location, line and problem): then
    only its bytes are compared, and nothing read from it."""
    sev = lambda check: cfg.severity_of(t.name, check)  # noqa: E731
    where = _partition_filter(partition_key)
    audit_sql = f"SELECT * FROM raw.landing_files WHERE {where} AND file_name = '{t.file_name}'"
    out = [
        Outcome(
            "file_listed_and_present", asset, partition_key,
            passed=(listed is not None) == present, severity=sev("file_listed_and_present"),
            failing_rows=int((listed is not None) != present),
            observed=f"listed={listed is not None}, present={present}",
            threshold="listed = present",
            detail=("listed in _manifest.json but absent" if listed is not None and not present
                    else "present but not listed in _manifest.json" if present and listed is None
                    else ""),
            sql=audit_sql,
        ),
        Outcome(
            "file_readable", asset, partition_key, passed=unreadable is None,
            severity=sev("file_readable"), failing_rows=int(unreadable is not None),
            observed=unreadable or ("read" if present else "not applicable: file absent"),
            threshold="readable as CSV",
            detail=(f"no row of {t.file_name} landed for {partition_key}: correct the file (or have "
                    "it sent again) and materialize the day again" if unreadable else ""),
            sql=audit_sql,
        ),
    ]
    comparable = listed is not None and present

    def not_read(check: str) -> Outcome:  # what only its rows or header could tell
        return Outcome(check, asset, partition_key, passed=True, severity=sev(check),
                       observed=f"not applicable: {t.file_name} cannot be read")

    def compare(check: str, expected, observed, equal: bool, problem: str | None = None) -> Outcome:
        """Landed vs the manifest; `problem` says what is wrong with the manifest's value
        itself (then there is nothing to compare with)."""
        if not comparable:
            return Outcome(check, asset, partition_key, passed=True, severity=sev(check),
                           observed="not applicable: file not both listed and present")
        if unreadable and check != "manifest_sha256":  # its bytes are there; its rows are not
            return not_read(check)
        if problem:
            field = check.removeprefix("manifest_")
            return Outcome(check, asset, partition_key, passed=False, severity=sev(check),
                           failing_rows=1, observed=f"{observed} landed; the manifest's {field} is {_as_json(expected)}",
                           threshold=f"{field} in _manifest.json: {problem}",
                           detail=f"_manifest.json: {field} of {t.file_name} is {_as_json(expected)}, not {problem}",
                           sql=audit_sql)
        return Outcome(check, asset, partition_key, passed=equal, severity=sev(check),
                       failing_rows=0 if equal else 1, observed=str(observed),
                       threshold=f"= {expected} (manifest)", sql=audit_sql,
                       recons=[Recon(check.removeprefix("manifest_"), f"{t.name} landed vs manifest",
                                     expected, observed)])

    rows_expected = (listed or {}).get("rows")
    rows = _as_count(rows_expected)
    out.append(compare("manifest_rows", rows_expected, landed_rows, rows == landed_rows,
                       problem=None if rows is not None else "a whole number of data rows"))
    sha_expected = (listed or {}).get("sha256")
    sha_ok = isinstance(sha_expected, str) and _SHA256.fullmatch(sha_expected.strip()) is not None
    out.append(compare("manifest_sha256", str(sha_expected).strip().lower(), landed_sha256,
                       str(sha_expected).strip().lower() == (landed_sha256 or ""),
                       problem=None if sha_ok else "64 hexadecimal digits"))
    if t.manifest_sum:
        column, sum_field = t.manifest_sum
        expected = (listed or {}).get(sum_field)
        total = _as_decimal(expected)
        out.append(compare(f"manifest_{sum_field}", expected, landed_sum,
                           total is not None and total == landed_sum,
                           problem=None if total is not None else "a decimal number"))
    if unreadable:
        return out + [not_read("required_columns"), not_read("unknown_columns")]
    out.append(
        Outcome("required_columns", asset, partition_key, passed=not missing_columns,
                severity=sev("required_columns"), failing_rows=len(missing_columns),
                observed=", ".join(missing_columns) or "all present",
                threshold="every contract column", detail=(
                    f"missing from {t.file_name}: {', '.join(missing_columns)}"
                    if missing_columns else ""), sql=audit_sql)
    )
    out.append(
        Outcome("unknown_columns", asset, partition_key, passed=not unknown_columns,
                severity=sev("unknown_columns"), failing_rows=len(unknown_columns),
                observed=", ".join(unknown_columns) or "none", threshold="none",
                detail=(f"not in the contract (kept in raw.{t.name}.extra_columns): "
                        f"{', '.join(unknown_columns)}" if unknown_columns else ""), sql=audit_sql)
    )
    return out


def evaluate_unexpected_files(
    asset: dg.AssetKey, partition_key: str, cfg: GateConfig, unexpected: list[str]
) -> Outcome:
    return Outcome(
        "no_unexpected_files", asset, partition_key, passed=not unexpected,
        severity=cfg.severity_of("landing_files", "no_unexpected_files"),
        failing_rows=len(unexpected), observed=", ".join(unexpected) or "none",
        threshold="only the six contract tables", sample_keys=unexpected[:SAMPLE_KEYS],
        detail="files (landed or listed) that are no contract table" if unexpected else "",
        sql=f"SELECT * FROM raw.landing_files WHERE {_partition_filter(partition_key)} "
        "AND table_name IS NULL",
    )


@dataclass(frozen=True)
class PartitionCounts:
    raw_rows: int
    staging_rows: int
    quarantined_rows: int
    duplicate_keys: int  # keys appearing more than once in staging
    duplicate_samples: list[str]
    hours_with_rows: int | None = None  # of the ingest day, for hourly-covered tables
    earlier_raw_rows: tuple[int, ...] = ()  # landed rows of the previous partitions, newest first


def evaluate_staging(
    t: Table,
    asset: dg.AssetKey,
    partition_key: str,
    cfg: GateConfig,
    counts: PartitionCounts,
    failures: list[dict],  # rows of Validation.failures for this partition
) -> list[Outcome]:
    sev = lambda check: cfg.severity_of(t.name, check)  # noqa: E731
    where = _partition_filter(partition_key)
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
    for reason in table_reasons(t):
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


def evaluate_mart_totals(
    asset: dg.AssetKey, partition_key: str, cfg: GateConfig,
    staged: dict[str, tuple[int, Decimal]], in_mart: dict[str, tuple[int, Decimal]],
) -> Outcome:
    """Staging vs mart: order count and revenue per currency (currency -> (count, revenue))."""
    recons = []
    for currency in sorted(set(staged) | set(in_mart)):
        s_count, s_rev = staged.get(currency, (0, Decimal(0)))
        m_count, m_rev = in_mart.get(currency, (0, Decimal(0)))
        recons.append(Recon("order_count", f"orders/{currency} mart vs staging", s_count, m_count))
        recons.append(Recon("revenue", f"orders/{currency} mart vs staging", s_rev, m_rev))
    off = [r for r in recons if not r.agrees]
    return Outcome(
        "matches_staging", asset, partition_key, passed=not off,
        severity=cfg.severity_of("marts", "matches_staging"), failing_rows=len(off),
        observed="; ".join(f"{r.scope} {r.metric}: {r.observed} vs {r.expected}" for r in off) or "equal",
        threshold="mart = staging per currency", recons=recons,
        sql=(f"SELECT currency, count(DISTINCT order_id), sum(amount) FILTER (WHERE status IN "
             f"('paid', 'shipped', 'delivered')) FROM staging.orders WHERE ingest_date = DATE "
             f"'{partition_key}' GROUP BY 1 -- vs marts.fact_revenue_daily"),
    )


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


_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _as_json(value) -> str:
    """A manifest value as it was written in the JSON (numbers bare, text quoted)."""
    return str(value) if isinstance(value, (int, Decimal)) and not isinstance(value, bool) else json.dumps(value)


def _as_count(value) -> int | None:
    """A manifest's row count: a whole number (a JSON integer, or its digits as text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _as_decimal(value) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, TypeError, ValueError):
        return None
    return number if number.is_finite() else None
