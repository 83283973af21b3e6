"""Small DuckDB helpers shared by the layers and the IO manager."""

from __future__ import annotations

import atexit
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pandas as pd
import pyarrow as pa

from dq_assets.storage.sql import check_identifier, qualified, quote, sql_str

_MEMORY: list[duckdb.DuckDBPyConnection] = []

# DuckDB takes 80% of the machine's memory per database by default and keeps what it took.
# A run has two databases (the in-memory one for set-based work and the warehouse file), so
# each gets a limit, past which DuckDB spills to disk instead.
MEMORY_LIMIT_ENV = "DQ_DUCKDB_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "256MB"
_SIZE = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


def memory_limit() -> str:
    value = (os.environ.get(MEMORY_LIMIT_ENV) or DEFAULT_MEMORY_LIMIT).strip()
    if not _SIZE.fullmatch(value):
        raise ValueError(f"{MEMORY_LIMIT_ENV}={value!r} is not a size such as 1GB or 512MB")
    return value


def _limit_memory(conn: duckdb.DuckDBPyConnection, spill_dir: str | None = None) -> None:
    conn.execute(f"SET memory_limit = {sql_str(memory_limit())}")
    if spill_dir:
        conn.execute(f"SET temp_directory = {sql_str(spill_dir)}")


def connect_duckdb() -> duckdb.DuckDBPyConnection:
    """A fresh connection (own registrations and temp tables) for set-based work in memory.
    Cursors of one in-memory database: creating a database costs more than small queries."""
    with _OPEN_LOCK:
        if not _MEMORY:
            conn = duckdb.connect(":memory:")
            _limit_memory(conn, os.path.join(tempfile.gettempdir(), f"dq_duckdb_spill_{os.getpid()}"))
            _MEMORY.append(conn)
    conn = _MEMORY[0].cursor()
    conn.execute("SET TimeZone = 'UTC'")  # TIMESTAMPTZ in and out as UTC
    return conn


_OPEN: dict[str, duckdb.DuckDBPyConnection] = {}
_OPEN_LOCK = threading.Lock()


