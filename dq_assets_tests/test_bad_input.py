"""Bad input, each case through the whole pipeline.

Every case lands the clean DAY1 shop (moved to the case's day), damages one thing, and
materializes every asset for the partition in process. It ends in one of two ways, asserted
exactly:
- a failed run whose failing step says, in one line, what is wrong with the partition as a whole
  (its manifest, a file outside the landing root), with no other step failing;
- a run that loads: the bad rows are in `quality.<table>_quarantine` with their reason and
  source line, raw = staging + quarantine for every table, and the gate decides as the
  contract says. A file that cannot be read as CSV lands no row and refuses its day with
  `raw.<table>:file_readable`, which says in one line which file and which line is wrong.
The reader-level details (headers, BOM, line numbers) are in test_landing.py.

A run is the expensive part, so the cases that load share runs: each is a day of its own in one
landing zone and one run over the range loads them (see GROUPS); a case that fails its whole
partition runs alone. What a day sees of the days before it is its references (orders,
payments) and nothing else, so a case whose table is missing or unreadable comes first in its
range, or after days that miss the same table.
"""

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from dq_assets.contract.tables import TABLE_NAMES
from dq_assets.landing.zone import LandingZone
from dq_assets.storage.duckdb.warehouse import release_warehouse
from dq_assets_tests.conftest import DAY1, HEADERS, Landing, Warehouse, _money_sum, csv_text, moved_to

DAY = "2025-01-01"
ROOT = Path(__file__).resolve().parent.parent
GATE_FAILED = "{refused} partition(s) refused by the gate: {days}"  # filled in for the case's run
def text_of(folder: Path, table: str) -> str:
    """The landed (clean) file, before the case damages it."""
    return (folder / f"{table}.csv").read_text()


def lines_of(folder: Path, table: str) -> list[str]:
    return text_of(folder, table).splitlines()


def put(folder: Path, table: str, data: bytes, rows: int) -> None:
    """Replace a landed file; the manifest says what the source sent (rows, sha256, money)."""
    (folder / f"{table}.csv").write_bytes(data)
    manifest = json.loads((folder / "_manifest.json").read_text())
    entry = manifest["files"][f"{table}.csv"]
    entry.update(rows=rows, sha256=hashlib.sha256(data).hexdigest())
    if table in Landing.SUM_FIELDS:
        column, sum_field = Landing.SUM_FIELDS[table]
        try:
            entry[sum_field] = _money_sum(data.decode("utf-8", "replace"), column)
        except (StopIteration, csv.Error):  # no header, or not CSV at all: nothing to add up
            entry[sum_field] = "0.00"
    (folder / "_manifest.json").write_text(json.dumps(manifest))


def edit_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / "_manifest.json").read_text())
    change(manifest)
    (folder / "_manifest.json").write_text(json.dumps(manifest))


@dataclass
class Case:
    damage: object  # (folder) -> None, on the landed clean day
    # (a) the run fails: {step key: message naming the file (and line)}, "{folder}" = the day's folder
    errors: dict[str, str] = field(default_factory=dict)
    # (b) it loads: {table: [(source_line, reject_reason), ...]} in quarantine, the gate's decision
    # and the failed checks of the partition {asset:check: severity}
    quarantined: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    gate_passed: bool | None = None
    failed_checks: dict[str, str] = field(default_factory=dict)
    also: object = None  # (warehouse, day) -> None: more to see in what the run left behind
    # {table: what file_readable observed} for a file that cannot be read (it lands no row)
    unreadable: dict[str, str] = field(default_factory=dict)


def _ragged(folder):
    rows = lines_of(folder, "orders")
    # a quoted value over two physical lines first: the line named is the physical line
    rows[1] = rows[1].replace(",paid,", ',"paid\n",')
    rows[2] = "O2,C2"
    put(folder, "orders", ("\n".join(rows) + "\n").encode(), rows=2)


def _unclosed_quote(folder):
    rows = lines_of(folder, "orders")
    rows[2] = rows[2].replace(",Placed,", ',"Placed,')
    put(folder, "orders", ("\n".join(rows) + "\n").encode(), rows=2)


