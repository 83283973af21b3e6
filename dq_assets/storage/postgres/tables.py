"""Typed table I/O in PostgreSQL: one implementation of writing and reading a table.

It behaves like the DuckDB warehouse (`dq_assets.storage.duckdb`):
- frames travel as Arrow tables: decimal128(38,6) <-> NUMERIC(38,6),
  timestamp[us, tz=UTC] <-> TIMESTAMPTZ, date32 <-> DATE, string <-> TEXT, int64 <-> BIGINT,
  bool <-> BOOLEAN, float64 <-> DOUBLE PRECISION (see `pg_type` / `arrow_type`);
- everything runs on an ADBC `ArrowSession` (session.py): rows go in with the driver's COPY
  BINARY from Arrow (`ingest`, after a cast to the table's own column types) and come out as
  Arrow (`fetch_arrow`, the driver's COPY BINARY TO; NUMERIC read as text, then cast exactly);
- `write_table` deletes what it replaces (a partition's window, a range of them, or the whole
  table) and ingests the frame in ONE transaction (the session's BEGIN ... COMMIT, around the
  locks, the DDL, the DELETE and the COPY), so a failed write (even a killed connection)
  leaves the old contents intact; an empty frame still creates its table;
- `replace_partitions` writes partition batches, and `record_current` makes the raw versions
  they were made from current (`quality.raw_current`), in the caller's transaction;
- identifiers pass `check_identifier` and are double-quoted; values only ever travel as
  parameters (bound by the driver) or COPY data.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import NamedTuple

import pyarrow as pa
from psycopg import sql

from dq_assets.storage.postgres.session import ArrowSession
from dq_assets.storage.sql import check_identifier

__all__ = [
    "RAW_CURRENT",
    "Where",
    "arrow_type",
    "pg_type",
    "read_table",
    "record_current",
    "replace_partitions",
    "table_columns",
    "write_table",
]


# --------------------------------------------------------------------------------------------
# Types, and one implementation of writing and reading a table
# --------------------------------------------------------------------------------------------


class Where(NamedTuple):
    """A parameterised row filter: `clause` uses `%s` placeholders for `params`."""

    clause: sql.Composable
    params: tuple = ()


def pg_type(t: pa.DataType, column: str = "?") -> str:
    """The PostgreSQL column type for an Arrow type."""
    if pa.types.is_dictionary(t):
        return pg_type(t.value_type, column)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t) or getattr(pa.types, "is_string_view", lambda _: False)(t):
        return "TEXT"
    if pa.types.is_decimal(t):
        return f"NUMERIC({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "SMALLINT"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "INTEGER"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "BIGINT"
    if pa.types.is_uint64(t):
        return "NUMERIC(20,0)"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "REAL"
    if pa.types.is_float64(t):
        return "DOUBLE PRECISION"
    raise TypeError(f"column {column!r}: Arrow type {t} has no PostgreSQL mapping")


_SIMPLE = {
    "text": pa.string(), "varchar": pa.string(), "bpchar": pa.string(), "name": pa.string(),
    "date": pa.date32(), "int8": pa.int64(), "int4": pa.int32(), "int2": pa.int16(),
    "bool": pa.bool_(), "float8": pa.float64(), "float4": pa.float32(),
}


def arrow_type(typname: str, typmod: int) -> pa.DataType:
    """The Arrow type a PostgreSQL column is read as (what DuckDB returns for the same data).
    Types without a mapping (and NUMERIC without precision) are read as text."""
    if typname in _SIMPLE:
        return _SIMPLE[typname]
    if typname == "numeric" and typmod >= 4:
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
        return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
    if typname == "timestamptz":
        return pa.timestamp("us", tz="UTC")
    if typname == "timestamp":
        return pa.timestamp("us")
    return pa.string()


def _q(identifier: str) -> sql.Identifier:
    return sql.Identifier(check_identifier(identifier))


def _qualified(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(_q(schema), _q(table))


def table_columns(conn: ArrowSession, schema: str, table: str) -> list[tuple[str, str, int]]:
    """(name, type name, typmod) of a table's columns in order; [] if there is no table."""
    return conn.execute(
        """SELECT a.attname::text, t.typname::text, a.atttypmod
           FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_type t ON t.oid = a.atttypid
           WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
             AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum""",
        [schema, table],
    )