@contextmanager
def warehouse_connection(
    database: str, lock_wait: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor on this process's connection to a DuckDB warehouse file.

    The file is opened once per process and kept open: opening and closing a DuckDB file
    checkpoints it every time, which cost more than all the work of a small partition. Other
    processes wait for the file lock (retried with backoff, up to `lock_wait` seconds, default
    DQ_WAREHOUSE_LOCK_WAIT); the process releases it when it exits or calls `release_warehouse`."""
    path = os.path.abspath(database)
    with _OPEN_LOCK:
        root = _OPEN.get(path)
        if root is None:
            root = _open_waiting_for_lock(path, lock_wait)
            _limit_memory(root)
            # Writes of a partition go in parallel (2x on 2 cores) when DuckDB need not keep
            # the frame's row order in the table; every reader that needs an order asks for it.
            root.execute("SET preserve_insertion_order = false")
            _OPEN[path] = root
    cursor = root.cursor()
    try:
        cursor.execute("SET TimeZone = 'UTC'")
        yield cursor
    finally:
        cursor.close()


LOCK_WAIT_ENV = "DQ_WAREHOUSE_LOCK_WAIT"  # seconds to wait for another process's lock


def _open_waiting_for_lock(path: str, lock_wait: float | None = None) -> duckdb.DuckDBPyConnection:
    """DuckDB lets one process at a time open a file for writing; a second run waits for the
    first (up to DQ_WAREHOUSE_LOCK_WAIT seconds, default 600) instead of failing at once."""
    if lock_wait is None:
        lock_wait = float(os.environ.get(LOCK_WAIT_ENV) or 600)
    deadline = time.monotonic() + lock_wait
    delay = 0.1
    while True:
        try:
            return duckdb.connect(path)
        except duckdb.IOException as e:
            if "lock" not in str(e).lower() or time.monotonic() + delay > deadline:
                raise duckdb.IOException(f"{path}: {str(e).splitlines()[0]}") from None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def release_warehouse(database: str | None = None) -> None:
    """Close this process's connection(s) to warehouse files (all when `database` is None)."""
    with _OPEN_LOCK:
        for path in [os.path.abspath(database)] if database else list(_OPEN):
            conn = _OPEN.pop(path, None)
            if conn is not None:
                conn.close()


def _close_memory() -> None:
    """Closing the in-memory database also removes its spill directory."""
    while _MEMORY:
        _MEMORY.pop().close()


atexit.register(release_warehouse)
atexit.register(_close_memory)


ARROW_BATCH_ROWS = 1_000_000


def fetch_arrow(conn: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pa.Table:
    """A query's rows as Arrow, streamed batch by batch: `to_arrow_table()` first materialises
    the whole result in DuckDB's own format and converts it after, so a big result is held
    twice for a while."""
    return conn.sql(sql, params=params).to_arrow_reader(ARROW_BATCH_ROWS).read_all()


def query_tables(sql: str, **tables: pa.Table) -> pa.Table:
    """Run DuckDB SQL over the given Arrow tables, each registered under its keyword's name."""
    conn = connect_duckdb()
    for name, table in tables.items():
        conn.register(name, table)
    return fetch_arrow(conn, sql)


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


def add_missing_columns(conn: duckdb.DuckDBPyConnection, schema: str, table: str, data: pa.Table) -> None:
    """Columns of `data` that an existing table lacks are added (NULL in its older rows): a
    record gains a field without anyone having to drop the table."""
    have = {r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [schema, table]).fetchall()}
    for name in data.column_names:
        if name not in have:
            column_type = _duck_type(conn, data.select([name]))
            conn.execute(f"ALTER TABLE {qualified(schema, table)} ADD COLUMN {quote(name)} {column_type}")


def _duck_type(conn: duckdb.DuckDBPyConnection, one_column: pa.Table) -> str:
    conn.register("_typed", one_column.slice(0, 0))
    try:
        return conn.execute("DESCRIBE SELECT * FROM _typed").fetchall()[0][1]
    finally:
        conn.unregister("_typed")


def replace_partitions(conn: duckdb.DuckDBPyConnection, schema: str, table: str, column: str,
                       batches, commit_groups: bool = True) -> None:
    """Write a `PartitionBatches` into `schema.table`, replacing each partition it produces
    (by `column`), and the same partitions of the outputs written together with it (each into
    the table of its asset key, schema.table) in the same transactions, and publish the pending
    versions of those partitions that it names (`publishes`, see `publish_pending`). Batches
    written as `pending` become new versions instead (see `write_pending`). The caller opens
    the first transaction.

    With `commit_groups`, each group of whole partitions is committed on its own: DuckDB keeps
    every Arrow table a transaction scanned alive until the transaction ends, so one transaction
    over a year-long range held the whole year's rows in memory. A partition is still never
    half-written, nor one table of it without the others; a range that fails midway leaves the
    groups before it replaced, and a rerun converges. Without, everything is the caller's one
    transaction."""
    evolved: set[tuple[str, str]] = set()  # every group has the same columns: once is enough
    target = versions_table(schema, table) if batches.pending else (schema, table)
    for keys, tables in batches.groups_together(*target):
        for (s, t), rows in tables:
            if (s, t) == target and batches.pending:
                write_pending(conn, schema, table, column, keys, rows, evolve=(s, t) not in evolved)
            else:
                _replace_group(conn, s, t, column, keys, rows, evolve=(s, t) not in evolved)
            evolved.add((s, t))
        for publication in batches.publishes:
            if publication.versions:
                raise ValueError(f"{publication.asset_key.to_user_string()} is stored elsewhere (S3): "
                                 "the warehouse file can publish only the pending versions it holds")
            publish_pending(conn, publication.asset_key.path[-2], publication.asset_key.path[-1],
                            column, keys)
        if commit_groups:
            conn.commit()
            conn.begin()


# Versions of a table written as pending (raw): every version's rows are kept once, in
# `<schema>_versions.<table>` with a `_version` column, and `<schema>_versions.partition_versions`
# says which version of each partition is current and which is pending (written, not yet
# published; a version may have no rows: a file absent that day). What users and readers see are
# views of it: `<schema>.<table>` (the current versions) and `<schema>_pending.<table>` with
# `<schema>_pending.pending_partitions` (the pending ones). Publishing a partition is a change of
# its row in partition_versions, and the rows of the version it supersedes are deleted: no row is
# copied (a raw day was written twice when the pending version was a table of its own).
PENDING_MARKS = "pending_partitions"
VERSIONS = "partition_versions"
VERSION_COLUMN = "_version"


def versions_table(schema: str, table: str) -> tuple[str, str]:
    return check_identifier(f"{schema}_versions"), table


def pending_table(schema: str, table: str) -> tuple[str, str]:
    """Where a table's pending rows show (a view)."""
    return check_identifier(f"{schema}_pending"), table


def _versions(schema: str) -> str:
    return qualified(versions_table(schema, VERSIONS)[0], VERSIONS)


def _ensure_versioned(conn, schema: str, table: str, column: str, data: pa.Table, evolve: bool) -> None:
    """The versions store of `schema.table` and its views, created on first use; a table from
    before (a base table `schema.table`, its pending rows in `<schema>_pending`) is moved in."""
    vschema, _ = versions_table(schema, table)
    pschema, _ = pending_table(schema, table)
    store, marks = qualified(vschema, table), _versions(schema)
    if not table_exists(conn, vschema, table):
        for name in (vschema, pschema, schema):
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(name)}")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {marks} (table_name VARCHAR, partition_date DATE, "
                     "version BIGINT, current BOOLEAN)")
        conn.register("_batch", data.slice(0, 0))
        conn.execute(f"CREATE TABLE {store} AS SELECT *, CAST(NULL AS BIGINT) AS {VERSION_COLUMN} "
                     "FROM _batch LIMIT 0")
        conn.unregister("_batch")
        _move_in_legacy(conn, schema, table, column)
        where = f"WHERE table_name = {sql_str(table)} AND"
        versions = (f"(SELECT partition_date, version FROM {marks} {where} current)",
                    f"(SELECT partition_date, version FROM {marks} {where} NOT current)")
        for (s, t), chosen in (((schema, table), versions[0]), ((pschema, table), versions[1])):
            conn.execute(f"CREATE OR REPLACE VIEW {qualified(s, t)} AS SELECT * EXCLUDE "
                         f"({VERSION_COLUMN}) FROM {store} WHERE ({quote(column)}, {VERSION_COLUMN}) "
                         f"IN {chosen}")
        conn.execute(f"CREATE OR REPLACE VIEW {qualified(pschema, PENDING_MARKS)} AS SELECT "
                     f"table_name, partition_date FROM {marks} WHERE NOT current")
    elif evolve:
        add_missing_columns(conn, vschema, table, data)


