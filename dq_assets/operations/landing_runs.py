"""Runs for landed days, in order: the landing sensor and the daily schedule.

A day's checks rely on the days before it (dq_assets.rules.history), so landed days are run in
order and together: every tick asks for at most one run, over the range from the earliest day
that needs one to the latest (days between are run again, which is idempotent), and none while
an earlier run of the warehouse job is still queued or running. Days that land together are
one range run, so none of them is checked before the ones it follows. A day that was held back
because its history was incomplete is run again once that history is loaded.
"""

import hashlib
import json
from datetime import timedelta

import dagster as dg

from dq_assets.checks.history import HISTORY_CHECK, loaded_history
from dq_assets.keys import LANDING_FILES_KEY
from dq_assets.landing.zone import LandingError, LandingZone
from dq_assets.operations.jobs import daily_warehouse
from dq_assets.partitions import DAILY
from dq_assets.rules.history import missing_days
from dq_assets.storage.quality_store import QualityStore

LANDING_FILES = LANDING_FILES_KEY.to_user_string()
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
             dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def run_in_flight(instance: dg.DagsterInstance) -> str | None:
    """A run of the warehouse job that is queued or running, if any."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=daily_warehouse.name, statuses=IN_FLIGHT), limit=1)
    return records[0].dagster_run.run_id if records else None


def days_request(days: list[str], run_key: str | None = None) -> dg.RunRequest:
    """One run over every day from the first to the last of `days`, in one pass."""
    first, last = min(days), max(days)
    if first == last:
        return dg.RunRequest(run_key=run_key, partition_key=first)
    return dg.RunRequest(run_key=run_key, tags={RANGE_START: first, RANGE_END: last})


def complete_days(landing: LandingZone, log) -> dict[str, str]:
    """Landed days whose manifest is there, with its version; the others are skipped."""
    valid = set(DAILY.get_partition_keys())
    versions = {}
    for key in landing.partitions():
        if key not in valid:
            log.warning(f"ingest_date={key} is outside the daily partitions; skipped")
            continue
        try:
            versions[key] = landing.manifest_version(key)
        except LandingError as e:
            log.warning(str(e))
    return versions


def held_back_for_history(store: QualityStore, landed: list[str], coming: set[str]) -> list[str]:
    """Days whose latest history check failed and whose history is now complete, counting
    the days about to be run (`coming`), which the same range run loads first."""
    if not landed:
        return []
    latest = store.latest_check_results(landed, check=(LANDING_FILES, HISTORY_CHECK)).to_pylist()
    blocked = sorted({r["partition_key"] for r in latest if not r["passed"]})
    if not blocked:
        return []
    loaded = {t: days | coming for t, days in loaded_history(store, max(blocked)).items()}
    return [d for d in blocked if not missing_days(landed, loaded, d)]


@dg.sensor(
    name="landing_sensor",
    job=daily_warehouse,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Runs newly complete ingest dates (their _manifest.json present) and re-sent "
    "ones, in order: one run over the range from the earliest to the latest day that needs one, "
    "never while another run of the warehouse job is in flight; days held back for incomplete "
    "history are run again once it is loaded. Locally or on S3.",
)
def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone, quality_store: QualityStore):
    busy = run_in_flight(context.instance)
    if busy:
        return dg.SkipReason(f"waiting for run {busy} of {daily_warehouse.name} to finish: days run in order")
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    versions = complete_days(landing, context.log)
    changed = {d for d, v in versions.items() if seen.get(d) != v}
    todo = sorted(changed | set(held_back_for_history(quality_store, sorted(versions), changed)))
    if not todo:
        return dg.SkipReason("no new, re-sent or held-back day")
    fingerprint = hashlib.sha256(json.dumps({d: versions[d] for d in todo}, sort_keys=True).encode())
    seen.update({d: versions[d] for d in changed})
    return dg.SensorResult(
        run_requests=[days_request(todo, run_key=f"{todo[0]}...{todo[-1]}:{fingerprint.hexdigest()[:16]}")],
        cursor=json.dumps(seen, sort_keys=True))


@dg.schedule(
    name="daily_warehouse_schedule",
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    job=daily_warehouse,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every day at 03:00 UTC: the landed days up to yesterday that were never loaded, "
    "as one run from the earliest (in order, so none is checked before the days it follows).",
)
def daily_warehouse_schedule(context: dg.ScheduleEvaluationContext, landing: LandingZone,
                             quality_store: QualityStore):
    busy = run_in_flight(context.instance)
    if busy:
        return dg.SkipReason(f"run {busy} of {daily_warehouse.name} is still in flight")
    yesterday = (context.scheduled_execution_time.date() - timedelta(days=1)).isoformat()
    landed = sorted(d for d in complete_days(landing, context.log) if d <= yesterday)
    if not landed:
        return dg.SkipReason(f"nothing landed up to {yesterday}")
    loaded = quality_store.partitions_with_results([LANDING_FILES], before="9999-12-31")[LANDING_FILES]
    todo = [d for d in landed if d not in loaded]
    if not todo:
        return dg.SkipReason(f"every landed day up to {landed[-1]} is loaded")
    return days_request(todo, run_key=f"schedule:{todo[0]}...{todo[-1]}")
