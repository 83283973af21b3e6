"""Freshness: a policy on every asset, two WARN checks per asset, and the sensor that alerts.

Windows and the partition deadline come from the `freshness` section of the gate config
(dq_assets/contract/gate.yaml, overridable with DQ_GATE_CONFIG), read when the code location loads.

- `freshness_policy` (every asset): the state Dagster's freshness daemon gives the asset's
  `FreshnessPolicy` (PASS, WARN or FAIL). The daemon only writes a state when it changes, so a
  materialization after that state makes the asset fresh until the daemon says otherwise.
- `partition_on_time` (daily assets): once `partition_deadline_cron` has passed, the last
  complete day (yesterday, UTC) must be materialized. Today's partition, which `end_offset=1`
  opens so that a day can be loaded as soon as it lands, is never expected.

`freshness_alerts` evaluates both every two minutes. It records a check's state like any
check result (a row in quality.check_results through `quality_store`, and a check evaluation
in Dagster, so the UI shows it on the asset) whenever it differs from what Dagster shows, and
sends one alert per change of state (WARN, FAIL or recovered) for all the assets that changed
together. While data is on time nothing changes and nothing is sent.

Dagster also runs these checks in every run that selects their assets (the CLI does), and
the UI can execute them: such an evaluation is the same function and is recorded, but only
the sensor alerts, so a state is alerted once however often it is evaluated.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import dagster as dg

from dq_assets.checks.model import Outcome
from dq_assets.checks.reporting import check_results_rows
from dq_assets.contract.gate import WARN, load_gate_config
from dq_assets.dagster_private import latest_check_executions, latest_completed_tick
from dq_assets.operations.alerts.delivery import deliver, sinks_from_env
from dq_assets.operations.alerts.model import Alert, ui_base_url
from dq_assets.partitions import DAILY, PARTITIONS_START, WAREHOUSE_POOL
from dq_assets.storage.quality_store import QualityStore

POLICY_CHECK = "freshness_policy"
PARTITION_CHECK = "partition_on_time"
CHECK_NAMES = (POLICY_CHECK, PARTITION_CHECK)
PASS, FAIL = "PASS", "FAIL"
STATES = ("PASS", "WARN", "FAIL")  # Dagster's FreshnessState values that say something
SENSOR_NAME = "freshness_alerts"
IN_RUN = "IN_RUN"  # shown_state: a run in progress will evaluate the check


def utc_now() -> datetime:
    """The freshness checks' clock (tests step it through simulated days)."""
    return datetime.now(timezone.utc)


# ------------------------------------------------------------------------ the policies


def layer_policies() -> dict[str, dg.FreshnessPolicy]:
    windows = load_gate_config().freshness["windows"]
    return {
        layer: dg.FreshnessPolicy.time_window(
            fail_window=timedelta(hours=float(w["fail_hours"])),
            warn_window=timedelta(hours=float(w["warn_hours"])),
        )
        for layer, w in windows.items()
    }


def with_freshness_policies(defs: dg.Definitions) -> dg.Definitions:
    """One place applies the policy of its layer (asset group) to every asset."""
    policies = layer_policies()

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        policy = policies.get(spec.group_name or "")
        return dg.apply_freshness_policy(spec, policy) if policy else spec

    return defs.map_asset_specs(func=apply)


# ------------------------------------------------------------------------ the checks


@dataclass(frozen=True)
class Freshness:
    """One freshness check's state at a moment."""

    key: dg.AssetCheckKey
    state: str | None  # PASS, WARN or FAIL; None when it cannot be told (never materialized)
    threshold: str  # what is expected, in words
    detail: str  # the same for every asset in that state: alerts group on it
    partition: str | None = None  # partition_on_time: the day that is due

    @property
    def passed(self) -> bool:
        return self.state == PASS

    def metadata(self) -> dict:
        return {"state": self.state or "UNKNOWN", "threshold": self.threshold,
                **({"partition": self.partition} if self.partition else {})}


def due_day(now: datetime, deadline_cron: str) -> tuple[str, datetime]:
    """The last complete day at the latest deadline (cron, UTC) up to `now`: yesterday once
    today's deadline has passed, the day before until then. Days are DAILY's: UTC, midnight."""
    deadline = latest_completed_tick(deadline_cron, now, "UTC")
    return (deadline.date() - timedelta(days=1)).isoformat(), deadline