def _base_table(conn, schema: str, table: str) -> bool:
    return bool(conn.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND "
                             "table_name = ?", [schema, table]).fetchall()[0][0])


def _move_in_legacy(conn, schema: str, table: str, column: str) -> None:
    """A warehouse written before versions: its current rows become version 0 and its pending
    rows version 1 of their partitions; the old tables make way for the views."""
    pschema, _ = pending_table(schema, table)
    store, marks = qualified(*versions_table(schema, table)), _versions(schema)
    for (s, t), version, current in (((schema, table), 0, True), ((pschema, table), 1, False)):
        if not _base_table(conn, s, t):
            continue
        add_missing_columns(conn, *versions_table(schema, table),
                            fetch_arrow(conn, f"SELECT * FROM {qualified(s, t)} LIMIT 0"))
        conn.execute(f"INSERT INTO {store} BY NAME SELECT *, {version} AS {VERSION_COLUMN} "
                     f"FROM {qualified(s, t)}")
        conn.execute(f"INSERT INTO {marks} SELECT DISTINCT {sql_str(table)}, {quote(column)}, "
                     f"{version}, {current} FROM {qualified(s, t)}")
        conn.execute(f"DROP TABLE {qualified(s, t)}")
    if _base_table(conn, pschema, PENDING_MARKS):  # pending partitions, with or without rows
        conn.execute(f"INSERT INTO {marks} SELECT DISTINCT table_name, partition_date, 1, false "
                     f"FROM {qualified(pschema, PENDING_MARKS)} WHERE table_name = ? AND "
                     f"partition_date NOT IN (SELECT partition_date FROM {marks} WHERE "
                     "table_name = ? AND NOT current)", [table, table])
        conn.execute(f"DELETE FROM {qualified(pschema, PENDING_MARKS)} WHERE table_name = ?", [table])
        if not conn.execute(f"SELECT count(*) FROM {qualified(pschema, PENDING_MARKS)}").fetchall()[0][0]:
            conn.execute(f"DROP TABLE {qualified(pschema, PENDING_MARKS)}")


def versioned(conn, schema: str, table: str, column: str) -> bool:
    """Whether `schema.table` is kept as versions; a table written before versions, with rows
    waiting in `<schema>_pending`, is moved in first (in the caller's transaction), so that
    its pending rows are read as the latest version."""
    if table_exists(conn, *versions_table(schema, table)):
        return True
    pschema, _ = pending_table(schema, table)
    if not _base_table(conn, pschema, table):
        return False
    legacy = fetch_arrow(conn, f"SELECT * FROM {qualified(pschema, table)} LIMIT 0")
    _ensure_versioned(conn, schema, table, column, legacy, evolve=True)
    return True


