"""DuckDB lets one process at a time write a file: a second run waits instead of failing."""

import subprocess
import sys
import time

from dq_assets.storage.duckdb.warehouse import release_warehouse, warehouse_connection

HOLDER = """
import sys, time
from dq_assets.storage.duckdb.warehouse import release_warehouse, warehouse_connection
with warehouse_connection(sys.argv[1]) as c:
    c.execute("CREATE TABLE t AS SELECT 42 AS answer")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
release_warehouse()
"""


def test_a_second_process_waits_for_the_lock(tmp_path, monkeypatch):
    db = str(tmp_path / "w.duckdb")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, db, "2"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    started = time.monotonic()
    with warehouse_connection(db) as conn:
        assert conn.execute("SELECT answer FROM t").fetchall() == [(42,)]
    assert time.monotonic() - started > 0.5  # it had to wait
    holder.wait(timeout=30)
    release_warehouse(db)


def test_waiting_gives_up_with_a_clear_error(tmp_path, monkeypatch):
    import duckdb
    import pytest

    db = str(tmp_path / "w.duckdb")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, db, "5"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    monkeypatch.setenv("DQ_WAREHOUSE_LOCK_WAIT", "0.5")
    with pytest.raises(duckdb.IOException, match="w.duckdb.*lock"):
        with warehouse_connection(db):
            pass
    holder.kill()
    holder.wait()