def _lock(conn: ArrowSession, key: str) -> None:
    """A transaction-scoped advisory lock: one writer per table (and per schema creation)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"dq_assets:{key}"])


def _ingestable(data: pa.Table, columns: list[tuple[str, str, int]]) -> pa.Table:
    """`data` cast to the Arrow types of the table's columns: COPY BINARY sends each value in
    the binary form of its Arrow type, which must be the column's (an int32 is not a BIGINT)."""
    types = {name: arrow_type(typname, typmod) for name, typname, typmod in columns}
    cols = []
    for name, col in zip(data.column_names, data.columns):
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if col.type != types[name]:
            col = col.cast(types[name])
        cols.append(col)
    return pa.table(cols, names=data.column_names)


def write_table(
    conn: ArrowSession,
    schema: str,
    table: str,
    data: pa.Table,
    *,
    replace: Where | bool | None = None,
    allow_missing_columns: bool = False,
    evolve: bool = False,
    index: Sequence[str] = (),
) -> int:
    """Store `data` in `schema.table` in one transaction and return the number of rows.

    Creates the schema and table from the Arrow schema if needed. `replace=Where(...)` first
    deletes the rows it matches (a partition's window), `replace=True` deletes every row, and
    `None` only appends. Rows go in with COPY BINARY (ADBC ingest), by column name, cast to
    the table's column types. An existing table must have the same columns as `data` (with
    `allow_missing_columns`, a superset; with `evolve`, columns new in `data` are added to it).
    A new table gets an index on each column of `index` (the partition column: deletes and loads by window)."""
    names = [check_identifier(str(n)) for n in data.column_names]
    if len(set(names)) != len(names):
        raise ValueError(f"{schema}.{table}: duplicate column names in {names}")
    definitions = [sql.SQL("{} {}").format(_q(n), sql.SQL(pg_type(t, n))) for n, t in zip(names, data.schema.types)]
    target = _qualified(schema, table)
    with conn.transaction():
        if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]):
            _lock(conn, f"schema:{schema}")
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(_q(schema)))
        _lock(conn, f"table:{schema}.{table}")
        existing = [c[0] for c in table_columns(conn, schema, table)]
        if not existing:
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(target, sql.SQL(", ").join(definitions)))
            for col in dict.fromkeys(index):
                if col in names:
                    conn.execute(sql.SQL("CREATE INDEX ON {} ({})").format(target, _q(col)))
        else:
            extra = [n for n in names if n not in existing]
            missing = [n for n in existing if n not in names]
            if extra and evolve:  # a record gained a field: older rows get NULL
                for n, t in zip(names, data.schema.types):
                    if n in extra:
                        conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                            target, _q(n), sql.SQL(pg_type(t, n))))
                extra = []
            if extra or (missing and not allow_missing_columns):
                raise ValueError(
                    f"{schema}.{table} exists with columns {existing}, but the data has {names}: "
                    + "; ".join(
                        part for part in (
                            f"not in the table: {extra}" if extra else "",
                            f"not in the data: {missing}" if missing else "",
                        ) if part
                    )
                    + ". Migrate or drop the table first."
                )
        if replace is True:
            conn.execute(sql.SQL("DELETE FROM {}").format(target))
        elif isinstance(replace, Where):
            conn.execute(sql.SQL("DELETE FROM {} WHERE ").format(target) + replace.clause, replace.params)
        if data.num_rows:
            rows = data.rename_columns(names)
            conn.ingest(schema, table, _ingestable(rows, table_columns(conn, schema, table)))
    return data.num_rows


