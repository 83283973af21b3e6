"""What the steps write straight to the deployment's warehouse, outside Dagster's IO managers.

- Append-only quality records (check results, recon summaries, profiles, write marks): written
  by the step that evaluates the checks, before Dagster decides anything, so they survive a
  failed gate; only ever appended, never replaced.
- Write marks (`quality.partition_writes`): a step marks each gated asset partition it is about
  to (re)write before it writes. The gate records the marks it judged; the marts publish a
  partition only while its marks are still those, so data that changed after the gate (a rerun
  that failed before reaching the gate, say) is never published ungated.
- The published marts of a partition, which only the partitions that passed the gate get.

The interface is here; each backend implements it (`storage.duckdb.quality_store`,
`storage.postgres.quality_store`).
"""

from contextlib import AbstractContextManager
from datetime import datetime, timezone

import dagster as dg
import pyarrow as pa

QUALITY_SCHEMA = "quality"
# History tables: every evaluation adds rows, a rerun never replaces them.
APPEND_ONLY_TABLES = ("check_results", "recon_summary", "partition_profiles", "column_metrics",
                      "partition_writes")

WRITES_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("asset_key", pa.string()), ("partition_key", pa.string()),
    ("marked_at", pa.timestamp("us", tz="UTC")),
])


def write_marks(run_id: str, asset_keys, partition_keys) -> pa.Table:
    now = datetime.now(timezone.utc)
    return pa.Table.from_pylist(
        [{"run_id": run_id, "asset_key": a, "partition_key": k, "marked_at": now}
         for a in asset_keys for k in partition_keys], schema=WRITES_SCHEMA)


class QualityStore(dg.ConfigurableResource):
    """Where the append-only quality records go: the warehouse of the deployment."""

    def append(self, table: str, rows: pa.Table) -> None:
        raise NotImplementedError

    def append_from_sensor(self, table: str, rows: pa.Table) -> None:
        """`append` from a sensor: the daemon's code server lives for days and ticks often, so
        it must neither keep the warehouse nor wait long for it (the next tick retries)."""
        self.append(table, rows)

    def latest_check_results(self, partition_keys: list[str], check: tuple[str, str] | None = None) -> pa.Table:
        """The latest evaluation of every check (or of the one `check`, (asset key, check name))
        of the given partitions."""
        raise NotImplementedError

    def raw_rows_history(self, table_name: str) -> dict[str, int]:
        """Latest landed row count of every profiled partition of a table."""
        raise NotImplementedError

    def column_metrics(self, table_name: str) -> list[dict]:
        """Every partition's metrics of a table (quality.column_metrics: partition_key,
        column_name, metric, value), from the partition's latest profile."""
        raise NotImplementedError

    def latest_profiles(self, partition_keys: list[str]) -> list[dict]:
        """The latest profile of every table of the given partitions."""
        return self._latest("partition_profiles", partition_keys, "table_name", "profiled_at")

    def mark_writes(self, run_id: str, asset_keys: list[str], partition_keys: list[str]) -> None:
        """Record that `run_id` is about to (re)write these asset partitions."""
        self.append("partition_writes", write_marks(run_id, asset_keys, partition_keys))

    def latest_writes(self, partition_keys: list[str]) -> list[dict]:
        """The latest write mark of every asset of the given partitions."""
        return self._latest("partition_writes", partition_keys, "asset_key", "marked_at")

    def _latest(self, table: str, partition_keys: list[str], per: str, newest: str) -> list[dict]:
        """The newest row (by `newest`) per partition and `per` of a record table."""
        raise NotImplementedError

    def partitions_with_results(self, asset_keys: list[str], before: str) -> dict[str, set[str]]:
        """Per asset key, the partitions before `before` that have check results (the step
        that loads them ran to its checks)."""
        raise NotImplementedError

    def publishing(self) -> AbstractContextManager["Publication"]:
        """One transaction for tables that must become visible together (the marts of a run):
        what is written through the `Publication` is committed when the block ends, and
        nothing of it when it fails or the process dies."""
        raise NotImplementedError


class Publication:
    """Writes and reads inside one `QualityStore.publishing` transaction (a read sees what the
    transaction wrote)."""

    def replace_partitions(self, schema: str, table: str, column: str, batches) -> None:
        """Write a `PartitionBatches`, replacing each partition it produces."""
        raise NotImplementedError

    def replace_table(self, schema: str, table: str, data: pa.Table) -> None:
        """Replace every row of a table."""
        raise NotImplementedError

    def read_table(self, schema: str, table: str) -> pa.Table | None:
        """Every row of a table (None if it does not exist)."""
        raise NotImplementedError
