"""Every defect kind the generator can inject, through the whole warehouse: the right check
fails, on the right asset, with the right severity and the exact count; clean and valid days
raise no alarm. One generated landing zone, one day per defect kind, one single-run backfill."""

import datetime as dt

import pytest

from dq_assets.generator.generate import generate
from dq_assets_tests.conftest import Warehouse

# The end-to-end tier (`-m slow`): a 27-day range, one generated day per defect kind.
pytestmark = pytest.mark.slow

START = dt.date(2025, 1, 1)
WARMUP = 8  # the volume check needs 7 earlier partitions

# day offset after the warm-up -> (defect spec, failing checks expected that day)
# A failing check is "asset:check" -> (severity, failing_rows); quarantine_rate counts rows.
CASES = {
    "missing_required": ("orders.missing_required=1", {
        "staging/orders:no_missing_required": ("WARN", 1), "staging/orders:quarantine_rate": ("WARN", 1)}),
    "unparseable": ("orders.unparseable=1", {
        "staging/orders:no_unparseable": ("WARN", 1), "staging/orders:quarantine_rate": ("WARN", 1)}),
    "invalid_value": ("customers.invalid_value=1", {
        "staging/customers:no_invalid_value": ("WARN", 1), "staging/customers:quarantine_rate": ("ERROR", 1)}),
    "out_of_range": ("order_items.out_of_range=1", {
        "staging/order_items:no_out_of_range": ("WARN", 1), "staging/order_items:quarantine_rate": ("WARN", 1)}),
    "future_timestamp": ("payments.future_timestamp=1", {
        "staging/payments:no_future_timestamp": ("WARN", 1), "staging/payments:quarantine_rate": ("WARN", 1)}),
    "calculation_mismatch": ("order_items.calculation_mismatch=1", {
        "staging/order_items:no_calculation_mismatch": ("WARN", 1),
        "staging/order_items:quarantine_rate": ("WARN", 1)}),
    "unknown_reference": ("payments.unknown_reference=1", {
        "staging/payments:no_unknown_reference": ("ERROR", 1), "staging/payments:quarantine_rate": ("WARN", 1)}),
    "unknown_reference_events": ("events.unknown_reference=1", {
        "staging/events:no_unknown_reference": ("WARN", 1), "staging/events:quarantine_rate": ("WARN", 1)}),
    "duplicate": ("events.duplicate=2", {
        "staging/events:no_duplicate": ("WARN", 2), "staging/events:quarantine_rate": ("WARN", 2)}),
    "manifest_drift": ("orders.manifest_drift@rows", {"raw/orders:manifest_rows": ("ERROR", 1)}),
    "manifest_drift_sha": ("payments.manifest_drift@sha256", {"raw/payments:manifest_sha256": ("ERROR", 1)}),
    "missing_file": ("payments.missing_file", {
        # (not monitor_volume: about 30 payments a day, too few for a band that excludes 0)
        "raw/payments:file_listed_and_present": ("ERROR", 1), "staging/payments:volume": ("WARN", None),
        # without payments, today's paid orders have no captured payment yet
        "quality/recon_row_mismatches:orders_have_captured_payment": ("WARN", None)}),
    "unlisted_file": ("events.unlisted_file", {"raw/events:file_listed_and_present": ("ERROR", 1)}),
    "missing_column": ("products.missing_column@category", {
        "raw/products:required_columns": ("ERROR", 1),
        "staging/products:no_missing_required": ("WARN", None), "staging/products:quarantine_rate": ("ERROR", None)}),
    "extra_column": ("orders.extra_column@coupon_code", {"raw/orders:unknown_columns": ("WARN", 1)}),
    "partial_load": ("events.partial_load=6", {"staging/events:partial_load": ("WARN", 6)}),
    "volume_drop": ("volume_drop=0.3", {
        **{f"staging/{t}:volume": ("WARN", None) for t in ("orders", "order_items", "payments", "events")},
        # and the statistical monitor where the day's count is large enough to tell: not on
        # orders (about 40 a day, 12 today) nor payments (about 30): within the Poisson error
        # of counts that small (dq_assets.rules.monitors.floor)
        **{f"staging/{t}:monitor_volume": ("WARN", 1) for t in ("order_items", "events")}}),
    "late_arriving": ("late_arriving=3", {}),
    "resent_orders": ("resent_orders=4", {}),
}
DAYS = {name: (START + dt.timedelta(days=WARMUP + i)).isoformat() for i, name in enumerate(CASES)}


@pytest.fixture(scope="module")
def gated(tmp_path_factory, instance) -> Warehouse:
    root = tmp_path_factory.mktemp("defects")
    specs = [f"{DAYS[name]}:{spec}" for name, (spec, _) in CASES.items()]
    generate(root / "landing", START, WARMUP + len(CASES), orders_per_day=40, seed=11, defects=specs)
    wh = Warehouse(root / "landing", root / "warehouse.duckdb", instance)
    last = (START + dt.timedelta(days=WARMUP + len(CASES) - 1)).isoformat()
    wh.run = wh.materialize_range(START.isoformat(), last)
    return wh


def test_clean_warmup_days_raise_no_alarm(gated):
    for i in range(WARMUP):
        day = (START + dt.timedelta(days=i)).isoformat()
        assert gated.failed_checks(day) == {}, day


@pytest.mark.parametrize("name", list(CASES))
def test_each_defect_kind_fails_the_right_check(gated, name):
    _, expected = CASES[name]
    if any(severity == "ERROR" for severity, _ in expected.values()):  # the gate says so too
        expected = {**expected, "quality/partition_gate:gate_passed": ("ERROR", None)}
    failed = gated.failed_checks(DAYS[name])
    assert set(failed) == set(expected), name
    for check, (severity, count) in expected.items():
        assert failed[check][0] == severity, check
        if count is not None:
            assert failed[check][1] == count, check


def test_the_gate_fails_exactly_the_days_with_an_error(gated):
    assert not gated.run.success  # a range with failed days fails the run
    failing = {name for name, (_, exp) in CASES.items() if any(s == "ERROR" for s, _ in exp.values())}
    gate = dict(gated.query("SELECT CAST(ingest_date AS VARCHAR), gate_passed FROM quality.partition_gate"))
    assert {name for name, day in DAYS.items() if not gate[day]} == failing
