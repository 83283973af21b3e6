"""Partition-at-a-time data between the heavy steps and the IO managers.

A step over a range of partitions (a single-run backfill) must not hold the whole range in
memory. So the raw and staging steps hand their IO manager a `PartitionBatches`: a producer
that builds one partition's rows when asked. The IO manager writes each partition (or a
group of small ones) as it comes: a transaction per group on DuckDB, the output's one
transaction on PostgreSQL, one object per partition on S3. So a step holds about one
partition at a time, however long its range. A downstream step asks for a
`PartitionReader` instead of a frame and reads one partition at a time from the store.

Raw is written as a *pending* version (`PartitionBatches.pending`): its readers downstream
read it, but it becomes the current contents of the raw table only when the staging step of
the same table publishes it (`PartitionBatches.publishes`) in the transaction that writes
staging and quarantine of those partitions. So raw = staging + quarantine holds at every
moment, whatever step a run dies in. On DuckDB every version's rows are stored once
(`raw_versions.<table>`) and the publication switches which version `raw.<table>` shows, no row
copied (see dq_assets.storage.duckdb.warehouse); on S3 each write is a new object, and the
publication records which object is current (see dq_assets.storage.s3.io_manager).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from dq_assets.storage.column_schema import written_column_schema
from dq_assets.storage.duckdb.warehouse import partition_query

PARTITION_COLUMN = "ingest_date"  # every partitioned table's partition column, in every store

# A chunk of partitions processed together holds about this many input rows: big enough that
# a day of a small shop does not pay a query's fixed cost per partition, small enough that a
# chunk of big days stays one day.
CHUNK_ROWS = 1_000_000
MAX_CHUNK = 64


def not_materialized(table: str, where: str = "in the warehouse") -> dg.Failure:
    """The error of an input whose table no run has written yet (every IO manager's)."""
    return dg.Failure(f"{table} does not exist {where} yet: materialize it first.")


def run_partition_keys(context) -> list[str]:
    """The run's partition keys; a range whose first day comes after its last is refused here,
    before a step reads or writes anything (Dagster would run every step over no partition)."""
    keys = list(context.partition_keys)
    if not keys:
        r = context.partition_key_range
        raise dg.Failure(description=f"partition range {r.start}...{r.end} holds no day: its first "
                         f"day comes after its last (did you mean {r.end}...{r.start}?)",
                         allow_retries=False)
    return keys


@dataclass
class PendingPublication:
    """Pending versions of partitions of `asset_key` (written by an earlier step) that become
    current in the transaction of the output that names this publication, partition by
    partition as that output writes them. `versions`: partition -> the version read, for a
    store other than the output's (S3: the object; the output's store records it as current);
    empty when the pending version is in the output's own store (DuckDB: moved in)."""

    asset_key: dg.AssetKey
    versions: dict[str, str] = field(default_factory=dict)


@dataclass
class PartitionBatches:
    """The output of a step, produced one partition at a time by `produce(partition_key)`.
    A producer returns None for a partition whose stored contents must stay as they are.

    What Dagster shows per partition is that partition's own figures: after writing, the IO
    manager calls `finish`, which hands each written partition's metadata (its rows, where it
    is stored, and what `describe(partition_key)` adds) to `report`, the asset's
    `context.add_asset_metadata` for that partition (see `for_asset`). Dagster copies an
    output's metadata onto the event of every partition of a range, so nothing range-wide
    goes there."""

    partition_keys: Sequence[str]
    produce: Callable[[str], pa.Table | None]
    # A partition's own metadata, known once it was produced (called after writing).
    describe: Callable[[str], dict] | None = None
    # Where each written partition's metadata goes.
    report: Callable[[str, dict], None] | None = None
    rows_by_partition: dict[str, int] = field(default_factory=dict)
    schema: pa.Schema | None = None  # of the rows produced (the columns the IO manager wrote)
    asset_key: dg.AssetKey | None = None
    # Other outputs of the step whose partitions must become visible together with these
    # (staging and its quarantine must always add up to raw): the IO manager writes each group
    # of partitions of all of them in one transaction. Those outputs, yielded afterwards, are
    # then only recorded: their `written_with` names the output that wrote them.
    together: list[PartitionBatches] = field(default_factory=list)
    written_with: dg.AssetKey | None = None
    # Written as a pending version of each partition: current once a later output publishes it.
    pending: bool = False
    # Pending partitions of other assets made current with each group of these (see PendingPublication).
    publishes: list[PendingPublication] = field(default_factory=list)
    _done: bool = field(default=False, repr=False)

    @classmethod
    def for_asset(cls, context, asset_key, produce: Callable[[str], pa.Table | None],
                  describe: Callable[[str], dict] | None = None,
                  partition_keys: Sequence[str] | None = None,
                  together: Sequence[PartitionBatches] = (), pending: bool = False,
                  publishes: Sequence[PendingPublication] = ()) -> PartitionBatches:
        """The output of asset `asset_key` over the step's partitions, each partition's
        metadata recorded on that partition's materialization; `together`, `pending` and
        `publishes`: see the fields."""
        for other in together:
            other.written_with = asset_key
        return cls(list(partition_keys or run_partition_keys(context)), produce, describe,
                   report=lambda key, meta: context.add_asset_metadata(
                       meta, asset_key=asset_key, partition_key=key),
                   asset_key=asset_key, together=list(together), pending=pending,
                   publishes=list(publishes))

    @property
    def rows(self) -> int:
        return sum(self.rows_by_partition.values())

    def __iter__(self) -> Iterator[tuple[str, pa.Table]]:
        """(partition key, rows) for every partition to replace; kept partitions are skipped."""
        if self._done:
            raise RuntimeError("PartitionBatches can be written once")
        self._done = True
        for key in self.partition_keys:
            data = self._produce(key)
            if data is not None:
                yield key, data

    def _produce(self, key: str) -> pa.Table | None:
        data = self.produce(key)
        if data is not None:
            _check_partition(data, key)
            self.rows_by_partition[key] = data.num_rows
            self.schema = self.schema or data.schema
        return data

    def _take(self, keys: list[str]) -> pa.Table | None:
        """The rows of `keys` (a group of another output's), as one table; None when every
        one of them keeps its stored contents."""
        self._done = True
        parts = [d for d in map(self._produce, keys) if d is not None]
        return _concat(parts) if parts else None

    def groups(self) -> Iterator[tuple[list[str], pa.Table]]:
        """(partition keys, their rows) of consecutive partitions, a few small ones together
        (up to CHUNK_ROWS rows or MAX_CHUNK partitions): a statement's fixed cost per day
        adds up over a year. A group is written as soon as it reaches CHUNK_ROWS, so a big
        partition never waits in memory for the next."""
        keys, parts, rows = [], [], 0
        for key, data in self:
            keys.append(key)
            parts.append(data)
            rows += data.num_rows
            if rows >= CHUNK_ROWS or len(keys) >= MAX_CHUNK:
                yield keys, _concat(parts)
                keys, parts, rows = [], [], 0
        if keys:
            yield keys, _concat(parts)

    def groups_together(self, schema: str, table: str) -> Iterator[tuple[list[str], list[tuple[tuple[str, str], pa.Table]]]]:
        """`groups()` of these batches, stored in `schema.table`, each with the same partitions
        of the outputs written together with them, stored in the table of their asset key:
        (keys, [((schema, table), rows of those keys), ...]), these first."""
        for keys, data in self.groups():
            tables = [((schema, table), data)]
            for other in self.together:
                rows = other._take(keys)
                if rows is not None:
                    tables.append(((other.asset_key.path[-2], other.asset_key.path[-1]), rows))
            yield keys, tables

    def finish(self, locate: Callable[[str], dict] | None = None) -> dict[str, dict]:
        """Called by the IO manager once every partition is written: each written partition's
        own metadata (its rows, `locate(key)`, where the IO manager stored it, and what
        `describe` adds), reported and returned."""
        meta = {
            key: {"dagster/partition_row_count": rows, "rows": rows,
                  **(locate(key) if locate else {}),
                  **(self.describe(key) if self.describe else {})}
            for key, rows in self.rows_by_partition.items()
        }
        if self.report:
            for key, values in meta.items():
                self.report(key, values)
        return meta


def written_by_another_output(batches: PartitionBatches, context) -> bool:
    """True when `batches` were already written, together with the output that names them in
    `together` (its IO manager must be this one: only a transaction makes them visible
    together). The IO manager then only records them."""
    if batches.written_with is None:
        return False
    if not batches._done:
        raise dg.Failure(
            f"{context.asset_key.to_user_string()} is written together with "
            f"{batches.written_with.to_user_string()}, which was not written first: yield that "
            "output first, stored by the same IO manager", allow_retries=False)
    return True


def store_batches(context, table_slice, batches: PartitionBatches, replace: Callable, store: str) -> None:
    """What a SQL store's IO manager does with a `PartitionBatches` output: `replace(column)`
    writes it, replacing each partition it produces (unless another output wrote it, in its
    transaction); then each partition's query and the written column schema are recorded."""
    schema, table = table_slice.schema, table_slice.table
    column = table_slice.partition_dimensions[0].partition_expr
    if not written_by_another_output(batches, context):
        replace(column)
    batches.finish(lambda key: {"Query": partition_query(schema, table, column, key)})
    context.add_output_metadata(written_column_schema(context, batches.schema, store))


def _concat(parts: list[pa.Table]) -> pa.Table:
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="default")


