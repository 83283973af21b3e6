"""Landed days run in order: the landing sensor and the schedule, each tick evaluated as the
daemon does and its run request executed as the daemon's run launcher would (the warehouse
job, in process, with the request's tags and the deployment's DQ_LANDING and DQ_WAREHOUSE).
A day is never checked before the days it follows, and the gate says plainly when it would be.

The sensor and the schedule ask the instance only whether a run of the warehouse job is in
flight; what has landed and what is loaded they read from the landing zone and the warehouse.
So every site has an in-memory instance of its own (the schedule's context, which opens its
instance again from a reference, gets one on disk), and the two costly starting points (three
days landed together and run; a shop whose last day was loaded before the days between) are
built once for the module: a test that goes on from one works on a copy of its landing zone and
warehouse."""

import datetime as dt
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from dq_assets.definitions import defs
from dq_assets.generator.generate import generate
from dq_assets.landing.zone import LandingZone
from dq_assets.operations.landing_runs import daily_warehouse_schedule, landing_sensor
from dq_assets.storage.duckdb.quality_store import DuckDBQualityStore
from dq_assets.storage.duckdb.warehouse import release_warehouse
from dq_assets_tests.conftest import DAY1, DAY2, Landing, Warehouse

DAY3 = {"orders": [["O9", "C3", "2025-01-03T10:00:00Z", "placed", "EUR", "2.50", "2025-01-03T10:00:00Z"]],
        "order_items": [["O9", "1", "P2", "1", "2.50", "2.50"]]}  # C3 is new on day 2


def new_site(root: Path) -> Warehouse:
    """A landing zone, a warehouse and an instance of their own, as a deployment has."""
    (root / "landing").mkdir(parents=True)
    return Warehouse(root / "landing", root / "warehouse.duckdb", dg.DagsterInstance.ephemeral())


@pytest.fixture
def site(tmp_path) -> Warehouse:
    wh = new_site(tmp_path)
    yield wh
    release_warehouse(str(wh.database))


@pytest.fixture
def copy_of(tmp_path):
    """`copy_of(wh)`: a site as `wh` is now (its landing zone and warehouse copied; no run in
    flight, as none is in `wh`'s instance), for a test to go on from without touching `wh`."""
    copies = []

    def copy(wh: Warehouse) -> Warehouse:
        release_warehouse(str(wh.database))  # closed, so the file copied is whole
        root = tmp_path / f"copy{len(copies)}"
        shutil.copytree(wh.landing, root / "landing")
        shutil.copyfile(wh.database, root / "warehouse.duckdb")
        copies.append(Warehouse(root / "landing", root / "warehouse.duckdb", dg.DagsterInstance.ephemeral()))
        return copies[-1]

    yield copy
    for wh in copies:
        release_warehouse(str(wh.database))


def tick(wh: Warehouse, cursor=None):
    resources = {"landing": LandingZone(root=str(wh.landing)),
                 "quality_store": DuckDBQualityStore(database=str(wh.database))}
    with dg.build_sensor_context(instance=wh.instance, cursor=cursor, resources=resources) as ctx:
        result = landing_sensor(ctx)
    if isinstance(result, dg.SkipReason):
        return [], cursor, result.skip_message
    return result.run_requests, result.cursor, None