def read_table(
    conn: ArrowSession,
    schema: str,
    table: str,
    *,
    columns: Sequence[str] | None = None,
    where: Where | None = None,
    latest: tuple[Sequence[str], str] | None = None,
    order_by: Sequence[str] = (),
) -> pa.Table | None:
    """Rows of `schema.table` as Arrow (None if the table does not exist).

    `columns` selects (default: all, in table order), `where` filters, `latest=(keys, col)`
    keeps the row with the greatest `col` per `keys`, `order_by` sorts (bytewise, as DuckDB).
    Data comes out as Arrow (ADBC) and is cast to the exact column types (`arrow_type`)."""
    _qualified(schema, table)  # a bad name is an error, not "no such table"
    info = {name: (typname, typmod) for name, typname, typmod in table_columns(conn, schema, table)}
    if not info:
        return None
    wanted = [check_identifier(c) for c in columns] if columns else list(info)
    unknown = [c for c in wanted if c not in info]
    if unknown:
        raise ValueError(f"{schema}.{table} has no column(s) {unknown}; it has {list(info)}")
    types = {c: arrow_type(*info[c]) for c in wanted}
    exprs = []
    for c in wanted:
        t, ident = types[c], _q(c)
        if pa.types.is_string(t) and info[c][0] not in _SIMPLE:
            exprs.append(sql.SQL("{}::text").format(ident))
        else:
            exprs.append(ident)
    params: list = []
    source: sql.Composable = _qualified(schema, table)
    filter_sql: sql.Composable = sql.SQL("")
    if where is not None:
        filter_sql = sql.SQL(" WHERE ") + where.clause
        params.extend(where.params)
    if latest is not None:
        keys, newest = latest
        source = sql.SQL(
            "(SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {newest} DESC NULLS LAST)"
            " AS __dq_rank FROM {source}{filter}) AS latest"
        ).format(keys=sql.SQL(", ").join(_q(k) for k in keys), newest=_q(newest), source=source, filter=filter_sql)
        filter_sql = sql.SQL(" WHERE __dq_rank = 1")
    order_sql: sql.Composable = sql.SQL("")
    if order_by:
        order_sql = sql.SQL(" ORDER BY ") + sql.SQL(", ").join(
            sql.SQL('{} COLLATE "C"').format(_q(c)) if info[c][0] in ("text", "varchar", "bpchar") else _q(c)
            for c in order_by
        )
    select = sql.SQL("SELECT {} FROM {}{}{}").format(sql.SQL(", ").join(exprs), source, filter_sql, order_sql)
    got = conn.fetch_arrow(select, params)
    return pa.table([_exact(got.column(i), types[c]) for i, c in enumerate(wanted)],
                    schema=pa.schema([(c, types[c]) for c in wanted]))


def _exact(col: pa.ChunkedArray, want: pa.DataType) -> pa.ChunkedArray:
    """A column as read by ADBC, in its `arrow_type`: NUMERIC comes as text (an opaque extension
    type over strings), cast exactly to its decimal; the driver's own types already match."""
    if isinstance(col.type, pa.BaseExtensionType):
        col = pa.chunked_array([chunk.storage for chunk in col.chunks], col.type.storage_type)
    return col if col.type == want else col.cast(want)


# --------------------------------------------------------------------------------------------
# Partition batches, and the current raw versions
# --------------------------------------------------------------------------------------------


def replace_partitions(conn: ArrowSession, schema: str, table: str, column: str, batches) -> None:
    """Write a `PartitionBatches` into `schema.table`, replacing each partition it produces (by
    the DATE `column`), and the same partitions of the outputs written together with it (each
    into the table of its asset key, schema.table), all in the caller's one transaction."""
    if batches.pending:
        raise ValueError(f"{schema}.{table}: PostgreSQL does not keep pending versions; the raw "
                         "layer goes to S3 (aws) or the DuckDB warehouse (local)")
    for keys, tables in batches.groups_together(schema, table):
        replace = Where(sql.SQL("{} = ANY(%s::date[])").format(_q(column)), (keys,))
        for (s, t), rows in tables:
            write_table(conn, s, t, rows, index=[column], evolve=True, replace=replace)
        for publication in batches.publishes:
            record_current(conn, publication, keys)


RAW_CURRENT = ("quality", "raw_current")  # the current S3 object of each raw partition


def record_current(conn: ArrowSession, publication, keys: list[str]) -> None:
    """The versions of `keys` that a publication read (S3 objects of the raw layer, written as
    pending by the raw step) become current: recorded in `quality.raw_current`, in the caller's
    transaction, the one that writes the staging and quarantine made from them."""
    versions = {k: publication.versions[k] for k in keys if k in publication.versions}
    if not versions:
        return
    name = publication.asset_key.to_user_string()
    rows = pa.table({"asset_key": pa.array([name] * len(versions), pa.string()),
                     "ingest_date": pa.array([date.fromisoformat(k) for k in versions], pa.date32()),
                     "current_object": pa.array(list(versions.values()), pa.string())})
    write_table(conn, *RAW_CURRENT, rows, index=["ingest_date"],
                replace=Where(sql.SQL("asset_key = %s AND ingest_date = ANY(%s::date[])"),
                              (name, list(versions))))

