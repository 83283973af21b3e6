"""Partition, manifest and input edge cases through the real CLI: each is refused plainly, before
anything is written where it is the whole run that cannot be, and named for what it is."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from dq_assets_tests.conftest import DAY1, HEADERS, Landing, csv_text

REPO = Path(__file__).resolve().parent.parent
DAYS = ["2025-01-01", "2025-01-02", "2025-01-03"]


def cli(tmp_path: Path, landing: Landing, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    (tmp_path / "home").mkdir(exist_ok=True)
    env.update(DAGSTER_HOME=str(tmp_path / "home"), DQ_LANDING=str(landing.root),
               DQ_WAREHOUSE=str(tmp_path / "wh.duckdb"), DQ_ALERT_SINKS="none")
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "dq_assets", "--select", "*",
         *args, "-c", str(REPO / "dq_assets" / "console.yaml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout + done.stderr


def tables(tmp_path: Path) -> list[tuple]:
    if not (tmp_path / "wh.duckdb").exists():
        return []
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as conn:
        return conn.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()


def test_a_reversed_range_is_refused_before_anything_is_written(tmp_path):
    landing = Landing(tmp_path / "landing")
    landing.write("2025-01-01", DAY1)
    landing.write("2025-01-02", DAY1)
    code, out = cli(tmp_path, landing, "--partition-range", "2025-01-02...2025-01-01")
    assert code == 1
    said = "partition range 2025-01-02...2025-01-01 holds no day: its first day comes after its last " \
           "(did you mean 2025-01-01...2025-01-02?)"
    assert out.count(said) == 2, out  # the first step that says it, and the run's last line
    assert "DagsterStepOutputNotFoundError" not in out and "Stack Trace" not in out
    assert tables(tmp_path) == []  # nothing written, not even an empty raw.landing_files


def test_a_file_listed_twice_with_different_totals_is_an_error(tmp_path):
    landing = Landing(tmp_path / "landing")
    folder = landing.write("2025-01-01", DAY1)
    manifest = json.loads((folder / "_manifest.json").read_text())
    entry = manifest["files"]["orders.csv"]
    other = {**entry, "amount_sum": "1.00"}
    text = json.dumps(manifest)
    text = text.replace('"orders.csv": ' + json.dumps(entry),
                        '"orders.csv": ' + json.dumps(other) + ', "orders.csv": ' + json.dumps(entry))
    (folder / "_manifest.json").write_text(text)
    code, out = cli(tmp_path, landing, "--partition", "2025-01-01")
    assert code == 1
    assert "_manifest.json: lists orders.csv 2 times with different control totals; which one the " \
           "file must match is ambiguous" in out, out[-3000:]


@pytest.mark.parametrize("field, value, problem", [
    ("rows", "39.0", "a whole number of data rows"),
    ("sha256", '"not-a-digest"', "64 hexadecimal digits"),
    ("amount_sum", '"12,50"', "a decimal number"),
])
def test_a_malformed_manifest_value_is_named_as_such(tmp_path, field, value, problem):
    landing = Landing(tmp_path / "landing")
    folder = landing.write("2025-01-01", DAY1)
    manifest = json.loads((folder / "_manifest.json").read_text())
    manifest["files"]["orders.csv"][field] = "__VALUE__"
    (folder / "_manifest.json").write_text(json.dumps(manifest).replace('"__VALUE__"', value))
    code, out = cli(tmp_path, landing, "--partition", "2025-01-01")
    assert code == 1
    check = f"manifest_{field}"
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as conn:
        [(passed, detail)] = conn.execute(
            "SELECT passed, detail FROM quality.check_results WHERE check_name = ? AND asset_key = 'raw/orders'",
            [check]).fetchall()
    assert passed is False
    assert detail == f"_manifest.json: {field} of orders.csv is {value}, not {problem}"
    assert f"the manifest's {field} is {value}" in out and f"raw/orders:{check}" in out.splitlines()[-2]


def test_an_event_three_days_ahead_is_quarantined_as_future(tmp_path):
    """Contract §2: no timestamp column may be later than the partition's day end plus one hour."""
    landing = Landing(tmp_path / "landing")
    ahead = ["E9", "", "S9", "page_view", "2025-01-04T09:00:00Z", "web", "10"]
    landing.write("2025-01-01", {**DAY1, "events": DAY1["events"] + [ahead]})
    cli(tmp_path, landing, "--partition", "2025-01-01")
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT event_id, reject_reason FROM quality.events_quarantine").fetchall() == [
            ("E9", "future_timestamp")]
        assert conn.execute("SELECT count(*) FROM staging.events WHERE event_id = 'E9'").fetchall() == [(0,)]


