"""Sensors: alerts on failed checks and failed runs.

Open-source Dagster has no alert on a failed asset check (a failed non-blocking check leaves
its run successful, so run-failure sensors never see it), and its run-status sensors skip runs
that have no code-location origin, such as `dagster asset materialize` or `materialize()`.
`check_failure_alerts` therefore reads every finished run of the instance, whatever launched
it, and sends one alert per failed check evaluation plus one `run_failed` alert if the run
failed, grouped per run, to the configured sinks (dq_assets/operations/alerts/delivery.py).

Exactly once, per sink: the cursor remembers which runs are done and, for runs whose delivery
failed, which sinks still owe them; those are retried on the next tick, never dropped, and a
second tick over the same events sends nothing.
"""

import json
from datetime import datetime, timezone

import dagster as dg

from dq_assets.operations.alerts.delivery import deliver, sinks_from_env
from dq_assets.operations.alerts.model import Alert, run_url
from dq_assets.operations.freshness import CHECK_NAMES as FRESHNESS_CHECKS

FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
RUNS_PER_TICK = 100
# Run storage keeps update times to the second, and a run finishing as a tick reads may commit
# a time already passed: each tick looks this far back before its watermark, and the runs it
# has handled (`done`) are not alerted twice.
WATERMARK_SLACK_SECONDS = 5
# The latest run ids handled: a run updated again after it finished (a tag), or finished within
# the look-back, is fetched again and must not be alerted twice. More than a tick can fetch again.
DONE_MEMORY = 500


def failed_check_alerts(instance: dg.DagsterInstance, run_id: str) -> list[Alert]:
    """One alert per failed asset check evaluation of a run. The freshness checks are left to
    `freshness_alerts`, which alerts on changes of state, not on every evaluation."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    url = run_url(run_id)
    alerts = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation.passed or evaluation.check_name in FRESHNESS_CHECKS:
            continue
        meta = {k: getattr(v, "value", v) for k, v in (evaluation.metadata or {}).items()}
        partition = getattr(evaluation, "partition", None) or meta.get("failed_partitions")
        keys = [k for k in str(meta.get("sample_key_list") or "").split(", ") if k]
        failing = meta.get("failing_rows")
        alerts.append(Alert(
            kind="check_failed", run_id=run_id, run_url=url,
            asset_key=evaluation.asset_key.to_user_string(), check_name=evaluation.check_name,
            partition=str(partition) if partition else None,
            severity=evaluation.severity.value if evaluation.severity else None,
            failing_rows=int(failing) if failing is not None else None,
            observed=str(meta["observed"]) if meta.get("observed") is not None else None,
            sample_keys=tuple(keys[:10]), description=evaluation.description,
            event_id=record.storage_id,
        ))
    return alerts


def run_failed_alert(instance: dg.DagsterInstance, run: dg.DagsterRun) -> Alert:
    """The alert for a failed run: its partition (or range) and the first line of its error."""
    failures = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    message = failures[-1].event_log_entry.dagster_event.message if failures else None
    tags = run.tags
    partition = tags.get("dagster/partition") or (
        f"{tags['dagster/asset_partition_range_start']}...{tags['dagster/asset_partition_range_end']}"
        if "dagster/asset_partition_range_start" in tags else None)
    return Alert(
        kind="run_failed", run_id=run.run_id, run_url=run_url(run.run_id),
        asset_key=None, check_name=None, partition=partition, severity="ERROR",
        failing_rows=None, observed=None,
        description=((message or "").strip().splitlines() or ["run failed"])[0],
    )


def run_alerts(instance: dg.DagsterInstance, run_id: str) -> list[Alert]:
    """What a finished run owes: its failed checks, then the run's own failure if it failed."""
    alerts = failed_check_alerts(instance, run_id)
    run = instance.get_run_by_id(run_id)
    if run is not None and run.status == dg.DagsterRunStatus.FAILURE:
        alerts.append(run_failed_alert(instance, run))
    return alerts


def _load_cursor(raw: str | None) -> dict:
    cursor = json.loads(raw) if raw else {}
    return {"watermark": cursor.get("watermark", 0.0), "done": cursor.get("done", []),
            "owed": cursor.get("owed", {})}


@dg.sensor(
    name="check_failure_alerts",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    # The name is kept from when it sent check alerts only: a new name would start from an
    # empty cursor and alert the instance's whole history again.
    description="One alert per failed asset check evaluation and one per failed run, whatever "
    "launched it (UI, CLI, backfill, sensor), grouped per run, to the sinks of DQ_ALERT_SINKS "
    "(default: a JSON-lines file). Failed deliveries are retried.",
)
def check_failure_alerts(context: dg.SensorEvaluationContext):
    cursor = _load_cursor(context.cursor)
    sinks = sinks_from_env()
    all_names = [s.name for s in sinks]
    done = dict.fromkeys(cursor["done"])  # run ids in the order they were handled
    owed: dict[str, list[str]] = dict(cursor["owed"])  # run id -> sinks still owed
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(statuses=FINISHED, updated_after=datetime.fromtimestamp(
            max(cursor["watermark"] - WATERMARK_SLACK_SECONDS, 0), tz=timezone.utc)),
        order_by="update_timestamp", ascending=True, limit=RUNS_PER_TICK,
    )
    watermark = cursor["watermark"]
    todo = {run_id: names for run_id, names in owed.items()}
    for record in records:
        run_id = record.dagster_run.run_id
        watermark = max(watermark, record.update_timestamp.timestamp())
        if run_id not in done and run_id not in todo:
            todo[run_id] = all_names
        done.pop(run_id, None)
        done[run_id] = None
    sent, owed = 0, {}
    for run_id, names in todo.items():
        alerts = run_alerts(context.instance, run_id)
        targets = [s for s in sinks if s.name in names]
        if not alerts or not targets:
            continue
        failures = deliver(alerts, targets)
        failed_sinks = sorted({name for name, _, _ in failures})
        for name, _, error in failures:
            context.log.warning(f"alert delivery to {name} for run {run_id} failed, retrying "
                                f"next tick: {error}")
        if failed_sinks:
            owed[run_id] = failed_sinks
        sent += len(alerts) * (len(targets) - len(failed_sinks))
    context.update_cursor(json.dumps({
        "watermark": watermark, "done": list(done)[-DONE_MEMORY:], "owed": owed}))
    return dg.SkipReason(f"{sent} alert deliveries; {len(owed)} run(s) owed a retry")


sensors = [check_failure_alerts]
