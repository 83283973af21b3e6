"""The columns a store holds, as Dagster's `dagster/column_schema` metadata: each store's own
type names, the kinds shown on an asset's page, and the schema an IO manager publishes on every
materialization (the columns it actually wrote, with the declared descriptions and constraints
carried over from the asset's definition metadata). Dagster's column-schema-change check
compares these. Knows the stores, not the warehouse's tables (dq_assets.catalog does)."""

from __future__ import annotations

from functools import cache

import dagster as dg
import duckdb
import pyarrow as pa

COLUMN_SCHEMA = "dagster/column_schema"

DUCKDB, POSTGRES, S3_PARQUET = "duckdb", "postgres", "s3_parquet"
STORE_KINDS: dict[str, set[str]] = {
    DUCKDB: {"duckdb"},
    POSTGRES: {"postgres"},
    S3_PARQUET: {"s3", "parquet"},
}
# The IO managers of `resources.py` and the store behind each (by class name, so this module
# does not import psycopg or boto3 to find out).
_STORE_OF_IO_MANAGER = {
    "WarehouseIOManager": DUCKDB,
    "PostgresIOManager": POSTGRES,
    "S3ParquetIOManager": S3_PARQUET,
    # where the marts step writes the marts itself
    "DuckDBQualityStore": DUCKDB,
    "PostgresQualityStore": POSTGRES,
    "DuckDBPublication": DUCKDB,
    "PostgresPublication": POSTGRES,
}


def store_of(io_manager) -> str | None:
    """The store behind an IO manager resource, or None for one this module does not know."""
    for cls in type(io_manager).__mro__:
        if cls.__name__ in _STORE_OF_IO_MANAGER:
            return _STORE_OF_IO_MANAGER[cls.__name__]
    return None


def column_type(t: pa.DataType, store: str | None) -> str:
    """The type name of an Arrow column as the store holds it, as its own catalog spells it:
    DuckDB's information_schema, PostgreSQL's `format_type` (of what `postgres.pg_type` has
    its IO manager create), or the Arrow type of the parquet file (also for an unknown store)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if store == DUCKDB:
        return _duckdb_type(t)
    if store == POSTGRES:
        from dq_assets.storage.postgres.tables import pg_type  # (psycopg only when asked)

        created = pg_type(t)
        return _PG_SPELLING.get(created, created.lower())
    return _arrow_type(t)


_PG_SPELLING = {"TIMESTAMPTZ": "timestamp with time zone", "TIMESTAMP": "timestamp without time zone"}


@cache
def _duckdb_type(t: pa.DataType) -> str:
    """DuckDB's name for the column type it creates from this Arrow type (as its
    information_schema reports it), asked from DuckDB itself."""
    with duckdb.connect() as conn:
        return str(conn.from_arrow(pa.table({"c": pa.array([], type=t)})).types[0])


_UTC = ("UTC", "Etc/UTC", "+00:00", "Z")


def _arrow_type(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t) or str(t) == "string_view":
        return "string"
    if pa.types.is_timestamp(t) and t.tz in _UTC:
        return str(pa.timestamp(t.unit, tz="UTC"))
    return str(t)


def written_column_schema(context: dg.OutputContext, schema: pa.Schema | None, store: str) -> dict:
    """Output metadata for the columns an IO manager wrote: names and types as `store` holds
    them, with the descriptions and constraints of the asset's declared schema for the
    columns it declares. Dagster's column-schema-change check compares these."""
    declared_value = (context.definition_metadata or {}).get(COLUMN_SCHEMA)
    return columns_written(schema, store, getattr(declared_value, "schema", declared_value))


def columns_written(schema: pa.Schema | None, store: str, declared) -> dict:
    if schema is None:
        return {}
    by_name = {c.name: c for c in declared.columns} if isinstance(declared, dg.TableSchema) else {}
    columns = []
    for field in schema:
        known = by_name.get(field.name)
        columns.append(dg.TableColumn(
            name=field.name, type=column_type(field.type, store),
            description=known.description if known else None,
            constraints=known.constraints if known else None))
    constraints = declared.constraints if isinstance(declared, dg.TableSchema) else None
    return {COLUMN_SCHEMA: dg.TableSchema(columns=columns, constraints=constraints)}
