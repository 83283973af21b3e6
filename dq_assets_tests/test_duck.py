"""The DuckDB databases of a run: memory limit from the environment."""

import pytest

from dq_assets.duck import memory_limit


def test_the_memory_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("DQ_DUCKDB_MEMORY_LIMIT", raising=False)
    assert memory_limit() == "512MB"
    monkeypatch.setenv("DQ_DUCKDB_MEMORY_LIMIT", "2GB")
    assert memory_limit() == "2GB"


@pytest.mark.parametrize("value", ["lots", "2 GB; SET x=1", "-1GB"])
def test_a_memory_limit_that_is_not_a_size_is_refused(monkeypatch, value):
    monkeypatch.setenv("DQ_DUCKDB_MEMORY_LIMIT", value)
    with pytest.raises(ValueError, match="not a size"):
        memory_limit()


def test_the_in_memory_database_runs_with_the_limit():
    from dq_assets.duck import connect_duckdb

    # opened once per process, with the default 512MB (the suite sets no other)
    assert connect_duckdb().execute("SELECT current_setting('memory_limit')").fetchall() == [("488.2 MiB",)]
