"""ADBC sessions: the connection that moves a table's rows, as Arrow, in and out of PostgreSQL.

`ArrowSession` wraps one ADBC DB-API connection (`adbc-driver-postgresql`, libpq underneath) in
autocommit mode; `transaction()` brackets its statements with BEGIN and COMMIT (ROLLBACK on any
error), so the advisory locks, the DDL, the DELETE of what a write replaces and the COPY BINARY
of `ingest` are one server-side transaction: a connection that dies in the middle (a killed
process, a terminated backend) leaves nothing of the write visible. Statements take psycopg
`sql` compositions (identifiers quoted client-side) with `%s` placeholders, sent as `$n`
parameters bound by the driver: values never become SQL text.

The session is opened by `PostgresSettings.connect_arrow` (connection.py) with the same
settings, retries and redaction as a psycopg connection; `adbc_uri` is the libpq URI it is
opened with (it carries the password: never logged, never in a message).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import quote

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa
from psycopg import sql

__all__ = ["AdbcError", "ArrowSession", "adbc_one_line", "adbc_uri"]

AdbcError = adbc_driver_manager.Error

INGEST_BATCH_ROWS = 50_000
SESSION_SETTINGS = (
    "SET TIME ZONE 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET extra_float_digits = 1",  # shortest exact float text (for ::text casts)
)


def adbc_uri(params: Mapping[str, str], password: str | None) -> str:
    """`postgresql://?host=...&password=...`: every libpq keyword as a URI parameter (libpq
    fills what is missing from PGHOST, PGPASSWORD, ... as it does for psycopg)."""
    pairs = {k: str(v) for k, v in params.items() if v not in (None, "")}
    if password is not None:
        pairs["password"] = password
    return "postgresql://?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in pairs.items())


def adbc_one_line(message: str) -> str:
    """The server's words out of an ADBC error: `IO: [libpq] Failed to execute COPY statement:
    PGRES_FATAL_ERROR FATAL:  terminating connection ...` -> `terminating connection ...`."""
    text = re.sub(r"\s*Query was: .*", "", str(message), flags=re.DOTALL)
    text = re.sub(r"\.? SQLSTATE: \w+\s*$", "", text.strip())
    text = re.sub(r"^[A-Z_]+: (\[libpq\] )?", "", text)
    if "failed: " not in text.split("\n", 1)[0]:
        text = re.sub(r"^(Failed to|Error) [^:\n]*: (PGRES_\w+ )?", "", text)  # `Error writing ...: `
    return text


class ArrowSession:
    """One ADBC connection: `execute` for statements, `fetch_arrow` and `ingest` for rows."""

    def __init__(self, conn: adbc.Connection):
        self.conn = conn
        self.cursor = conn.cursor()
        self.in_transaction = False
        try:
            for statement in SESSION_SETTINGS:
                self.cursor.execute(statement)
        except BaseException:
            self.cursor.close()
            raise

    @classmethod
    def open(cls, uri: str) -> ArrowSession:
        conn = adbc.connect(uri, autocommit=True)
        try:
            return cls(conn)
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        try:
            self.cursor.close()
        finally:
            self.conn.close()

    def _run(self, query: sql.Composable | str, params: tuple | list = ()) -> None:
        text = query if isinstance(query, str) else query.as_string(None)
        if params:
            numbers = iter(range(1, len(params) + 1))
            text = re.sub(r"%(%|s)", lambda m: "%" if m.group(1) == "%" else f"${next(numbers)}", text)
            self.cursor.execute(text, parameters=_parameters(params))
        else:
            self.cursor.execute(text)

    def execute(self, query: sql.Composable | str, params: tuple | list = ()) -> list[tuple]:
        """Run one statement; its rows (none for DDL)."""
        self._run(query, params)
        return self.cursor.fetchall() if self.cursor.description else []

    def fetch_arrow(self, query: sql.Composable | str, params: tuple | list = ()) -> pa.Table:
        """Run one SELECT; its rows as Arrow (the driver's COPY BINARY TO, decoded in C)."""
        self._run(query, params)
        return self.cursor.fetch_arrow_table()

    def ingest(self, schema: str, table: str, data: pa.Table) -> None:
        """Append `data` (by column name) with one COPY BINARY, in the open transaction if any,
        streamed in batches of `INGEST_BATCH_ROWS` (the driver buffers a batch, not the table)."""
        stream = pa.RecordBatchReader.from_batches(data.schema, data.to_batches(max_chunksize=INGEST_BATCH_ROWS))
        self.cursor.adbc_ingest(table, stream, mode="append", db_schema_name=schema)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT, or ROLLBACK on an error; inside an open transaction, part of it."""
        if self.in_transaction:
            yield
            return
        self.cursor.execute("BEGIN")
        self.in_transaction = True
        try:
            yield
        except BaseException:
            self.in_transaction = False
            try:
                self.cursor.execute("ROLLBACK")
            except AdbcError:
                pass  # the connection is gone: the server has rolled back already
            raise
        self.in_transaction = False
        self.cursor.execute("COMMIT")


def _parameters(params: tuple | list) -> pa.RecordBatch:
    """The parameters as one Arrow row: an empty list is a text[] (not a list of nulls)."""
    arrays = []
    for value in params:
        if isinstance(value, (list, tuple)) and not value:
            arrays.append(pa.array([[]], pa.list_(pa.string())))
        else:
            arrays.append(pa.array([list(value) if isinstance(value, tuple) else value]))
    return pa.RecordBatch.from_arrays(arrays, names=[str(i) for i in range(len(arrays))])
