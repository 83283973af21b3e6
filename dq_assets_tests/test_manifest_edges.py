"""Partition, manifest and input edge cases through the real CLI: each is refused plainly, before
anything is written where it is the whole run that cannot be, and named for what it is.

A CLI run is the expensive part (a process that loads Dagster and records every event), so the
cases that concern one day share runs: each lands as a day of its own in one landing zone, one
`--partition-range` run loads them all, and each test asserts on its own day (what the verdict
line says of it, its check results and rows). The days that must pass are one range (its exit
code 0 says all of them did), the days the gate must refuse another (each named in the verdict,
with why). A case that refuses a whole run (a reversed range, an ambiguous manifest), and a
failing day on its own, get runs of their own."""

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pytest

from dq_assets_tests.conftest import DAY1, HEADERS, Landing, csv_text, materialize_cli


@dataclass
class Run:
    """A landing zone and a warehouse of their own, and what a CLI run over them said."""

    landing: Landing
    warehouse: Path
    code: int | None = None
    out: str = ""

    @classmethod
    def under(cls, folder: Path) -> "Run":
        return cls(Landing(folder / "landing"), folder / "wh.duckdb")

    def materialize(self, home: Path, *args: str) -> "Run":
        """The CLI run over this landing zone and warehouse (this one keeps what its own run said)."""
        done = materialize_cli(home, self.landing.root, self.warehouse, *args)
        return replace(self, code=done.returncode, out=done.stdout + done.stderr)

    @property
    def verdict(self) -> str:
        return next(line for line in self.out.splitlines() if line.startswith("dq_assets gate"))

    def refused(self, day: str) -> str:
        """The failed checks the verdict names for a day the gate refused."""
        found = re.findall(rf"(?:: |; ){day} refused \(([^)]*)\)", self.verdict)
        assert found, f"{day} is not refused in: {self.verdict}"
        return found[0]

    def query(self, sql: str, params=()) -> list[tuple]:
        if not self.warehouse.exists():
            return []
        with duckdb.connect(str(self.warehouse), read_only=True) as conn:
            return conn.execute(sql, list(params)).fetchall()

    def tables(self) -> list[tuple]:
        return self.query("SELECT table_schema, table_name FROM information_schema.tables")

    def landing_check(self, day: str, table: str, check: str) -> tuple:
        [row] = self.query("SELECT passed, observed FROM quality.check_results WHERE partition_key = ? "
                           "AND asset_key = ? AND check_name = ?", [day, f"raw/{table}", check])
        return row

    def quarantined(self, day: str, table: str) -> list[tuple]:
        return self.query(f"SELECT source_line, reject_reasons, reject_details FROM quality.{table}_quarantine "
                          "WHERE ingest_date = ? ORDER BY source_line", [day])


# --- the days the gate must refuse: one range over them -------------------------------------

UNREADABLE_RANGE = ["2025-01-01", "2025-01-02", "2025-01-03"]  # the middle day's orders.csv is ragged
UNREADABLE_DAY = UNREADABLE_RANGE[1]
MALFORMED = [  # a day each: (day, field of orders.csv in the manifest, value as written, what it must be)
    ("2025-01-04", "rows", "39.0", "a whole number of data rows"),
    ("2025-01-05", "sha256", '"not-a-digest"', "64 hexadecimal digits"),
    ("2025-01-06", "amount_sum", '"12,50"', "a decimal number"),
]
HUGE_MONEY_DAY = "2025-01-07"
REFUSED_DAYS = [*UNREADABLE_RANGE, *(day for day, *_ in MALFORMED), HUGE_MONEY_DAY]


def land_ragged_orders(landing: Landing, day: str) -> None:
    ragged = csv_text(HEADERS["orders"], DAY1["orders"][:1]) + "O2,C2\n"  # line 3: two fields
    landing.write(day, {**DAY1, "orders": ragged})


def land_malformed_manifest_value(landing: Landing, day: str, field: str, value: str) -> None:
    folder = landing.write(day, DAY1)
    manifest = json.loads((folder / "_manifest.json").read_text())
    manifest["files"]["orders.csv"][field] = "__VALUE__"
    (folder / "_manifest.json").write_text(json.dumps(manifest).replace('"__VALUE__"', value))


def land_huge_money(landing: Landing, day: str) -> None:
    huge = "6" + "0" * 31
    pay = DAY1["payments"][0]
    payments = [pay] + [[f"Y{i}", "O1", pay[2], "card", "captured", huge, "EUR"] for i in (2, 3)]
    items = DAY1["order_items"] + [["O2", "2", "P1", "10", "1" + "0" * 31, "1" + "0" * 32],
                                   ["O2", "3", "P1", "1" + "0" * 17, "1" + "0" * 17, "1"]]
    landing.write(day, {**DAY1, "payments": payments, "order_items": items})


