"""The warehouse end to end on DuckDB: real assets, real files, two small days of a shop."""

import datetime as dt
from decimal import Decimal

import dagster as dg
import pytest

from dq_assets.contract.tables import TABLE_NAMES
from dq_assets.storage.duckdb.warehouse import release_warehouse
from dq_assets.storage.quality_store import APPEND_ONLY_TABLES
from dq_assets_tests.conftest import DAY1, DAY2, Landing, Warehouse, moved_to

MARTS = ["fact_orders", "fact_revenue_daily", "revenue_by_order_date", "customer_versions", "dim_customers"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory, instance) -> Warehouse:
    """Day 1 and day 2 of the shop, materialized in order (one range run: day by day)."""
    root = tmp_path_factory.mktemp("shop")
    landing = Landing(root / "landing")
    landing.write("2025-01-01", DAY1)
    landing.write("2025-01-02", DAY2)
    wh = Warehouse(landing.root, root / "warehouse.duckdb", instance)
    assert wh.materialize_range("2025-01-01", "2025-01-02").success
    return wh


def test_every_contract_table_is_queryable(shop):
    for t in TABLE_NAMES:
        for name in (f"raw.{t}", f"staging.{t}", f"quality.{t}_quarantine"):
            [(n,)] = shop.query(f"SELECT count(*) FROM {name} WHERE ingest_date IS NOT NULL OR true")
            assert n >= 0
        cols = {r[0] for r in shop.query(f"DESCRIBE quality.{t}_quarantine")}
        assert {"ingest_date", "reject_reason", "reject_reasons", "source_line", *(
            shop.query(f"SELECT column_name FROM (DESCRIBE raw.{t}) WHERE column_name NOT IN "
                       "('extra_columns','ingest_date','source_file','source_line','loaded_at')")
            and [r[0] for r in shop.query(f"DESCRIBE raw.{t}")][:3])} <= cols
    for m in MARTS:
        shop.query(f"SELECT * FROM marts.{m}")
    cols = {r[0] for r in shop.query("DESCRIBE quality.check_results")}
    assert {"run_id", "partition_key", "asset_key", "check_name", "passed", "severity",
            "failing_rows", "observed", "threshold", "evaluated_at"} <= cols


def test_clean_days_pass_every_check(shop):
    for day in ("2025-01-01", "2025-01-02"):
        assert shop.failed_checks(day) == {}
        [(passed,)] = shop.query("SELECT gate_passed FROM quality.partition_gate WHERE ingest_date = ?", [day])
        assert passed


def test_row_conservation_for_every_table_and_partition(shop):
    for t in TABLE_NAMES:
        rows = shop.query(f"""
            SELECT r.ingest_date, r.n, coalesce(s.n, 0), coalesce(q.n, 0)
            FROM (SELECT ingest_date, count(*) n FROM raw.{t} GROUP BY 1) r
            LEFT JOIN (SELECT ingest_date, count(*) n FROM staging.{t} GROUP BY 1) s USING (ingest_date)
            LEFT JOIN (SELECT ingest_date, count(*) n FROM quality.{t}_quarantine GROUP BY 1) q USING (ingest_date)""")
        for day, raw, staged, quarantined in rows:
            assert raw == staged + quarantined, (t, day)
    landed = sum(len(DAY1.get(t, [])) + len(DAY2.get(t, [])) for t in TABLE_NAMES)
    [(raw_total,)] = shop.query(" + ".join(f"(SELECT count(*) FROM raw.{t})" for t in TABLE_NAMES).join(["SELECT ", ""]))
    assert raw_total == landed


def test_cross_partition_references_resolve(shop):
    # O3 (day 2) belongs to C2, sent on day 1; Y2 (day 2) pays O2 of day 1
    assert shop.query("SELECT order_id FROM staging.orders WHERE ingest_date = '2025-01-02' ORDER BY 1") == [("O2",), ("O3",)]
    assert shop.query("SELECT payment_id FROM staging.payments WHERE ingest_date = '2025-01-02' ORDER BY 1") == [("Y2",), ("Y3",)]
    [(n,)] = shop.query("SELECT count(*) FROM quality.orders_quarantine")
    assert n == 0


