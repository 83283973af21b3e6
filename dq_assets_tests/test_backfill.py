"""A single-run backfill of a range and day-by-day runs of the same days leave identical
tables, check results per partition included; a failed day inside the range keeps its marts."""

import datetime as dt

import pytest

from dq_assets.generator.generate import generate
from dq_assets.storage.duckdb.warehouse import release_warehouse
from dq_assets_tests.conftest import Warehouse
from dq_assets_tests.test_pipeline import snapshot

# The end-to-end tier (`-m slow`): long ranges: a single-run backfill against day-by-day runs,
# reruns in every order, a range stopped midway.
pytestmark = pytest.mark.slow

START = dt.date(2025, 1, 1)
DAYS = [(START + dt.timedelta(days=i)).isoformat() for i in range(6)]
DEFECTS = [f"{DAYS[2]}:payments.unknown_reference=1",       # ERROR: this day is refused
           f"{DAYS[4]}:orders.invalid_value=1",              # WARN only
           f"{DAYS[5]}:resent_orders=3", f"{DAYS[5]}:late_arriving=2"]


def tables(wh: Warehouse) -> dict:
    return snapshot(wh)


def latest_checks(wh: Warehouse) -> list[tuple]:
    return sorted(wh.query("""
        SELECT partition_key, asset_key, check_name, passed, severity, failing_rows, observed
        FROM quality.check_results
        QUALIFY row_number() OVER (PARTITION BY partition_key, asset_key, check_name
                                   ORDER BY evaluated_at DESC) = 1"""))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, instance):
    root = tmp_path_factory.mktemp("backfill")
    generate(root / "landing", START, len(DAYS), orders_per_day=30, seed=5, defects=DEFECTS)
    ranged = Warehouse(root / "landing", root / "range.duckdb", instance)
    daily = Warehouse(root / "landing", root / "daily.duckdb", instance)
    range_result = ranged.materialize_range(DAYS[0], DAYS[-1])
    daily_ok = [daily.materialize(d).success for d in DAYS]
    yield ranged, daily, range_result.success, daily_ok, range_result
    release_warehouse(str(ranged.database))
    release_warehouse(str(daily.database))


def test_the_failed_day_fails_both_ways(runs):
    _, _, range_ok, daily_ok, _ = runs
    assert range_ok is False
    assert daily_ok == [True, True, False, True, True, True]


def test_range_and_day_by_day_leave_identical_tables(runs):
    ranged, daily, _, _, _ = runs
    a, b = tables(ranged), tables(daily)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name


def test_range_and_day_by_day_record_the_same_check_results(runs):
    ranged, daily, _, _, _ = runs
    assert latest_checks(ranged) == latest_checks(daily)


def test_the_refused_day_has_no_marts_and_the_others_are_published(runs):
    ranged, _, _, _, _ = runs
    published = {str(d) for (d,) in ranged.query("SELECT DISTINCT ingest_date FROM marts.fact_orders")}
    assert published == set(DAYS) - {DAYS[2]}


def test_rematerializing_in_any_order_converges_to_the_same_tables(runs):
    ranged, daily, _, _, _ = runs
    for day in reversed(DAYS):  # re-sent and late orders included
        daily.materialize(day)
    assert tables(daily) == tables(ranged)
    assert latest_checks(daily) == latest_checks(ranged)