@pytest.fixture(scope="module")
def refused_range(tmp_path_factory, dagster_home) -> Run:
    run = Run.under(tmp_path_factory.mktemp("refused"))
    for day in UNREADABLE_RANGE:
        if day == UNREADABLE_DAY:
            land_ragged_orders(run.landing, day)
        else:
            run.landing.write(day, DAY1)
    for day, field, value, _ in MALFORMED:
        land_malformed_manifest_value(run.landing, day, field, value)
    land_huge_money(run.landing, HUGE_MONEY_DAY)
    return run.materialize(dagster_home, "--partition-range", f"{REFUSED_DAYS[0]}...{REFUSED_DAYS[-1]}")


# --- the days that must pass: one range over them --------------------------------------------

FUTURE_DAY, QUOTED_DAY, SIX_DECIMALS_DAY = PASSED_DAYS = ["2025-01-01", "2025-01-02", "2025-01-03"]


def land_event_three_days_ahead(landing: Landing, day: str) -> None:
    ahead = ["E9", "", "S9", "page_view", "2025-01-04T09:00:00Z", "web", "10"]  # day is 2025-01-01
    landing.write(day, {**DAY1, "events": DAY1["events"] + [ahead]})


def land_padded_quoted_values(landing: Landing, day: str) -> None:
    rows = [
        '\ufeff  "customer_id"  ,email,full_name,country_code,signup_ts,updated_at',
        'C1,Ann@Example.com ,  "Schmidt, Sofia"  ,de,2024-12-01T00:00:00Z,2025-01-01T00:00:00Z',
        'C2,bob@example.com,\t"Bob ""B""\r\nBrown"\t,US,2024-12-02 08:00:00,2025-01-01T00:00:00Z',
        '',
        'C3,cy@example.com, "Cy" ,FR,2025-01-01T00:00:00Z, "2025-01-01T00:00:00Z"\t',
    ]
    landing.write(day, {**DAY1, "customers": "\r\n".join(rows) + "\r\n"},
                  manifest_override={"customers.csv": {"rows": 3}})


def land_payment_with_seven_decimals(landing: Landing, day: str) -> None:
    pay = DAY1["payments"][0]
    more = [[f"Y{i}", "O1", pay[2], "card", "captured", "1.00", "EUR"] for i in range(2, 21)]
    failed = ["Y21", "O1", pay[2], "card", "failed", "12.3456789", "EUR"]
    landing.write(day, {**DAY1, "payments": [pay, *more, failed]})


@pytest.fixture(scope="module")
def passed_range(tmp_path_factory, dagster_home) -> Run:
    run = Run.under(tmp_path_factory.mktemp("passed"))
    land_event_three_days_ahead(run.landing, FUTURE_DAY)
    land_padded_quoted_values(run.landing, QUOTED_DAY)
    land_payment_with_seven_decimals(run.landing, SIX_DECIMALS_DAY)
    return run.materialize(dagster_home, "--partition-range", f"{PASSED_DAYS[0]}...{PASSED_DAYS[-1]}")


# --- whole runs refused ----------------------------------------------------------------------

def test_a_reversed_range_is_refused_before_anything_is_written(tmp_path, dagster_home):
    run = Run.under(tmp_path)
    run.landing.write("2025-01-01", DAY1)
    run.landing.write("2025-01-02", DAY1)
    run = run.materialize(dagster_home, "--partition-range", "2025-01-02...2025-01-01")
    assert run.code == 1
    said = "partition range 2025-01-02...2025-01-01 holds no day: its first day comes after its last " \
           "(did you mean 2025-01-01...2025-01-02?)"
    assert run.out.count(said) == 2, run.out  # the first step that says it, and the run's last line
    assert "DagsterStepOutputNotFoundError" not in run.out and "Stack Trace" not in run.out
    assert run.tables() == []  # nothing written, not even an empty raw.landing_files


def test_a_file_listed_twice_with_different_totals_is_an_error(tmp_path, dagster_home):
    run = Run.under(tmp_path)
    folder = run.landing.write("2025-01-01", DAY1)
    manifest = json.loads((folder / "_manifest.json").read_text())
    entry = manifest["files"]["orders.csv"]
    other = {**entry, "amount_sum": "1.00"}
    text = json.dumps(manifest)
    text = text.replace('"orders.csv": ' + json.dumps(entry),
                        '"orders.csv": ' + json.dumps(other) + ', "orders.csv": ' + json.dumps(entry))
    (folder / "_manifest.json").write_text(text)
    run = run.materialize(dagster_home, "--partition", "2025-01-01")
    assert run.code == 1
    assert "_manifest.json: lists orders.csv 2 times with different control totals; which one the " \
           "file must match is ambiguous" in run.out, run.out[-3000:]