def test_spaces_and_tabs_around_a_quoted_value_are_no_part_of_it(tmp_path):
    """Contract §1: a value may carry surrounding whitespace, and RFC 4180 quotes it. Padding
    around the quotes (DuckDB took two spaces before one as a ragged row, and a tab as text)
    is dropped and the value inside is kept; the lines of the rows after it stay right."""
    landing = Landing(tmp_path / "landing")
    rows = [
        '\ufeff  "customer_id"  ,email,full_name,country_code,signup_ts,updated_at',
        'C1,Ann@Example.com ,  "Schmidt, Sofia"  ,de,2024-12-01T00:00:00Z,2025-01-01T00:00:00Z',
        'C2,bob@example.com,\t"Bob ""B""\r\nBrown"\t,US,2024-12-02 08:00:00,2025-01-01T00:00:00Z',
        '',
        'C3,cy@example.com, "Cy" ,FR,2025-01-01T00:00:00Z, "2025-01-01T00:00:00Z"\t',
    ]
    landing.write("2025-01-01", {**DAY1, "customers": "\r\n".join(rows) + "\r\n"},
                  manifest_override={"customers.csv": {"rows": 3}})
    code, out = cli(tmp_path, landing, "--partition", "2025-01-01")
    assert code == 0 and "gate PASSED" in out.splitlines()[-1], out[-3000:]
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as conn:
        staged = conn.execute("SELECT customer_id, full_name, updated_at FROM staging.customers "
                              "ORDER BY 1").fetchall()
        lines = conn.execute("SELECT customer_id, source_line FROM raw.customers ORDER BY 1").fetchall()
    assert [(c, name) for c, name, _ in staged] == [
        ("C1", "Schmidt, Sofia"), ("C2", 'Bob "B"\r\nBrown'), ("C3", "Cy")]
    assert staged[2][2] is not None  # the quoted timestamp, padded at the end of the last field
    assert lines == [("C1", 2), ("C2", 3), ("C3", 6)]


def test_an_unreadable_file_fails_its_own_day_and_a_range_publishes_the_others(tmp_path):
    """A range is day-by-day runs in one pass: a file that cannot be read fails its own day at
    the gate (a check naming the file, line and reason), and the other days publish."""
    landing = Landing(tmp_path / "landing")
    ragged = csv_text(HEADERS["orders"], DAY1["orders"][:1]) + "O2,C2\n"  # line 3: two fields
    for day in DAYS:
        landing.write(day, {**DAY1, "orders": ragged} if day == "2025-01-02" else DAY1)
    code, out = cli(tmp_path, landing, "--partition-range", f"{DAYS[0]}...{DAYS[-1]}")
    assert code == 1
    said = (f"{landing.root}/ingest_date=2025-01-02/orders.csv: line 3: cannot be read as CSV: "
            "expected 7 fields as in the header, found 2")
    verdict = next(line for line in out.splitlines() if line.startswith("dq_assets gate"))
    assert verdict.startswith("dq_assets gate FAILED: 2025-01-01, 2025-01-03 passed; 2025-01-02 "
                              "refused (raw/orders:file_readable"), out[-3000:]
    assert f"raw/orders 2025-01-02: file_readable failed (ERROR): observed {said}" in out
    failed_steps = re.findall(r"^\d\d:\d\d:\d\d (\S+) FAILED: ", out, re.M)
    assert failed_steps == ["gate_passed"], out[-3000:]  # the raw step read the other days
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as conn:
        published = conn.execute("SELECT DISTINCT CAST(ingest_date AS VARCHAR) FROM "
                                 "marts.fact_revenue_daily ORDER BY 1").fetchall()
        results = conn.execute(
            "SELECT partition_key, passed, severity, observed, detail FROM quality.check_results "
            "WHERE asset_key = 'raw/orders' AND check_name = 'file_readable' ORDER BY 1").fetchall()
        landed = conn.execute(
            "SELECT CAST(ingest_date AS VARCHAR), count(*) FROM raw.orders GROUP BY 1 ORDER BY 1").fetchall()
        gate = conn.execute("SELECT CAST(ingest_date AS VARCHAR), gate_passed FROM "
                            "quality.partition_gate ORDER BY 1").fetchall()
        conserved = conn.execute("SELECT count(*), bool_and(passed) FROM quality.check_results "
                                 "WHERE check_name = 'row_conservation'").fetchall()
    assert published == [("2025-01-01",), ("2025-01-03",)]
    assert gate == [("2025-01-01", True), ("2025-01-02", False), ("2025-01-03", True)]
    assert results == [
        ("2025-01-01", True, "ERROR", "read", None),
        ("2025-01-02", False, "ERROR", said, "no row of orders.csv landed for 2025-01-02: correct "
         "the file (or have it sent again) and materialize the day again"),
        ("2025-01-03", True, "ERROR", "read", None)]
    assert landed == [("2025-01-01", 2), ("2025-01-03", 2)]  # nothing of the unreadable file
    assert conserved == [(18, True)]  # raw = staging + quarantine, every table and day
    # the day alone fails the same way
    code, out = cli(tmp_path, landing, "--partition", "2025-01-02")
    verdict = next(line for line in out.splitlines() if line.startswith("dq_assets gate"))
    assert code == 1 and verdict.startswith(
        "dq_assets gate FAILED: 2025-01-02 refused (raw/orders:file_readable"), out[-3000:]
    assert f"raw/orders 2025-01-02: file_readable failed (ERROR): observed {said}" in out


