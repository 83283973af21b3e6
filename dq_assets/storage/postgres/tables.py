"""The PostgreSQL (RDS) backend: connection settings, an IO manager and the quality store.

It behaves like the DuckDB warehouse (`io_managers.py`, `quality_store.py`):
- one schema per layer (first asset key part), one table per asset (last key part);
- frames travel as Arrow-backed pandas columns: decimal128(38,6) <-> NUMERIC(38,6),
  timestamp[us, tz=UTC] <-> TIMESTAMPTZ, date32 <-> DATE, string <-> TEXT, int64 <-> BIGINT,
  bool <-> BOOLEAN, float64 <-> DOUBLE PRECISION (see `pg_type` / `arrow_type`);
- writing a partition (or a range of them) deletes its time window and COPYs the frame in ONE
  transaction, so a failed write (even a killed connection) leaves the old contents intact;
  an unpartitioned asset replaces the whole table the same way; an empty frame still creates
  its table;
- identifiers pass `check_identifier` and are double-quoted; values only ever travel as
  parameters or COPY data.

Connection settings are read from the environment when a connection is opened, never at
import time:
- `DQ_PG_SECRET_ID`: an AWS Secrets Manager secret in the standard RDS JSON shape (host, port,
  username, password, dbname), read through dagster-aws (region `DQ_PG_SECRET_REGION`, else
  `AWS_REGION`/`AWS_DEFAULT_REGION`; endpoint `AWS_ENDPOINT_URL` as boto3 reads it);
- else `DQ_PG_URL`, a libpq URL (`postgresql://user:password@host:5432/db?sslmode=require`);
- else libpq's own `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE` (and PGPASSFILE).
`DQ_PG_SSLMODE` (default `prefer`, or the URL's own sslmode), `DQ_PG_CONNECT_ATTEMPTS` (3),
`DQ_PG_CONNECT_BACKOFF_SECONDS` (0.5, doubled after each failed attempt) and
`DQ_PG_CONNECT_TIMEOUT` (10 s per attempt) tune the connection. A connection that cannot be
opened ends in one line such as `PostgreSQL at db.example:5432/warehouse: password
authentication failed for user "dq"`; passwords never appear in messages or logs (`redact`).
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple
from urllib.parse import quote as url_quote

import dagster as dg
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from dagster._core.definitions.metadata import TableMetadataSet
from dagster._core.definitions.partitions.utils import TimeWindow
from dagster._core.storage.db_io_manager import DbClient, DbIOManager, DbTypeHandler, TableSlice
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field

from dq_assets.storage.batches import PartitionBatches, PartitionReader, written_by_another_output
from dq_assets.storage.column_schema import POSTGRES, written_column_schema
from dq_assets.storage.sql import check_identifier, check_table_slice
from dq_assets.storage.duckdb.warehouse import partition_query, to_arrow, to_pandas
from dq_assets.storage.quality_store import APPEND_ONLY_TABLES, QUALITY_SCHEMA, Publication, QualityStore
from dq_assets.redaction import redact

__all__ = [
    "APPEND_ONLY_TABLES",
    "PostgresConnection",
    "PostgresConnectionError",
    "PostgresError",
    "PostgresIOManager",
    "PostgresQualityStore",
    "PostgresSettings",
    "Where",
    "arrow_type",
    "pg_type",
    "read_table",
    "redact",
    "resolve_settings",
    "write_table",
]

URL_ENV = "DQ_PG_URL"
SECRET_ID_ENV = "DQ_PG_SECRET_ID"
SECRET_REGION_ENV = "DQ_PG_SECRET_REGION"
SSLMODE_ENV = "DQ_PG_SSLMODE"
ATTEMPTS_ENV = "DQ_PG_CONNECT_ATTEMPTS"
BACKOFF_ENV = "DQ_PG_CONNECT_BACKOFF_SECONDS"
TIMEOUT_ENV = "DQ_PG_CONNECT_TIMEOUT"

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DEFAULT_SSLMODE = "prefer"
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_SECONDS = 0.5
DEFAULT_CONNECT_TIMEOUT = 10

COPY_BATCH_ROWS = 50_000

_log = dg.get_dagster_logger("dq_assets.storage.postgres.tables")


# --------------------------------------------------------------------------------------------
# Errors and redaction
# --------------------------------------------------------------------------------------------


class PostgresError(dg.Failure):
    """A PostgreSQL operation failed; the message names the server, never a credential."""

    def __init__(self, message: str):
        super().__init__(description=message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class PostgresConnectionError(PostgresError):
    """No connection could be opened (after the configured attempts)."""


def _one_line(message: str) -> str:
    """The telling part of a libpq error: `FATAL:  password authentication failed ...` out of
    `connection failed: connection to server at "h", port 5432 failed: FATAL: ...`."""
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    if not lines:
        return "unknown error"
    failed = [ln for ln in lines if "failed: " in ln]
    line = (failed[0] if failed else lines[0]).rsplit("failed: ", 1)[-1]
    line = re.sub(r"^(FATAL|ERROR):\s+", "", line)
    return line.rstrip(".") or lines[0]


def _first_cause(exc: BaseException) -> BaseException:
    """The database error that started it: a failed ROLLBACK after a killed connection is
    raised while handling the original error (`terminating connection ...`)."""
    seen = {id(exc)}
    while isinstance(exc.__context__, psycopg.Error) and id(exc.__context__) not in seen:
        exc = exc.__context__
        seen.add(id(exc))
    return exc


_PERMANENT = re.compile(
    r"authentication failed|no pg_hba\.conf entry|does not exist|does not support SSL|"
    r"SSL was required|certificate|invalid (connection option|URI|sslmode|integer)|"
    r"missing \"=\"|unterminated quoted string",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------------------------
# Connection settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class PostgresSettings:
    """Where to connect: libpq keywords (without the password, kept apart) and retry policy."""

    params: Mapping[str, str]
    password: str | None = None
    source: str = "PG* environment"
    connect_attempts: int = DEFAULT_ATTEMPTS
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS
    extra_secrets: tuple[str, ...] = field(default=())

    # What the target is called in messages: host:port/dbname (libpq's defaults filled in).
    @property
    def host(self) -> str:
        return str(self.params.get("host") or os.environ.get("PGHOST") or "localhost")

    @property
    def port(self) -> str:
        return str(self.params.get("port") or os.environ.get("PGPORT") or "5432")

    @property
    def user(self) -> str:
        return str(self.params.get("user") or os.environ.get("PGUSER") or "")

    @property
    def dbname(self) -> str:
        return str(self.params.get("dbname") or os.environ.get("PGDATABASE") or self.user or "postgres")

    def describe(self) -> str:
        return self.redact(f"{self.host}:{self.port}/{self.dbname}")

    def secrets(self) -> list[str]:
        pw = [self.password, os.environ.get("PGPASSWORD")]
        return [s for s in pw if s] + [url_quote(s, safe="") for s in pw if s] + list(self.extra_secrets)

    def redact(self, text: object) -> str:
        return redact(text, self.secrets())

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.params.items()}
        return self.redact(f"PostgresSettings({self.describe()}, source={self.source}, params={shown})")

    def connect(self) -> psycopg.Connection:
        """An autocommit connection in UTC with ISO dates, after up to `connect_attempts`
        tries with exponential backoff; else one `PostgresConnectionError` line."""
        attempts = max(1, int(self.connect_attempts))
        delay = max(0.0, float(self.backoff_seconds))
        kwargs = {k: v for k, v in self.params.items() if v not in (None, "")}
        if self.password is not None:
            kwargs["password"] = self.password
        failure = ""
        for attempt in range(1, attempts + 1):
            conn = None
            try:
                conn = psycopg.connect(autocommit=True, **kwargs)
                conn.execute("SET TIME ZONE 'UTC'")
                conn.execute("SET DateStyle = 'ISO, YMD'")
                conn.execute("SET extra_float_digits = 1")  # shortest exact float text
                return conn
            except psycopg.Error as exc:  # noqa: PERF203 - retry loop
                failure = self.redact(_one_line(str(exc)))
                permanent = not isinstance(exc, psycopg.OperationalError) or bool(_PERMANENT.search(str(exc)))
                if conn is not None:
                    conn.close()
            if permanent or attempt == attempts:
                break
            _log.warning(
                f"PostgreSQL at {self.describe()}: {failure} (attempt {attempt} of {attempts}, "
                f"retrying in {delay:.2f}s)"
            )
            time.sleep(delay)
            delay *= 2
        tries = f" (after {attempt} attempts)" if attempt > 1 else ""
        raise PostgresConnectionError(f"PostgreSQL at {self.describe()}: {failure}{tries}") from None


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    try:
        return int(raw) if raw not in (None, "") else default
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw not in (None, "") else default
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def _secret_params(secret_id: str, region: str | None, endpoint_url: str | None) -> tuple[dict, str | None, str]:
    """libpq keywords and the password from an RDS-style JSON secret."""
    from dagster_aws.secretsmanager import SecretsManagerResource

    error = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the resource is marked beta
            client = SecretsManagerResource(region_name=region, endpoint_url=endpoint_url).get_client()
        text = client.get_secret_value(SecretId=secret_id)["SecretString"]
    except Exception as exc:  # botocore errors name the secret (or region), never its value
        error = _one_line(str(exc))
    if error is not None:
        raise PostgresConnectionError(f"PostgreSQL secret {secret_id!r} from AWS Secrets Manager: {error}") from None
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError
    except ValueError:
        raise PostgresConnectionError(
            f"PostgreSQL secret {secret_id!r}: expected a JSON object with host, port, username, "
            "password and dbname"
        ) from None
    missing = [k for k in ("host", "username") if not doc.get(k)]
    if missing:
        raise PostgresConnectionError(f"PostgreSQL secret {secret_id!r}: missing {', '.join(missing)}") from None
    params = {
        "host": str(doc["host"]),
        "port": str(doc.get("port") or 5432),
        "user": str(doc["username"]),
        "dbname": str(doc.get("dbname") or doc.get("database") or "postgres"),
    }
    password = doc.get("password")
    return params, (str(password) if password is not None else None), f"secret {secret_id}"


def resolve_settings(
    url: str | None = None,
    secret_id: str | None = None,
    secret_region: str | None = None,
    secrets_endpoint_url: str | None = None,
    sslmode: str | None = None,
    connect_attempts: int | None = None,
    backoff_seconds: float | None = None,
    connect_timeout: int | None = None,
    application_name: str = "dq_assets",
) -> PostgresSettings:
    """Explicit arguments first, then the environment (see the module docstring)."""
    secret_id = secret_id or os.environ.get(SECRET_ID_ENV) or None
    url = url or os.environ.get(URL_ENV) or None
    extra: tuple[str, ...] = (url,) if url else ()
    password: str | None = None
    if secret_id:
        region = (
            secret_region or os.environ.get(SECRET_REGION_ENV) or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
        )
        params, password, source = _secret_params(secret_id, region, secrets_endpoint_url)
    elif url:
        error = None
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as exc:
            error = redact(_one_line(str(exc)), extra)
        if error is not None:
            raise PostgresConnectionError(f"PostgreSQL URL from {URL_ENV}: {error}") from None
        params = {k: str(v) for k, v in params.items() if v is not None}
        password = params.pop("password", None)
        source = URL_ENV
    else:
        params, source = {}, "PG* environment"  # libpq reads PGHOST, PGUSER, PGPASSWORD, ...
    mode = sslmode or os.environ.get(SSLMODE_ENV) or params.get("sslmode") or os.environ.get("PGSSLMODE") or DEFAULT_SSLMODE
    if mode not in SSLMODES:
        raise ValueError(f"{SSLMODE_ENV}={mode!r}: expected one of {', '.join(SSLMODES)}")
    params["sslmode"] = mode
    timeout = connect_timeout if connect_timeout is not None else _env_int(TIMEOUT_ENV, DEFAULT_CONNECT_TIMEOUT)
    params.setdefault("connect_timeout", str(timeout))
    params.setdefault("application_name", application_name)
    return PostgresSettings(
        params=params,
        password=password,
        source=source,
        connect_attempts=connect_attempts if connect_attempts is not None else _env_int(ATTEMPTS_ENV, DEFAULT_ATTEMPTS),
        backoff_seconds=backoff_seconds if backoff_seconds is not None else _env_float(BACKOFF_ENV, DEFAULT_BACKOFF_SECONDS),
        extra_secrets=extra,
    )


class PostgresConnection(dg.ConfigurableResource):
    """PostgreSQL connection settings, resolved from the environment each time a connection
    is opened. Every field is optional; unset fields fall back to the env vars of the module
    docstring. Pass a URL with a password only as `dg.EnvVar("...")`, never as a literal."""

    url: str | None = Field(default=None, description=f"libpq URL; default env {URL_ENV}")
    secret_id: str | None = Field(default=None, description=f"Secrets Manager secret; default env {SECRET_ID_ENV}")
    secret_region: str | None = Field(default=None, description=f"default env {SECRET_REGION_ENV}, AWS_REGION")
    secrets_endpoint_url: str | None = Field(default=None, description="default: boto3's (AWS_ENDPOINT_URL)")
    sslmode: str | None = Field(default=None, description=f"default env {SSLMODE_ENV}, else 'prefer'")
    connect_attempts: int | None = Field(default=None, description=f"default env {ATTEMPTS_ENV}, else 3")
    backoff_seconds: float | None = Field(default=None, description=f"default env {BACKOFF_ENV}, else 0.5")
    connect_timeout: int | None = Field(default=None, description=f"seconds; default env {TIMEOUT_ENV}, else 10")

    def __repr_args__(self):  # never show a URL's password
        for key, value in super().__repr_args__():
            yield key, (redact(value) if isinstance(value, str) else value)

    def settings(self) -> PostgresSettings:
        return resolve_settings(
            url=self.url,
            secret_id=self.secret_id,
            secret_region=self.secret_region,
            secrets_endpoint_url=self.secrets_endpoint_url,
            sslmode=self.sslmode,
            connect_attempts=self.connect_attempts,
            backoff_seconds=self.backoff_seconds,
            connect_timeout=self.connect_timeout,
        )

    @contextmanager
    def connect(self, action: str = "") -> Iterator[psycopg.Connection]:
        """An autocommit connection (use `conn.transaction()` for atomic work), closed after.
        A database error inside the block is re-raised as one redacted `PostgresError`."""
        settings = self.settings()
        conn = settings.connect()
        error = None
        try:
            yield conn
        except psycopg.Error as exc:
            what = f"{action} failed: " if action else ""
            error = settings.redact(f"PostgreSQL at {settings.describe()}: {what}{_one_line(str(_first_cause(exc)))}")
        finally:
            conn.close()
        if error is not None:
            raise PostgresError(error) from None


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


# Microseconds since the epoch, exactly: EXTRACT returns NUMERIC from PostgreSQL 14 on; before,
# a double, so whole seconds and the microseconds are taken apart.
_EPOCH_US = "(EXTRACT(EPOCH FROM {c}) * 1000000)::bigint"
_EPOCH_US_PRE14 = (
    "(EXTRACT(EPOCH FROM date_trunc('second', {c}))::bigint * 1000000"
    " + EXTRACT(MICROSECONDS FROM {c})::bigint % 1000000)"
)
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


def table_columns(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, str, int]]:
    """(name, type name, typmod) of a table's columns in order; [] if there is no table."""
    return conn.execute(
        """SELECT a.attname, t.typname, a.atttypmod
           FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_type t ON t.oid = a.atttypid
           WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
             AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum""",
        [schema, table],
    ).fetchall()


