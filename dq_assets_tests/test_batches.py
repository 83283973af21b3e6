"""PartitionBatches: what a producer may hand the IO managers."""

from datetime import date

import pyarrow as pa
import pytest

from dq_assets.storage.batches import PartitionBatches


def rows(*days: str) -> pa.Table:
    return pa.table({"ingest_date": pa.array([date.fromisoformat(d) for d in days], pa.date32()),
                     "v": pa.array(range(len(days)), pa.int64())})


def test_partitions_come_one_at_a_time_and_kept_ones_are_skipped():
    produced, reported = [], {}

    def produce(key):
        produced.append(key)
        return None if key == "2025-01-02" else rows(*[key] * (1 if key == "2025-01-01" else 3))

    batches = PartitionBatches(["2025-01-01", "2025-01-02", "2025-01-03"], produce,
                               describe=lambda key: {"seen": len(produced), "day": key},
                               report=reported.__setitem__)
    it = iter(batches)
    assert next(it)[0] == "2025-01-01" and produced == ["2025-01-01"]  # lazily, in order
    assert [k for k, _ in it] == ["2025-01-03"]
    batches.finish(lambda key: {"Query": f"... {key}"})
    # each written partition's own figures, none for the kept one, nothing summed over the range
    assert reported == {
        "2025-01-01": {"dagster/partition_row_count": 1, "rows": 1, "Query": "... 2025-01-01",
                       "seen": 3, "day": "2025-01-01"},
        "2025-01-03": {"dagster/partition_row_count": 3, "rows": 3, "Query": "... 2025-01-03",
                       "seen": 3, "day": "2025-01-03"}}
    assert batches.rows == 4


def test_a_range_run_records_each_partitions_own_metadata(tmp_path):
    """What the UI shows on a partition's page after a range run is that partition's figures."""
    import dagster as dg

    from dq_assets.partitions import DAILY
    from dq_assets.storage.duckdb.io_manager import WarehouseIOManager
    from dq_assets.storage.duckdb.warehouse import release_warehouse

    sizes = {"2025-01-01": 1, "2025-01-02": 4, "2025-01-03": 2}

    @dg.asset(key=["raw", "numbers"], partitions_def=DAILY, metadata={"partition_expr": "ingest_date"},
              backfill_policy=dg.BackfillPolicy.single_run())
    def numbers(context):
        return PartitionBatches.for_asset(context, context.asset_key, lambda k: rows(*[k] * sizes[k]),
                                          describe=lambda k: {"double": 2 * sizes[k]})

    database = str(tmp_path / "wh.duckdb")
    result = dg.materialize([numbers], resources={"io_manager": WarehouseIOManager(database=database)},
                            tags={"dagster/asset_partition_range_start": "2025-01-01",
                                  "dagster/asset_partition_range_end": "2025-01-03"})
    release_warehouse(database)
    shown = {m.partition: {k: m.metadata[k].value for k in ("dagster/partition_row_count", "rows", "double", "Query")}
             for m in result.asset_materializations_for_node("raw__numbers")}
    assert shown == {k: {"dagster/partition_row_count": n, "rows": n, "double": 2 * n,
                         "Query": f"SELECT * FROM raw.numbers WHERE ingest_date = DATE '{k}'"}
                     for k, n in sizes.items()}


def test_rows_of_another_partition_are_refused():
    batches = PartitionBatches(["2025-01-01"], lambda key: rows(key, "2025-01-05"))
    with pytest.raises(ValueError, match=r"2025-01-05.*in partition 2025-01-01"):
        list(batches)
    undated = pa.table({"ingest_date": pa.array([date(2025, 1, 1), None], pa.date32()), "v": [1, 2]})
    with pytest.raises(ValueError, match=r"None.*in partition 2025-01-01"):
        list(PartitionBatches(["2025-01-01"], lambda key: undated))


def test_an_output_is_written_once():
    batches = PartitionBatches(["2025-01-01"], rows)
    list(batches)
    with pytest.raises(RuntimeError, match="once"):
        list(batches)