def partition_states(instance: dg.DagsterInstance, checks: list[dg.AssetCheckSpec],
                     now: datetime) -> list[Freshness]:
    """partition_on_time of each check's asset. One query for the latest materialization of
    every asset: where that is the due day's, the day is there; only the others are looked up
    a partition at a time."""
    latest = instance.get_latest_materialization_events([c.asset_key for c in checks])
    states = []
    for check in checks:
        key = check.key
        day, deadline = due_day(now, check.metadata["deadline_cron"])
        threshold = f"{day} materialized by {deadline:%Y-%m-%d %H:%M} UTC"
        event = latest.get(key.asset_key)
        if day < PARTITIONS_START:
            states.append(Freshness(key, PASS, threshold, "no day is due yet"))
        elif (event is not None and event.asset_materialization.partition == day) or \
                instance.fetch_materializations(dg.AssetRecordsFilter(
                    asset_key=key.asset_key, asset_partitions=[day]), limit=1).records:
            states.append(Freshness(key, PASS, threshold, f"{day} is materialized", day))
        else:
            states.append(Freshness(key, FAIL, threshold, f"{day} is not materialized and its "
                                    f"deadline, {deadline:%Y-%m-%d %H:%M} UTC, has passed", day))
    return states


def policy_states(instance: dg.DagsterInstance, checks: list[dg.AssetCheckSpec]) -> list[Freshness]:
    keys = [c.asset_key for c in checks]
    records = instance.get_freshness_state_records(keys)
    last_materialized = {
        r.asset_entry.asset_key: r.asset_entry.last_materialization.timestamp
        for r in instance.get_asset_records(keys) if r.asset_entry.last_materialization}
    states = []
    for check in checks:
        record, last = records.get(check.asset_key), last_materialized.get(check.asset_key)
        state = record.freshness_state.value if record else None
        if last is not None and (record is None or last > record.updated_at.timestamp()):
            state = PASS  # materialized since the daemon's last change: its window restarted
        state = state if state in STATES else None  # UNKNOWN, NOT_APPLICABLE
        detail = {None: "never materialized", PASS: "within its FreshnessPolicy"}.get(
            state, f"{state} under its FreshnessPolicy (no materialization for too long)")
        states.append(Freshness(check.key, state, check.metadata["threshold"], detail))
    return states


def evaluate(instance: dg.DagsterInstance, checks: Iterable[dg.AssetCheckSpec],
             now: datetime) -> list[Freshness]:
    checks = sorted(checks, key=lambda c: c.key.to_user_string())
    policies = policy_states(instance, [c for c in checks if c.name == POLICY_CHECK])
    return policies + partition_states(instance, [c for c in checks if c.name == PARTITION_CHECK], now)


def result_rows(run_id: str, states: list[Freshness]):
    """quality.check_results rows: asset-level checks, so no partition_key (which also keeps
    them out of the per-partition gate); the day that is due is in `threshold`."""
    return check_results_rows(run_id, [
        Outcome(s.key.name, s.key.asset_key, None, s.passed, WARN, observed=s.state or "UNKNOWN",
                threshold=s.threshold, detail=s.detail) for s in states])


def freshness_checks(assets: list[dg.AssetsDefinition]) -> dg.AssetChecksDefinition:
    """The two checks' specs for every asset (WARN, contract §5), and how a run evaluates them."""
    windows = load_gate_config().freshness["windows"]
    cron = load_gate_config().freshness["partition_deadline_cron"]
    specs = []
    for assets_def in assets:
        for key in assets_def.keys:
            w = windows.get(assets_def.group_names_by_key[key])
            if w:  # the layers with a policy (with_freshness_policies)
                specs.append(dg.AssetCheckSpec(
                    POLICY_CHECK, asset=key,
                    metadata={"threshold": f"WARN after {w['warn_hours']} h, FAIL after "
                                           f"{w['fail_hours']} h without a materialization"},
                    description="Within the FreshnessPolicy of its layer, as Dagster's freshness "
                                "daemon evaluates it. Evaluated by the freshness_alerts sensor."))
            # per asset: the marts' one step publishes daily and current-state (unpartitioned) marts
            if assets_def.specs_by_key[key].partitions_def == DAILY:
                specs.append(dg.AssetCheckSpec(
                    PARTITION_CHECK, asset=key, metadata={"deadline_cron": cron},
                    description=f"The last complete day (UTC) is materialized once the deadline "
                                f"({cron}, UTC) has passed. Evaluated by the freshness_alerts "
                                "sensor."))

    @dg.multi_asset_check(specs=specs, can_subset=True, name="freshness_checks", pool=WAREHOUSE_POOL)
    def _freshness_checks(context: dg.AssetCheckExecutionContext, quality_store: QualityStore):
        selected = [s for s in specs if s.key in context.selected_asset_check_keys]
        states = evaluate(context.instance, selected, utc_now())
        quality_store.append("check_results", result_rows(context.run.run_id, states))
        for s in states:
            yield dg.AssetCheckResult(
                asset_key=s.key.asset_key, check_name=s.key.name, passed=s.passed,
                severity=dg.AssetCheckSeverity.WARN, description=s.detail, metadata=s.metadata())

    return _freshness_checks


# ------------------------------------------------------------------------ the sensor


