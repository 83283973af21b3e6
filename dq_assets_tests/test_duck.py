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


# ------------------------------------------------------------------ raw versions


def _rows(conn, sql: str) -> list:
    return sorted(conn.execute(sql).fetchall(), key=repr)


def _day(day: str, *values: str):
    import datetime

    import pyarrow as pa

    return pa.table({"ingest_date": pa.array([datetime.date.fromisoformat(day)] * len(values)),
                     "v": pa.array(list(values), pa.string())})


def test_publishing_a_pending_version_copies_no_row_and_drops_the_superseded_one():
    """Each row written is stored once (in raw_versions.<table>): publishing switches which
    version of a partition raw.<table> shows, and deletes the rows of the one it supersedes;
    a pending version written again replaces the earlier pending one."""
    import duckdb

    from dq_assets.storage.duckdb.warehouse import pending_partitions, publish_pending, write_pending

    conn = duckdb.connect()
    write_pending(conn, "raw", "t", "ingest_date", ["2025-01-01"], _day("2025-01-01", "a1", "a2"))
    publish_pending(conn, "raw", "t", "ingest_date", ["2025-01-01"])
    assert _rows(conn, "SELECT v FROM raw.t") == [("a1",), ("a2",)]
    # a second version, written twice before it is published: only the last one stays pending
    write_pending(conn, "raw", "t", "ingest_date", ["2025-01-01"], _day("2025-01-01", "b1"))
    write_pending(conn, "raw", "t", "ingest_date", ["2025-01-01"], _day("2025-01-01", "c1", "c2", "c3"))
    assert _rows(conn, "SELECT v FROM raw.t") == [("a1",), ("a2",)]  # readers see the current one
    assert _rows(conn, "SELECT v FROM raw_pending.t") == [("c1",), ("c2",), ("c3",)]
    assert _rows(conn, "SELECT v FROM raw_versions.t") == [("a1",), ("a2",), ("c1",), ("c2",), ("c3",)]
    assert pending_partitions(conn, "raw", "t") == ["2025-01-01"]
    publish_pending(conn, "raw", "t", "ingest_date", ["2025-01-01"])
    assert _rows(conn, "SELECT v FROM raw.t") == [("c1",), ("c2",), ("c3",)]
    assert _rows(conn, "SELECT v FROM raw_versions.t") == [("c1",), ("c2",), ("c3",)]  # each once
    assert _rows(conn, "SELECT * FROM raw_pending.t") == []
    assert _rows(conn, "SELECT * FROM raw_pending.pending_partitions") == []
    # the views show the table's own columns, not the version number
    assert [c for (c,) in conn.execute("SELECT column_name FROM (DESCRIBE raw.t)").fetchall()] == ["ingest_date", "v"]


def test_a_warehouse_from_before_versions_is_moved_in_with_its_pending_rows():
    """A warehouse whose raw.<table> is a table and whose pending rows wait in
    raw_pending.<table>: its first read moves both into versions, nothing lost, the pending
    rows read as the latest version, the current ones still shown by raw.<table>."""
    import duckdb

    from dq_assets.storage.duckdb.warehouse import latest_versions_query, publish_pending, versioned

    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA raw; CREATE SCHEMA raw_pending")
    conn.execute("CREATE TABLE raw.t AS SELECT DATE '2025-01-01' AS ingest_date, 'old' AS v "
                 "UNION ALL SELECT DATE '2025-01-02', 'kept'")
    conn.execute("CREATE TABLE raw_pending.t AS SELECT DATE '2025-01-01' AS ingest_date, 'new' AS v")
    conn.execute("CREATE TABLE raw_pending.pending_partitions AS SELECT 't' AS table_name, "
                 "DATE '2025-01-01' AS partition_date UNION ALL SELECT 't', DATE '2025-01-03'")
    assert versioned(conn, "raw", "t", "ingest_date")
    latest = latest_versions_query("raw", "t", "v", "ingest_date", "true")
    assert _rows(conn, latest.replace("?", "'t'")) == [("kept",), ("new",)]
    assert _rows(conn, "SELECT v FROM raw.t") == [("kept",), ("old",)]
    assert _rows(conn, "SELECT CAST(partition_date AS VARCHAR) FROM raw_pending.pending_partitions") == [
        ("2025-01-01",), ("2025-01-03",)]  # a pending day without rows stays pending
    publish_pending(conn, "raw", "t", "ingest_date", ["2025-01-01", "2025-01-03"])
    assert _rows(conn, "SELECT v FROM raw.t") == [("kept",), ("new",)]
