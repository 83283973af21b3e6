"""The PostgreSQL IO manager: Dagster's DbIOManager with a DbClient and two type handlers.

It behaves like the DuckDB IO manager (`dq_assets.storage.duckdb.io_manager`):
- one schema per layer (first asset key part), one table per asset (last key part);
- frames travel as Arrow-backed pandas columns (`PostgresPandasTypeHandler`; the column
  types: see `tables`), or one partition
  at a time (`PostgresBatchesTypeHandler`, see `dq_assets.storage.batches`);
- each output or input gets one ADBC `ArrowSession` (session.py) and one transaction on it;
- writing a partition (or a range of them) deletes its time window and COPYs the frame (COPY
  BINARY from Arrow) in ONE transaction (`write_table`), so a failed write leaves the old
  contents intact; an unpartitioned asset replaces the whole table the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import dagster as dg
import pandas as pd
import pyarrow as pa
from psycopg import sql
from pydantic import Field

from dq_assets.dagster_private import DbClient, DbIOManager, DbTypeHandler, TableMetadataSet, TableSlice
from dq_assets.storage.batches import PartitionBatches, PartitionReader, not_materialized, store_batches
from dq_assets.storage.column_schema import POSTGRES, written_column_schema
from dq_assets.storage.duckdb.warehouse import to_arrow, to_pandas
from dq_assets.storage.postgres.connection import PostgresConnection
from dq_assets.storage.postgres.session import ArrowSession
from dq_assets.storage.postgres.tables import (
    Where,
    _q,
    read_table,
    replace_partitions,
    table_columns,
    write_table,
)
from dq_assets.storage.sql import check_identifier, check_table_slice

__all__ = [
    "PostgresBatchesTypeHandler",
    "PostgresDbClient",
    "PostgresIOManager",
    "PostgresPandasTypeHandler",
    "slice_where",
]


def _naive(moment: datetime) -> datetime:
    """A window bound as wall-clock time, compared like dagster-duckdb's literal strings."""
    return moment.replace(tzinfo=None)


def slice_where(table_slice: TableSlice) -> Where | None:
    """The partition window(s) of a table slice as a parameterised filter."""
    if not table_slice.partition_dimensions:
        return None
    parts: list[sql.Composable] = []
    params: list = []
    for dim in table_slice.partition_dimensions:
        try:
            col = _q(dim.partition_expr)
        except (ValueError, TypeError):
            raise ValueError(
                f"{table_slice.schema}.{table_slice.table}: partition_expr {dim.partition_expr!r} "
                "must be a plain column name"
            ) from None
        if isinstance(dim.partitions, dg.TimeWindow):
            parts.append(sql.SQL("{c} >= %s AND {c} < %s").format(c=col))
            params += [_naive(dim.partitions.start), _naive(dim.partitions.end)]
        else:
            parts.append(sql.SQL("{c} = ANY(%s)").format(c=col))
            params.append([str(p) for p in dim.partitions])
    return Where(sql.SQL(" AND ").join(parts), tuple(params))


def _display_select(table_slice: TableSlice) -> str:
    """The slice's SELECT with literals, for the `Query` metadata only (never executed)."""
    cols = ", ".join(f'"{check_identifier(c)}"' for c in table_slice.columns) if table_slice.columns else "*"
    text = f'SELECT {cols} FROM "{check_identifier(table_slice.schema)}"."{check_identifier(table_slice.table)}"'
    conds = []
    for dim in table_slice.partition_dimensions or ():
        c = f'"{check_identifier(dim.partition_expr)}"'
        if isinstance(dim.partitions, dg.TimeWindow):
            fmt = "%Y-%m-%d %H:%M:%S"
            conds.append(f"{c} >= '{dim.partitions.start.strftime(fmt)}' AND {c} < '{dim.partitions.end.strftime(fmt)}'")
        else:
            keys = ", ".join("'" + str(p).replace("'", "''") + "'" for p in dim.partitions)
            conds.append(f"{c} IN ({keys})")
    return text + (" WHERE " + " AND ".join(conds) if conds else "")