def check_evaluations(result) -> list:
    return [e.event_specific_data for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"]


def test_a_range_records_each_partitions_check_results_in_dagster(runs):
    *_, range_result = runs
    evaluations = check_evaluations(range_result)
    unknown = {e.partition: e.passed for e in evaluations
               if (e.asset_key.to_user_string(), e.check_name) == ("staging/payments", "no_unknown_reference")}
    assert unknown == {d: d != DAYS[2] for d in DAYS}
    gate = {e.partition: (e.passed, e.severity.value) for e in evaluations if e.check_name == "gate_passed"}
    # the refused day's decision with its true severity, in a range as in a day's own run
    assert gate == {d: (d != DAYS[2], "ERROR") for d in DAYS}


def test_a_range_records_each_partitions_own_figures_and_no_mart_for_the_refused_day(runs):
    ranged, _, _, _, range_result = runs
    recorded: dict[str, dict] = {}
    for event in range_result.get_asset_materialization_events():
        m = event.event_specific_data.materialization
        recorded.setdefault(m.asset_key.to_user_string(), {})[m.partition] = m.metadata
    for mart in ("fact_orders", "fact_revenue_daily", "revenue_by_order_date", "customer_versions",
                 "dim_customers"):
        assert set(recorded[f"marts/{mart}"]) == set(DAYS) - {DAYS[2]}, mart  # refused: none
    assert set(recorded["staging/orders"]) == set(DAYS)
    for day, meta in recorded["staging/orders"].items():  # each day's own, not the range's
        [(rows, quarantined)] = ranged.query(
            """SELECT (SELECT count(*) FROM staging.orders WHERE ingest_date = CAST(? AS DATE)),
                      (SELECT count(*) FROM quality.orders_quarantine WHERE ingest_date = CAST(? AS DATE))""",
            [day, day])
        assert (meta["rows"].value, meta["quarantined_rows"].value) == (rows, quarantined), day
        assert meta["dagster/partition_row_count"].value == rows
        assert day in meta["Query"].value
    gate = recorded["quality/partition_gate"]
    for day in DAYS:
        [(health, at_risk)] = ranged.query(
            "SELECT health_score, revenue_at_risk FROM quality.partition_gate WHERE ingest_date = CAST(? AS DATE)", [day])
        assert gate[day]["health_score"].value == health and gate[day]["revenue_at_risk"].value == float(at_risk or 0)


def test_a_long_range_records_one_result_per_check(two_days, warehouse, monkeypatch):
    monkeypatch.setenv("DQ_CHECK_EVENTS_MAX_PARTITIONS", "1")
    result = warehouse.materialize_range("2025-01-01", "2025-01-02")
    assert result.success
    evaluations = check_evaluations(result)
    keys = [(e.asset_key, e.check_name) for e in evaluations if e.partition is None]
    assert len(keys) == len(set(keys)) > 50  # one per check, none per partition
    assert not [e for e in evaluations if e.partition is not None]
    # the partitions' own results are still in the warehouse
    assert warehouse.query("SELECT count(DISTINCT partition_key) FROM quality.check_results") == [(2,)]


def test_a_range_stopped_midway_leaves_whole_days_and_a_rerun_converges(tmp_path, instance, monkeypatch):
    import dq_assets.storage.batches as batches

    monkeypatch.setattr(batches, "CHUNK_ROWS", 1)  # every day a group, and a transaction, of its own
    days = DAYS[:3]
    generate(tmp_path / "landing", START, len(days), orders_per_day=30, seed=5)
    manifest = tmp_path / "landing" / f"ingest_date={days[2]}" / "_manifest.json"
    sent = manifest.read_text()
    manifest.write_text("{ cut off")  # every raw step stops at the third day
    stopped = Warehouse(tmp_path / "landing", tmp_path / "stopped.duckdb", instance)
    daily = Warehouse(tmp_path / "landing", tmp_path / "daily.duckdb", instance)
    try:
        assert not stopped.materialize_range(days[0], days[-1]).success
        assert [daily.materialize(d).success for d in days[:2]] == [True, True]
        # The raw steps wrote the first two days, as pending versions: no staging step ran to
        # publish them (dq_assets.storage.batches), so raw.<table> holds nothing of them, as staging
        stopped_then = tables(stopped)
        assert not {k for k, rows in stopped_then.items()
                    if k.startswith(("raw.", "staging.")) and rows} - {"raw.landing_files"}
        raw_then = {k.replace("raw_pending.", "raw."): v for k, v in stopped_then.items()
                    if k.startswith("raw_pending.") and k != "raw_pending.pending_partitions"}
        raw_daily = {k: v for k, v in tables(daily).items() if k in raw_then}
        assert {"raw.orders", "raw.order_items", "raw.payments", "raw.events"} <= raw_then.keys()
        assert raw_then == raw_daily  # the first two days, each whole, and nothing of the third

        manifest.write_text(sent)
        assert stopped.materialize_range(days[0], days[-1]).success
        assert daily.materialize(days[2]).success
        assert tables(stopped) == tables(daily)
    finally:
        release_warehouse(str(stopped.database))
        release_warehouse(str(daily.database))
