"""The check evaluation functions called directly, and the gate configuration."""

import dagster as dg

from dq_assets.checks.landing import evaluate_landing
from dq_assets.checks.staging import PartitionCounts, evaluate_staging, evaluate_volume
from dq_assets.contract.gate import load_gate_config
from dq_assets.contract.tables import table

ASSET = dg.AssetKey(["staging", "orders"])
CFG = load_gate_config()


def counts(raw=100, staging=100, quarantined=0, earlier=(), hours=None, dups=0) -> PartitionCounts:
    return PartitionCounts(raw, staging, quarantined, dups, [], hours_with_rows=hours, earlier_raw_rows=tuple(earlier))


def by_name(outcomes):
    return {o.check: o for o in outcomes}


def test_volume_needs_seven_earlier_partitions_then_compares_with_half_their_median():
    t = table("orders")
    assert evaluate_volume(t, ASSET, "2025-01-08", CFG, counts(raw=1, earlier=[100] * 6)).passed
    history = [100, 90, 110, 100, 5, 200, 100]  # median 100
    assert evaluate_volume(t, ASSET, "2025-01-08", CFG, counts(raw=50, earlier=history)).passed
    low = evaluate_volume(t, ASSET, "2025-01-08", CFG, counts(raw=49, earlier=history))
    assert not low.passed and low.severity == "WARN" and "median 100" in low.threshold
    # only the 7 most recent earlier partitions count
    assert evaluate_volume(t, ASSET, "2025-01-09", CFG, counts(raw=49, earlier=history + [10_000] * 5)).passed is False


def test_volume_is_not_evaluated_for_change_feeds_by_default():
    o = evaluate_volume(table("customers"), ASSET, "2025-01-08", CFG, counts(raw=0, earlier=[100] * 7))
    assert o.passed and "not evaluated" in o.observed


def test_partial_load_and_conservation_and_quarantine_rate():
    t = table("events")
    out = by_name(evaluate_staging(t, ASSET, "2025-01-08", CFG, counts(hours=20), []))
    assert out["partial_load"].passed and out["row_conservation"].passed and out["quarantine_rate"].passed
    out = by_name(evaluate_staging(t, ASSET, "2025-01-08", CFG, counts(hours=19, staging=90, quarantined=9), []))
    assert not out["partial_load"].passed and out["partial_load"].failing_rows == 5
    assert not out["row_conservation"].passed and out["row_conservation"].severity == "ERROR"
    assert out["quarantine_rate"].severity == "ERROR"  # 9%
    out = by_name(evaluate_staging(t, ASSET, "2025-01-08", CFG, counts(hours=24, staging=95, quarantined=5), []))
    assert not out["quarantine_rate"].passed and out["quarantine_rate"].severity == "WARN"  # exactly 5%


def test_unique_key_fails_on_a_duplicate_left_in_staging():
    out = by_name(evaluate_staging(table("orders"), ASSET, "2025-01-08", CFG, counts(dups=2), []))
    assert not out["unique_key"].passed and out["unique_key"].failing_rows == 2 and out["unique_key"].severity == "ERROR"


def test_manifest_comparisons():
    t = table("orders")
    entry = {"rows": 2, "sha256": "AB" * 32, "amount_sum": "10.50"}  # a digest in upper case
    ok = by_name(evaluate_landing(t, ASSET, "2025-01-08", CFG, listed=entry, present=True, landed_rows=2,
                                  landed_sha256="ab" * 32, landed_sum=__import__("decimal").Decimal("10.500000"),
                                  missing_columns=[], unknown_columns=[]))
    assert all(o.passed for o in ok.values())
    bad = by_name(evaluate_landing(t, ASSET, "2025-01-08", CFG, listed={**entry, "amount_sum": "1e"}, present=True,
                                   landed_rows=3, landed_sha256="cd", landed_sum=None,
                                   missing_columns=["amount"], unknown_columns=["x"]))
    assert {k for k, o in bad.items() if not o.passed} == {
        "manifest_rows", "manifest_sha256", "manifest_amount_sum", "required_columns", "unknown_columns"}
    assert bad["unknown_columns"].severity == "WARN" and bad["required_columns"].severity == "ERROR"
    absent = by_name(evaluate_landing(t, ASSET, "2025-01-08", CFG, listed=entry, present=False, landed_rows=0,
                                      landed_sha256=None, landed_sum=None, missing_columns=[], unknown_columns=[]))
    assert not absent["file_listed_and_present"].passed and absent["manifest_rows"].passed


def test_a_file_that_cannot_be_read_fails_file_readable_and_only_its_bytes_are_compared():
    t = table("orders")
    entry = {"rows": 2, "sha256": "ab" * 32, "amount_sum": "10.50"}
    said = "landing/ingest_date=2025-01-08/orders.csv: line 4: cannot be read as CSV: expected 7 fields"
    out = by_name(evaluate_landing(t, ASSET, "2025-01-08", CFG, listed=entry, present=True, landed_rows=0,
                                   landed_sha256="cd" * 32, landed_sum=None, missing_columns=[],
                                   unknown_columns=[], unreadable=said))
    assert {k for k, o in out.items() if not o.passed} == {"file_readable", "manifest_sha256"}
    assert (out["file_readable"].severity, out["file_readable"].observed) == ("ERROR", said)
    assert {out[k].observed for k in ("manifest_rows", "manifest_amount_sum", "required_columns",
                                      "unknown_columns")} == {"not applicable: orders.csv cannot be read"}