def state_alerts(tick_id: str, changes: list[Freshness]) -> list[Alert]:
    """One alert per (check, new state, due day): the assets that changed together."""
    groups: dict[tuple, list[Freshness]] = {}
    for s in changes:
        groups.setdefault((s.key.name, s.state, s.partition, s.detail), []).append(s)
    alerts = []
    for (check, state, partition, detail), group in groups.items():
        assets = sorted(s.key.asset_key.to_user_string() for s in group)
        alerts.append(Alert(
            kind="freshness", run_id=tick_id,
            run_url=f"{ui_base_url()}/assets/{assets[0]}?view=checks",
            asset_key=assets[0], check_name=check, partition=partition, severity=WARN,
            failing_rows=None, observed="recovered" if state == PASS else state,
            sample_keys=tuple(assets), description=f"{len(assets)} asset(s): {detail}",
        ))
    return alerts


def shown_states(instance: dg.DagsterInstance, keys: list[dg.AssetCheckKey]) -> dict[dg.AssetCheckKey, str | None]:
    """The state Dagster shows for each check: that of its latest evaluation, None if there is
    none (one query for them all). A run plans the check when it starts and evaluates it after
    its assets: while it goes on it is left to do so (IN_RUN); if it failed before getting
    there, nothing is shown."""
    records = latest_check_executions(instance, keys)
    shown = {}
    for key in keys:
        record = records.get(key)
        evaluation = record.event.asset_check_evaluation if record and record.event else None
        if evaluation is not None:
            state = evaluation.metadata.get("state")
            shown[key] = getattr(state, "value", state)
        elif record is not None:
            run = instance.get_run_by_id(record.run_id)
            shown[key] = IN_RUN if run is not None and not run.is_finished else None
        else:
            shown[key] = None
    return shown


def freshness_sensor(checks: dg.AssetChecksDefinition) -> dg.SensorDefinition:
    specs = list(checks.check_specs)

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=120,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Evaluates freshness_policy and partition_on_time of every asset; records "
        "each change of state (quality.check_results and a check evaluation) and sends one alert "
        "per change (WARN, FAIL or recovered) to the sinks of DQ_ALERT_SINKS. Failed deliveries "
        "are retried.",
    )
    def freshness_alerts(context: dg.SensorEvaluationContext, quality_store: QualityStore):
        cursor = json.loads(context.cursor) if context.cursor else {}
        alerted: dict[str, str] = cursor.get("states", {})  # check key -> last state alerted
        owed: list[dict] = cursor.get("owed", [])  # alert groups and the sinks that still owe them
        now = utc_now()
        tick_id = f"{SENSOR_NAME}@{now:%Y-%m-%dT%H:%M:%SZ}"
        states = [s for s in evaluate(context.instance, specs, now) if s.state]

        # Record: what Dagster shows catches up with the state (a run may have evaluated the
        # check earlier, or planned it and failed before evaluating it).
        shown = shown_states(context.instance, [s.key for s in states])
        stale = [s for s in states if shown[s.key] not in (s.state, IN_RUN)]
        if stale:
            try:  # a DuckDB warehouse busy with a run: recorded on a later tick, alerts go now
                quality_store.append_from_sensor("check_results", result_rows(tick_id, stale))
            except Exception as e:
                context.log.warning(f"freshness: {len(stale)} state(s) not recorded, retrying "
                                    f"next tick: {type(e).__name__}: {e}")
                stale = []
        for s in stale:
            context.instance.report_runless_asset_event(dg.AssetCheckEvaluation(
                asset_key=s.key.asset_key, check_name=s.key.name, passed=s.passed,
                severity=dg.AssetCheckSeverity.WARN, description=s.detail, metadata=s.metadata()))

        # Alert: once per change of state, whoever recorded it. A check met for the first time
        # in a good state is a starting point, not news.
        news = [s for s in states if alerted.get(s.key.to_user_string(), PASS) != s.state]
        alerted.update({s.key.to_user_string(): s.state for s in states})
        sinks = sinks_from_env()
        alerts = state_alerts(tick_id, news)
        if alerts:
            owed.append({"alerts": [a.to_dict() for a in alerts], "sinks": [s.name for s in sinks]})
        for item in owed:  # the same retry bookkeeping as check alerts
            targets = [s for s in sinks if s.name in item["sinks"]]
            failures = deliver([Alert(**a) for a in item["alerts"]], targets)
            for name, _, error in failures:
                context.log.warning(f"freshness alert delivery to {name} failed, retrying next "
                                    f"tick: {error}")
            item["sinks"] = sorted({name for name, _, _ in failures})
        owed = [item for item in owed if item["sinks"]]
        context.update_cursor(json.dumps({"states": alerted, "owed": owed}, sort_keys=True))
        return dg.SkipReason(f"{len(stale)} state(s) recorded, {len(alerts)} alert(s); "
                             f"{len(owed)} delivery group(s) owed a retry")

    return freshness_alerts
