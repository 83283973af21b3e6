"""Where outcomes go: `quality.check_results` (and `quality.recon_summary` for their
reconciliations), the step's log, and Dagster's asset check results, after the suppressions
file has had its say."""

import json
import os
from datetime import datetime, timezone

import dagster as dg
import pyarrow as pa

from dq_assets.checks.model import Outcome, check_result, summary
from dq_assets.contract.gate import ERROR, WARN
from dq_assets.contract.suppressions import Suppression, load_suppressions, today_utc

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
            log(f"[{o.severity}] {o.asset_key.to_user_string()} {summary(o)}{keys}{sql}")
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
