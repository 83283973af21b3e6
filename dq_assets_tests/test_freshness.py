"""Freshness against a real instance (in memory, one per test): the real assets materialized
day by day, the sensor ticked as the daemon ticks it (hourly, through simulated days: the
checks' clock is stepped), results read back from the warehouse's quality.check_results and
from Dagster's records. The first day, the same for several tests, is run once (conftest's
`recorded_day`): each test starts from a copy of its warehouse and its records replayed."""

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import ThreadingHTTPServer

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange  # no public API

from dq_assets.definitions import ALL_ASSETS, FRESHNESS_CHECKS, defs
from dq_assets.operations import freshness
from dq_assets.operations.failure_alerts import check_failure_alerts
from dq_assets.operations.freshness import PARTITION_CHECK, POLICY_CHECK, due_day
from dq_assets.storage.duckdb.quality_store import DuckDBQualityStore
from dq_assets_tests.conftest import DAY1, DAY2, Landing, RecordedRun, Warehouse
from dq_assets_tests.pg_fixtures import free_port
from dq_assets_tests.test_sensors import Recorder

SENSOR = next(s for s in defs.sensors if s.name == "freshness_alerts")
DAILY_KEYS = sorted(s.asset_key.to_user_string() for s in FRESHNESS_CHECKS.check_specs
                    if s.name == PARTITION_CHECK)
STAGING_ORDERS = dg.AssetKey(["staging", "orders"])


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def shifted(files: dict, old: str, new: str) -> dict:
    """The same day's files sent for another date (every date in them moved along)."""
    return {t: [[c.replace(old, new) for c in row] for row in rows] for t, rows in files.items()}


class Day:
    """A warehouse, the freshness sensor and a clock: what the daemon would do, tick by tick."""

    def __init__(self, tmp_path, instance, monkeypatch):
        self.landing = Landing(tmp_path / "landing")
        self.warehouse = Warehouse(self.landing.root, tmp_path / "warehouse.duckdb", instance)
        self.instance, self.cursor, self.now = instance, None, None
        self.alert_file = tmp_path / "alerts.jsonl"
        monkeypatch.setenv("DQ_ALERT_SINKS", "jsonl")
        monkeypatch.setenv("DQ_ALERT_FILE", str(self.alert_file))
        monkeypatch.setattr(freshness, "utc_now", lambda: self.now)

    def load(self, day: str, files: dict) -> None:
        self.landing.write(day, files)
        assert self.warehouse.materialize(day).success

    def loaded(self, recorded: RecordedRun) -> None:
        """Starts from a day loaded earlier: its landing zone, its warehouse, its run's records."""
        assert recorded.result.success
        recorded.into(self.warehouse)

    def tick(self, at: datetime | None = None) -> None:
        self.now = at or self.now
        store = DuckDBQualityStore(database=str(self.warehouse.database))
        with dg.build_sensor_context(instance=self.instance, cursor=self.cursor,
                                     resources={"quality_store": store}) as ctx:
            SENSOR(ctx)
        self.cursor = ctx.cursor

    def hourly(self, start: str, end: str, at: dict | None = None) -> None:
        """Ticks every hour from start to end; `at` runs something at a given hour first."""
        t = utc(start)
        while t <= utc(end):
            (at or {}).get(t.isoformat()[:16], lambda: None)()
            self.tick(t)
            t += timedelta(hours=1)

    def alerts(self) -> list[dict]:
        if not self.alert_file.exists():
            return []
        return [a for a in map(json.loads, self.alert_file.read_text().splitlines())
                if a["kind"] == "freshness"]

    def rows(self, check: str, passed: bool | None = None) -> list[tuple]:
        return self.warehouse.query(
            """SELECT asset_key, passed, severity, observed, threshold, partition_key
               FROM quality.check_results WHERE check_name = ?
               AND (? IS NULL OR passed = ?) ORDER BY evaluated_at, asset_key""",
            [check, passed, passed])

    def shown(self, asset: str, check: str) -> dg.AssetCheckEvaluation:
        key = dg.AssetCheckKey(dg.AssetKey.from_user_string(asset), check)
        return self.instance.get_latest_asset_check_evaluation_record(key).event.asset_check_evaluation


