"""Lineage names the physical line of a row, whatever empty lines or quoted newlines come before
it, through the real CLI (the reader skips an empty line without counting it)."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from dq_assets_tests.conftest import DAY1, HEADERS, Landing, csv_text

REPO = Path(__file__).resolve().parent.parent


def lines_of(text: str) -> list[str]:
    return text.split("\n")


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_rejected_rows_name_their_physical_line_after_empty_lines(tmp_path, ending):
    orders = lines_of(csv_text(HEADERS["orders"], DAY1["orders"] + [
        ["O3", "C1", "2025-01-01T12:00:00Z", "pending", "EUR", "1.00", "2025-01-01T12:00:00Z"],
        ["O4", "C1", "2025-01-01T13:00:00Z", "paid", "EUR", "2.00", "2025-01-01T13:00:00Z"],
    ]).rstrip("\n"))
    # header, an empty line right after it, two rows, two empty lines, a quoted newline, the
    # invalid row: header 1, empty 2, O1 3, O2 4, empty 5-6, O2b 7-8, O3 9, O4 10
    quoted = 'O2b,C2,2025-01-01T11:30:00Z,"pla\nced",EUR,1.00,2025-01-01T11:30:00Z'
    text = ending.join([orders[0], "", orders[1], orders[2], "", "", quoted.replace("\n", ending),
                        orders[3], orders[4]]) + ending
    landing = Landing(tmp_path / "landing")
    folder = landing.write("2025-01-01", {**DAY1, "orders": text},
                           manifest_override={"orders.csv": {"rows": 5, "amount_sum": "39.00"}})
    assert (folder / "orders.csv").read_bytes().count(ending.encode()) == 10
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    (tmp_path / "home").mkdir()
    env.update(DAGSTER_HOME=str(tmp_path / "home"), DQ_LANDING=str(landing.root),
               DQ_WAREHOUSE=str(tmp_path / "wh.duckdb"), DQ_ALERT_SINKS="none")
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "dq_assets", "--select", "*",
         "--partition", "2025-01-01", "-c", str(REPO / "dq_assets" / "console.yaml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    # two invalid rows of five: the quarantine rate fails the gate; the rows are where they belong
    assert done.returncode == 1 and "gate FAILED" in done.stderr, done.stderr[-3000:]
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as conn:
        quarantined = conn.execute(
            "SELECT order_id, source_line, reject_reason FROM quality.orders_quarantine").fetchall()
        staged = dict(conn.execute("SELECT order_id, source_line FROM raw.orders").fetchall())
    assert sorted(quarantined) == [("O2b", 7, "invalid_value"), ("O3", 9, "invalid_value")]
    assert staged == {"O1": 3, "O2": 4, "O2b": 7, "O3": 9, "O4": 10}