def _check_partition(data: pa.Table, key: str) -> None:
    """A partition's rows belong to that partition: a producer bug must not write elsewhere."""
    if data.num_rows and PARTITION_COLUMN in data.column_names:
        column = data.column(PARTITION_COLUMN).cast(pa.date32())
        bounds, day = pc.min_max(column), date.fromisoformat(key)
        if column.null_count or bounds["min"].as_py() != day or bounds["max"].as_py() != day:
            dates = pc.unique(column).to_pylist()
            raise ValueError(f"rows for ingest dates {sorted(map(str, dates))[:5]} in partition {key}")


class PartitionReader:
    """An input read a partition (or a few) at a time: `read(key)` returns that partition's
    rows, `read_many(keys)` those of several partitions in one query, and `read_through(key)`
    those of every stored partition up to and including `key` (references resolve against
    what this and earlier partitions received). Of an asset written as pending versions, it
    reads the latest version written of each partition, pending or current; `publication()`
    makes the versions it read current (see `PendingPublication`), and `published()`, called once
    that output is committed, lets the store drop what they superseded."""

    def __init__(self, partition_keys: Sequence[str], read_many: Callable[[list[str]], pa.Table],
                 read_through: Callable[[str], pa.Table], asset_key: dg.AssetKey | None = None,
                 versions: dict[str, str] | None = None,
                 published: Callable[[dict[str, str]], None] | None = None):
        self.partition_keys = list(partition_keys)
        self._read_many = read_many
        self._read_through = read_through
        self.asset_key = asset_key
        # partition -> version read (filled as partitions are read; a store with versions only)
        self.versions = versions if versions is not None else {}
        self._published = published

    def publication(self) -> PendingPublication:
        """The versions this reader reads (filled as it reads them), to make current."""
        return PendingPublication(self.asset_key, self.versions)

    def published(self) -> None:
        """The publication was committed: older versions of those partitions may go."""
        if self._published is not None and self.versions:
            self._published(dict(self.versions))

    def read_through(self, partition_key: str) -> pa.Table:
        return self._read_through(partition_key)

    def read(self, partition_key: str) -> pa.Table:
        return self._read_many([partition_key])

    def read_many(self, partition_keys: Sequence[str]) -> pa.Table:
        return self._read_many(list(partition_keys))