def _lock(conn: psycopg.Connection, key: str) -> None:
    """A transaction-scoped advisory lock: one writer per table (and per schema creation)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"dq_assets:{key}"])


def _copyable(data: pa.Table) -> pa.Table:
    """Columns in a form whose CSV text PostgreSQL reads back exactly."""
    cols = []
    for col in data.columns:
        t = col.type
        if pa.types.is_dictionary(t):
            col, t = col.cast(t.value_type), t.value_type
        if pa.types.is_null(t):
            col = col.cast(pa.string())
        elif pa.types.is_timestamp(t) and t.tz and t.tz.upper() not in ("UTC", "Z", "+00:00"):
            col = col.cast(pa.timestamp(t.unit, tz="UTC"))
        cols.append(col)
    return pa.table(cols, names=data.column_names)


@contextmanager
def _atomic(conn: psycopg.Connection) -> Iterator[None]:
    """A transaction, unless the caller already has one open (then it is part of that)."""
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        with conn.transaction():
            yield
    else:
        yield


def write_table(
    conn: psycopg.Connection,
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
    `None` only appends. Rows go in with COPY (CSV), by column name. An existing table must
    have the same columns as `data` (with `allow_missing_columns`, a superset; with `evolve`,
    columns new in `data` are added to it). A new table
    gets an index on each column of `index` (the partition column: deletes and loads by window)."""
    names = [check_identifier(str(n)) for n in data.column_names]
    if len(set(names)) != len(names):
        raise ValueError(f"{schema}.{table}: duplicate column names in {names}")
    definitions = [sql.SQL("{} {}").format(_q(n), sql.SQL(pg_type(t, n))) for n, t in zip(names, data.schema.types)]
    target = _qualified(schema, table)
    with _atomic(conn):
        if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone():
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
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
                target, sql.SQL(", ").join(_q(n) for n in names)
            )
            options = pacsv.WriteOptions(include_header=False)
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for batch in _copyable(data).to_batches(max_chunksize=COPY_BATCH_ROWS):
                    buf = io.BytesIO()
                    pacsv.write_csv(batch, buf, options)
                    copy.write(buf.getbuffer())
    return data.num_rows


