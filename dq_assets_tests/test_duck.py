"""The DuckDB databases of a run: memory limit from the environment."""

import pytest

from dq_assets.storage.duckdb.warehouse import memory_limit


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
    from dq_assets.storage.duckdb.warehouse import connect_duckdb

    # opened once per process, with the default 256MB (the suite sets no other)
    assert connect_duckdb().execute("SELECT current_setting('memory_limit')").fetchall() == [("244.1 MiB",)]


def test_fetch_arrow_streams_every_batch_in_order(monkeypatch):
    import dq_assets.storage.duckdb.warehouse as duck

    monkeypatch.setattr(duck, "ARROW_BATCH_ROWS", 1000)
    conn = duck.connect_duckdb()
    table = duck.fetch_arrow(conn, "SELECT i, 'v' || i AS s FROM range(2500) t(i) ORDER BY i")
    assert table.num_rows == 2500
    assert table.column("i").to_pylist() == list(range(2500))
    assert table.column("s")[2499].as_py() == "v2499"


def test_a_record_table_gains_the_columns_new_records_bring(tmp_path):
    """A warehouse written before a record gained a field (partition_gate's inputs_version,
    partition_profiles' revenue_at_risk) takes the new rows: the field is added, older rows NULL."""
    from datetime import date

    import pyarrow as pa

    from dq_assets.storage.batches import PartitionBatches
    from dq_assets.storage.duckdb.quality_store import DuckDBQualityStore
    from dq_assets.storage.duckdb.warehouse import release_warehouse, warehouse_connection

    database = str(tmp_path / "wh.duckdb")
    store = DuckDBQualityStore(database=database)
    store.append("partition_profiles", pa.table({"partition_key": ["2025-01-01"], "raw_rows": [1]}))
    store.append("partition_profiles", pa.table({"partition_key": ["2025-01-02"], "raw_rows": [2],
                                                 "revenue_at_risk": [1.5]}))

    def day(d: int, **extra) -> pa.Table:
        return pa.table({"ingest_date": pa.array([date(2025, 1, d)], pa.date32()), "v": [d],
                         **{k: [x] for k, x in extra.items()}})

    with store.publishing() as publication:
        publication.replace_partitions("quality", "gate", "ingest_date", PartitionBatches(["2025-01-01"], lambda k: day(1)))
    with store.publishing() as publication:
        publication.replace_partitions("quality", "gate", "ingest_date",
                                       PartitionBatches(["2025-01-02", "2025-01-03"], lambda k: day(int(k[-1]), version=k)))
    with warehouse_connection(database) as conn:
        profiles = conn.execute("SELECT partition_key, raw_rows, revenue_at_risk FROM quality.partition_profiles "
                                "ORDER BY 1").fetchall()
        gate = conn.execute("SELECT v, version FROM quality.gate ORDER BY 1").fetchall()
    release_warehouse(database)
    assert profiles == [("2025-01-01", 1, None), ("2025-01-02", 2, 1.5)]
    assert gate == [(1, None), (2, "2025-01-02"), (3, "2025-01-03")]