def write_pending(conn, schema: str, table: str, column: str, keys: list[str], data,
                  evolve: bool = True) -> None:
    """`data` becomes a new pending version of each partition of `keys` (replacing a pending
    version written before and not published); the current version stays what readers of
    `schema.table` see until `publish_pending`."""
    _ensure_versioned(conn, schema, table, column, data, evolve)
    store, marks = qualified(*versions_table(schema, table)), _versions(schema)
    [(version,)] = conn.execute(f"SELECT coalesce(max(version), 0) + 1 FROM {marks} WHERE table_name = ?",
                                [table]).fetchall()
    _drop_versions(conn, schema, table, column, keys, current=False)
    conn.register("_batch", data)
    conn.execute(f"INSERT INTO {store} BY NAME SELECT *, {int(version)} AS {VERSION_COLUMN} FROM _batch")
    conn.unregister("_batch")
    conn.execute(f"INSERT INTO {marks} SELECT ?, unnest(CAST(? AS DATE[])), ?, false",
                 [table, keys, version])


def pending_partitions(conn, schema: str, table: str, keys: list[str] | None = None) -> list[str]:
    """The partitions of `schema.table` (of `keys`, default all) that have a pending version."""
    if not table_exists(conn, versions_table(schema, VERSIONS)[0], VERSIONS):
        return []
    sql = (f"SELECT DISTINCT CAST(partition_date AS VARCHAR) FROM {_versions(schema)} "
           "WHERE table_name = ? AND NOT current")
    params: list = [table]
    if keys is not None:
        sql, params = sql + " AND list_contains(CAST(? AS DATE[]), partition_date)", params + [keys]
    return sorted(r[0] for r in conn.execute(sql, params).fetchall())


def publish_pending(conn, schema: str, table: str, column: str, keys: list[str]) -> None:
    """The pending versions of `keys` (those that have one) become the current versions of
    their partitions, in the caller's transaction; the rows of the versions they supersede are
    deleted. No row is copied."""
    keys = pending_partitions(conn, schema, table, keys)
    if not keys:
        return
    _drop_versions(conn, schema, table, column, keys, current=True)
    conn.execute(f"UPDATE {_versions(schema)} SET current = true WHERE table_name = ? AND "
                 "list_contains(CAST(? AS DATE[]), partition_date)", [table, keys])


def _drop_versions(conn, schema: str, table: str, column: str, keys: list[str], current: bool) -> None:
    """The current (or the pending) versions of `keys`: their rows and their marks deleted."""
    store, marks = qualified(*versions_table(schema, table)), _versions(schema)
    state = "current" if current else "NOT current"
    conn.execute(f"DELETE FROM {store} WHERE list_contains(CAST(? AS DATE[]), {quote(column)}) AND "
                 f"({quote(column)}, {VERSION_COLUMN}) IN (SELECT partition_date, version FROM "
                 f"{marks} WHERE table_name = ? AND {state})", [keys, table])
    conn.execute(f"DELETE FROM {marks} WHERE table_name = ? AND {state} AND "
                 "list_contains(CAST(? AS DATE[]), partition_date)", [table, keys])


def latest_versions_query(schema: str, table: str, columns: str, column: str, where: str) -> str:
    """The rows of the latest version written of each partition of a versioned table: its
    pending version where it has one, else its current one (parameters: `where`'s, the table)."""
    store, marks = qualified(*versions_table(schema, table)), _versions(schema)
    return (f"SELECT {columns} FROM {store} WHERE {where} AND ({quote(column)}, {VERSION_COLUMN}) IN "
            f"(SELECT partition_date, max(version) FROM {marks} WHERE table_name = ? GROUP BY 1)")


def _replace_group(conn, schema: str, table: str, column: str, keys: list[str], data,
                   evolve: bool) -> None:
    name = qualified(schema, table)
    conn.register("_batch", data)
    if table_exists(conn, schema, table):
        if evolve:
            add_missing_columns(conn, schema, table, data)
        conn.execute(f"DELETE FROM {name} WHERE list_contains(CAST(? AS DATE[]), {quote(column)})", [keys])
    else:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        conn.execute(f"CREATE TABLE {name} AS SELECT * FROM _batch LIMIT 0")
    conn.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _batch")
    conn.unregister("_batch")


def partition_query(schema: str, table: str, column: str, partition_key: str) -> str:
    """The SQL a user runs to see one partition (shown on its page in the UI)."""
    return f"SELECT * FROM {schema}.{table} WHERE {column} = DATE {sql_str(partition_key)}"
