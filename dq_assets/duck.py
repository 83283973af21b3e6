"""Small DuckDB helpers shared by the layers and the IO manager."""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pandas as pd
import pyarrow as pa
from dagster._utils.backoff import backoff

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


_MEMORY: list[duckdb.DuckDBPyConnection] = []


def connect_duckdb() -> duckdb.DuckDBPyConnection:
    """A fresh connection (own registrations and temp tables) for set-based work in memory.
    Cursors of one in-memory database: creating a database costs more than small queries."""
    with _OPEN_LOCK:
        if not _MEMORY:
            _MEMORY.append(duckdb.connect(":memory:"))
    conn = _MEMORY[0].cursor()
    conn.execute("SET TimeZone = 'UTC'")  # TIMESTAMPTZ in and out as UTC
    return conn


_OPEN: dict[str, duckdb.DuckDBPyConnection] = {}
_OPEN_LOCK = threading.Lock()


@contextmanager
def warehouse_connection(database: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor on this process's connection to a DuckDB warehouse file.

    The file is opened once per process and kept open: opening and closing a DuckDB file
    checkpoints it every time, which cost more than all the work of a small partition. Other
    processes wait for the file lock (retried with backoff); the process releases it when it
    exits or calls `release_warehouse`."""
    path = os.path.abspath(database)
    with _OPEN_LOCK:
        root = _OPEN.get(path)
        if root is None:
            root = backoff(fn=duckdb.connect, retry_on=(duckdb.IOException,),
                           kwargs={"database": path}, max_retries=10)
            _OPEN[path] = root
    cursor = root.cursor()
    try:
        cursor.execute("SET TimeZone = 'UTC'")
        yield cursor
    finally:
        cursor.close()


def release_warehouse(database: str | None = None) -> None:
    """Close this process's connection(s) to warehouse files (all when `database` is None)."""
    with _OPEN_LOCK:
        for path in [os.path.abspath(database)] if database else list(_OPEN):
            conn = _OPEN.pop(path, None)
            if conn is not None:
                conn.close()


atexit.register(release_warehouse)


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