def chunked(partition_keys: Sequence[str], reader: PartitionReader) -> Iterator[tuple[list[str], pa.Table]]:
    """(keys, rows) of consecutive chunks of partitions, sized by the rows the previous chunk
    had per partition (the first chunk is one partition)."""
    keys, i, size = list(partition_keys), 0, 1
    while i < len(keys):
        chunk = keys[i:i + size]
        rows = [reader.read_many(chunk)]
        per_partition = max(rows[0].num_rows // len(chunk), 1)
        # handed over, not kept: a suspended generator would hold the chunk while its
        # consumer writes the results (a big day's raw rows twice in memory)
        yield chunk, rows.pop()
        i += len(chunk)
        size = max(1, min(MAX_CHUNK, CHUNK_ROWS // per_partition))


def partition_slice(data: pa.Table, partition_key: str) -> pa.Table:
    """The rows of one partition of a chunk."""
    day = pa.scalar(date.fromisoformat(partition_key), pa.date32())
    column = data.column(PARTITION_COLUMN).cast(pa.date32())
    bounds = pc.min_max(column)
    if data.num_rows and bounds["min"] == day and bounds["max"] == day:
        return data  # a chunk of one partition: no copy
    return data.filter(pc.equal(column, day))


class Handover:
    """Rows handed to a consumer that lets them go before it returns: `take()` gives them
    (once) and keeps no reference, so they are freed when the consumer drops its own."""

    def __init__(self, rows: pa.Table):
        self._rows = [rows]

    def take(self) -> pa.Table:
        return self._rows.pop()


def chunk_producer(partition_keys: Sequence[str], reader: PartitionReader,
                   compute: Callable[[list[str], pa.Table], pa.Table],
                   hand_over: bool = False) -> Callable[[str], pa.Table]:
    """A producer for `PartitionBatches` that works a chunk of partitions at a time: one read
    and one `compute(chunk keys, chunk rows)` per chunk (a query's fixed cost, paid per day,
    adds up over a year), then hands out each partition's slice of the result, in order.
    With `hand_over`, compute gets a `Handover` of the rows instead, to let them go midway."""
    chunks, ready = chunked(partition_keys, reader), {}

    def produce(partition_key: str) -> pa.Table:
        while partition_key not in ready:
            chunk, rows = next(chunks)
            if hand_over:
                rows = Handover(rows)
            result = compute(chunk, rows)
            del rows
            for k in chunk:
                ready[k] = partition_slice(result, k)
        return ready.pop(partition_key)

    return produce


def partition_row_counts(data: pa.Table, partition_keys: Sequence[str]) -> dict[str, int]:
    """Rows of each partition of `partition_keys` in `data` (0 for one it lacks)."""
    counts = {k: 0 for k in partition_keys}
    if data.num_rows:
        days = data.column(PARTITION_COLUMN).cast(pa.date32()).value_counts()
        for day, n in zip(days.field("values").to_pylist(), days.field("counts").to_pylist(), strict=True):
            counts[day.isoformat()] = n
    return counts