def read_table(
    conn: psycopg.Connection,
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
    Data comes out with COPY TO (CSV) and is parsed by pyarrow with the exact column types."""
    _qualified(schema, table)  # a bad name is an error, not "no such table"
    info = {name: (typname, typmod) for name, typname, typmod in table_columns(conn, schema, table)}
    if not info:
        return None
    wanted = [check_identifier(c) for c in columns] if columns else list(info)
    unknown = [c for c in wanted if c not in info]
    if unknown:
        raise ValueError(f"{schema}.{table} has no column(s) {unknown}; it has {list(info)}")
    types = {c: arrow_type(*info[c]) for c in wanted}
    epoch_us = _EPOCH_US if conn.info.server_version >= 140000 else _EPOCH_US_PRE14
    exprs = []
    for c in wanted:
        t, ident = types[c], _q(c)
        if pa.types.is_timestamp(t):
            exprs.append(sql.SQL(epoch_us).format(c=ident))
        elif pa.types.is_string(t) and info[c][0] not in _SIMPLE:
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
    with conn.cursor() as cur, cur.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(select), params or None) as copy:
        payload = b"".join(copy)
    read_types = {c: (pa.int64() if pa.types.is_timestamp(t) else t) for c, t in types.items()}
    if payload:
        raw = pacsv.read_csv(
            io.BytesIO(payload),
            read_options=pacsv.ReadOptions(column_names=wanted),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=read_types, null_values=[""], strings_can_be_null=True,
                quoted_strings_can_be_null=False, true_values=["t"], false_values=["f"],
            ),
        )
        arrays = [raw.column(c).cast(types[c]) if pa.types.is_timestamp(types[c]) else raw.column(c) for c in wanted]
        return pa.table(arrays, schema=pa.schema([(c, types[c]) for c in wanted]))
    return pa.table({c: pa.array([], types[c]) for c in wanted})


# --------------------------------------------------------------------------------------------
# The IO manager
# --------------------------------------------------------------------------------------------


def replace_partitions(conn: psycopg.Connection, schema: str, table: str, column: str, batches) -> None:
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


def record_current(conn: psycopg.Connection, publication, keys: list[str]) -> None:
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
        if isinstance(dim.partitions, TimeWindow):
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
        if isinstance(dim.partitions, TimeWindow):
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
    def connect(self, context, table_slice: TableSlice) -> Iterator[psycopg.Connection]:
        check_table_slice(table_slice)  # a bad schema/table/column name: refused before connecting
        verb = "writing" if isinstance(context, dg.OutputContext) else "reading"
        action = f"{verb} {table_slice.schema}.{table_slice.table}"
        with self.connection.connect(action) as conn, conn.transaction():
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
            raise dg.Failure(
                f"{table_slice.schema}.{table_slice.table} does not exist in the warehouse yet: "
                "materialize it first."
            )
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
        column = table_slice.partition_dimensions[0].partition_expr
        if not written_by_another_output(obj, context):
            replace_partitions(connection, table_slice.schema, table_slice.table, column, obj)
        obj.finish(lambda key: {"Query": partition_query(table_slice.schema, table_slice.table, column, key)})
        context.add_output_metadata(written_column_schema(context, obj.schema, POSTGRES))

    def load_input(self, context, table_slice: TableSlice, connection) -> PartitionReader:
        if not table_columns(connection, table_slice.schema, table_slice.table):
            raise dg.Failure(
                f"{table_slice.schema}.{table_slice.table} does not exist in the warehouse yet: "
                "materialize it first."
            )
        column = _q(table_slice.partition_dimensions[0].partition_expr)

        def read(where: Where) -> pa.Table:
            action = f"reading {table_slice.schema}.{table_slice.table}"
            with self.connection.connect(action) as conn:
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


# --------------------------------------------------------------------------------------------
# The quality store
# --------------------------------------------------------------------------------------------


class PostgresQualityStore(QualityStore):
    """`quality.*` records in PostgreSQL: the same methods and answers as `DuckDBQualityStore`.
    Tables are created on first append; rows are only ever appended."""

    connection: PostgresConnection = Field(default_factory=PostgresConnection)

    def append(self, table: str, rows: pa.Table) -> None:
        _qualified(QUALITY_SCHEMA, table)  # refused before connecting
        with self.connection.connect(f"appending to {QUALITY_SCHEMA}.{table}") as conn:
            write_table(conn, QUALITY_SCHEMA, table, rows, allow_missing_columns=True, evolve=True)

    def latest_check_results(self, partition_keys: list[str], check: tuple[str, str] | None = None) -> pa.Table:
        where = (Where(sql.SQL("partition_key = ANY(%s) AND asset_key = %s AND check_name = %s"),
                       (list(partition_keys), *check)) if check else
                 Where(sql.SQL("partition_key = ANY(%s)"), (list(partition_keys),)))
        with self.connection.connect(f"reading {QUALITY_SCHEMA}.check_results") as conn:
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
        with self.connection.connect(f"reading {QUALITY_SCHEMA}.partition_profiles") as conn:
            if not table_columns(conn, QUALITY_SCHEMA, "partition_profiles"):
                return {}
            rows = conn.execute(
                sql.SQL(
                    "SELECT DISTINCT ON (partition_key) partition_key, raw_rows FROM {} "
                    "WHERE table_name = %s ORDER BY partition_key, profiled_at DESC NULLS LAST"
                ).format(_qualified(QUALITY_SCHEMA, "partition_profiles")),
                [table_name],
            ).fetchall()
        return dict(rows)

    def latest_profiles(self, partition_keys: list[str]) -> list[dict]:
        """The latest profile of every table of the given partitions."""
        return self._latest("partition_profiles", partition_keys, "table_name", "profiled_at")

    def latest_writes(self, partition_keys: list[str]) -> list[dict]:
        return self._latest("partition_writes", partition_keys, "asset_key", "marked_at")

    def _latest(self, table: str, partition_keys: list[str], per: str, newest: str) -> list[dict]:
        """The newest row (by `newest`) per partition and `per` of a record table."""
        with self.connection.connect(f"reading {QUALITY_SCHEMA}.{table}") as conn:
            data = read_table(
                conn, QUALITY_SCHEMA, table,
                where=Where(sql.SQL("partition_key = ANY(%s)"), (list(partition_keys),)),
                latest=(("partition_key", per), newest),
            )
        return [] if data is None else data.to_pylist()

    def partitions_with_results(self, asset_keys: list[str], before: str) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {a: set() for a in asset_keys}
        with self.connection.connect(f"reading {QUALITY_SCHEMA}.check_results") as conn:
            if not table_columns(conn, QUALITY_SCHEMA, "check_results"):
                return found
            rows = conn.execute(
                sql.SQL("SELECT DISTINCT asset_key, partition_key FROM {} "
                        "WHERE asset_key = ANY(%s) AND partition_key < %s").format(
                    _qualified(QUALITY_SCHEMA, "check_results")),
                [list(asset_keys), before]).fetchall()
        for asset, key in rows:
            found[asset].add(key)
        return found

    @contextmanager
    def publishing(self) -> Iterator[Publication]:
        with self.connection.connect("writing in one transaction") as conn, conn.transaction():
            yield PostgresPublication(conn)


class PostgresPublication(Publication):
    """One PostgreSQL transaction."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def replace_partitions(self, schema: str, table: str, column: str, batches) -> None:
        replace_partitions(self.conn, schema, table, column, batches)

    def replace_table(self, schema: str, table: str, data: pa.Table) -> None:
        write_table(self.conn, schema, table, data, replace=True, evolve=True)

    def read_table(self, schema: str, table: str) -> pa.Table | None:
        return read_table(self.conn, schema, table)