@pytest.fixture
def real_instance():
    return dg.DagsterInstance.ephemeral()


@pytest.fixture
def first_day(recorded_day) -> RecordedRun:
    return recorded_day("2025-01-01", DAY1)


@pytest.fixture
def day(tmp_path, real_instance, monkeypatch):
    return Day(tmp_path, real_instance, monkeypatch)


@pytest.mark.parametrize("now, due", [
    ("2025-01-03T00:00", "2025-01-01"),  # today's partition (01-03) is open: never due
    ("2025-01-03T05:59", "2025-01-01"),  # before today's deadline: the day before yesterday
    ("2025-01-03T06:00", "2025-01-02"),  # from the deadline on: yesterday
    ("2025-01-03T23:59", "2025-01-02"),
])
def test_the_day_that_is_due_is_the_last_complete_one(now, due):
    assert due_day(utc(now), "0 6 * * *")[0] == due


def test_a_day_on_time_sends_nothing_and_a_late_day_one_alert_and_one_on_recovery(day, first_day):
    day.loaded(first_day)

    # On time: each day is loaded at 03:00 the next day, before the 06:00 deadline.
    day.hourly("2025-01-02T00:00", "2025-01-03T12:00",
               at={"2025-01-03T03:00": lambda: day.load("2025-01-02", DAY2)})
    assert day.alerts() == []
    assert day.rows(PARTITION_CHECK, passed=False) == [] and day.rows(POLICY_CHECK, passed=False) == []
    # the first tick recorded where every check starts from, nothing since
    assert len(day.rows(PARTITION_CHECK)) == len(DAILY_KEYS)

    # Late: 2025-01-03 is not there at the 06:00 deadline of 01-04; it comes at 10:00.
    late = shifted(DAY2, "2025-01-02", "2025-01-03")
    day.hourly("2025-01-03T13:00", "2025-01-04T05:00")
    assert day.alerts() == []
    day.hourly("2025-01-04T06:00", "2025-01-04T09:00")
    [fail] = day.alerts()
    assert (fail["check_name"], fail["observed"], fail["partition"], fail["severity"]) == (
        PARTITION_CHECK, "FAIL", "2025-01-03", "WARN")
    assert sorted(fail["sample_keys"]) == DAILY_KEYS  # every daily asset, in one alert
    failed = day.rows(PARTITION_CHECK, passed=False)
    assert sorted(r[0] for r in failed) == DAILY_KEYS
    assert {(r[2], r[3], r[5]) for r in failed} == {("WARN", "FAIL", None)}
    assert all("2025-01-03" in r[4] for r in failed)
    shown = day.shown("marts/fact_revenue_daily", PARTITION_CHECK)
    assert not shown.passed and shown.severity == dg.AssetCheckSeverity.WARN

    day.hourly("2025-01-04T10:00", "2025-01-05T05:00",
               at={"2025-01-04T10:00": lambda: day.load("2025-01-03", late)})
    fail_again, recovered = day.alerts()
    assert fail_again == fail
    assert (recovered["check_name"], recovered["observed"], recovered["partition"]) == (
        PARTITION_CHECK, "recovered", "2025-01-03")
    assert sorted(recovered["sample_keys"]) == DAILY_KEYS
    assert sorted(r[0] for r in day.rows(PARTITION_CHECK, passed=True)[-len(DAILY_KEYS):]) == DAILY_KEYS
    assert day.shown("marts/fact_revenue_daily", PARTITION_CHECK).passed
    assert day.rows(POLICY_CHECK, passed=False) == []