def _text_after_quote(folder):
    rows = lines_of(folder, "orders")
    rows[2] = rows[2].replace(",Placed,", ',  "Plac"ed,')
    put(folder, "orders", ("\n".join(rows) + "\n").encode(), rows=2)


def _non_utf8_row(folder):
    rows = lines_of(folder, "events")
    rows[2] = rows[2].replace(",S1,", ",S\xe91,")  # latin-1 é in line 3
    put(folder, "events", ("\n".join(rows) + "\n").encode("latin-1"), rows=26)


def _non_utf8_header(folder):
    put(folder, "events", b"\xff\xfe" + text_of(folder, "events").encode(), rows=26)


def _mixed_line_endings(folder):
    rows = lines_of(folder, "events")
    data = "\r\n".join(rows[:2]) + "\r\n" + rows[2] + "\n" + "\r\n".join(rows[3:]) + "\r\n"
    put(folder, "events", data.encode(), rows=26)


def _long_field(size):
    def damage(folder):
        rows = lines_of(folder, "events")
        rows[1] = rows[1].replace(",page_view,", "," + "x" * size + ",")
        put(folder, "events", ("\n".join(rows) + "\n").encode(), rows=26)
    return damage


def _huge_number(folder):
    rows = lines_of(folder, "events")
    rows[2] = rows[2].removesuffix(",200") + "," + "9" * 40
    put(folder, "events", ("\n".join(rows) + "\n").encode(), rows=26)


def _huge_amount(folder):
    rows = lines_of(folder, "orders")
    rows[1] = rows[1].replace(",25.00,", "," + "9" * 40 + ",")
    put(folder, "orders", ("\n".join(rows) + "\n").encode(), rows=2)


def _unknown_table(folder):
    data = b"refund_id,order_id\nR1,O1\n"
    (folder / "refunds.csv").write_bytes(data)
    edit_manifest(folder, lambda m: m["files"].update(
        {"refunds.csv": {"rows": 1, "sha256": hashlib.sha256(data).hexdigest()}}))


def _escaping_file_name(folder):
    edit_manifest(folder, lambda m: m["files"].update(
        {"../../outside/orders.csv": {"rows": 2, "sha256": "0" * 64}}))


def _symlink_outside(folder):
    outside = folder.parent.parent / "outside.csv"
    outside.write_bytes((folder / "orders.csv").read_bytes())
    (folder / "orders.csv").unlink()
    (folder / "orders.csv").symlink_to(outside)


# What the rest of the day shows without a table's rows: rows referring to them are quarantined.
WITHOUT = {
    "orders": ({"order_items": [(2, "unknown_reference"), (3, "unknown_reference"),
                                (4, "unknown_reference")],
                "payments": [(2, "unknown_reference")]},
               {"staging/order_items:no_unknown_reference": "ERROR",
                "staging/order_items:quarantine_rate": "ERROR",
                "staging/payments:no_unknown_reference": "ERROR",
                "staging/payments:quarantine_rate": "ERROR"}),
    "events": ({}, {"staging/events:partial_load": "WARN"}),
    "payments": ({}, {"quality/recon_row_mismatches:orders_have_captured_payment": "WARN"}),
}


def unreadable(damage, table: str, observed: str) -> Case:
    """A file that cannot be read: its day is refused, naming the file, the line and why."""
    quarantined, failed = WITHOUT[table]
    return Case(damage, errors={"gate_passed": GATE_FAILED}, unreadable={table: observed},
                quarantined=quarantined, gate_passed=False,
                failed_checks={f"raw/{table}:file_readable": "ERROR", **failed})


MANIFEST = "{folder}/_manifest.json"
RAW_STEPS = [f"raw__{t}" for t in TABLE_NAMES] + ["raw__landing_files"]
EVENTS_WARNED = {"staging/events:quarantine_rate": "WARN"}  # 1 of 26 rows: below 5%

