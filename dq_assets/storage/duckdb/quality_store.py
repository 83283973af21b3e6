"""The DuckDB quality store: `quality.*` records in the warehouse file, and publishing the marts
in one transaction of it (see `dq_assets.storage.quality_store` for what a quality store holds)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa

from dq_assets.settings import warehouse_path
from dq_assets.storage.duckdb.warehouse import (
    add_missing_columns,
    fetch_arrow,
    release_warehouse,
    replace_partitions,
    table_exists,
    warehouse_connection,
)
from dq_assets.storage.quality_store import (
    QUALITY_SCHEMA,
    Publication,
    QualityStore,
)
from dq_assets.storage.sql import qualified, quote

SENSOR_LOCK_WAIT = 10.0  # seconds a sensor waits for a DuckDB warehouse a run is writing


class DuckDBQualityStore(QualityStore):
    """`quality.*` records in the DuckDB warehouse (default `DQ_WAREHOUSE`)."""

    database: str | None = None

    @contextmanager
    def _connect(self):
        with warehouse_connection(self.database or warehouse_path()) as conn:
            yield conn

    def append(self, table: str, rows: pa.Table) -> None:
        qualified(QUALITY_SCHEMA, table)  # a bad name is refused before opening anything
        with self._connect() as conn:
            _append(conn, table, rows)

    def append_from_sensor(self, table: str, rows: pa.Table) -> None:
        # A run holds DuckDB's one-writer lock until it ends: wait a little, then give the file
        # back at once, or the next run would wait for this process.
        qualified(QUALITY_SCHEMA, table)  # a bad name is refused before opening anything
        path = self.database or warehouse_path()
        try:
            with warehouse_connection(path, lock_wait=SENSOR_LOCK_WAIT) as conn:
                _append(conn, table, rows)
        finally:
            release_warehouse(path)

    def latest_check_results(self, partition_keys: list[str], check: tuple[str, str] | None = None) -> pa.Table:
        with self._connect() as conn:
            if not table_exists(conn, QUALITY_SCHEMA, "check_results"):
                return pa.table({"partition_key": pa.array([], pa.string())})
            one = "AND asset_key = ? AND check_name = ?" if check else ""
            return fetch_arrow(
                conn,
                f"""SELECT * FROM {qualified(QUALITY_SCHEMA, "check_results")}
                    WHERE list_contains(?, partition_key) {one}
                    QUALIFY row_number() OVER (PARTITION BY partition_key, asset_key, check_name
                                               ORDER BY evaluated_at DESC) = 1
                    ORDER BY partition_key, asset_key, check_name""",
                [list(partition_keys), *(check or ())],
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

    def column_metrics(self, table_name: str) -> list[dict]:
        with self._connect() as conn:
            if not table_exists(conn, QUALITY_SCHEMA, "column_metrics"):
                return []
            return fetch_arrow(
                conn,
                f"""SELECT partition_key, column_name, metric, value
                    FROM {qualified(QUALITY_SCHEMA, "column_metrics")} WHERE table_name = ?
                    QUALIFY profiled_at = max(profiled_at) OVER (PARTITION BY partition_key)""",
                [table_name],
            ).to_pylist()

    def _latest(self, table: str, partition_keys: list[str], per: str, newest: str) -> list[dict]:
        with self._connect() as conn:
            if not table_exists(conn, QUALITY_SCHEMA, table):
                return []
            return fetch_arrow(
                conn,
                f"""SELECT * FROM {qualified(QUALITY_SCHEMA, table)}
                    WHERE list_contains(?, partition_key)
                    QUALIFY row_number() OVER (PARTITION BY partition_key, {quote(per)}
                                               ORDER BY {quote(newest)} DESC) = 1""",
                [list(partition_keys)],
            ).to_pylist()

    def partitions_with_results(self, asset_keys: list[str], before: str) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {a: set() for a in asset_keys}
        with self._connect() as conn:
            if not table_exists(conn, QUALITY_SCHEMA, "check_results"):
                return found
            rows = conn.execute(
                f"""SELECT DISTINCT asset_key, partition_key FROM {qualified(QUALITY_SCHEMA, "check_results")}
                    WHERE list_contains(?, asset_key) AND partition_key < ?""",
                [list(asset_keys), before]).fetchall()
        for asset, key in rows:
            found[asset].add(key)
        return found

    @contextmanager
    def publishing(self) -> Iterator[Publication]:
        with self._connect() as conn:
            conn.begin()
            try:
                yield DuckDBPublication(conn)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise


class DuckDBPublication(Publication):
    """One DuckDB transaction. Its Arrow tables stay in memory until it ends (DuckDB keeps what a
    transaction scanned): fine for the marts of a run, not for a year of staging rows."""

    def __init__(self, conn):
        self.conn = conn

    def replace_partitions(self, schema: str, table: str, column: str, batches) -> None:
        replace_partitions(self.conn, schema, table, column, batches, commit_groups=False)

    def replace_table(self, schema: str, table: str, data: pa.Table) -> None:
        self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        self.conn.register("_rows", data)
        self.conn.execute(f"CREATE OR REPLACE TABLE {qualified(schema, table)} AS SELECT * FROM _rows")
        self.conn.unregister("_rows")

    def read_table(self, schema: str, table: str) -> pa.Table | None:
        if not table_exists(self.conn, schema, table):
            return None
        return fetch_arrow(self.conn, f"SELECT * FROM {qualified(schema, table)}")


def _append(conn, table: str, rows: pa.Table) -> None:
    """Rows appended to quality.`table`, created from them if it is missing (and given the
    columns it lacks)."""
    name = qualified(QUALITY_SCHEMA, table)
    conn.begin()
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(QUALITY_SCHEMA)}")
    conn.register("_rows", rows)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT * FROM _rows LIMIT 0")
    add_missing_columns(conn, QUALITY_SCHEMA, table, rows)
    conn.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _rows")
    conn.commit()
