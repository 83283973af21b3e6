"""Small DuckDB helpers shared by the layers and the IO manager."""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow as pa

from dq_assets.contracts import check_identifier


def quote(identifier: str) -> str:
    """A validated, quoted SQL identifier."""
    return f'"{check_identifier(identifier)}"'


def qualified(schema: str, table: str) -> str:
    return f"{quote(schema)}.{quote(table)}"


def sql_str(value: str) -> str:
    """A SQL string literal (for values fixed in code; data values go as parameters)."""
    return "'" + value.replace("'", "''") + "'"


def sql_list(values) -> str:
    """A parenthesised list of string literals, for IN (...)."""
    return "(" + ", ".join(sql_str(v) for v in sorted(values)) + ")"


def connect_duckdb(database: str = ":memory:", read_only: bool = False) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(database, read_only=read_only)
    conn.execute("SET TimeZone = 'UTC'")  # TIMESTAMPTZ in and out as UTC
    return conn


def fetch_arrow(conn: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pa.Table:
    return conn.sql(sql, params=params).to_arrow_table()


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow-backed pandas: decimals stay decimals, timestamps keep their UTC zone."""
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def table_exists(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchall()[0][0]
    )