def quarantined(tmp_path: Path, name: str) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as conn:
        return conn.execute(f"SELECT source_line, reject_reasons, reject_details FROM quality.{name}_quarantine "
                            "ORDER BY source_line").fetchall()


def landing_check(tmp_path: Path, table: str, check: str) -> tuple:
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as conn:
        [row] = conn.execute("SELECT passed, observed FROM quality.check_results WHERE asset_key = ? "
                             "AND check_name = ?", [f"raw/{table}", check]).fetchall()
    return row


def test_money_with_more_than_six_decimal_places_is_out_of_range_and_its_manifest_agrees(tmp_path):
    """Issue 14.3: a valid decimal that DECIMAL(38,6) cannot hold is quarantined for what it is,
    and the manifest's total, which counts it as sent, agrees: one WARN, the run passes."""
    landing = Landing(tmp_path / "landing")
    pay = DAY1["payments"][0]
    more = [[f"Y{i}", "O1", pay[2], "card", "captured", "1.00", "EUR"] for i in range(2, 21)]
    failed = ["Y21", "O1", pay[2], "card", "failed", "12.3456789", "EUR"]
    landing.write("2025-01-01", {**DAY1, "payments": [pay, *more, failed]})
    code, out = cli(tmp_path, landing, "--partition", "2025-01-01")
    assert code == 0, out[-3000:]
    assert landing_check(tmp_path, "payments", "manifest_amount_sum") == (True, "56.3456789")
    assert quarantined(tmp_path, "payments") == [
        (22, "out_of_range", "amount: out_of_range (more than 6 decimal places)")]


def test_huge_money_is_quarantined_with_its_line_and_crashes_nothing(tmp_path):
    """Issue 14.3: two payments of 6x10^31 and an item of 10 x 10^31 were an overflow in raw and
    in staging. Now they are out_of_range rows with their lines, the landed totals agree with
    the manifest exactly, every check is recorded, and only the quarantine rate fails."""
    landing = Landing(tmp_path / "landing")
    huge = "6" + "0" * 31
    pay = DAY1["payments"][0]
    payments = [pay] + [[f"Y{i}", "O1", pay[2], "card", "captured", huge, "EUR"] for i in (2, 3)]
    items = DAY1["order_items"] + [["O2", "2", "P1", "10", "1" + "0" * 31, "1" + "0" * 32],
                                   ["O2", "3", "P1", "1" + "0" * 17, "1" + "0" * 17, "1"]]
    landing.write("2025-01-01", {**DAY1, "payments": payments, "order_items": items})
    code, out = cli(tmp_path, landing, "--partition", "2025-01-01")
    assert code == 1 and "Overflow" not in out and "Traceback" not in out, out[-3000:]
    assert landing_check(tmp_path, "payments", "manifest_amount_sum") == (True, f"{12 * 10**31 + 25}.000000")
    assert landing_check(tmp_path, "order_items", "manifest_line_amount_sum")[0] is True
    too_large = "out_of_range (10^18 or more in magnitude)"
    assert quarantined(tmp_path, "payments") == [(3, "out_of_range", f"amount: {too_large}"),
                                                 (4, "out_of_range", f"amount: {too_large}")]
    assert quarantined(tmp_path, "order_items") == [
        (5, "out_of_range", f"unit_price: {too_large}; line_amount: {too_large}"),
        (6, "calculation_mismatch", "line_amount_is_quantity_times_price: calculation_mismatch")]
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as conn:
        failed = conn.execute("SELECT asset_key || ':' || check_name FROM quality.check_results "
                              "WHERE NOT passed AND severity = 'ERROR' ORDER BY 1").fetchall()
        recorded = conn.execute("SELECT count(DISTINCT asset_key) FROM quality.check_results "
                                "WHERE asset_key IN ('staging/payments', 'staging/order_items')").fetchall()
    assert failed == [("quality/partition_gate:gate_passed",), ("staging/order_items:quarantine_rate",),
                      ("staging/payments:quarantine_rate",)]
    assert recorded == [(2,)]