def test_types_are_exact_and_utc(shop):
    types = dict(shop.query("SELECT column_name, column_type FROM (DESCRIBE staging.orders)"))
    assert types["amount"].startswith("DECIMAL") and types["order_ts"] == "TIMESTAMP WITH TIME ZONE"
    assert types["ingest_date"] == "DATE"
    [(ts,)] = shop.query("SELECT CAST(order_ts AS VARCHAR) FROM staging.orders WHERE order_id = 'O3'")
    assert ts == "2025-01-02 07:00:00+00"  # 08:00+01:00


def test_fact_revenue_daily_counts_orders_received_in_each_partition(shop):
    rows = shop.query("SELECT ingest_date, order_date, currency, order_count, revenue FROM marts.fact_revenue_daily ORDER BY 1, 2")
    d = dt.date
    assert rows == [
        (d(2025, 1, 1), d(2025, 1, 1), "EUR", 2, Decimal("25")),  # O2 placed: no revenue yet
        (d(2025, 1, 2), d(2025, 1, 1), "EUR", 1, Decimal("10")),  # O2 re-sent, shipped
        (d(2025, 1, 2), d(2025, 1, 2), "EUR", 1, Decimal("2.5")),
    ]


def test_revenue_by_order_date_counts_a_resent_order_once_in_its_latest_version(shop):
    rows = shop.query("SELECT order_date, currency, order_count, revenue FROM marts.revenue_by_order_date ORDER BY 1")
    d = dt.date
    assert rows == [(d(2025, 1, 1), "EUR", 2, Decimal("35")), (d(2025, 1, 2), "EUR", 1, Decimal("2.5"))]


def test_dim_customers_keeps_scd2_history(shop):
    rows = shop.query("""SELECT customer_id, email, CAST(valid_from AS VARCHAR), CAST(valid_to AS VARCHAR), is_current
                         FROM marts.dim_customers ORDER BY customer_id, valid_from""")
    assert rows == [
        ("C1", "ann@example.com", "2025-01-01 00:00:00+00", "2025-01-02 00:00:00+00", False),
        ("C1", "ann@new.example.com", "2025-01-02 00:00:00+00", None, True),
        ("C2", "bob@example.com", "2025-01-01 00:00:00+00", None, True),
        ("C3", "cy@example.com", "2025-01-02 00:00:00+00", None, True),
    ]


def snapshot(wh: Warehouse) -> dict:
    """Every table's full contents, minus what is a property of the run (load time, run id, the
    number of the raw version a run wrote) and the append-only history tables (a rerun adds to
    them by design)."""
    out = {}
    for schema, name in wh.query("SELECT table_schema, table_name FROM information_schema.tables"):
        if name in APPEND_ONLY_TABLES:
            continue
        cols = [c for (c,) in wh.query(f"SELECT column_name FROM (DESCRIBE {schema}.{name})")
                if c not in ("loaded_at", "run_id", "inputs_version", "decided_at", "_version", "version")]
        out[f"{schema}.{name}"] = sorted(
            wh.query(f"SELECT {', '.join(cols)} FROM {schema}.{name}"), key=repr)
    return out


def test_rerunning_a_partition_leaves_identical_tables(shop):
    before = snapshot(shop)
    [(results_before,)] = shop.query("SELECT count(*) FROM quality.check_results")
    assert shop.materialize("2025-01-01").success
    assert snapshot(shop) == before
    [(results_after,)] = shop.query("SELECT count(*) FROM quality.check_results")
    assert results_after > results_before  # history is appended, never edited