class PostgresDbClient(DbClient):
    """One connection and one transaction per output or input. The delete of the slice is
    done by `write_table`, inside the same transaction as the COPY, after the column check."""

    def __init__(self, connection: PostgresConnection):
        self.connection = connection

    @contextmanager
    def connect(self, context, table_slice: TableSlice) -> Iterator[ArrowSession]:
        check_table_slice(table_slice)  # a bad schema/table/column name: refused before connecting
        verb = "writing" if isinstance(context, dg.OutputContext) else "reading"
        action = f"{verb} {table_slice.schema}.{table_slice.table}"
        with self.connection.session(action) as conn, conn.transaction():
            yield conn

    @staticmethod
    def ensure_schema_exists(context, table_slice: TableSlice, connection) -> None:
        pass  # write_table creates it (under a lock) in the write's transaction

    @staticmethod
    def delete_table_slice(context, table_slice: TableSlice, connection) -> None:
        pass  # write_table deletes the slice in the write's transaction

    @staticmethod
    def get_select_statement(table_slice: TableSlice) -> str:
        return _display_select(table_slice)

    @staticmethod
    def get_table_name(table_slice: TableSlice) -> str:
        return f"{table_slice.schema}.{table_slice.table}"


class PostgresPandasTypeHandler(DbTypeHandler[pd.DataFrame]):
    @property
    def supported_types(self) -> Sequence[type[object]]:
        return [pd.DataFrame]

    def handle_output(self, context, table_slice: TableSlice, obj: pd.DataFrame, connection):
        where = slice_where(table_slice)
        data = to_arrow(obj)
        rows = write_table(
            connection, table_slice.schema, table_slice.table, data,
            replace=where if where is not None else True,
            index=[dim.partition_expr for dim in table_slice.partition_dimensions or ()],
        )
        meta = (
            TableMetadataSet(partition_row_count=rows)
            if context.has_partition_key or context.has_asset_partitions
            else TableMetadataSet(row_count=rows)
        )
        context.add_output_metadata({**meta, **written_column_schema(context, data.schema, POSTGRES)})

    def load_input(self, context, table_slice: TableSlice, connection) -> pd.DataFrame:
        data = read_table(
            connection, table_slice.schema, table_slice.table,
            columns=table_slice.columns, where=slice_where(table_slice),
        )
        if data is None:
            raise not_materialized(f"{table_slice.schema}.{table_slice.table}")
        return to_pandas(data)


class PostgresBatchesTypeHandler(DbTypeHandler):
    """One partition at a time (see `dq_assets.storage.batches`): each partition is COPYed as it is
    produced, all inside the output's one transaction; inputs are read per partition."""

    def __init__(self, connection: PostgresConnection):
        self.connection = connection

    @property
    def supported_types(self) -> Sequence[type[object]]:
        return [PartitionBatches, PartitionReader]

    def handle_output(self, context, table_slice: TableSlice, obj: PartitionBatches, connection):
        store_batches(context, table_slice, obj, store=POSTGRES, replace=lambda column: replace_partitions(
            connection, table_slice.schema, table_slice.table, column, obj))

    def load_input(self, context, table_slice: TableSlice, connection) -> PartitionReader:
        if not table_columns(connection, table_slice.schema, table_slice.table):
            raise not_materialized(f"{table_slice.schema}.{table_slice.table}")
        column = _q(table_slice.partition_dimensions[0].partition_expr)

        def read(where: Where) -> pa.Table:
            action = f"reading {table_slice.schema}.{table_slice.table}"
            with self.connection.session(action) as conn:
                return read_table(conn, table_slice.schema, table_slice.table,
                                  columns=table_slice.columns, where=where)

        return PartitionReader(
            context.asset_partition_keys,
            read_many=lambda keys: read(Where(sql.SQL("{} = ANY(%s::date[])").format(column), (keys,))),
            read_through=lambda key: read(Where(sql.SQL("{} <= %s::date").format(column), (key,))),
        )


class PostgresIOManager(dg.ConfigurableIOManagerFactory):
    """Arrow-backed pandas frames in PostgreSQL: schema = first asset key part, table = last.
    Partitioned assets need `metadata={"partition_expr": "<DATE or TIMESTAMP column>"}`."""

    connection: PostgresConnection = Field(default_factory=PostgresConnection)

    def create_io_manager(self, context) -> DbIOManager:
        return DbIOManager(
            db_client=PostgresDbClient(self.connection),
            database="",  # the table name metadata is schema.table; no connection info in it
            type_handlers=[PostgresPandasTypeHandler(), PostgresBatchesTypeHandler(self.connection)],
            default_load_type=pd.DataFrame,
            io_manager_name="PostgresIOManager",
        )
