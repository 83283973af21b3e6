"""A value as sent, read: the spellings the contract accepts (§2 "Value formats") and the DuckDB
SQL that types a trimmed text, or gives NULL when it cannot be read or is not valid. The
cleaning SQL (`rules.cleaning`) builds on these; so do the profiles and the manifest's sums."""

from __future__ import annotations

from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal

import duckdb
import pyarrow as pa

from dq_assets.contract.tables import (
    COUNTRY,
    CURRENCY,
    DECIMAL,
    EMAIL,
    ENUM,
    INTEGER,
    MONEY_PRECISION,
    MONEY_SCALE,
    NUMBER_DIGITS,
    TIMESTAMP,
    Column,
    country_codes,
    currency_codes,
)
from dq_assets.storage.sql import quote, sql_list, sql_str

MONEY_TYPE = f"DECIMAL({MONEY_PRECISION},{MONEY_SCALE})"

# Value spellings accepted by the contract (§2 "Value formats"), matched after trimming.
# A number of the contract's shape (`NUMBER_SHAPES`) is stored when it is also in the supported
# range (`DECIMAL_RE`, `INTEGER_RE`: contracts.NUMBER_DIGITS, MONEY_SCALE); else out_of_range.
DECIMAL_SHAPE_RE = r"[+-]?(\d+(\.\d*)?|\.\d+)"
INTEGER_SHAPE_RE = r"[+-]?\d+"
DECIMAL_RE = rf"[+-]?0*(\d{{1,{NUMBER_DIGITS}}}(\.\d{{0,{MONEY_SCALE}}}0*)?|\.\d{{1,{MONEY_SCALE}}}0*)"
INTEGER_RE = rf"[+-]?0*\d{{1,{NUMBER_DIGITS}}}"
NUMBER_SHAPES = {DECIMAL: DECIMAL_SHAPE_RE, INTEGER: INTEGER_SHAPE_RE}
ISO_TS_RE = r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-](0\d|1[0-4]):[0-5]\d)?"
EPOCH_RE = r"-?\d{1,11}"
EMAIL_RE = r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+"
WHITESPACE = " \t\r\n"


def trimmed(expr: str) -> str:
    """Blank after trimming is missing. trim() with a character set is slow in DuckDB, and most
    values need no trimming: only those starting or ending with a space, or holding a tab, CR
    or LF anywhere (rare, and a byte search is the cheapest test), go through it."""
    needs_trim = " OR ".join([f"({expr}) LIKE ' %'", f"({expr}) LIKE '% '"]
                             + [f"contains({expr}, chr({c}))" for c in (9, 10, 13)])
    return (f"NULLIF(CASE WHEN {needs_trim} THEN trim({expr}, {sql_str(WHITESPACE)}) "
            f"ELSE {expr} END, '')")


def parse_timestamp(x: str) -> str:
    """ISO 8601 (T or space, optional fraction, Z / ±HH:MM / no zone = UTC) or epoch seconds,
    to a UTC TIMESTAMPTZ; NULL when it is none of these. Fractions keep microseconds.

    The regular expression admits only the contract's spellings (offsets up to ±14:59); DuckDB's
    own cast then reads them, rejecting impossible dates. Without an offset the cast reads the
    session time zone, which `validate` sets to UTC. (Parsing the parts apart in SQL, as this
    once did, took four times as long.)"""
    return f"""(CASE
        WHEN regexp_full_match({x}, '{ISO_TS_RE}') THEN TRY_CAST(upper({x}) AS TIMESTAMPTZ)
        WHEN regexp_full_match({x}, '{EPOCH_RE}') THEN to_timestamp(CAST({x} AS BIGINT))
    END)"""


def parse_decimal(x: str) -> str:
    return f"(CASE WHEN regexp_full_match({x}, '{DECIMAL_RE}') THEN TRY_CAST({x} AS {MONEY_TYPE}) END)"


# Sums of numbers as sent are exact whatever their length (their digits are bounded by the file).
EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def money_sum(conn: duckdb.DuckDBPyConnection, rows: pa.Table, column: str) -> Decimal:
    """The total of a money column as the manifest counts it (contract §1): every decimal as
    sent, exactly, whatever its size; a value that is no decimal counts as 0. Values in the
    supported range are summed in DuckDB (DECIMAL(38,6), which they cannot overflow); the rare
    ones beyond it (too large, or too many decimal places) are added in Python, exactly."""
    conn.register("_money", rows)
    [(stored, beyond)] = conn.execute(
        f"""SELECT coalesce(sum({parse_decimal('v')}), 0),
                   list(v) FILTER (WHERE {parse_decimal('v')} IS NULL
                                   AND regexp_full_match(v, '{DECIMAL_SHAPE_RE}'))
            FROM (SELECT {trimmed(quote(column))} AS v FROM _money)"""
    ).fetchall()
    conn.unregister("_money")
    total = stored
    for value in beyond or ():
        total = EXACT.add(total, Decimal(value))
    return total


def parse_integer(x: str) -> str:
    return f"(CASE WHEN regexp_full_match({x}, '{INTEGER_RE}') THEN TRY_CAST({x} AS BIGINT) END)"


def one_of(x: str, values, case: str) -> str:
    """`x` in the accepted `values` (all in one case) whatever its case, as spelled in `values`.
    Most values already come in the right case: they are matched before any case change."""
    accepted = sql_list(values)
    return f"(CASE WHEN {x} IN {accepted} THEN {x} WHEN {case}({x}) IN {accepted} THEN {case}({x}) END)"


def typed_value(col: Column, x: str) -> str:
    """The stored value of a trimmed text `x`, or NULL when it cannot be read or is not valid."""
    if col.kind == DECIMAL:
        return parse_decimal(x)
    if col.kind == INTEGER:
        return parse_integer(x)
    if col.kind == TIMESTAMP:
        return parse_timestamp(x)
    if col.kind == EMAIL:
        return f"(CASE WHEN regexp_full_match({x}, '{EMAIL_RE}') THEN lower({x}) END)"
    if col.kind == COUNTRY:
        return one_of(x, country_codes(), "upper")
    if col.kind == CURRENCY:
        return one_of(x, currency_codes(), "upper")
    if col.kind == ENUM:
        return one_of(x, col.values, "lower")
    return x  # ID, TEXT: trimmed text