def test_a_failed_gate_leaves_marts_unchanged_and_keeps_its_evidence(shop, tmp_path):
    Landing(shop.landing).write("2025-01-03", {
        "orders": [["O4", "C1", "2025-01-03T10:00:00Z", "paid", "EUR", "5.00", "2025-01-03T10:00:00Z"]],
        "order_items": [["O4", "1", "P2", "2", "2.50", "5.00"]],
        # an unknown order: ERROR in payments
        "payments": [["Y4", "O4", "2025-01-03T10:01:00Z", "card", "captured", "5.00", "EUR"],
                     ["Y5", "O999", "2025-01-03T10:02:00Z", "card", "captured", "1.00", "EUR"]],
    })
    marts_before = {m: sorted(shop.query(f"SELECT * FROM marts.{m}"), key=repr) for m in MARTS}
    result = shop.materialize("2025-01-03")
    assert not result.success
    assert {m: sorted(shop.query(f"SELECT * FROM marts.{m}"), key=repr) for m in MARTS} == marts_before
    assert shop.query("SELECT payment_id, reject_reason FROM quality.payments_quarantine WHERE ingest_date = '2025-01-03'") == [("Y5", "unknown_reference")]
    failed = shop.failed_checks("2025-01-03")
    assert failed["staging/payments:no_unknown_reference"] == ("ERROR", 1)
    assert failed["staging/payments:quarantine_rate"] == ("ERROR", 1)  # 1 of 2 rows
    [(gate,)] = shop.query("SELECT gate_passed FROM quality.partition_gate WHERE ingest_date = '2025-01-03'")
    assert gate is False
    # the marts refuse the partition even when asked for alone, and say why
    only_marts = shop.materialize("2025-01-03", selection=dg.AssetSelection.groups("marts"))
    assert not only_marts.success
    [failure] = [e for e in only_marts.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "marts not published for 2025-01-03: the gate refused it" in failure.step_failure_data.error.message
    assert sorted(shop.query("SELECT * FROM marts.fact_orders"), key=repr) == marts_before["fact_orders"]


# --- cases that need a clean warehouse each: a day of their own in one range run --------------

LANDING_DEFECTS, QUARANTINE_ABOVE, QUARANTINE_BELOW, RECONCILIATION, AT_RISK = (
    "2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04", "2025-01-05")


def land_landing_defects(landing: Landing, day: str) -> None:
    items_text = "order_id,line_no,product_id,quantity,unit_price\nO1,1,P1,2,10.00\n"  # no line_amount
    landing.write(
        day,
        moved_to(day, {**DAY1, "order_items": items_text,
                       "events": "event_id,customer_id,session_id,event_type,event_ts,platform,duration_ms,referrer\n"
                                 "E1,,S1,page_view,2025-01-01T09:00:00Z,web,100,google\n"}),
        manifest_override={"orders.csv": {"rows": 3}},
        unlisted=("products",),
        listed_absent={"refunds.csv": {"rows": 1, "sha256": "0" * 64}},
    )


def land_quarantine_above(landing: Landing, day: str) -> None:
    events = DAY1["events"] + [[f"X{i}", "", "S2", "page_view", "2025-01-01T09:00:00Z", "tv", "1"] for i in range(3)]
    landing.write(day, moved_to(day, {**DAY1, "events": events}))


def land_quarantine_below(landing: Landing, day: str) -> None:
    events = DAY1["events"] + [["E99", "", "S2", "page_view", "2025-01-01T09:00:00Z", "tv", "1"]]  # 1 of 27
    landing.write(day, moved_to(day, {**DAY1, "events": events}))


def land_reconciliation(landing: Landing, day: str) -> None:
    files = dict(DAY1)
    files["orders"] = DAY1["orders"] + [
        ["O3", "C1", "2025-01-01T12:00:00Z", "paid", "EUR", "99.00", "2025-01-01T12:00:00Z"],    # items say 10
        ["O4", "C2", "2025-01-01T13:00:00Z", "shipped", "EUR", "10.00", "2025-01-01T13:00:00Z"],  # no payment
    ]
    files["order_items"] = DAY1["order_items"] + [["O3", "1", "P1", "1", "10.00", "10.00"],
                                                  ["O4", "1", "P1", "1", "10.00", "10.00"]]
    files["payments"] = DAY1["payments"] + [["Y3", "O3", "2025-01-01T12:01:00Z", "card", "captured", "99.00", "EUR"]]
    landing.write(day, moved_to(day, files))


def land_revenue_at_risk(landing: Landing, day: str) -> None:
    orders = DAY1["orders"] + [
        DAY1["orders"][0],  # O1 (paid, 25.00) sent twice: a duplicate, its order reached staging
        ["O5", "C1", "2025-01-01T12:00:00Z", "paid", "EUR", "-5.00", "2025-01-01T12:00:00Z"],
        ["O6", "C1", "2025-01-01T13:00:00Z", "paid", "EURO", "47.36", "2025-01-01T13:00:00Z"],
    ]
    landing.write(day, moved_to(day, {**DAY1, "orders": orders}))


@pytest.fixture(scope="module")
def cases(tmp_path_factory, instance) -> Warehouse:
    """The cases below, each landed as a day of its own, loaded by one range run (a range
    behaves as day-by-day runs: test_manifest_edges); each test asserts on its own day."""
    root = tmp_path_factory.mktemp("cases")
    landing = Landing(root / "landing")
    for land, day in [(land_landing_defects, LANDING_DEFECTS), (land_quarantine_above, QUARANTINE_ABOVE),
                      (land_quarantine_below, QUARANTINE_BELOW), (land_reconciliation, RECONCILIATION),
                      (land_revenue_at_risk, AT_RISK)]:
        land(landing, day)
    wh = Warehouse(landing.root, root / "warehouse.duckdb", instance)
    assert not wh.materialize_range(LANDING_DEFECTS, AT_RISK).success  # some days are refused
    yield wh
    release_warehouse(str(wh.database))


def gate_passed(wh: Warehouse, day: str) -> bool:
    [(passed,)] = wh.query("SELECT gate_passed FROM quality.partition_gate WHERE ingest_date = ?", [day])
    return passed


def test_landing_defects_fail_the_right_checks(cases):
    day = LANDING_DEFECTS
    assert not gate_passed(cases, day)
    failed = cases.failed_checks(day)
    assert failed["raw/orders:manifest_rows"] == ("ERROR", 1)
    assert failed["raw/products:file_listed_and_present"][0] == "ERROR"
    assert failed["raw/order_items:required_columns"] == ("ERROR", 1)
    assert failed["raw/events:unknown_columns"] == ("WARN", 1)
    assert failed["raw/landing_files:no_unexpected_files"] == ("ERROR", 1)
    assert "raw/orders:manifest_sha256" not in failed and "raw/payments:manifest_rows" not in failed
    # the unknown column is kept in raw, not carried to staging
    [(extra,)] = cases.query("SELECT extra_columns FROM raw.events WHERE ingest_date = ?", [day])
    assert extra == '{"referrer":"google"}'
    assert "referrer" not in {c for (c,) in cases.query("SELECT column_name FROM (DESCRIBE staging.events)")}


def test_quarantine_above_the_threshold_is_an_error(cases):
    day = QUARANTINE_ABOVE
    assert not gate_passed(cases, day)
    failed = cases.failed_checks(day)
    # 3 of 29 events (10% > 5%); the invalid values themselves are only a WARN
    assert failed["staging/events:quarantine_rate"] == ("ERROR", 3)
    assert failed["staging/events:no_invalid_value"] == ("WARN", 3)


def test_quarantine_below_the_threshold_is_a_warning(cases):
    day = QUARANTINE_BELOW
    assert gate_passed(cases, day)
    failed = cases.failed_checks(day)
    assert failed == {"staging/events:quarantine_rate": ("WARN", 1),
                      "staging/events:no_invalid_value": ("WARN", 1)}
    [(n,)] = cases.query("SELECT count(*) FROM marts.fact_orders WHERE ingest_date = ?", [day])
    assert n == 2


def test_reconciliation_flags_amount_mismatches_and_unpaid_orders(cases):
    day = RECONCILIATION
    assert not gate_passed(cases, day)
    failed = cases.failed_checks(day)
    assert failed == {"quality/recon_row_mismatches:order_amount_matches_items": ("ERROR", 1),
                      "quality/recon_row_mismatches:orders_have_captured_payment": ("WARN", 1),
                      "quality/partition_gate:gate_passed": ("ERROR", 1)}
    assert cases.query("SELECT recon, key FROM quality.recon_row_mismatches WHERE ingest_date = ? "
                       "ORDER BY 1", [day]) == [
        ("order_amount_mismatch", "O3"), ("order_without_captured_payment", "O4")]


def test_a_payment_in_a_later_partition_settles_an_order(shop):
    # O2 is placed on day 1 and shipped with its payment on day 2: nothing to report either day
    # (the shop ran them in order; a later test of this module adds a failing day 3)
    assert shop.query("""SELECT count(*) FROM quality.recon_row_mismatches
                         WHERE ingest_date <= DATE '2025-01-02'""") == [(0,)]
    assert shop.query("""SELECT ingest_date, status FROM staging.orders WHERE order_id = 'O2'
                         ORDER BY 1""") == [(dt.date(2025, 1, 1), "placed"), (dt.date(2025, 1, 2), "shipped")]


def test_gate_records_health_score_and_revenue_at_risk(cases):
    [(health, at_risk, landed, staged)] = cases.query(
        "SELECT health_score, revenue_at_risk, rows_landed, rows_staged FROM quality.partition_gate "
        "WHERE ingest_date = ?", [AT_RISK])
    # the money held back in quarantine, each amount counted whatever its sign (not 47.36 - 5.00)
    assert at_risk == Decimal("52.36")
    assert landed == staged + 3
    assert 0.5 < health < 1.0
    [(raw_rev, clean_rev, risk)] = cases.query(
        "SELECT revenue_raw, revenue_clean, revenue_at_risk FROM quality.partition_profiles "
        "WHERE table_name = 'orders' AND partition_key = ?", [AT_RISK])
    assert (raw_rev, clean_rev, risk) == (Decimal("92.36"), Decimal("25"), Decimal("52.36"))


def test_recon_summary_reconciles_manifest_conservation_items_and_marts(shop):
    rows = shop.query("""SELECT check_name, metric, scope, expected, observed, difference, passed
                         FROM quality.recon_summary WHERE partition_key = '2025-01-01'
                         QUALIFY row_number() OVER (PARTITION BY check_name, metric, scope ORDER BY evaluated_at DESC) = 1""")
    by = {(c, m, s): (e, o, d, p) for c, m, s, e, o, d, p in rows}
    assert by[("manifest_rows", "rows", "orders landed vs manifest")][:2] == ("2", "2")
    assert by[("manifest_amount_sum", "amount_sum", "orders landed vs manifest")][2] == 0
    assert by[("row_conservation", "rows", "events staging + quarantine vs raw")][:2] == ("26", "26")
    assert by[("order_amount_matches_items", "amount", "2 orders vs their order_items")][2] == 0
    assert by[("matches_staging", "revenue", "orders/EUR mart vs staging")][:3] == ("25.000000", "25.000000", 0)
    assert by[("matches_staging", "order_count", "orders/EUR mart vs staging")][:2] == ("2", "2")
    assert all(p for *_, p in by.values())


def _day_with_unknown_payment():
    return {**DAY1, "payments": DAY1["payments"] + [
        ["Y5", "O999", "2025-01-01T10:02:00Z", "card", "failed", "1.00", "EUR"]]}


def test_an_active_suppression_downgrades_a_known_failure_to_warn(landing, warehouse, tmp_path, monkeypatch):
    landing.write("2025-01-01", _day_with_unknown_payment())
    (tmp_path / "s.yaml").write_text("""suppressions:
  - {check: "staging/payments:no_unknown_reference", partition: 2025-01-01, keys: [Y5],
     ticket: DQ-1, reason: test payments of a retired system, expires: 2999-01-01}
  - {check: quarantine_rate, partition: 2025-01-01, ticket: DQ-2, reason: same, expires: 2999-01-01}
""")
    monkeypatch.setenv("DQ_SUPPRESSIONS", str(tmp_path / "s.yaml"))
    assert warehouse.materialize("2025-01-01").success
    rows = warehouse.query("""SELECT check_name, passed, severity, suppressed_by FROM quality.check_results
                              WHERE asset_key = 'staging/payments' AND NOT passed ORDER BY 1""")
    assert rows == [("no_unknown_reference", False, "WARN", "DQ-1"), ("quarantine_rate", False, "WARN", "DQ-2")]
    assert warehouse.check("2025-01-01", "quality/partition_gate", "no_expired_suppressions")[0] is True


def test_a_suppression_for_other_keys_or_an_expired_one_does_not_apply(landing, warehouse, tmp_path, monkeypatch):
    landing.write("2025-01-01", _day_with_unknown_payment())
    (tmp_path / "s.yaml").write_text("""suppressions:
  - {check: no_unknown_reference, keys: [Y6], ticket: DQ-3, reason: other key, expires: 2999-01-01}
  - {check: quarantine_rate, ticket: DQ-4, reason: old, expires: 2020-01-01}
""")
    monkeypatch.setenv("DQ_SUPPRESSIONS", str(tmp_path / "s.yaml"))
    assert not warehouse.materialize("2025-01-01").success
    failed = warehouse.failed_checks("2025-01-01")
    assert failed["staging/payments:no_unknown_reference"] == ("ERROR", 1)
    assert failed["staging/payments:quarantine_rate"][0] == "ERROR"
    passed, severity, n, observed = warehouse.check("2025-01-01", "quality/partition_gate", "no_expired_suppressions")
    assert (passed, severity, n) == (False, "WARN", 1) and "DQ-4" in observed