# --- days refused by the gate, one range ----------------------------------------------------

def test_the_refused_range_fails_and_names_every_refused_day(refused_range):
    assert refused_range.code == 1, refused_range.out[-3000:]
    refused = set(re.findall(r"(\d{4}-\d\d-\d\d) refused", refused_range.verdict))
    assert refused == set(REFUSED_DAYS) - {UNREADABLE_RANGE[0], UNREADABLE_RANGE[2]}, refused_range.verdict


@pytest.mark.parametrize("day, field, value, problem", MALFORMED, ids=[field for _, field, *_ in MALFORMED])
def test_a_malformed_manifest_value_is_named_as_such(refused_range, day, field, value, problem):
    check = f"manifest_{field}"
    [(passed, detail)] = refused_range.query(
        "SELECT passed, detail FROM quality.check_results WHERE partition_key = ? AND check_name = ? "
        "AND asset_key = 'raw/orders'", [day, check])
    assert passed is False
    assert detail == f"_manifest.json: {field} of orders.csv is {value}, not {problem}"
    said = f"raw/orders {day}: {check} failed (ERROR): observed "
    assert any(said in line and f"the manifest's {field} is {value}" in line
               for line in refused_range.out.splitlines()), refused_range.out[-3000:]
    assert refused_range.refused(day) == f"raw/orders:{check}"


def test_an_unreadable_file_fails_its_own_day_and_a_range_publishes_the_others(refused_range, dagster_home):
    """A range is day-by-day runs in one pass: a file that cannot be read fails its own day at
    the gate (a check naming the file, line and reason), and the other days publish."""
    run, days = refused_range, UNREADABLE_RANGE
    said = (f"{run.landing.root}/ingest_date={UNREADABLE_DAY}/orders.csv: line 3: cannot be read as CSV: "
            "expected 7 fields as in the header, found 2")
    # the other days of this range are refused for reasons of their own (the tests above)
    assert run.code == 1
    assert run.verdict.startswith(f"dq_assets gate FAILED: {days[0]}, {days[2]} passed; {UNREADABLE_DAY} "
                                  "refused (raw/orders:file_readable"), run.out[-3000:]
    assert f"raw/orders {UNREADABLE_DAY}: file_readable failed (ERROR): observed {said}" in run.out
    failed_steps = re.findall(r"^\d\d:\d\d:\d\d (\S+) FAILED: ", run.out, re.M)
    assert failed_steps == ["gate_passed"], run.out[-3000:]  # the raw step read the other days
    these = "CAST(ingest_date AS VARCHAR) IN (?, ?, ?)"
    published = run.query("SELECT DISTINCT CAST(ingest_date AS VARCHAR) FROM marts.fact_revenue_daily "
                          f"WHERE {these} ORDER BY 1", days)
    results = run.query(
        "SELECT partition_key, passed, severity, observed, detail FROM quality.check_results "
        "WHERE asset_key = 'raw/orders' AND check_name = 'file_readable' AND partition_key IN (?, ?, ?) "
        "ORDER BY 1", days)
    landed = run.query(f"SELECT CAST(ingest_date AS VARCHAR), count(*) FROM raw.orders WHERE {these} "
                       "GROUP BY 1 ORDER BY 1", days)
    gate = run.query(f"SELECT CAST(ingest_date AS VARCHAR), gate_passed FROM quality.partition_gate "
                     f"WHERE {these} ORDER BY 1", days)
    conserved = run.query("SELECT count(*), bool_and(passed) FROM quality.check_results "
                          "WHERE check_name = 'row_conservation' AND partition_key IN (?, ?, ?)", days)
    assert published == [(days[0],), (days[2],)]
    assert gate == [(days[0], True), (UNREADABLE_DAY, False), (days[2], True)]
    assert results == [
        (days[0], True, "ERROR", "read", None),
        (UNREADABLE_DAY, False, "ERROR", said, f"no row of orders.csv landed for {UNREADABLE_DAY}: correct "
         "the file (or have it sent again) and materialize the day again"),
        (days[2], True, "ERROR", "read", None)]
    assert landed == [(days[0], 2), (days[2], 2)]  # nothing of the unreadable file
    assert conserved == [(18, True)]  # raw = staging + quarantine, every table and day
    # the day alone fails the same way
    alone = run.materialize(dagster_home, "--partition", UNREADABLE_DAY)
    assert alone.code == 1 and alone.verdict.startswith(
        f"dq_assets gate FAILED: {UNREADABLE_DAY} refused (raw/orders:file_readable"), alone.out[-3000:]
    assert f"raw/orders {UNREADABLE_DAY}: file_readable failed (ERROR): observed {said}" in alone.out


