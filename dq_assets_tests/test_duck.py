"""The DuckDB databases of a run: memory limit from the environment."""

import pytest

from dq_assets.duck import memory_limit


def test_the_memory_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("DQ_DUCKDB_MEMORY_LIMIT", raising=False)
    assert memory_limit() == "256MB"
    monkeypatch.setenv("DQ_DUCKDB_MEMORY_LIMIT", "2GB")
    assert memory_limit() == "2GB"


@pytest.mark.parametrize("value", ["lots", "2 GB; SET x=1", "-1GB"])
def test_a_memory_limit_that_is_not_a_size_is_refused(monkeypatch, value):
    monkeypatch.setenv("DQ_DUCKDB_MEMORY_LIMIT", value)
    with pytest.raises(ValueError, match="not a size"):
        memory_limit()


def test_the_in_memory_database_runs_with_the_limit():
    from dq_assets.duck import connect_duckdb

    # opened once per process, with the default 256MB (the suite sets no other)
    assert connect_duckdb().execute("SELECT current_setting('memory_limit')").fetchall() == [("244.1 MiB",)]


def test_fetch_arrow_streams_every_batch_in_order(monkeypatch):
    import dq_assets.duck as duck

    monkeypatch.setattr(duck, "ARROW_BATCH_ROWS", 1000)
    conn = duck.connect_duckdb()
    table = duck.fetch_arrow(conn, "SELECT i, 'v' || i AS s FROM range(2500) t(i) ORDER BY i")
    assert table.num_rows == 2500
    assert table.column("i").to_pylist() == list(range(2500))
    assert table.column("s")[2499].as_py() == "v2499"
