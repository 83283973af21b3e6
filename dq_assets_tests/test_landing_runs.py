"""Landed days run in order: the landing sensor and the schedule on a real instance (a
temporary DAGSTER_HOME), each tick evaluated as the daemon does and its run request executed
as the daemon's run launcher would (the warehouse job, in process, with the request's tags).
A day is never checked before the days it follows, and the gate says plainly when it would be."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pytest

from dq_assets.definitions import defs
from dq_assets.duck import release_warehouse
from dq_assets.generator import generate
from dq_assets.landing import LandingZone
from dq_assets.landing_runs import daily_warehouse_schedule, landing_sensor
from dq_assets.quality_store import DuckDBQualityStore
from dq_assets_tests.conftest import DAY1, DAY2, Landing, Warehouse



@pytest.fixture
def site(tmp_path, monkeypatch):
    """A landing zone, a warehouse and a Dagster home of their own, as a deployment has."""
    landing, database = tmp_path / "landing", tmp_path / "warehouse.duckdb"
    landing.mkdir()
    (tmp_path / "dagster_home").mkdir()
    monkeypatch.setenv("DQ_LANDING", str(landing))
    monkeypatch.setenv("DQ_WAREHOUSE", str(database))
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        yield landing, Warehouse(landing, database, instance)
    release_warehouse(str(database))


def tick(instance, landing: Path, database: Path, cursor=None):
    resources = {"landing": LandingZone(root=str(landing)), "quality_store": DuckDBQualityStore(database=str(database))}
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
        result = landing_sensor(ctx)
    if isinstance(result, dg.SkipReason):
        return [], cursor, result.skip_message
    return result.run_requests, result.cursor, None


def launch(instance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """What the daemon does with a run request of the warehouse job."""
    job = defs.resolve_job_def("daily_warehouse")
    return job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                  tags=request.tags, raise_on_error=False)


def span(request: dg.RunRequest) -> tuple[str, str]:
    r = request.partition_key_range
    return (r.start, r.end) if r else (request.partition_key, request.partition_key)


def test_days_landed_together_are_one_range_run_and_all_pass(site):
    root, wh = site
    Landing(root).write("2025-01-01", DAY1)
    Landing(root).write("2025-01-02", DAY2)
    day3 = {"orders": [["O9", "C3", "2025-01-03T10:00:00Z", "placed", "EUR", "2.50", "2025-01-03T10:00:00Z"]],
            "order_items": [["O9", "1", "P2", "1", "2.50", "2.50"]]}  # C3 is new on day 2
    Landing(root).write("2025-01-03", day3)
    [request], cursor, _ = tick(wh.instance, root, wh.database)
    assert span(request) == ("2025-01-01", "2025-01-03")  # one run, in order, not three at once
    result = launch(wh.instance, request)
    assert result.success
    assert not wh.query("SELECT * FROM quality.check_results WHERE NOT passed AND severity = 'ERROR'")
    assert [(str(d), ok) for d, ok in wh.query(
        "SELECT ingest_date, gate_passed FROM quality.partition_gate ORDER BY 1")] == [
        ("2025-01-01", True), ("2025-01-02", True), ("2025-01-03", True)]
    assert tick(wh.instance, root, wh.database, cursor)[0] == []  # nothing twice


def test_no_request_while_a_run_of_the_warehouse_is_in_flight(site):
    root, wh = site
    Landing(root).write("2025-01-01", DAY1)
    run = wh.instance.create_run_for_job(defs.resolve_job_def("daily_warehouse"),
                                         tags={"dagster/partition": "2025-01-01"})
    wh.instance.report_run_canceling(run)  # not finished: still in flight
    requests, _, skipped = tick(wh.instance, root, wh.database)
    assert requests == [] and "waiting for run" in skipped
    wh.instance.report_run_canceled(run)
    requests, _, _ = tick(wh.instance, root, wh.database)
    assert [span(r) for r in requests] == [("2025-01-01", "2025-01-01")]


def test_a_re_sent_day_runs_again_with_every_day_after_it(site):
    root, wh = site
    Landing(root).write("2025-01-01", DAY1)
    Landing(root).write("2025-01-02", DAY2)
    [first], cursor, _ = tick(wh.instance, root, wh.database)
    assert launch(wh.instance, first).success
    assert tick(wh.instance, root, wh.database, cursor)[0] == []
    (root / "ingest_date=2025-01-03").mkdir()  # not complete: no manifest yet
    assert tick(wh.instance, root, wh.database, cursor)[0] == []
    Landing(root).write("2025-01-01", {**DAY1, "events": DAY1["events"][:-1]})  # re-sent: new manifest
    [again], cursor, _ = tick(wh.instance, root, wh.database, cursor)
    assert span(again) == ("2025-01-01", "2025-01-01")
    Landing(root).write("2025-01-03", {"orders": DAY1["orders"][:1]})
    Landing(root).write("2025-01-01", DAY1)
    [both], _, _ = tick(wh.instance, root, wh.database, cursor)
    assert span(both) == ("2025-01-01", "2025-01-03")  # the day between runs again, in order


@pytest.fixture
def shop_site(site):
    """Four generated days; the last has a defect of its own (a payment of an unknown order)."""
    root, wh = site
    generate(root, dt.date(2025, 1, 1), 4, orders_per_day=40, seed=3,
             defects=["2025-01-04:payments.unknown_reference=1"])
    return root, wh


def test_a_day_before_its_history_is_loaded_says_so_once_and_runs_again_when_it_is(shop_site):
    root, wh = shop_site
    assert wh.materialize("2025-01-01").success  # the README's quick start
    assert not wh.materialize("2025-01-04").success  # then a later day, on its own
    # what is missing, said once; no unknown references, no quarantine alarm: staging waits
    # for the history (before, the missing days' customers showed up as unknown references)
    assert wh.failed_checks("2025-01-04") == {"raw/landing_files:history_complete": ("ERROR", 2)}
    [(observed,)] = wh.query("""SELECT observed FROM quality.check_results WHERE partition_key = '2025-01-04'
                                AND check_name = 'history_complete'""")
    assert observed == "reference history incomplete: 2025-01-02..2025-01-03 not loaded"
    assert wh.query("SELECT count(*) FROM staging.orders WHERE ingest_date = '2025-01-04'") == [(0,)]
    # the sensor runs the days in order, the held-back day with them, in one range
    [request], _, _ = tick(wh.instance, root, wh.database)
    assert span(request) == ("2025-01-01", "2025-01-04")
    assert not launch(wh.instance, request).success  # 2025-01-04 has a defect of its own
    # its real defect, and nothing about history
    assert {name for name, (severity, _) in wh.failed_checks("2025-01-04").items() if severity == "ERROR"} == {
        "staging/payments:no_unknown_reference", "quality/partition_gate:gate_passed"}
    gates = dict(wh.query("SELECT CAST(ingest_date AS VARCHAR), gate_passed FROM quality.partition_gate"))
    assert gates == {"2025-01-01": True, "2025-01-02": True, "2025-01-03": True, "2025-01-04": False}


def test_a_held_back_day_alone_is_run_again_once_the_days_before_are_loaded(shop_site):
    root, wh = shop_site
    assert wh.materialize_range("2025-01-01", "2025-01-02").success
    assert not wh.materialize("2025-01-04").success  # 2025-01-03 missing: held back
    # the sensor is switched on now: it asks for everything landed (it knows nothing yet); an
    # operator loads the missing day by hand instead
    [everything], cursor, _ = tick(wh.instance, root, wh.database)
    assert span(everything) == ("2025-01-01", "2025-01-04") and "2025-01-03" in json.loads(cursor)
    assert tick(wh.instance, root, wh.database, cursor)[0] == []  # still held back: nothing new
    assert wh.materialize("2025-01-03").success
    # its history complete now, the held-back day is asked for again, alone
    [request], _, _ = tick(wh.instance, root, wh.database, cursor)
    assert span(request) == ("2025-01-04", "2025-01-04")


def test_the_schedule_runs_the_landed_days_not_yet_loaded_in_one_range(site):
    root, wh = site
    Landing(root).write("2025-01-01", DAY1)
    Landing(root).write("2025-01-02", DAY2)
    resources = {"landing": LandingZone(root=str(root)), "quality_store": DuckDBQualityStore(database=str(wh.database))}

    def at(day: str):
        moment = dt.datetime.fromisoformat(f"{day}T03:00:00+00:00")
        with dg.build_schedule_context(instance=wh.instance, scheduled_execution_time=moment,
                                       resources=resources) as ctx:
            return daily_warehouse_schedule(ctx)

    assert isinstance(at("2025-01-02"), dg.RunRequest) and span(at("2025-01-02")) == ("2025-01-01", "2025-01-01")
    request = at("2025-01-03")
    assert span(request) == ("2025-01-01", "2025-01-02")
    assert launch(wh.instance, request).success
    assert isinstance(at("2025-01-03"), dg.SkipReason)  # everything up to yesterday is loaded