CASES = {
    "empty_file": unreadable(
        lambda f: put(f, "payments", b"", rows=0), "payments",
        "{folder}/payments.csv: line 1: no header row (empty file); a table with no rows that day "
        "is sent as its header alone, or left out of the manifest"),
    "header_only": Case(
        lambda f: put(f, "payments", (",".join(HEADERS["payments"]) + "\r\n").encode(), rows=0),
        gate_passed=True,
        # O1 is paid and no payment arrived: the contract's WARN, nothing else
        failed_checks={"quality/recon_row_mismatches:orders_have_captured_payment": "WARN"}),
    "utf8_bom": Case(  # the BOM is not part of the first column's name
        lambda f: put(f, "orders", b"\xef\xbb\xbf" + text_of(f, "orders").encode(), rows=2),
        gate_passed=True,
        also=lambda wh, day: assert_query(
            wh, "SELECT header, unknown_columns FROM raw.landing_files WHERE ingest_date = ? "
            "AND file_name = 'orders.csv'", [day], [(json.dumps(HEADERS["orders"]), "")])),
    "ragged_rows": unreadable(
        _ragged, "orders",
        "{folder}/orders.csv: line 4: cannot be read as CSV: expected 7 fields as in the header, "
        "found 2"),
    "unclosed_quote": unreadable(
        _unclosed_quote, "orders",
        "{folder}/orders.csv: line 3: cannot be read as CSV: a quoted value is never closed "
        "(unterminated quote)"),
    "text_after_closing_quote": unreadable(
        _text_after_quote, "orders",
        "{folder}/orders.csv: line 3: cannot be read as CSV: text follows the closing quote of a "
        "quoted value (only spaces or tabs may)"),
    "non_utf8_row": unreadable(
        _non_utf8_row, "events", "{folder}/events.csv: line 3: cannot be read as CSV: not UTF-8"),
    "non_utf8_header": unreadable(  # raw.landing_files records the file without its header
        _non_utf8_header, "events", "{folder}/events.csv: line 1: the header is not UTF-8"),
    "duplicate_header_name": unreadable(
        lambda f: put(f, "orders", text_of(f, "orders").replace("updated_at\n", "updated_at, Order_ID\n", 1)
                      .replace("Z\n", "Z,X\n").encode(), rows=2), "orders",
        "{folder}/orders.csv: line 1: column name 'Order_ID' appears twice in the header "
        "(columns 1 and 8)"),
    "blank_header_name": unreadable(
        lambda f: put(f, "orders", text_of(f, "orders").replace("\n", ",\n").encode(), rows=2), "orders",
        "{folder}/orders.csv: line 1: column 8 of the header has a blank name"),
    "mixed_line_endings": unreadable(
        _mixed_line_endings, "events",
        "{folder}/events.csv: line 3: cannot be read as CSV: mixed line endings (LF here, CRLF at "
        "line 1); a file uses one kind"),
    "long_field": Case(  # 1 MB: read, kept as received, and rejected for what it is
        _long_field(1_000_000),
        quarantined={"events": [(2, "invalid_value")]},
        gate_passed=True, failed_checks={**EVENTS_WARNED, "staging/events:no_invalid_value": "WARN"},
        also=lambda wh, day: assert_query(
            wh, "SELECT length(event_type), reject_details FROM quality.events_quarantine WHERE ingest_date = ?",
            [day], [(1_000_000, "event_type: invalid_value")])),
    "field_over_reader_limit": unreadable(
        _long_field(3_000_000), "events",
        "{folder}/events.csv: line 2: cannot be read as CSV: a record of 3000036 bytes, longer "
        "than the reader's limit of 2000000 bytes"),
    "huge_numeric_string": Case(  # an integer beyond the supported range (and BIGINT's)
        _huge_number,
        quarantined={"events": [(3, "out_of_range")]},
        gate_passed=True, failed_checks={**EVENTS_WARNED, "staging/events:no_out_of_range": "WARN"}),
    "huge_amount": Case(  # a decimal beyond the supported range: out_of_range, counted as sent
        _huge_amount,
        errors={"gate_passed": GATE_FAILED},
        quarantined={"orders": [(2, "out_of_range")]},
        gate_passed=False,
        failed_checks={"staging/orders:quarantine_rate": "ERROR",
                       "staging/orders:no_out_of_range": "WARN"}),
    "manifest_missing": Case(
        lambda f: (f / "_manifest.json").unlink(),
        errors={s: MANIFEST + ": missing; partition 2025-01-01 is not complete" for s in RAW_STEPS}),
    "manifest_malformed": Case(
        lambda f: (f / "_manifest.json").write_text('{"ingest_date": "2025-01-01", "files": '),
        errors={s: MANIFEST + ": not valid JSON (Expecting value: line 1 column 40 (char 39))"
                for s in RAW_STEPS}),
    "manifest_names_unknown_table": Case(
        _unknown_table,
        errors={"gate_passed": GATE_FAILED},
        gate_passed=False, failed_checks={"raw/landing_files:no_unexpected_files": "ERROR"},
        also=lambda wh, day: assert_query(
            wh, "SELECT observed FROM quality.check_results WHERE partition_key = ? "
            "AND check_name = 'no_unexpected_files'", [day], [("refunds.csv",)])),
    "file_name_escapes_root": Case(
        _escaping_file_name,
        errors={s: MANIFEST + ": file name '../../outside/orders.csv' is not a plain file name in "
                "the partition folder; refusing it" for s in RAW_STEPS}),
    "file_symlinked_outside_root": Case(
        _symlink_outside,
        errors={s: "{folder}/orders.csv: resolves outside the landing root {root}; refusing it"
                for s in ("raw__orders", "raw__landing_files")}),
}