def test_small_partitions_are_grouped_and_a_group_closes_at_the_row_budget(monkeypatch):
    import dq_assets.storage.batches as batches

    monkeypatch.setattr(batches, "CHUNK_ROWS", 3)
    days = ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]
    sizes = {"2025-01-01": 1, "2025-01-02": 1, "2025-01-03": 5, "2025-01-04": 1}
    groups = list(PartitionBatches(days, lambda key: rows(*[key] * sizes[key])).groups())
    assert [(keys, data.num_rows) for keys, data in groups] == [
        (["2025-01-01", "2025-01-02", "2025-01-03"], 7), (["2025-01-04"], 1)]


def test_a_range_written_to_duckdb_holds_one_group_at_a_time(tmp_path, monkeypatch):
    """DuckDB keeps every Arrow table a transaction scanned alive until the transaction ends;
    the warehouse commits each group, so a year-long range does not hold every group."""
    import gc
    import weakref

    import dagster as dg

    import dq_assets.storage.batches as batches
    from dq_assets.partitions import DAILY
    from dq_assets.storage.duckdb.io_manager import WarehouseIOManager
    from dq_assets.storage.duckdb.warehouse import release_warehouse, warehouse_connection

    monkeypatch.setattr(batches, "CHUNK_ROWS", 2)  # each day (2 rows) is a group of its own
    days = ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]
    earlier: list[weakref.ref] = []
    alive_when_produced = []

    def produce(key):
        gc.collect()
        alive_when_produced.append(sum(r() is not None for r in earlier))
        data = rows(key, key)
        earlier.append(weakref.ref(data))
        return data

    @dg.asset(key=["raw", "numbers"], partitions_def=DAILY, metadata={"partition_expr": "ingest_date"},
              backfill_policy=dg.BackfillPolicy.single_run())
    def numbers(context) -> PartitionBatches:
        return PartitionBatches(context.partition_keys, produce)

    database = str(tmp_path / "wh.duckdb")
    result = dg.materialize([numbers], resources={"io_manager": WarehouseIOManager(database=database)},
                            tags={"dagster/asset_partition_range_start": days[0],
                                  "dagster/asset_partition_range_end": days[-1]})
    assert result.success
    # when a day is produced, only the day written just before is still referenced (by the
    # writer's loop); before the per-group commits every earlier day was: [0, 1, 2, 3]
    assert alive_when_produced == [0, 1, 1, 1]
    with warehouse_connection(database) as conn:
        stored = conn.execute("SELECT CAST(ingest_date AS VARCHAR), count(*) FROM raw.numbers "
                              "GROUP BY ALL ORDER BY ALL").fetchall()
    release_warehouse(database)
    assert stored == [(d, 2) for d in days]


def test_a_chunk_producer_reads_and_computes_once_per_chunk(monkeypatch):
    import dq_assets.storage.batches as batches
    from dq_assets.storage.batches import PartitionReader, chunk_producer

    monkeypatch.setattr(batches, "CHUNK_ROWS", 4)  # 2 rows a day: chunks of 1, then 2 days
    days = ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04", "2025-01-05"]
    reads, computed = [], []

    def read_many(keys):
        reads.append(list(keys))
        return rows(*[k for k in keys for _ in range(2)])

    def compute(chunk, data):
        computed.append(chunk)
        return data.set_column(1, "v", pa.array([len(chunk)] * data.num_rows, pa.int64()))

    produce = chunk_producer(days, PartitionReader(days, read_many, None), compute)
    out = {k: produce(k) for k in days}
    assert reads == computed == [["2025-01-01"], ["2025-01-02", "2025-01-03"], ["2025-01-04", "2025-01-05"]]
    assert {k: (t.num_rows, t.column("ingest_date")[0].as_py().isoformat(), t.column("v")[0].as_py())
            for k, t in out.items()} == {
        "2025-01-01": (2, "2025-01-01", 1), "2025-01-02": (2, "2025-01-02", 2),
        "2025-01-03": (2, "2025-01-03", 2), "2025-01-04": (2, "2025-01-04", 2),
        "2025-01-05": (2, "2025-01-05", 2)}


