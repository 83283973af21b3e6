"""Append-only quality records (check results) written straight to the warehouse.

They are written by the step that evaluates the checks, before Dagster decides anything, so
they survive a failed gate; and they are only ever appended, never replaced.
"""

from contextlib import contextmanager

import dagster as dg
import pyarrow as pa

from dq_assets.duck import (
    fetch_arrow, qualified, quote, release_warehouse, table_exists, warehouse_connection,
)
from dq_assets.settings import warehouse_path

QUALITY_SCHEMA = "quality"
# History tables: every evaluation adds rows, a rerun never replaces them.
APPEND_ONLY_TABLES = ("check_results", "recon_summary", "partition_profiles")
SENSOR_LOCK_WAIT = 10.0  # seconds a sensor waits for a DuckDB warehouse a run is writing


class QualityStore(dg.ConfigurableResource):
    """Where the append-only quality records go: the warehouse of the deployment."""

    def append(self, table: str, rows: pa.Table) -> None:
        raise NotImplementedError

    def append_from_sensor(self, table: str, rows: pa.Table) -> None:
        """`append` from a sensor: the daemon's code server lives for days and ticks often, so
        it must neither keep the warehouse nor wait long for it (the next tick retries)."""
        self.append(table, rows)

    def latest_check_results(self, partition_keys: list[str]) -> pa.Table:
        """The latest evaluation of every check of the given partitions."""
        raise NotImplementedError

    def raw_rows_history(self, table_name: str) -> dict[str, int]:
        """Latest landed row count of every profiled partition of a table."""
        raise NotImplementedError

    def latest_profiles(self, partition_keys: list[str]) -> list[dict]:
        """The latest profile of every table of the given partitions."""
        raise NotImplementedError


class DuckDBQualityStore(QualityStore):
    """`quality.*` records in the DuckDB warehouse (default `DQ_WAREHOUSE`)."""

    database: str | None = None

    @contextmanager
    def _connect(self):
        with warehouse_connection(self.database or warehouse_path()) as conn:
            yield conn

    def append(self, table: str, rows: pa.Table) -> None:
        name = qualified(QUALITY_SCHEMA, table)  # a bad name is refused before opening anything
        with self._connect() as conn:
            _append(conn, name, rows)

    def append_from_sensor(self, table: str, rows: pa.Table) -> None:
        # A run holds DuckDB's one-writer lock until it ends: wait a little, then give the file
        # back at once, or the next run would wait for this process.
        name, path = qualified(QUALITY_SCHEMA, table), self.database or warehouse_path()
        try:
            with warehouse_connection(path, lock_wait=SENSOR_LOCK_WAIT) as conn:
                _append(conn, name, rows)
        finally:
            release_warehouse(path)

    def latest_check_results(self, partition_keys: list[str]) -> pa.Table:
        """The latest evaluation of every check of the given partitions."""
        with self._connect() as conn:
            if not table_exists(conn, QUALITY_SCHEMA, "check_results"):
                return pa.table({"partition_key": pa.array([], pa.string())})
            return fetch_arrow(
                conn,
                f"""SELECT * FROM {qualified(QUALITY_SCHEMA, "check_results")}
                    WHERE list_contains(?, partition_key)
                    QUALIFY row_number() OVER (PARTITION BY partition_key, asset_key, check_name
                                               ORDER BY evaluated_at DESC) = 1
                    ORDER BY partition_key, asset_key, check_name""",
                [list(partition_keys)],
            )

    def raw_rows_history(self, table_name: str) -> dict[str, int]:
        """Latest landed row count of every profiled partition of a table."""
        with self._connect() as conn:
            if not table_exists(conn, QUALITY_SCHEMA, "partition_profiles"):
                return {}
            rows = conn.execute(
                f"""SELECT partition_key, raw_rows FROM {qualified(QUALITY_SCHEMA, "partition_profiles")}
                    WHERE table_name = ?
                    QUALIFY row_number() OVER (PARTITION BY partition_key ORDER BY profiled_at DESC) = 1""",
                [table_name],
            ).fetchall()
        return dict(rows)

    def latest_profiles(self, partition_keys: list[str]) -> list[dict]:
        """The latest profile of every table of the given partitions."""
        with self._connect() as conn:
            if not table_exists(conn, QUALITY_SCHEMA, "partition_profiles"):
                return []
            return fetch_arrow(
                conn,
                f"""SELECT * FROM {qualified(QUALITY_SCHEMA, "partition_profiles")}
                    WHERE list_contains(?, partition_key)
                    QUALIFY row_number() OVER (PARTITION BY partition_key, table_name
                                               ORDER BY profiled_at DESC) = 1""",
                [list(partition_keys)],
            ).to_pylist()


def _append(conn, name: str, rows: pa.Table) -> None:
    """Rows appended to the table `name` (qualified), created from them if it is missing."""
    conn.begin()
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(QUALITY_SCHEMA)}")
    conn.register("_rows", rows)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT * FROM _rows LIMIT 0")
    conn.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _rows")
    conn.commit()