# Cases loaded together, a day each (in this order) in one run over their range; every other case
# (a problem of the whole partition: it fails the raw steps, which read every day of a range)
# runs alone. The days of a group all pass or all are refused, so the run's success is each one's.
GROUPS = [
    # no orders land on any of these days, so on each their items and payments refer to no order
    ("ragged_rows", "unclosed_quote", "text_after_closing_quote", "duplicate_header_name",
     "blank_header_name"),
    # no payment lands before header_only's day; the others load theirs
    ("header_only", "utf8_bom", "long_field", "huge_numeric_string"),
    # no payment lands before empty_file's day; the gate refuses each of these days
    ("empty_file", "non_utf8_row", "non_utf8_header", "mixed_line_endings", "field_over_reader_limit",
     "huge_amount", "manifest_names_unknown_table"),
]


@dataclass
class Loaded:
    """A case's day, after the run that loaded it."""

    result: dg.ExecuteInProcessResult
    warehouse: Warehouse
    landing: Landing
    folder: Path
    day: str
    gate: dict[str, str]  # what fills GATE_FAILED for this run

    def fill(self, text: str) -> str:
        return text.format(folder=self.folder, root=self.landing.root, **self.gate)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, instance):
    """`loaded(name)`: the case's day after its run (its group's run is made once, for all)."""
    runs: dict[str, Loaded] = {}

    def load(name: str) -> Loaded:
        if name not in runs:
            group = next((g for g in GROUPS if name in g), (name,))
            base = tmp_path_factory.mktemp("bad-input")
            landing = Landing(base / "landing")
            wh = Warehouse(landing.root, base / "warehouse.duckdb", instance)
            days = [(date.fromisoformat(DAY) + timedelta(days=i)).isoformat() for i in range(len(group))]
            folders = [landing.write(day, moved_to(day)) for day in days]
            for case_name, folder in zip(group, folders):
                CASES[case_name].damage(folder)
            result = wh.materialize(DAY) if len(group) == 1 else wh.materialize_range(days[0], days[-1])
            refused = [day for case_name, day in zip(group, days) if CASES[case_name].gate_passed is False]
            gate = {"refused": f"{len(refused)} of {len(days)}", "days": ", ".join(refused)}
            runs.update({case_name: Loaded(result, wh, landing, folder, day, gate)
                         for case_name, folder, day in zip(group, folders, days)})
        return runs[name]

    yield load
    for database in {str(run.warehouse.database) for run in runs.values()}:
        release_warehouse(database)


