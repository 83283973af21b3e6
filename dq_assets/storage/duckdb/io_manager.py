"""The embedded default warehouse: one DuckDB file, one schema per layer.

Built on dagster-duckdb-pandas, with three changes the warehouse needs:
- frames travel as Arrow-backed pandas columns, so exact decimals, UTC timestamps and dates
  survive the round trip (DuckDB's own `fetchdf()` would turn DECIMAL into float64);
- the replace of a partition (delete the slice, insert the frame) is one transaction, so a
  reader never sees a half-written partition and a failed write leaves the old one intact;
- an empty frame still creates its table, so downstream assets can always read it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_pandas import DuckDBPandasTypeHandler

from dq_assets.dagster_private import DbIOManager, DbTypeHandler, TableMetadataSet, TableSlice
from dq_assets.settings import warehouse_path
from dq_assets.storage.batches import PartitionBatches, PartitionReader, not_materialized, store_batches
from dq_assets.storage.column_schema import DUCKDB, written_column_schema
from dq_assets.storage.duckdb.warehouse import (
    VERSION_COLUMN,
    add_missing_columns,
    fetch_arrow,
    latest_versions_query,
    replace_partitions,
    table_exists,
    to_arrow,
    to_pandas,
    versioned,
    warehouse_connection,
)
from dq_assets.storage.sql import check_table_slice, qualified, quote


class TransactionalDuckDbClient(DuckDbClient):
    def __init__(self, database: str):
        self.database = database

    @contextmanager
    def connect(self, context, table_slice: TableSlice) -> Iterator[duckdb.DuckDBPyConnection]:
        check_table_slice(table_slice)  # a bad schema/table/column name: refused before any SQL
        with warehouse_connection(self.database) as conn:
            conn.begin()
            try:
                yield conn
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

    @staticmethod
    def ensure_schema_exists(context, table_slice: TableSlice, connection) -> None:
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(table_slice.schema)}")

    @staticmethod
    def delete_table_slice(context, table_slice: TableSlice, connection) -> None:
        pass  # the type handler deletes, in the same transaction as its insert

    @staticmethod
    def get_table_name(table_slice: TableSlice) -> str:
        # dagster/table_name: the table, not the file (Dagster's default puts the database
        # file's path in front); where the file is, is the warehouse's configuration.
        return f"{table_slice.schema}.{table_slice.table}"

    @staticmethod
    def get_select_statement(table_slice: TableSlice) -> str:
        cols = ", ".join(quote(c) for c in table_slice.columns) if table_slice.columns else "*"
        sql = f"SELECT {cols} FROM {qualified(table_slice.schema, table_slice.table)}"
        if table_slice.partition_dimensions:
            sql += " WHERE " + _where(table_slice)
        return sql


def _where(table_slice: TableSlice) -> str:
    # Same slice as dagster-duckdb's, with a partition_expr that we declare ourselves.
    return DuckDbClient.get_select_statement(table_slice).split(" WHERE\n", 1)[1]


def _cleanup_statement(table_slice: TableSlice) -> str:
    sql = f"DELETE FROM {qualified(table_slice.schema, table_slice.table)}"
    if table_slice.partition_dimensions:
        sql += " WHERE " + _where(table_slice)
    return sql


class ArrowPandasTypeHandler(DuckDBPandasTypeHandler):
    def handle_output(self, context, table_slice: TableSlice, obj: pd.DataFrame, connection):
        name = qualified(table_slice.schema, table_slice.table)
        # Checked rather than caught: a failed statement would abort the open transaction.
        data = to_arrow(obj)
        if table_exists(connection, table_slice.schema, table_slice.table):
            add_missing_columns(connection, table_slice.schema, table_slice.table, data)
            connection.execute(_cleanup_statement(table_slice))
        connection.register("_frame", data)
        connection.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT * FROM _frame LIMIT 0")
        connection.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _frame")
        connection.unregister("_frame")
        _partition_metadata(context, len(obj))
        context.add_output_metadata(written_column_schema(context, data.schema, DUCKDB))

    def load_input(self, context, table_slice: TableSlice, connection) -> pd.DataFrame:
        if not table_exists(connection, table_slice.schema, table_slice.table):
            raise not_materialized(f"{table_slice.schema}.{table_slice.table}")
        select = TransactionalDuckDbClient.get_select_statement(table_slice)
        return to_pandas(fetch_arrow(connection, select))


def _partition_metadata(context, rows: int) -> None:
    meta = (
        TableMetadataSet(partition_row_count=rows)
        if context.has_partition_key or context.has_asset_partitions
        else TableMetadataSet(row_count=rows)
    )
    context.add_output_metadata(dict(meta))


class PartitionBatchesTypeHandler(DbTypeHandler):
    """Writes a step's output one partition at a time and reads inputs the same way, so a
    step over a long range holds one partition in memory (see `dq_assets.storage.batches`)."""

    def __init__(self, database: str):
        self.database = database

    @property
    def supported_types(self):
        return [PartitionBatches, PartitionReader]

    def handle_output(self, context, table_slice: TableSlice, obj: PartitionBatches, connection):
        store_batches(context, table_slice, obj, store=DUCKDB, replace=lambda column: replace_partitions(
            connection, table_slice.schema, table_slice.table, column, obj))

    def load_input(self, context, table_slice: TableSlice, connection) -> PartitionReader:
        schema, table = table_slice.schema, table_slice.table
        column = table_slice.partition_dimensions[0].partition_expr
        by_version = versioned(connection, schema, table, column)
        if not by_version and not table_exists(connection, schema, table):
            raise not_materialized(f"{schema}.{table}")
        cols = (", ".join(quote(c) for c in table_slice.columns) if table_slice.columns
                else f"* EXCLUDE ({VERSION_COLUMN})" if by_version else "*")

        def read(where: str, param):
            # Of a versioned table (raw), the latest version written of each partition: its
            # pending version where it has one (written by a raw step, not yet published by its
            # staging step), else the current one.
            if by_version:
                sql, params = latest_versions_query(schema, table, cols, column, where), [param, table]
            else:
                sql, params = f"SELECT {cols} FROM {qualified(schema, table)} WHERE {where}", [param]
            with warehouse_connection(self.database) as conn:
                return fetch_arrow(conn, sql, params)

        return PartitionReader(
            context.asset_partition_keys,
            read_many=lambda keys: read(f"list_contains(CAST(? AS DATE[]), {quote(column)})", keys),
            read_through=lambda key: read(f"{quote(column)} <= CAST(? AS DATE)", key),
            asset_key=context.asset_key,
        )


class WarehouseIOManager(dg.ConfigurableIOManagerFactory):
    """DuckDB file at `database`, default `DQ_WAREHOUSE` or `data/warehouse.duckdb`."""

    database: str | None = None

    def resolved_database(self) -> str:
        return self.database or warehouse_path()

    def type_handlers(self) -> Sequence[DbTypeHandler]:
        return [ArrowPandasTypeHandler(), PartitionBatchesTypeHandler(self.resolved_database())]

    def create_io_manager(self, context) -> DbIOManager:
        return DbIOManager(
            db_client=TransactionalDuckDbClient(self.resolved_database()),
            database=self.resolved_database(),
            type_handlers=self.type_handlers(),
            default_load_type=pd.DataFrame,
            io_manager_name="WarehouseIOManager",
        )

