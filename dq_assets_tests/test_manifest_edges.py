"""Partition, manifest and input edge cases through the real CLI: each is refused plainly, before
anything is written where it is the whole run that cannot be, and named for what it is; a
rejected row names its physical line, whatever empty lines or quoted newlines precede it.

A CLI run is the expensive part (a process that loads Dagster and records every event, here in
Dagster's in-memory event log: `cli_home`), so the
cases that concern one day share a run: each lands as a day of its own in one landing zone, one
`--partition-range` run loads them all, and each test asserts on its own day: what the verdict
line says of it (passed, or refused and why), its check results and rows. The run fails (the
gate refuses some days) and no step but the gate's fails, so a day the verdict says passed is
a day that passed as a run of its own would. A case that refuses a whole run (a reversed range,
an ambiguous manifest), and a failing day on its own (in the slow tier), get runs of their own."""

import json
import re
from dataclasses import dataclass, replace
from datetime import date, timedelta
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

    def passed(self) -> list[str]:
        """The days the verdict says passed ('2025-01-01..2025-01-03, 2025-01-05 passed; ...')."""
        said = re.search(r"^dq_assets gate FAILED: (.*?) passed; ", self.verdict)
        days = []
        for part in said.group(1).split(", ") if said else []:
            first, _, last = part.partition("..")
            a, b = date.fromisoformat(first), date.fromisoformat(last or first)
            days += [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]
        return days

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


# --- the days of the one range run: a case each ---------------------------------------------

FUTURE_DAY, QUOTED_DAY, SIX_DECIMALS_DAY = "2025-01-01", "2025-01-02", "2025-01-03"
UNREADABLE_RANGE = ["2025-01-04", "2025-01-05", "2025-01-06"]  # the middle day's orders.csv is ragged
UNREADABLE_DAY = UNREADABLE_RANGE[1]
MALFORMED = [  # a day each: (day, field of orders.csv in the manifest, value as written, what it must be)
    ("2025-01-07", "rows", "39.0", "a whole number of data rows"),
    ("2025-01-08", "sha256", '"not-a-digest"', "64 hexadecimal digits"),
    ("2025-01-09", "amount_sum", '"12,50"', "a decimal number"),
]
HUGE_MONEY_DAY = "2025-01-10"
EMPTY_LINES_DAYS = {"\n": "2025-01-11", "\r\n": "2025-01-12"}  # orders.csv with empty lines, per line ending
LAST_DAY = EMPTY_LINES_DAYS["\r\n"]
PASSED_DAYS = [FUTURE_DAY, QUOTED_DAY, SIX_DECIMALS_DAY, UNREADABLE_RANGE[0], UNREADABLE_RANGE[2]]
REFUSED_DAYS = [UNREADABLE_DAY, *(day for day, *_ in MALFORMED), HUGE_MONEY_DAY, *EMPTY_LINES_DAYS.values()]


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


def orders_with_empty_lines(ending: str) -> str:
    orders = csv_text(HEADERS["orders"], DAY1["orders"] + [
        ["O3", "C1", "2025-01-01T12:00:00Z", "pending", "EUR", "1.00", "2025-01-01T12:00:00Z"],
        ["O4", "C1", "2025-01-01T13:00:00Z", "paid", "EUR", "2.00", "2025-01-01T13:00:00Z"],
    ]).rstrip("\n").split("\n")
    # header, an empty line right after it, two rows, two empty lines, a quoted newline, the
    # invalid row: header 1, empty 2, O1 3, O2 4, empty 5-6, O2b 7-8, O3 9, O4 10
    quoted = 'O2b,C2,2025-01-01T11:30:00Z,"pla\nced",EUR,1.00,2025-01-01T11:30:00Z'
    return ending.join([orders[0], "", orders[1], orders[2], "", "", quoted.replace("\n", ending),
                        orders[3], orders[4]]) + ending


def land_orders_with_empty_lines(landing: Landing, day: str, ending: str) -> None:
    landing.write(day, {**DAY1, "orders": orders_with_empty_lines(ending)},
                  manifest_override={"orders.csv": {"rows": 5, "amount_sum": "39.00"}})


def land_payment_with_seven_decimals(landing: Landing, day: str) -> None:
    pay = DAY1["payments"][0]
    more = [[f"Y{i}", "O1", pay[2], "card", "captured", "1.00", "EUR"] for i in range(2, 21)]
    failed = ["Y21", "O1", pay[2], "card", "failed", "12.3456789", "EUR"]
    landing.write(day, {**DAY1, "payments": [pay, *more, failed]})


