"""Lineage names the physical line of a row, whatever empty lines or quoted newlines come before
it, through the real CLI (the reader skips an empty line without counting it).

Both line endings are a day each of one landing zone, loaded by one `--partition-range` run (a
CLI run is the expensive part); each case asserts on its own day."""

import re

import duckdb
import pytest

from dq_assets_tests.conftest import DAY1, HEADERS, Landing, csv_text, materialize_cli

DAY_OF = {"\n": "2025-01-01", "\r\n": "2025-01-02"}  # line ending -> the day landed with it


def lines_of(text: str) -> list[str]:
    return text.split("\n")


def orders_with_empty_lines(ending: str) -> str:
    orders = lines_of(csv_text(HEADERS["orders"], DAY1["orders"] + [
        ["O3", "C1", "2025-01-01T12:00:00Z", "pending", "EUR", "1.00", "2025-01-01T12:00:00Z"],
        ["O4", "C1", "2025-01-01T13:00:00Z", "paid", "EUR", "2.00", "2025-01-01T13:00:00Z"],
    ]).rstrip("\n"))
    # header, an empty line right after it, two rows, two empty lines, a quoted newline, the
    # invalid row: header 1, empty 2, O1 3, O2 4, empty 5-6, O2b 7-8, O3 9, O4 10
    quoted = 'O2b,C2,2025-01-01T11:30:00Z,"pla\nced",EUR,1.00,2025-01-01T11:30:00Z'
    return ending.join([orders[0], "", orders[1], orders[2], "", "", quoted.replace("\n", ending),
                        orders[3], orders[4]]) + ending


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, dagster_home):
    """Every day landed, and the one CLI run over them: (run, warehouse, {day: folder})."""
    base = tmp_path_factory.mktemp("source-lines")
    landing = Landing(base / "landing")
    folders = {day: landing.write(day, {**DAY1, "orders": orders_with_empty_lines(ending)},
                                  manifest_override={"orders.csv": {"rows": 5, "amount_sum": "39.00"}})
               for ending, day in DAY_OF.items()}
    days = sorted(folders)
    done = materialize_cli(dagster_home, landing.root, base / "wh.duckdb",
                           "--partition-range", f"{days[0]}...{days[-1]}")
    return done, base / "wh.duckdb", folders


@pytest.mark.parametrize("ending", list(DAY_OF), ids=["LF", "CRLF"])
def test_rejected_rows_name_their_physical_line_after_empty_lines(loaded, ending):
    done, warehouse, folders = loaded
    day = DAY_OF[ending]
    assert (folders[day] / "orders.csv").read_bytes().count(ending.encode()) == 10
    # two invalid rows of five: the quarantine rate fails the gate; the rows are where they belong
    verdict = next((line for line in done.stderr.splitlines() if line.startswith("dq_assets gate")), "")
    assert done.returncode == 1 and verdict.startswith("dq_assets gate FAILED"), done.stderr[-3000:]
    assert re.search(rf"(: |; ){day} refused \([^)]*staging/orders:quarantine_rate", verdict), verdict
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        quarantined = conn.execute("SELECT order_id, source_line, reject_reason FROM quality.orders_quarantine "
                                   "WHERE ingest_date = ?", [day]).fetchall()
        staged = dict(conn.execute("SELECT order_id, source_line FROM raw.orders WHERE ingest_date = ?",
                                   [day]).fetchall())
    assert sorted(quarantined) == [("O2b", 7, "invalid_value"), ("O3", 9, "invalid_value")]
    assert staged == {"O1": 3, "O2": 4, "O2b": 7, "O3": 9, "O4": 10}