def test_a_deployment_overrides_severities_and_thresholds(tmp_path, monkeypatch):
    override = tmp_path / "gate.yaml"
    override.write_text("severity:\n  payments.no_unknown_reference: WARN\nquarantine_rate:\n  error_above: 0.5\n")
    monkeypatch.setenv("DQ_GATE_CONFIG", str(override))
    cfg = load_gate_config()
    assert cfg.severity_of("payments", "no_unknown_reference") == "WARN"
    assert cfg.severity_of("orders", "no_unknown_reference") == "ERROR"
    assert cfg.quarantine_error_above == 0.5 and cfg.quarantine_warn_above == 0.0
    assert CFG.severity_of("payments", "no_unknown_reference") == "ERROR"


def test_mart_totals_must_equal_staging_per_currency():
    from decimal import Decimal as D

    from dq_assets.checks.marts import evaluate_mart_totals

    same = evaluate_mart_totals(ASSET, "2025-01-08", CFG, {"EUR": (2, D("5"))}, {"EUR": (2, D("5.000"))})
    assert same.passed and len(same.recons) == 2
    off = evaluate_mart_totals(ASSET, "2025-01-08", CFG, {"EUR": (2, D("5")), "USD": (1, D("1"))}, {"EUR": (2, D("4"))})
    assert not off.passed and off.severity == "ERROR" and off.failing_rows == 3


def test_suppressions_file_is_validated_and_the_default_is_empty(tmp_path):
    import pytest

    from dq_assets.contract.suppressions import load_suppressions

    assert load_suppressions() == []
    bad = tmp_path / "s.yaml"
    bad.write_text("suppressions:\n  - {check: unique_key, ticket: DQ-1, expires: 2030-01-01}\n")
    with pytest.raises(ValueError, match="lacks reason"):
        load_suppressions(str(bad))


def test_the_reproducing_sql_is_shown_clause_by_clause():
    """The check's page shows `reproduce_sql` as a code block no wider than its dialog: each
    outer clause on its own line; only spaces outside literals and parentheses become breaks."""
    import re
    from decimal import Decimal as D

    from dq_assets.checks.marts import evaluate_mart_totals
    from dq_assets.checks.model import check_result, readable_sql
    from dq_assets.checks.reconciliation import recon_outcomes
    from dq_assets.contract.tables import TABLES

    outcomes = []
    for t in TABLES:
        outcomes += evaluate_staging(t, ASSET, "2025-01-12", CFG, counts(hours=20), [])
        outcomes += evaluate_landing(t, ASSET, "2025-01-12", CFG, listed={"rows": 1}, present=True,
                                     landed_rows=1, landed_sha256="a", landed_sum=D(1),
                                     missing_columns=[], unknown_columns=[])
        outcomes.append(evaluate_volume(t, ASSET, "2025-01-12", CFG, counts(earlier=[100] * 7)))
    outcomes.append(evaluate_mart_totals(ASSET, "2025-01-12", CFG, {"EUR": (1, D(1))}, {}))
    outcomes += recon_outcomes(CFG, "2025-01-12", [], {})
    sqls = {o.sql for o in outcomes if o.sql}
    assert len(sqls) > 50
    for sql in sqls | {"SELECT * FROM t WHERE a = 'it''s FROM here' AND b IN (SELECT x FROM y)"}:
        shown = readable_sql(sql)
        assert re.sub(r"\n *", " ", shown) == sql, (sql, shown)
        assert max(len(line) for line in shown.splitlines()) <= 120, shown
    assert readable_sql("SELECT * FROM t WHERE a = 'it''s FROM here' AND b IN (SELECT x FROM y)") == (
        "SELECT *\nFROM t\nWHERE a = 'it''s FROM here'\n  AND b IN (SELECT x FROM y)")
    failed = next(o for o in outcomes if o.check == "no_unknown_reference")
    failed.passed = False
    md = check_result([failed]).metadata["reproduce_sql"]
    assert isinstance(md, dg.MarkdownMetadataValue)
    assert md.value == f"```sql\n{readable_sql(failed.sql)}\n```"
    assert md.value.count("\n") == 5  # SELECT / FROM / WHERE / AND inside the fence


def test_the_reproducing_sql_as_shown_returns_what_it_reproduces(two_days, warehouse):
    """Every reproducing SQL a real run recorded, run as recorded and as the UI shows it."""
    from dq_assets.checks.model import readable_sql

    assert warehouse.materialize("2025-01-01").success
    sqls = [r[0] for r in warehouse.query(
        "SELECT DISTINCT reproduce_sql FROM quality.check_results WHERE reproduce_sql IS NOT NULL")]
    assert len(sqls) > 30
    for sql in sqls:
        shown = readable_sql(sql)
        assert "\n" in shown
        assert sorted(warehouse.query(shown), key=repr) == sorted(warehouse.query(sql), key=repr), shown