@pytest.fixture(scope="module")
def range_run(tmp_path_factory, cli_home) -> Run:
    run = Run.under(tmp_path_factory.mktemp("range"))
    land_event_three_days_ahead(run.landing, FUTURE_DAY)
    land_padded_quoted_values(run.landing, QUOTED_DAY)
    land_payment_with_seven_decimals(run.landing, SIX_DECIMALS_DAY)
    for day in UNREADABLE_RANGE:
        if day == UNREADABLE_DAY:
            land_ragged_orders(run.landing, day)
        else:
            run.landing.write(day, DAY1)
    for day, field, value, _ in MALFORMED:
        land_malformed_manifest_value(run.landing, day, field, value)
    land_huge_money(run.landing, HUGE_MONEY_DAY)
    for ending, day in EMPTY_LINES_DAYS.items():
        land_orders_with_empty_lines(run.landing, day, ending)
    return run.materialize(cli_home, "--partition-range", f"{FUTURE_DAY}...{LAST_DAY}")


# --- whole runs refused ----------------------------------------------------------------------

def test_a_reversed_range_is_refused_before_anything_is_written(tmp_path, cli_home):
    run = Run.under(tmp_path)
    run.landing.write("2025-01-01", DAY1)
    run.landing.write("2025-01-02", DAY1)
    run = run.materialize(cli_home, "--partition-range", "2025-01-02...2025-01-01")
    assert run.code == 1
    said = "partition range 2025-01-02...2025-01-01 holds no day: its first day comes after its last " \
           "(did you mean 2025-01-01...2025-01-02?)"
    assert run.out.count(said) == 2, run.out  # the first step that says it, and the run's last line
    assert "DagsterStepOutputNotFoundError" not in run.out and "Stack Trace" not in run.out
    assert run.tables() == []  # nothing written, not even an empty raw.landing_files


def test_a_file_listed_twice_with_different_totals_is_an_error(tmp_path, cli_home):
    run = Run.under(tmp_path)
    folder = run.landing.write("2025-01-01", DAY1)
    manifest = json.loads((folder / "_manifest.json").read_text())
    entry = manifest["files"]["orders.csv"]
    other = {**entry, "amount_sum": "1.00"}
    text = json.dumps(manifest)
    text = text.replace('"orders.csv": ' + json.dumps(entry),
                        '"orders.csv": ' + json.dumps(other) + ', "orders.csv": ' + json.dumps(entry))
    (folder / "_manifest.json").write_text(text)
    run = run.materialize(cli_home, "--partition", "2025-01-01")
    assert run.code == 1
    assert "_manifest.json: lists orders.csv 2 times with different control totals; which one the " \
           "file must match is ambiguous" in run.out, run.out[-3000:]


# --- the days of the one range run --------------------------------------------------------

def test_the_range_fails_for_the_refused_days_alone(range_run):
    """The days each test below expects to pass, passed; the others are refused by the gate,
    and the gate's step is the only one that failed."""
    run = range_run
    assert run.code == 1, run.out[-3000:]
    assert run.passed() == PASSED_DAYS, run.verdict
    assert re.findall(r"(\d{4}-\d\d-\d\d) refused", run.verdict) == REFUSED_DAYS, run.verdict
    failed_steps = re.findall(r"^\d\d:\d\d:\d\d (\S+) FAILED: ", run.out, re.M)
    assert failed_steps == ["gate_passed"], run.out[-3000:]  # the raw step read every day
    gate = run.query("SELECT CAST(ingest_date AS VARCHAR), gate_passed FROM quality.partition_gate ORDER BY 1")
    assert gate == sorted([(day, True) for day in PASSED_DAYS] + [(day, False) for day in REFUSED_DAYS])


@pytest.mark.parametrize("day, field, value, problem", MALFORMED, ids=[field for _, field, *_ in MALFORMED])
def test_a_malformed_manifest_value_is_named_as_such(range_run, day, field, value, problem):
    check = f"manifest_{field}"
    [(passed, detail)] = range_run.query(
        "SELECT passed, detail FROM quality.check_results WHERE partition_key = ? AND check_name = ? "
        "AND asset_key = 'raw/orders'", [day, check])
    assert passed is False
    assert detail == f"_manifest.json: {field} of orders.csv is {value}, not {problem}"
    said = f"raw/orders {day}: {check} failed (ERROR): observed "
    assert any(said in line and f"the manifest's {field} is {value}" in line
               for line in range_run.out.splitlines()), range_run.out[-3000:]
    assert range_run.refused(day) == f"raw/orders:{check}"


def test_an_unreadable_file_fails_its_own_day_and_a_range_publishes_the_others(range_run):
    """A range is day-by-day runs in one pass: a file that cannot be read fails its own day at
    the gate (a check naming the file, line and reason), and the other days publish."""
    run, days = range_run, UNREADABLE_RANGE
    said = (f"{run.landing.root}/ingest_date={UNREADABLE_DAY}/orders.csv: line 3: cannot be read as CSV: "
            "expected 7 fields as in the header, found 2")
    # the run holds other cases' days too: it fails, only the gate's step failing (the raw step
    # read the other days: test_the_range_fails_for_the_refused_days_alone), and of these days:
    assert run.code == 1
    assert days[0] in run.passed() and days[2] in run.passed(), run.verdict
    assert run.refused(UNREADABLE_DAY).startswith("raw/orders:file_readable"), run.verdict
    assert f"raw/orders {UNREADABLE_DAY}: file_readable failed (ERROR): observed {said}" in run.out
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