def step_errors(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """The error each failed step shows, without Dagster's class-name prefix."""
    out = {}
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        message = error.message.strip()
        out[event.step_key] = message.split(": ", 1)[1] if message.startswith("dagster.") else message
    return out


def assert_nothing_lost(wh: Warehouse, folder: Path, day: str, unreadable: dict[str, str]) -> None:
    """Every row the source says it sent is in raw, and every raw row in staging or quarantine;
    a file that cannot be read lands no row, and its day's file_readable says why."""
    sent = json.loads((folder / "_manifest.json").read_text())["files"]
    for t, observed in unreadable.items():
        assert wh.check(day, f"raw/{t}", "file_readable")[3] == observed
    for t in TABLE_NAMES:
        [(raw, staged, quarantined)] = wh.query(
            f"""SELECT (SELECT count(*) FROM raw.{t} WHERE ingest_date = ?),
                       (SELECT count(*) FROM staging.{t} WHERE ingest_date = ?),
                       (SELECT count(*) FROM quality.{t}_quarantine WHERE ingest_date = ?)""",
            [day] * 3)
        assert raw == staged + quarantined, (t, raw, staged, quarantined)
        assert raw == (0 if t in unreadable else sent[f"{t}.csv"]["rows"]), (t, raw)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_through_the_whole_pipeline(name, loaded):
    case, run = CASES[name], loaded(name)
    result, warehouse, folder, day = run.result, run.warehouse, run.folder, run.day

    expected = {step: run.fill(text) for step, text in case.errors.items()}
    assert step_errors(result) == expected
    assert result.success == (not expected)
    for step, message in expected.items():
        if step.startswith("raw__"):  # a landing problem: one line, naming the file
            assert "\n" not in message and str(folder) in message
    if case.gate_passed is None:
        return
    unread = {t: run.fill(text) for t, text in case.unreadable.items()}
    assert_nothing_lost(warehouse, folder, day, unread)
    for t in TABLE_NAMES:
        rows = warehouse.query(
            f"SELECT source_line, reject_reason FROM quality.{t}_quarantine WHERE ingest_date = ? "
            "ORDER BY source_line", [day])
        assert rows == case.quarantined.get(t, []), t
    [(passed,)] = warehouse.query("SELECT gate_passed FROM quality.partition_gate WHERE ingest_date = ?", [day])
    assert passed == case.gate_passed
    refused = {"quality/partition_gate:gate_passed": "ERROR"} if not case.gate_passed else {}
    assert {k: sev for k, (sev, _) in warehouse.failed_checks(day).items()} == {**case.failed_checks, **refused}
    if case.also:
        case.also(warehouse, day)


def assert_query(wh: Warehouse, sql: str, params: list, expected: list[tuple]) -> None:
    assert wh.query(sql, params) == expected


@pytest.mark.parametrize("key", ["1999-01-01", "../../etc", "2025-01-01/../../etc", "20250101"])
def test_a_partition_key_outside_the_definition_is_refused_in_process(key, landing, warehouse):
    landing.write(DAY, DAY1)
    with pytest.raises(dg.DagsterUnknownPartitionError, match=re.escape(f"Could not find a partition with key `{key}`")):
        warehouse.materialize(key)
    assert not warehouse.database.exists()
    if key != "1999-01-01":
        with pytest.raises(ValueError, match="is not a date"):
            LandingZone(root=str(landing.root)).manifest(key)


def test_a_partition_key_outside_the_definition_fails_the_cli(landing, tmp_path):
    landing.write(DAY, DAY1)
    env = {**os.environ, "DQ_LANDING": str(landing.root), "DQ_WAREHOUSE": str(tmp_path / "wh.duckdb"),
           "DAGSTER_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "dq_assets",
         "--select", "*", "--partition", "1999-01-01"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "partition key `1999-01-01`" in last and "PartitionsDefinition" in last, done.stderr[-2000:]
    assert not (tmp_path / "wh.duckdb").exists()
