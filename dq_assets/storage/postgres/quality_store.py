"""The PostgreSQL quality store: `quality.*` records, and publishing in one transaction.

Every method runs on an ADBC `ArrowSession` (session.py); a publication is one transaction on
one session, so the marts it replaces and the raw versions it makes current commit together."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
from psycopg import sql
from pydantic import Field

from dq_assets.storage.postgres.connection import PostgresConnection
from dq_assets.storage.postgres.session import ArrowSession
from dq_assets.storage.postgres.tables import (
    Where,
    _qualified,
    read_table,
    replace_partitions,
    table_columns,
    write_table,
)
from dq_assets.storage.quality_store import QUALITY_SCHEMA, Publication, QualityStore

__all__ = ["PostgresPublication", "PostgresQualityStore"]


class PostgresQualityStore(QualityStore):
    """`quality.*` records in PostgreSQL: the same methods and answers as `DuckDBQualityStore`.
    Tables are created on first append; rows are only ever appended."""

    connection: PostgresConnection = Field(default_factory=PostgresConnection)

    def append(self, table: str, rows: pa.Table) -> None:
        _qualified(QUALITY_SCHEMA, table)  # refused before connecting
        with self.connection.session(f"appending to {QUALITY_SCHEMA}.{table}") as conn:
            write_table(conn, QUALITY_SCHEMA, table, rows, allow_missing_columns=True, evolve=True)

    def latest_check_results(self, partition_keys: list[str], check: tuple[str, str] | None = None) -> pa.Table:
        where = (Where(sql.SQL("partition_key = ANY(%s) AND asset_key = %s AND check_name = %s"),
                       (list(partition_keys), *check)) if check else
                 Where(sql.SQL("partition_key = ANY(%s)"), (list(partition_keys),)))
        with self.connection.session(f"reading {QUALITY_SCHEMA}.check_results") as conn:
            data = read_table(
                conn, QUALITY_SCHEMA, "check_results", where=where,
                latest=(("partition_key", "asset_key", "check_name"), "evaluated_at"),
                order_by=("partition_key", "asset_key", "check_name"),
            )
        if data is None:
            return pa.table({"partition_key": pa.array([], pa.string())})
        return data

    def raw_rows_history(self, table_name: str) -> dict[str, int]:
        """Latest landed row count of every profiled partition of a table."""
        with self.connection.session(f"reading {QUALITY_SCHEMA}.partition_profiles") as conn:
            if not table_columns(conn, QUALITY_SCHEMA, "partition_profiles"):
                return {}
            rows = conn.execute(
                sql.SQL(
                    "SELECT DISTINCT ON (partition_key) partition_key, raw_rows FROM {} "
                    "WHERE table_name = %s ORDER BY partition_key, profiled_at DESC NULLS LAST"
                ).format(_qualified(QUALITY_SCHEMA, "partition_profiles")),
                [table_name],
            )
        return dict(rows)

    def column_metrics(self, table_name: str) -> list[dict]:
        with self.connection.session(f"reading {QUALITY_SCHEMA}.column_metrics") as conn:
            if not table_columns(conn, QUALITY_SCHEMA, "column_metrics"):
                return []
            rows = conn.execute(
                sql.SQL(
                    "SELECT partition_key, column_name, metric, value FROM (SELECT *, max(profiled_at) "
                    "OVER (PARTITION BY partition_key) AS newest FROM {} WHERE table_name = %s) m "
                    "WHERE profiled_at = newest"
                ).format(_qualified(QUALITY_SCHEMA, "column_metrics")),
                [table_name],
            )
        return [dict(zip(("partition_key", "column_name", "metric", "value"), r)) for r in rows]

    def _latest(self, table: str, partition_keys: list[str], per: str, newest: str) -> list[dict]:
        with self.connection.session(f"reading {QUALITY_SCHEMA}.{table}") as conn:
            data = read_table(
                conn, QUALITY_SCHEMA, table,
                where=Where(sql.SQL("partition_key = ANY(%s)"), (list(partition_keys),)),
                latest=(("partition_key", per), newest),
            )
        return [] if data is None else data.to_pylist()

    def partitions_with_results(self, asset_keys: list[str], before: str) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {a: set() for a in asset_keys}
        with self.connection.session(f"reading {QUALITY_SCHEMA}.check_results") as conn:
            if not table_columns(conn, QUALITY_SCHEMA, "check_results"):
                return found
            rows = conn.execute(
                sql.SQL("SELECT DISTINCT asset_key, partition_key FROM {} "
                        "WHERE asset_key = ANY(%s) AND partition_key < %s").format(
                    _qualified(QUALITY_SCHEMA, "check_results")),
                [list(asset_keys), before])
        for asset, key in rows:
            found[asset].add(key)
        return found

    @contextmanager
    def publishing(self) -> Iterator[Publication]:
        with self.connection.session("writing in one transaction") as conn, conn.transaction():
            yield PostgresPublication(conn)


class PostgresPublication(Publication):
    """One PostgreSQL transaction."""

    def __init__(self, conn: ArrowSession):
        self.conn = conn

    def replace_partitions(self, schema: str, table: str, column: str, batches) -> None:
        replace_partitions(self.conn, schema, table, column, batches)

    def replace_table(self, schema: str, table: str, data: pa.Table) -> None:
        write_table(self.conn, schema, table, data, replace=True, evolve=True)

    def read_table(self, schema: str, table: str) -> pa.Table | None:
        return read_table(self.conn, schema, table)