@pytest.mark.slow  # one more CLI run, of what the range run above shows of the day
def test_an_unreadable_file_fails_a_run_of_its_day_alone_the_same_way(tmp_path, cli_home):
    run, day = Run.under(tmp_path), "2025-01-01"
    land_ragged_orders(run.landing, day)
    run = run.materialize(cli_home, "--partition", day)
    said = (f"{run.landing.root}/ingest_date={day}/orders.csv: line 3: cannot be read as CSV: "
            "expected 7 fields as in the header, found 2")
    assert run.code == 1 and run.verdict.startswith(
        f"dq_assets gate FAILED: {day} refused (raw/orders:file_readable"), run.out[-3000:]
    assert f"raw/orders {day}: file_readable failed (ERROR): observed {said}" in run.out
    failed_steps = re.findall(r"^\d\d:\d\d:\d\d (\S+) FAILED: ", run.out, re.M)
    assert failed_steps == ["gate_passed"], run.out[-3000:]  # the day is refused, nothing crashed


def test_huge_money_is_quarantined_with_its_line_and_crashes_nothing(range_run):
    """Issue 14.3: two payments of 6x10^31 and an item of 10 x 10^31 were an overflow in raw and
    in staging. Now they are out_of_range rows with their lines, the landed totals agree with
    the manifest exactly, every check is recorded, and only the quarantine rate fails."""
    run, day = range_run, HUGE_MONEY_DAY
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


def test_an_event_three_days_ahead_is_quarantined_as_future(range_run):
    """Contract §2: no timestamp column may be later than the partition's day end plus one hour."""
    assert range_run.query("SELECT event_id, reject_reason FROM quality.events_quarantine "
                              "WHERE ingest_date = ?", [FUTURE_DAY]) == [("E9", "future_timestamp")]
    assert range_run.query("SELECT count(*) FROM staging.events WHERE event_id = 'E9'") == [(0,)]


def test_spaces_and_tabs_around_a_quoted_value_are_no_part_of_it(range_run):
    """Contract §1: a value may carry surrounding whitespace, and RFC 4180 quotes it. Padding
    around the quotes (DuckDB took two spaces before one as a ragged row, and a tab as text)
    is dropped and the value inside is kept; the lines of the rows after it stay right."""
    run = range_run
    assert QUOTED_DAY in run.passed(), run.verdict  # the gate passed it, no step failed but the gate's
    staged = run.query("SELECT customer_id, full_name, updated_at FROM staging.customers "
                       "WHERE ingest_date = ? ORDER BY 1", [QUOTED_DAY])
    lines = run.query("SELECT customer_id, source_line FROM raw.customers WHERE ingest_date = ? ORDER BY 1",
                      [QUOTED_DAY])
    assert [(c, name) for c, name, _ in staged] == [
        ("C1", "Schmidt, Sofia"), ("C2", 'Bob "B"\r\nBrown'), ("C3", "Cy")]
    assert staged[2][2] is not None  # the quoted timestamp, padded at the end of the last field
    assert lines == [("C1", 2), ("C2", 3), ("C3", 6)]


def test_money_with_more_than_six_decimal_places_is_out_of_range_and_its_manifest_agrees(range_run):
    """Issue 14.3: a valid decimal that DECIMAL(38,6) cannot hold is quarantined for what it is,
    and the manifest's total, which counts it as sent, agrees: one WARN, the run passes."""
    run, day = range_run, SIX_DECIMALS_DAY
    assert day in run.passed(), run.verdict  # the gate passed it, no step failed but the gate's
    assert run.landing_check(day, "payments", "manifest_amount_sum") == (True, "56.3456789")
    assert run.quarantined(day, "payments") == [
        (22, "out_of_range", "amount: out_of_range (more than 6 decimal places)")]


@pytest.mark.parametrize("ending", list(EMPTY_LINES_DAYS), ids=["LF", "CRLF"])
def test_rejected_rows_name_their_physical_line_after_empty_lines(range_run, ending):
    """Lineage names the physical line of a row, whatever empty lines or quoted newlines come
    before it (the reader skips an empty line without counting it)."""
    day = EMPTY_LINES_DAYS[ending]
    assert (range_run.landing.root / f"ingest_date={day}" / "orders.csv").read_bytes().count(ending.encode()) == 10
    # two invalid rows of five: the quarantine rate refuses the day; the rows are where they belong
    assert "staging/orders:quarantine_rate" in range_run.refused(day)
    quarantined = range_run.query("SELECT order_id, source_line, reject_reason FROM quality.orders_quarantine "
                                  "WHERE ingest_date = ?", [day])
    staged = dict(range_run.query("SELECT order_id, source_line FROM raw.orders WHERE ingest_date = ?", [day]))
    assert sorted(quarantined) == [("O2b", 7, "invalid_value"), ("O3", 9, "invalid_value")]
    assert staged == {"O1": 3, "O2": 4, "O2b": 7, "O3": 9, "O4": 10}