def test_rows_handed_over_are_freed_before_the_compute_returns():
    """With `hand_over`, the producer keeps no reference to a chunk's rows: once compute has
    taken and dropped them, their memory is free while it goes on (the staging step's raw rows
    are gone before its staging rows are fetched)."""
    from dq_assets.storage.batches import PartitionReader, chunk_producer

    day, n = "2025-01-01", 2_000_000
    allocated = {}

    def read_many(keys):
        return pa.table({"ingest_date": pa.array([date.fromisoformat(day)] * n, pa.date32()),
                         "v": pa.array(range(n), pa.int64())})

    def compute(chunk, handed):
        data = handed.take()
        allocated["holding"] = pa.total_allocated_bytes()
        out = pa.Table.from_pylist(data.slice(0, 1).to_pylist(), schema=data.schema)  # a copy
        del data
        allocated["after"] = pa.total_allocated_bytes()
        return out

    for hand_over, freed in ((True, True), (False, False)):
        wrap = compute if hand_over else (lambda chunk, rows: compute(chunk, _Held(rows)))
        produce = chunk_producer([day], PartitionReader([day], read_many, None), wrap, hand_over=hand_over)
        assert produce(day).num_rows == 1
        # 2M rows of a date and an int64: 24 MB, freed or not while compute still runs
        assert (allocated["holding"] - allocated["after"] > 20_000_000) is freed


class _Held:
    """The rows as a producer without hand-over passes them: still referenced by its frame."""

    def __init__(self, rows):
        self.rows = rows

    def take(self):
        return self.rows


def test_a_pending_version_is_read_downstream_and_current_once_published(tmp_path):
    """A raw partition written as pending (dq_assets.storage.batches) is what the step downstream reads,
    even with no rows; it becomes the partition of raw.<table> only in the transaction of the
    output that publishes it, and leaves nothing pending behind."""
    import dagster as dg
    import duckdb

    from dq_assets.partitions import DAILY
    from dq_assets.storage.batches import PartitionReader
    from dq_assets.storage.duckdb.io_manager import WarehouseIOManager
    from dq_assets.storage.duckdb.warehouse import release_warehouse

    day, sent = "2025-01-01", {"rows": 2}

    @dg.asset(key=["raw", "numbers"], partitions_def=DAILY, metadata={"partition_expr": "ingest_date"})
    def numbers(context):
        return PartitionBatches.for_asset(context, context.asset_key, lambda k: rows(*[k] * sent["rows"]),
                                          pending=True)

    @dg.asset(key=["staging", "numbers"], partitions_def=DAILY, metadata={"partition_expr": "ingest_date"},
              ins={"raw": dg.AssetIn(key=["raw", "numbers"], dagster_type=PartitionReader)})
    def staged(context, raw: PartitionReader):
        return PartitionBatches.for_asset(context, context.asset_key, raw.read, publishes=[raw.publication()])

    database = str(tmp_path / "wh.duckdb")

    def run(*assets) -> dict:
        result = dg.materialize([numbers, staged], selection=list(assets), partition_key=day,
                                resources={"io_manager": WarehouseIOManager(database=database)})
        assert result.success
        release_warehouse(database)
        with duckdb.connect(database, read_only=True) as conn:
            count = lambda name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]  # noqa: E731
            return {name: count(name) for name in ("raw.numbers", "staging.numbers", "raw_pending.numbers",
                                                   "raw_pending.pending_partitions")}

    assert run(numbers, staged) == {"raw.numbers": 2, "staging.numbers": 2, "raw_pending.numbers": 0,
                                    "raw_pending.pending_partitions": 0}
    sent["rows"] = 0  # the day sent again, without the file: raw written, its staging not yet
    assert run(numbers) == {"raw.numbers": 2, "staging.numbers": 2, "raw_pending.numbers": 0,
                            "raw_pending.pending_partitions": 1}
    # staging alone reads the pending version (no rows, not the current two) and publishes it
    assert run(staged) == {"raw.numbers": 0, "staging.numbers": 0, "raw_pending.numbers": 0,
                           "raw_pending.pending_partitions": 0}
