"""The shipped sample landing zone through the whole warehouse: the gate says what
data/README.md promises, and quarantine holds exactly what the generator logged."""

import json
from pathlib import Path

import pytest

from dq_assets_tests.conftest import Warehouse

# The end-to-end tier (`-m slow`): the sample landing zone's fifteen days, as the README loads
# them.
pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "landing"
LOG = json.loads((SAMPLE / "_generator_log.json").read_text())
TABLES = ("customers", "products", "orders", "order_items", "payments", "events")


@pytest.fixture(scope="module")
def sample(tmp_path_factory, instance) -> Warehouse:
    wh = Warehouse(SAMPLE, tmp_path_factory.mktemp("sample") / "warehouse.duckdb", instance)
    wh.results = {
        "2025-01-01...2025-01-11": wh.materialize_range("2025-01-01", "2025-01-11").success,
        **{day: wh.materialize(day).success for day in ("2025-01-12", "2025-01-13", "2025-01-14", "2025-01-15")},
    }
    return wh


def test_clean_and_warn_days_pass_and_error_days_fail(sample):
    assert sample.results == {"2025-01-01...2025-01-11": True, "2025-01-12": False,
                              "2025-01-13": False, "2025-01-14": True, "2025-01-15": True}
    gate = dict(sample.query("SELECT CAST(ingest_date AS VARCHAR), gate_passed FROM quality.partition_gate"))
    assert [d for d, ok in sorted(gate.items()) if not ok] == ["2025-01-12", "2025-01-13"]


def test_quarantine_holds_exactly_what_the_generator_injected(sample):
    for day in LOG["days"]:
        expected = {(t, r): n for t, reasons in day["expected_quarantine"].items() for r, n in reasons.items()}
        found = {}
        for t in TABLES:
            for reason, n in sample.query(
                    f"SELECT reject_reason, count(*) FROM quality.{t}_quarantine WHERE ingest_date = ? GROUP BY 1",
                    [day["ingest_date"]]):
                found[(t, reason)] = n
        assert found == expected, day["ingest_date"]


def test_defect_days_fail_the_right_checks(sample):
    assert {k: v for k, v in sample.failed_checks("2025-01-12").items() if v[0] == "ERROR"} == {
        "raw/orders:manifest_amount_sum": ("ERROR", 1),
        "staging/payments:no_unknown_reference": ("ERROR", 1),
        "quality/partition_gate:gate_passed": ("ERROR", 2),  # the gate, naming both
    }
    failed_13 = sample.failed_checks("2025-01-13")
    assert failed_13["raw/events:file_listed_and_present"][0] == "ERROR"
    assert failed_13["raw/orders:unknown_columns"] == ("WARN", 1)
    assert {k: v[0] for k, v in sample.failed_checks("2025-01-11").items()} == {
        "staging/orders:no_invalid_value": "WARN", "staging/orders:quarantine_rate": "WARN",
        "staging/payments:no_unparseable": "WARN", "staging/payments:quarantine_rate": "WARN",
        "staging/events:no_duplicate": "WARN", "staging/events:quarantine_rate": "WARN",
    }
    for day in ("2025-01-14", "2025-01-15"):
        assert sample.failed_checks(day) == {}, day


def test_resent_and_late_orders_are_counted_once(sample):
    [(dupes,)] = sample.query("""SELECT count(*) FROM (SELECT order_id FROM marts.fact_orders
                                 GROUP BY 1 HAVING count(*) > 1)""")
    assert dupes == 4  # the 4 orders re-sent on 2025-01-14 appear in two partitions...
    [(counted, distinct)] = sample.query("""SELECT sum(order_count), (SELECT count(DISTINCT order_id)
                                            FROM marts.fact_orders) FROM marts.revenue_by_order_date""")
    assert counted == distinct  # ...but once in the current-state mart
    # and no order of the failed days reached the marts
    assert sample.query("SELECT count(*) FROM marts.fact_orders WHERE ingest_date IN ('2025-01-12', '2025-01-13')") == [(0,)]


def test_no_statistical_monitor_fails_on_a_sample_day(sample):
    """No false alarm: the sample's defects are rule-level (the checks above name them), not a
    drift; the monitors evaluate once 14 earlier days exist, so on 2025-01-15."""
    results = sample.monitor_results()
    assert [r for r in results if not r[2]] == []
    evaluated = {check for day, check, _, observed in results
                 if day == "2025-01-15" and "within their bands" in observed}
    assert {"staging/orders:monitor_volume", "staging/orders:monitor_distribution",
            "staging/payments:monitor_values", "staging/orders:monitor_nulls"} <= evaluated, results
