"""Statistical monitors: the scoring (dq_assets.rules.monitors) on its own, the metrics a profile
gives, the configuration, and a seeded history through the warehouse: 28 clean days from the
generator, then one day each of a null-rate jump, amounts in cents (x100), a vanished value
and a revenue drop. Each monitor fails on its day and on no other; the first days, whose
history is short, are not evaluated."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from dq_assets.checks.monitors import MonitorConfig, evaluate_monitors, metric_history
from dq_assets.contract.gate import load_gate_config
from dq_assets.contract.tables import table
from dq_assets.generator import cli
from dq_assets.rules.monitors import (
    ROWS,
    TABLE_LEVEL,
    Settings,
    evaluate,
    evaluate_weekday,
    floor,
    partition_metrics,
)
from dq_assets_tests.conftest import Warehouse

START = date(2025, 1, 1)  # a Wednesday


def days(n: int, start: date = START) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range(n)]


def series(values: list[float], start: date = START) -> dict[str, float]:
    return dict(zip(days(len(values), start), values))


SETTINGS = Settings(sensitivity=6, min_history=14, window=28, weekday_window=8, weekday_min_history=4)
# landed rows of 21 days: 10,000 give or take 5%
NOISE = [v * 100 for v in (100, 104, 97, 101, 99, 103, 98, 102, 100, 96, 105, 101, 99, 100, 102, 98, 101, 97,
                           103, 100, 99)]


def test_nothing_is_evaluated_before_the_minimum_history():
    history = series(NOISE[:13] + [1000])
    day = days(14)[-1]
    assert evaluate(day, TABLE_LEVEL, ROWS, 1000, history, SETTINGS) is None
    longer = series(NOISE[:14] + [1000])
    finding = evaluate(days(15)[-1], TABLE_LEVEL, ROWS, 1000, longer, SETTINGS, rows=1000)
    assert finding is not None and finding.fired


def test_a_value_within_the_spread_of_its_history_passes_and_a_jump_fails():
    history = series(NOISE)
    day = days(len(NOISE) + 1)[-1]
    ok = evaluate(day, TABLE_LEVEL, ROWS, 10400, {**history, day: 10400}, SETTINGS, rows=10400)
    assert ok is not None and not ok.fired
    band = ok.bands[0]  # 1.4826 x MAD 200 = 296.5, x 6
    assert band.median == 10000 and band.low == pytest.approx(8221, abs=1) and band.high == pytest.approx(11779, abs=1)
    low = evaluate(day, TABLE_LEVEL, ROWS, 7000, {**history, day: 7000}, SETTINGS, rows=7000)
    assert low.fired
    assert low.describe() == f"rows 7,000 outside 8,221..11,779 (median 10,000 of 21 days, {days(1)[0]}..{days(21)[-1]})"


def test_one_bad_day_in_the_history_does_not_move_the_band():
    spiked = series(NOISE[:10] + [500000] + NOISE[11:])
    day = days(len(NOISE) + 1)[-1]
    finding = evaluate(day, TABLE_LEVEL, ROWS, 7000, spiked, SETTINGS, rows=7000)
    assert finding.fired and finding.bands[0].median == 10000


def test_a_weekly_rhythm_is_no_anomaly_but_a_shift_against_both_windows_is():
    # every Sunday a third of the volume: far from the all-days band, within the Sundays'
    weekly = [3000 if date.fromisoformat(d).weekday() == 6 else v
              for d, v in zip(days(35), NOISE + NOISE[:14])]
    history = series(weekly)
    next_sunday = next(d for d in days(42)[35:] if date.fromisoformat(d).weekday() == 6)
    usual = evaluate(next_sunday, TABLE_LEVEL, ROWS, 3100, history, SETTINGS, rows=3100)
    assert [b.label for b in usual.bands] == ["28 days", "5 Sundays"]
    assert not usual.bands[0].holds(3100) and usual.bands[1].holds(3100) and not usual.fired
    dropped = evaluate(next_sunday, TABLE_LEVEL, ROWS, 500, history, SETTINGS, rows=500)
    assert dropped.fired


def test_a_metric_that_never_moved_has_a_floor():
    flat = series([0.0] * 20)
    day = days(21)[-1]
    assert floor("null_share", 0.0) == 0.01 and floor("rows", 10000) == 200
    # a small day's sampling error: Poisson for a count, binomial for a share
    assert floor("rows", 100) == 10 and floor("share:paid", 0.5, rows=100) == pytest.approx(0.05)
    assert not evaluate(day, "c", "null_share", 0.03, flat, SETTINGS).fired  # 3 points: noise
    assert evaluate(day, "c", "null_share", 0.08, flat, SETTINGS).fired  # 0.1% to 8% in the issue
    # a quantile's floor is half the column's standard deviation: catalogue prices jump
    prices = series([153.8] * 20)
    assert not evaluate(day, "unit_price", "p99", 175.0, prices, SETTINGS, column_sd=40).fired
    assert evaluate(day, "unit_price", "p99", 15380.0, prices, SETTINGS, column_sd=40).fired


def test_a_value_that_vanishes_fails_when_its_absence_is_no_chance():
    shares = series([0.2, 0.22, 0.19, 0.21] * 5)
    day = days(21)[-1]
    gone = evaluate(day, "platform", "share:android", 0.0, shares, SETTINGS, rows=3000)
    assert gone.fired and gone.why.startswith("absent (about 615 rows expected), present on each of the 20 days")
    rare = series([0.02, 0.03, 0.025, 0.02] * 5)  # a value of 2% on days of 40 rows: 1 expected
    assert not evaluate(day, "method", "share:gift_card", 0.0, rare, SETTINGS, rows=40).fired
    new = evaluate(day, "status", "share:refunded", 0.05, series([0.0] * 20), SETTINGS, rows=300)
    assert new.fired and new.why.startswith("appeared")


def test_the_revenue_band_is_the_weekdays_median_with_the_spread_of_every_day():
    history = series([1000, 1100, 900, 1050, 950, 1000, 980] * 4)  # 28 days, each weekday 4 times
    day = days(29)[-1]
    assert evaluate_weekday(day, "revenue EUR", 300, dict(list(history.items())[:20]), 6, 8, 4) is None
    ok = evaluate_weekday(day, "revenue EUR", 900, history, 6, 8, 4)
    assert "(median 1,000 of 4 Wednesdays" in ok.describe() and not ok.fired  # the 4 Wednesdays: 1000 each
    assert evaluate_weekday(day, "revenue EUR", 300, history, 6, 8, 4).fired


def test_partition_metrics_of_a_profile():
    orders = table("orders")
    profile = [{"column": c.name, "rows": 100, "nulls": 0, "distinct_values": 90, "mean_value": None, "values": None}
               for c in orders.columns]
    amount = next(p for p in profile if p["column"] == "amount")
    amount.update(rows=100, mean_value=50.0, stddev=10.0, p01=1.0, p50=48.0, p99=120.0, min=0.5, max=150.0)
    status = next(p for p in profile if p["column"] == "status")
    status.update(rows=100, values={"paid": 60, "cancelled": 40, "placed": 0})
    metrics = partition_metrics(orders, profile, landed_rows=104, missing_required={"status": 4})
    assert metrics[(TABLE_LEVEL, ROWS)] == 104
    assert metrics[("status", "null_share")] == pytest.approx(4 / 104)
    assert metrics[("amount", "mean")] == 50 and metrics[("amount", "p50")] == 48
    assert ("amount", "p99") not in metrics  # 100 values: p99 is the day's extreme, not kept
    assert metrics[("status", "share:paid")] == 0.6 and metrics[("status", "share:placed")] == 0
    assert ("order_id", "mean") not in metrics and ("order_id", "null_share") in metrics
    assert metrics[("order_id", "distinct")] == 90  # kept, not monitored


def test_the_configuration_per_table_and_column(tmp_path):
    override = tmp_path / "gate.yaml"
    override.write_text("monitors:\n  tables: [orders, events]\n  overrides:\n"
                        "    orders.amount: {sensitivity: 9}\n    events: {min_history: 21}\n"
                        "    orders.status: {enabled: false}\n")
    mc = MonitorConfig.of(load_gate_config(str(override)))
    assert mc.settings_for("orders", "amount").sensitivity == 9
    assert mc.settings_for("orders", "currency").sensitivity == mc.settings.sensitivity
    assert mc.settings_for("events", "platform").min_history == 21
    assert mc.settings_for("orders", "status") is None and mc.settings_for("payments", "amount") is None


def test_a_column_may_have_its_own_severity(tmp_path):
    override = tmp_path / "gate.yaml"
    override.write_text("monitors:\n  overrides:\n    orders.amount: {severity: error}\n")
    cfg = load_gate_config(str(override))
    steady = series([float(v) for v in NOISE] * 2)  # 42 days
    day = days(43)[-1]

    def outcome(column: str, metric: str, value: float):
        history = {(TABLE_LEVEL, ROWS): {**steady, day: 10000.0}, (column, metric): {**steady, day: value}}
        [o] = [o for o in evaluate_monitors(table("orders"), None, cfg, [day], history)
               if o.check == "monitor_distribution"]
        return o

    assert (outcome("amount", "mean", 20000).passed, outcome("amount", "mean", 20000).severity) == (False, "ERROR")
    assert outcome("amount", "mean", 10100).severity == "WARN"  # passed: the check's own
    both = outcome("amount", "p50", 20000)
    assert not both.passed and both.severity == "ERROR"
    other = load_gate_config()  # without the override: the check's WARN
    history = {(TABLE_LEVEL, ROWS): {**steady, day: 10000.0}, ("amount", "mean"): {**steady, day: 20000.0}}
    [o] = [o for o in evaluate_monitors(table("orders"), None, other, [day], history) if o.check == "monitor_distribution"]
    assert (o.passed, o.severity) == (False, "WARN")


def test_a_share_absent_from_a_day_is_a_share_of_zero_there():
    rows = [{"partition_key": d, "column_name": "currency", "metric": f"share:{c}", "value": v}
            for d, shares in (("2025-01-01", {"EUR": 0.9, "JPY": 0.1}), ("2025-01-02", {"EUR": 1.0}))
            for c, v in shares.items()]
    assert metric_history(rows)[("currency", "share:JPY")] == {"2025-01-01": 0.1, "2025-01-02": 0.0}


def test_a_table_left_out_is_not_monitored_and_says_so():
    outcomes = evaluate_monitors(table("customers"), None, load_gate_config(), ["2025-02-01"],
                                 {(TABLE_LEVEL, ROWS): series([10.0] * 40)})
    assert {o.check for o in outcomes} == {"monitor_volume", "monitor_nulls"}
    assert all(o.passed and o.observed == "not monitored for customers (gate.yaml monitors)" for o in outcomes)


# --- a seeded history through the warehouse -------------------------------------------------

CLEAN_DAYS = 28
NULLS_DAY, CENTS_DAY, VANISHED_DAY, DROP_DAY = days(CLEAN_DAYS + 4)[CLEAN_DAYS:]
EXPECTED = {
    NULLS_DAY: {"staging/events:monitor_nulls"},
    CENTS_DAY: {"staging/orders:monitor_distribution", "staging/order_items:monitor_distribution",
                "staging/payments:monitor_distribution", "marts/fact_revenue_daily:monitor_revenue"},
    VANISHED_DAY: {"staging/events:monitor_values"},
    DROP_DAY: {"staging/orders:monitor_volume", "staging/order_items:monitor_volume",
               "staging/payments:monitor_volume", "staging/events:monitor_volume",
               "marts/fact_revenue_daily:monitor_revenue"},
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, instance):
    root = tmp_path_factory.mktemp("monitors")
    landing = root / "landing"
    assert cli.main(["--out", str(landing), "--clean", "--start", START.isoformat(), "--days", str(CLEAN_DAYS + 4),
                     "--orders-per-day", "300", "--seed", "3",
                     "--on", f"{NULLS_DAY}:events.null_share@customer_id=0.3",
                     "--on", f"{CENTS_DAY}:unit_change=100",
                     "--on", f"{VANISHED_DAY}:events.vanished_value@platform.android",
                     "--on", f"{DROP_DAY}:volume_drop=0.2"]) == 0
    warehouse = Warehouse(landing, root / "warehouse.duckdb", instance)
    result = warehouse.materialize_range(days(1)[0], DROP_DAY)
    return warehouse, result


def test_each_monitor_fails_on_its_day_and_on_no_other(seeded):
    warehouse, _ = seeded
    failed: dict[str, set[str]] = {}
    for day, check, passed, _observed in warehouse.monitor_results():
        if not passed:
            failed.setdefault(day, set()).add(check)
    assert failed == EXPECTED


def test_the_first_days_are_not_evaluated_and_the_clean_days_after_are(seeded):
    warehouse, _ = seeded
    results = warehouse.monitor_results()
    first = {day for day, check, _, observed in results
             if check.startswith("staging/") and observed.startswith("not evaluated")}
    assert first == set(days(14))  # 14 earlier partitions needed
    evaluated = {day for day, check, passed, observed in results
                 if check == "staging/orders:monitor_volume" and "within their bands" in observed}
    assert evaluated == set(days(CLEAN_DAYS + 4)[14:]) - {DROP_DAY}
    revenue = {day for day, check, _, observed in results
               if check.startswith("marts/") and not observed.startswith("not evaluated")}
    assert min(revenue) == days(29)[-1]  # 4 earlier same weekdays from the 29th day on


def test_a_failure_says_the_metric_the_value_the_band_the_history_and_a_query(seeded):
    warehouse, _ = seeded
    passed, severity, failing, observed = warehouse.check(NULLS_DAY, "staging/events", "monitor_nulls")
    assert (passed, severity, failing) == (False, "WARN", 1)
    assert observed.startswith("customer_id.null_share 0.") and " outside " in observed
    assert f"of 28 days, {days(1)[0]}..{days(28)[-1]})" in observed
    [(sql,)] = warehouse.query(
        """SELECT reproduce_sql FROM quality.check_results WHERE partition_key = ? AND check_name = 'monitor_nulls'
           AND asset_key = 'staging/events' ORDER BY evaluated_at DESC LIMIT 1""", [NULLS_DAY])
    rows = warehouse.query(sql.split(" -- ")[0])
    assert rows[-1][0].isoformat() == NULLS_DAY and rows[-1][1] / rows[-1][2] > 0.45


def test_the_gate_is_not_stopped_by_a_monitor(seeded):
    warehouse, _ = seeded
    gates = dict(warehouse.query("SELECT CAST(ingest_date AS VARCHAR), gate_passed FROM quality.partition_gate"))
    assert all(gates[d] for d in EXPECTED)
