"""SQL safety, shared by every store and by the SQL the rules generate: names are validated
against one allow-list and quoted, fixed values become escaped literals (data values always go
as parameters). No dependencies: the domain uses it, it knows nothing of the domain."""

from __future__ import annotations

import re

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_identifier(name: str, what: str = "") -> str:
    """Every schema, table and column name ends up in SQL, so it must be a plain identifier
    (the allow-list `IDENTIFIER`; the callers also quote it). `fullmatch`: `$` alone would let
    a trailing newline through. `what` says where the name came from, for the message."""
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        where = f" ({what})" if what else ""
        raise ValueError(f"not a valid SQL identifier: {name!r}{where}; allowed: {IDENTIFIER.pattern}")
    return name


def check_table_slice(table_slice) -> None:
    """The identifiers of a Dagster `TableSlice` (schema from the asset key or its `schema`
    metadata, table, selected columns, `partition_expr`), checked before an IO manager opens
    a connection, so a bad name in configuration is refused before any SQL runs."""
    check_identifier(table_slice.schema, "schema")
    check_identifier(table_slice.table, "table")
    for column in table_slice.columns or ():
        check_identifier(column, "column")
    for dim in table_slice.partition_dimensions or ():
        check_identifier(dim.partition_expr, "partition_expr")


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