def launch(wh: Warehouse, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """What the daemon does with a run request of the warehouse job, on the site's deployment."""
    job = defs.resolve_job_def("daily_warehouse")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DQ_LANDING", str(wh.landing))
        env.setenv("DQ_WAREHOUSE", str(wh.database))
        return job.execute_in_process(instance=wh.instance, partition_key=request.partition_key,
                                      tags=request.tags, raise_on_error=False)


def span(request: dg.RunRequest) -> tuple[str, str]:
    r = request.partition_key_range
    return (r.start, r.end) if r else (request.partition_key, request.partition_key)


@pytest.fixture(scope="module")
def together(tmp_path_factory):
    """Three days landed together, the sensor ticked and the run it asked for launched."""
    wh = new_site(tmp_path_factory.mktemp("together"))
    for day, files in (("2025-01-01", DAY1), ("2025-01-02", DAY2), ("2025-01-03", DAY3)):
        Landing(wh.landing).write(day, files)
    requests, cursor, _ = tick(wh)
    result = launch(wh, requests[0]) if len(requests) == 1 else None
    yield SimpleNamespace(wh=wh, requests=requests, cursor=cursor, result=result)
    release_warehouse(str(wh.database))


def test_days_landed_together_are_one_range_run_and_all_pass(together):
    wh = together.wh
    [request] = together.requests
    assert span(request) == ("2025-01-01", "2025-01-03")  # one run, in order, not three at once
    assert together.result.success
    assert not wh.query("SELECT * FROM quality.check_results WHERE NOT passed AND severity = 'ERROR'")
    assert [(str(d), ok) for d, ok in wh.query(
        "SELECT ingest_date, gate_passed FROM quality.partition_gate ORDER BY 1")] == [
        ("2025-01-01", True), ("2025-01-02", True), ("2025-01-03", True)]
    assert tick(wh, together.cursor)[0] == []  # nothing twice


def test_no_request_while_a_run_of_the_warehouse_is_in_flight(site):
    Landing(site.landing).write("2025-01-01", DAY1)
    run = site.instance.create_run_for_job(defs.resolve_job_def("daily_warehouse"),
                                           tags={"dagster/partition": "2025-01-01"})
    site.instance.report_run_canceling(run)  # not finished: still in flight
    requests, _, skipped = tick(site)
    assert requests == [] and "waiting for run" in skipped
    site.instance.report_run_canceled(run)
    requests, _, _ = tick(site)
    assert [span(r) for r in requests] == [("2025-01-01", "2025-01-01")]


def test_a_re_sent_day_runs_again_with_every_day_after_it(together, copy_of):
    assert together.result.success  # the days landed are loaded
    wh, cursor = copy_of(together.wh), together.cursor
    root = wh.landing
    assert tick(wh, cursor)[0] == []
    (root / "ingest_date=2025-01-04").mkdir()  # not complete: no manifest yet
    assert tick(wh, cursor)[0] == []
    Landing(root).write("2025-01-01", {**DAY1, "events": DAY1["events"][:-1]})  # re-sent: new manifest
    [again], cursor, _ = tick(wh, cursor)
    assert span(again) == ("2025-01-01", "2025-01-01")
    Landing(root).write("2025-01-04", {"orders": DAY1["orders"][:1]})
    Landing(root).write("2025-01-01", DAY1)
    [both], _, _ = tick(wh, cursor)
    assert span(both) == ("2025-01-01", "2025-01-04")  # the days between run again, in order


@pytest.fixture(scope="module")
def held_back(tmp_path_factory):
    """Four generated days, the last with a defect of its own (a payment of an unknown order).
    The README's quick start loads the first; then the last is run on its own, days early."""
    wh = new_site(tmp_path_factory.mktemp("shop"))
    generate(wh.landing, dt.date(2025, 1, 1), 4, orders_per_day=40, seed=3,
             defects=["2025-01-04:payments.unknown_reference=1"])
    first, last = wh.materialize("2025-01-01"), wh.materialize("2025-01-04")
    yield SimpleNamespace(wh=wh, first=first, last=last)
    release_warehouse(str(wh.database))


def test_a_day_before_its_history_is_loaded_says_so_once_and_runs_again_when_it_is(held_back, copy_of):
    assert held_back.first.success  # the README's quick start
    assert not held_back.last.success  # then a later day, on its own
    wh = copy_of(held_back.wh)
    # what is missing, said once; no unknown references, no quarantine alarm: staging waits
    # for the history (before, the missing days' customers showed up as unknown references)
    assert wh.failed_checks("2025-01-04") == {"raw/landing_files:history_complete": ("ERROR", 2)}
    [(observed,)] = wh.query("""SELECT observed FROM quality.check_results WHERE partition_key = '2025-01-04'
                                AND check_name = 'history_complete'""")
    assert observed == "reference history incomplete: 2025-01-02..2025-01-03 not loaded"
    assert wh.query("SELECT count(*) FROM staging.orders WHERE ingest_date = '2025-01-04'") == [(0,)]
    # the sensor runs the days in order, the held-back day with them, in one range
    [request], _, _ = tick(wh)
    assert span(request) == ("2025-01-01", "2025-01-04")
    assert not launch(wh, request).success  # 2025-01-04 has a defect of its own
    # its real defect, and nothing about history
    assert {name for name, (severity, _) in wh.failed_checks("2025-01-04").items() if severity == "ERROR"} == {
        "staging/payments:no_unknown_reference", "quality/partition_gate:gate_passed"}
    gates = dict(wh.query("SELECT CAST(ingest_date AS VARCHAR), gate_passed FROM quality.partition_gate"))
    assert gates == {"2025-01-01": True, "2025-01-02": True, "2025-01-03": True, "2025-01-04": False}


def test_a_held_back_day_alone_is_run_again_once_the_days_before_are_loaded(held_back, copy_of):
    assert held_back.first.success and not held_back.last.success  # 2025-01-02..03 missing: held back
    wh = copy_of(held_back.wh)
    # the sensor is switched on now: it asks for everything landed (it knows nothing yet); an
    # operator loads the missing days by hand instead
    [everything], cursor, _ = tick(wh)
    assert span(everything) == ("2025-01-01", "2025-01-04")
    assert {"2025-01-02", "2025-01-03"} <= set(json.loads(cursor))
    assert tick(wh, cursor)[0] == []  # still held back: nothing new
    assert wh.materialize_range("2025-01-02", "2025-01-03").success
    # its history complete now, the held-back day is asked for again, alone
    [request], _, _ = tick(wh, cursor)
    assert span(request) == ("2025-01-04", "2025-01-04")


@pytest.fixture
def schedule_instance(ram_path_factory):
    """An instance on disk (a schedule context opens it again from its reference), in memory
    (/dev/shm) where there is one."""
    with dg.instance_for_test(temp_dir=str(ram_path_factory.mktemp("schedule"))) as instance:
        yield instance


def test_the_schedule_runs_the_landed_days_not_yet_loaded_in_one_range(together, site, schedule_instance):
    landing = LandingZone(root=str(together.wh.landing))  # three days landed

    def at(day: str, loaded_into: Warehouse):
        moment = dt.datetime.fromisoformat(f"{day}T03:00:00+00:00")
        resources = {"landing": landing, "quality_store": DuckDBQualityStore(database=str(loaded_into.database))}
        with dg.build_schedule_context(instance=schedule_instance, scheduled_execution_time=moment,
                                       resources=resources) as ctx:
            return daily_warehouse_schedule(ctx)

    # nothing loaded yet (`site`'s warehouse): the days up to yesterday, never today's
    assert isinstance(at("2025-01-02", site), dg.RunRequest) and span(at("2025-01-02", site)) == (
        "2025-01-01", "2025-01-01")
    assert span(at("2025-01-03", site)) == ("2025-01-01", "2025-01-02")
    request = at("2025-01-04", site)
    assert span(request) == ("2025-01-01", "2025-01-03")
    # the run it asks for is the very run `together` launched (the same partitions and tags),
    # which loaded them: then everything up to yesterday is loaded
    [launched] = together.requests
    assert (request.partition_key, request.tags) == (launched.partition_key, launched.tags)
    assert together.result.success
    assert isinstance(at("2025-01-03", together.wh), dg.SkipReason)
    assert isinstance(at("2025-01-04", together.wh), dg.SkipReason)
