"""Partition-at-a-time data between the heavy steps and the IO managers.

A step over a range of partitions (a single-run backfill) must not hold the whole range in
memory. So the raw and staging steps hand their IO manager a `PartitionBatches`: a producer
that builds one partition's rows when asked. The IO manager writes each partition as it comes
(inside its one transaction, or one object per partition on S3), so a step holds one
partition at a time, however long its range. A downstream step asks for a
`PartitionReader` instead of a frame and reads one partition at a time from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

PARTITION_COLUMN = "ingest_date"


@dataclass
class PartitionBatches:
    """The output of a step, produced one partition at a time by `produce(partition_key)`.
    A producer returns None for a partition whose stored contents must stay as they are (a
    mart partition that did not pass the gate)."""

    partition_keys: Sequence[str]
    produce: Callable[[str], pa.Table | None]
    # Output metadata known only once every partition was produced (called after writing).
    metadata: Callable[[], dict] | None = None
    rows: int = 0
    _done: bool = field(default=False, repr=False)

    def __iter__(self) -> Iterator[tuple[str, pa.Table]]:
        """(partition key, rows) for every partition to replace; kept partitions are skipped."""
        if self._done:
            raise RuntimeError("PartitionBatches can be written once")
        self._done = True
        for key in self.partition_keys:
            data = self.produce(key)
            if data is None:
                continue
            _check_partition(data, key)
            self.rows += data.num_rows
            yield key, data


    def output_metadata(self) -> dict:
        return {"rows": self.rows, **(self.metadata() if self.metadata else {})}


def _check_partition(data: pa.Table, key: str) -> None:
    """A partition's rows belong to that partition: a producer bug must not write elsewhere."""
    if data.num_rows and PARTITION_COLUMN in data.column_names:
        dates = pc.unique(data.column(PARTITION_COLUMN).cast(pa.string())).to_pylist()
        if dates != [key]:
            raise ValueError(f"rows for ingest dates {sorted(map(str, dates))[:5]} in partition {key}")


class PartitionReader:
    """An input read one partition at a time: `read(key)` returns that partition's rows."""

    def __init__(self, partition_keys: Sequence[str], read: Callable[[str], pa.Table]):
        self.partition_keys = list(partition_keys)
        self._read = read

    def read(self, partition_key: str) -> pa.Table:
        return self._read(partition_key)