def test_huge_money_is_quarantined_with_its_line_and_crashes_nothing(refused_range):
    """Issue 14.3: two payments of 6x10^31 and an item of 10 x 10^31 were an overflow in raw and
    in staging. Now they are out_of_range rows with their lines, the landed totals agree with
    the manifest exactly, every check is recorded, and only the quarantine rate fails."""
    run, day = refused_range, HUGE_MONEY_DAY
    assert run.code == 1 and "Overflow" not in run.out and "Traceback" not in run.out, run.out[-3000:]
    assert run.refused(day) == "staging/order_items:quarantine_rate, staging/payments:quarantine_rate"
    assert run.landing_check(day, "payments", "manifest_amount_sum") == (True, f"{12 * 10**31 + 25}.000000")
    assert run.landing_check(day, "order_items", "manifest_line_amount_sum")[0] is True
    too_large = "out_of_range (10^18 or more in magnitude)"
    assert run.quarantined(day, "payments") == [(3, "out_of_range", f"amount: {too_large}"),
                                                (4, "out_of_range", f"amount: {too_large}")]
    assert run.quarantined(day, "order_items") == [
        (5, "out_of_range", f"unit_price: {too_large}; line_amount: {too_large}"),
        (6, "calculation_mismatch", "line_amount_is_quantity_times_price: calculation_mismatch")]
    failed = run.query("SELECT asset_key || ':' || check_name FROM quality.check_results "
                       "WHERE partition_key = ? AND NOT passed AND severity = 'ERROR' ORDER BY 1", [day])
    recorded = run.query("SELECT count(DISTINCT asset_key) FROM quality.check_results WHERE partition_key = ? "
                         "AND asset_key IN ('staging/payments', 'staging/order_items')", [day])
    assert failed == [("quality/partition_gate:gate_passed",), ("staging/order_items:quarantine_rate",),
                      ("staging/payments:quarantine_rate",)]
    assert recorded == [(2,)]


# --- days that pass, one range ----------------------------------------------------------------

def test_the_passed_range_passes_the_gate_for_every_day(passed_range):
    assert passed_range.code == 0, passed_range.out[-3000:]
    assert passed_range.out.splitlines()[-1].startswith(
        f"dq_assets gate PASSED for {PASSED_DAYS[0]}..{PASSED_DAYS[-1]}"), passed_range.out[-3000:]


def test_an_event_three_days_ahead_is_quarantined_as_future(passed_range):
    """Contract §2: no timestamp column may be later than the partition's day end plus one hour."""
    assert passed_range.query("SELECT event_id, reject_reason FROM quality.events_quarantine "
                              "WHERE ingest_date = ?", [FUTURE_DAY]) == [("E9", "future_timestamp")]
    assert passed_range.query("SELECT count(*) FROM staging.events WHERE event_id = 'E9'") == [(0,)]


def test_spaces_and_tabs_around_a_quoted_value_are_no_part_of_it(passed_range):
    """Contract §1: a value may carry surrounding whitespace, and RFC 4180 quotes it. Padding
    around the quotes (DuckDB took two spaces before one as a ragged row, and a tab as text)
    is dropped and the value inside is kept; the lines of the rows after it stay right."""
    run = passed_range
    assert run.code == 0 and "gate PASSED" in run.out.splitlines()[-1], run.out[-3000:]
    staged = run.query("SELECT customer_id, full_name, updated_at FROM staging.customers "
                       "WHERE ingest_date = ? ORDER BY 1", [QUOTED_DAY])
    lines = run.query("SELECT customer_id, source_line FROM raw.customers WHERE ingest_date = ? ORDER BY 1",
                      [QUOTED_DAY])
    assert [(c, name) for c, name, _ in staged] == [
        ("C1", "Schmidt, Sofia"), ("C2", 'Bob "B"\r\nBrown'), ("C3", "Cy")]
    assert staged[2][2] is not None  # the quoted timestamp, padded at the end of the last field
    assert lines == [("C1", 2), ("C2", 3), ("C3", 6)]


def test_money_with_more_than_six_decimal_places_is_out_of_range_and_its_manifest_agrees(passed_range):
    """Issue 14.3: a valid decimal that DECIMAL(38,6) cannot hold is quarantined for what it is,
    and the manifest's total, which counts it as sent, agrees: one WARN, the run passes."""
    run, day = passed_range, SIX_DECIMALS_DAY
    assert run.code == 0, run.out[-3000:]
    assert run.landing_check(day, "payments", "manifest_amount_sum") == (True, "56.3456789")
    assert run.quarantined(day, "payments") == [
        (22, "out_of_range", "amount: out_of_range (more than 6 decimal places)")]