def test_freshness_policy_states_are_alerted_once_each_and_recorded(day, first_day, monkeypatch):
    port = free_port()
    monkeypatch.setenv("DQ_ALERT_SINKS", "jsonl,webhook")
    monkeypatch.setenv("DQ_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{port}/hook")
    day.loaded(first_day)
    day.tick(utc("2025-01-02T05:00"))  # nothing due yet, every asset just materialized
    assert day.alerts() == []

    def daemon_says(previous: FreshnessState, new: FreshnessState) -> None:
        """What Dagster's freshness daemon writes when an asset's state changes."""
        day.instance.report_runless_asset_event(FreshnessStateChange(
            key=STAGING_ORDERS, previous_state=previous, new_state=new,
            state_change_timestamp=datetime.now(timezone.utc).timestamp()))

    daemon_says(FreshnessState.PASS, FreshnessState.WARN)
    day.tick(utc("2025-01-02T05:02"))  # the webhook is down: the file gets it, the webhook is owed it
    daemon_says(FreshnessState.WARN, FreshnessState.FAIL)
    day.tick(utc("2025-01-02T05:04"))
    day.tick(utc("2025-01-02T05:06"))  # nothing new
    assert [(a["observed"], a["sample_keys"]) for a in day.alerts()] == [
        ("WARN", ["staging/orders"]), ("FAIL", ["staging/orders"])]
    assert [r[1:4] for r in day.rows(POLICY_CHECK, passed=False)] == [
        (False, "WARN", "WARN"), (False, "WARN", "FAIL")]
    shown = day.shown("staging/orders", POLICY_CHECK)
    assert not shown.passed and shown.metadata["state"].value == "FAIL"
    assert len(json.loads(day.cursor)["owed"]) == 2

    Recorder.received = []
    server = ThreadingHTTPServer(("127.0.0.1", port), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        day.tick(utc("2025-01-02T05:08"))  # the webhook is back: it gets both, once; the file nothing again
        daemon_says(FreshnessState.FAIL, FreshnessState.PASS)
        day.tick(utc("2025-01-02T05:10"))
        day.tick(utc("2025-01-02T05:12"))
    finally:
        server.shutdown()
    hooked = [(a["observed"], a["check_name"]) for body in Recorder.received for a in body["alerts"]]
    assert hooked == [("WARN", POLICY_CHECK), ("FAIL", POLICY_CHECK), ("recovered", POLICY_CHECK)]
    assert [a["observed"] for a in day.alerts()] == ["WARN", "FAIL", "recovered"]
    assert json.loads(day.cursor)["owed"] == []
    assert day.rows(POLICY_CHECK)[-1][:2] == ("staging/orders", True)
    assert day.shown("staging/orders", POLICY_CHECK).passed


def test_runs_evaluate_the_checks_too_but_only_the_sensor_alerts(day, monkeypatch):
    """The CLI runs the freshness checks of every asset it materializes. A run that fails
    before getting to them leaves them planned; the sensor records the state again."""
    from dq_assets.resources import local_resources
    from dq_assets_tests.test_sensors import BAD_DAY

    def cli_like_run(day_key: str) -> dg.ExecuteInProcessResult:
        return dg.materialize([*ALL_ASSETS, FRESHNESS_CHECKS], partition_key=day_key,
                              instance=day.instance, raise_on_error=False,
                              resources=local_resources(database=str(day.warehouse.database),
                                                        landing=str(day.landing.root)))

    day.landing.write("2025-01-01", DAY1)
    day.now = utc("2025-01-03T07:00")  # 2025-01-02 is due and never comes
    ok = cli_like_run("2025-01-01")
    assert ok.success
    in_run = {(e.asset_key.to_user_string(), e.check_name): e.passed
              for e in ok.get_asset_check_evaluations() if e.check_name == PARTITION_CHECK}
    assert set(in_run) == {(k, PARTITION_CHECK) for k in DAILY_KEYS} and not any(in_run.values())
    ctx = dg.build_sensor_context(instance=day.instance)
    check_failure_alerts(ctx)
    assert day.alerts() == [] and not day.alert_file.exists()  # in-run results are not alerted
    rows_after_run = len(day.rows(PARTITION_CHECK))
    day.tick()
    day.tick(utc("2025-01-03T07:02"))
    [late] = day.alerts()  # the sensor alerts the state, once
    assert late["observed"] == "FAIL" and late["partition"] == "2025-01-02"
    assert len(day.rows(PARTITION_CHECK)) == rows_after_run  # the run had recorded it already

    day.landing.write("2025-01-01", BAD_DAY)
    assert not cli_like_run("2025-01-01").success  # the gate fails: the checks stay planned
    key = dg.AssetCheckKey(dg.AssetKey(["raw", "orders"]), PARTITION_CHECK)
    assert day.instance.get_latest_asset_check_evaluation_record(key).event.asset_check_evaluation is None
    day.tick(utc("2025-01-03T07:04"))
    assert not day.shown("raw/orders", PARTITION_CHECK).passed  # shown again, not alerted again
    assert len(day.alerts()) == 1


def test_a_warehouse_busy_with_a_run_delays_the_record_not_the_alert(day, monkeypatch):
    """DuckDB has one writer: a run holds the file until it ends. The sensor waits briefly,
    alerts anyway, and records the state on a later tick; it never keeps the file itself."""
    import subprocess
    import sys

    from dq_assets.storage.duckdb import quality_store

    monkeypatch.setattr(quality_store, "SENSOR_LOCK_WAIT", 0.5)
    path = str(day.warehouse.database)
    holder = subprocess.Popen(  # another process with the warehouse open, as a run has it
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({path!r}); "
                               "print('open', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        day.tick(utc("2025-01-03T07:00"))  # 2025-01-02 is due and nothing was ever loaded
        [late] = day.alerts()
        assert late["observed"] == "FAIL" and sorted(late["sample_keys"]) == DAILY_KEYS
    finally:
        holder.communicate("")  # the run ends
    day.tick(utc("2025-01-03T07:02"))
    # the sensor let go of the file: another process (the next run) can open it at once
    subprocess.run([sys.executable, "-c", f"import duckdb; duckdb.connect({path!r}).close()"],
                   check=True, timeout=60)
    assert sorted(r[0] for r in day.rows(PARTITION_CHECK, passed=False)) == DAILY_KEYS
    assert len(day.alerts()) == 1
    assert not day.shown("raw/orders", PARTITION_CHECK).passed


def test_the_aws_deployment_records_freshness_in_postgresql(day, pg_database):
    """The sensor writes through the deployment's quality_store: PostgreSQL on aws. The rows
    have no partition, so the per-partition gate never counts them."""
    import psycopg

    from dq_assets.storage.postgres.connection import PostgresConnection
    from dq_assets.storage.postgres.quality_store import PostgresQualityStore

    store = PostgresQualityStore(connection=PostgresConnection(url=pg_database))
    with dg.build_sensor_context(instance=day.instance, resources={"quality_store": store}) as ctx:
        day.now = utc("2025-01-03T07:00")  # 2025-01-02 is due and nothing was ever loaded
        SENSOR(ctx)
    [late] = day.alerts()
    assert late["observed"] == "FAIL" and sorted(late["sample_keys"]) == DAILY_KEYS
    with psycopg.connect(pg_database) as conn:
        rows = conn.execute("SELECT asset_key, passed, severity, partition_key FROM quality.check_results "
                            "WHERE check_name = %s ORDER BY asset_key", [PARTITION_CHECK]).fetchall()
    assert rows == [(k, False, "WARN", None) for k in DAILY_KEYS]
    assert store.latest_check_results(["2025-01-02"]).num_rows == 0
