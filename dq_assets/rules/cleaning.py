"""Raw -> staging + quarantine as set-based DuckDB SQL, generated from a table contract.

`validate(conn, table, raw, refs)` types every value, tags every row with its reject reasons
(contract §3, in the contract's order), deduplicates the valid rows by key, and returns two
Arrow tables: the staging rows and the quarantined rows. Every raw row lands in exactly one.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from dq_assets.contract.tables import (
    DECIMAL,
    EARLIEST_TIMESTAMP,
    NUMBER_DIGITS,
    PARSED_KINDS,
    SAME_PARTITION,
    SHAPED_KINDS,
    TIMESTAMP,
    TOO_EARLY,
    TOO_LARGE,
    TOO_PRECISE,
    Column,
    Table,
)
from dq_assets.rules.values import NUMBER_SHAPES, trimmed, typed_value
from dq_assets.storage.duckdb.warehouse import fetch_arrow
from dq_assets.storage.sql import quote, sql_str

LINEAGE = ("ingest_date", "source_file", "source_line")


@dataclass(frozen=True)
class Failure:
    column: str
    reason: str
    condition: str  # SQL, TRUE when the row fails
    why: str | None = None  # SQL text saying which rule failed, added to the reject detail


def text_column(column: str) -> str:
    """The trimmed text of a column as received (NULL when blank), next to its typed value."""
    return quote(f"_t_{column}")


def known_flag(column: str) -> str:
    return quote(f"_known_{column}")


def known_references(t: Table, refs: dict[str, str]) -> tuple[str, str]:
    """Columns and LEFT JOINs flagging each referencing value found among the received keys
    (`refs[column]`: key, ingest_date) of this partition (same-partition scope) or of this
    or an earlier one. Each joined side has one row per join key, so no row is repeated.
    (A join, not NOT EXISTS: a correlated subquery made DuckDB keep the typed rows twice.)"""
    flags, joins = [], []
    for i, (col, ref) in enumerate(t.references):
        txt = text_column(col.name)
        if ref.scope == SAME_PARTITION:
            side = f"SELECT DISTINCT key, ingest_date AS since FROM {refs[col.name]}"
            on = f"r{i}.key = typed.{txt} AND r{i}.since = typed.ingest_date"
        else:
            side = f"SELECT key, min(ingest_date) AS since FROM {refs[col.name]} GROUP BY key"
            on = f"r{i}.key = typed.{txt} AND r{i}.since <= typed.ingest_date"
        flags.append(f"r{i}.key IS NOT NULL AS {known_flag(col.name)}")
        joins.append(f"LEFT JOIN ({side}) r{i} ON {on}")
    return "".join(", " + f for f in flags), " ".join(joins)


def column_failures(t: Table) -> list[Failure]:
    """Per-column failure conditions over the `typed` CTE (`_t_<c>` text, `<c>` typed,
    `_known_<c>` for references). Each column's are those of `Column.reject_reasons`, in the
    same order (refused otherwise: the checks and the catalog read the contract's)."""
    out: list[Failure] = []
    for col in t.columns:
        start = len(out)
        txt, val = text_column(col.name), quote(col.name)
        unread = f"{txt} IS NOT NULL AND {val} IS NULL"
        if not col.nullable:
            out.append(Failure(col.name, "missing_required", f"{txt} IS NULL"))
        ranges = []  # (SQL condition, why), each an out_of_range
        if col.kind in NUMBER_SHAPES:
            # Unread: a number of the contract's shape outside the supported range, or no
            # number at all. Told apart only on the few rows not read (a CASE runs its branch
            # on those alone).
            shaped = f"regexp_full_match({txt}, '{NUMBER_SHAPES[col.kind]}')"
            out.append(Failure(col.name, "unparseable", f"CASE WHEN {unread} THEN NOT {shaped} END"))
            ranges.append((f"CASE WHEN {unread} THEN {shaped} END", beyond_range(col, txt)))
        elif col.kind in PARSED_KINDS:
            out.append(Failure(col.name, "unparseable", unread))
        if col.kind in SHAPED_KINDS:
            out.append(Failure(col.name, "invalid_value", unread))
        if col.kind == TIMESTAMP:
            ranges.append((f"{val} < TIMESTAMPTZ {sql_str(EARLIEST_TIMESTAMP)}", sql_str(TOO_EARLY)))
        if col.min is not None:
            ranges.append((f"{val} < {col.min}", sql_str(f"below {col.min}")))
        if col.max is not None:
            ranges.append((f"{val} > {col.max}", sql_str(f"above {col.max}")))
        if ranges:
            out.append(Failure(col.name, "out_of_range", " OR ".join(f"({c})" for c, _ in ranges),
                               why="CASE " + " ".join(f"WHEN {c} THEN {w}" for c, w in ranges) + " END"))
        if col.not_future:
            out.append(
                Failure(
                    col.name,
                    "future_timestamp",
                    f"{val} > CAST(ingest_date AS TIMESTAMPTZ) + INTERVAL 25 HOUR",
                )
            )
        if col.references is not None:
            out.append(Failure(col.name, "unknown_reference",
                               f"{txt} IS NOT NULL AND NOT {known_flag(col.name)}"))
        made = tuple(f.reason for f in out[start:])
        if made != col.reject_reasons:
            raise AssertionError(f"{t.name}.{col.name}: cleaning tests {made}, the contract "
                                 f"declares {col.reject_reasons}")
    for rule in t.rules:
        parsed = " AND ".join(f'"{c}" IS NOT NULL' for c in rule.columns)
        out.append(Failure(rule.name, rule.reason, f"{parsed} AND ({rule.fails_when})"))
    return out


def beyond_range(col: Column, txt: str) -> str:
    """Why a number of the contract's shape is out of the supported range (SQL text)."""
    if col.kind != DECIMAL:
        return sql_str(TOO_LARGE)
    small = rf"[+-]?0*\d{{0,{NUMBER_DIGITS}}}(\.\d*)?"
    return (f"CASE WHEN regexp_full_match({txt}, '{small}') THEN {sql_str(TOO_PRECISE)} "
            f"ELSE {sql_str(TOO_LARGE)} END")


def validated_sql(t: Table, raw: str, refs: dict[str, str]) -> str:
    """Every raw row, typed, flagged per failure (`_f<i>`) and reason (`_r_<reason>`), with
    `_invalid` and, for invalid rows only, `_first_reason`, `_reasons` and `_details`.

    The result is materialised, so it carries only what staging and the statistics read: the
    typed values, the trimmed key text and the flags. Quarantined rows take their values as
    received from the raw rows themselves (joined on source_line), and duplicates are ranked
    apart (`duplicates_sql`) over a narrow projection: ranking whole rows cost more than all
    the typing."""
    # Trimmed texts first, typed values from them one level up: DuckDB would otherwise
    # evaluate the trimming once for every mention of the text in the typing expression.
    text_cols = [f'{trimmed(quote("_raw_" + c.name))} AS {text_column(c.name)}' for c in t.columns]
    typed_cols = [f'{typed_value(c, text_column(c.name))} AS {quote(c.name)}' for c in t.columns]
    failures = column_failures(t)
    known_cols, known_joins = known_references(t, refs)
    by_reason = t.row_reasons
    failure_flags = [f'coalesce({f.condition}, false) AS "_f{i}"' for i, f in enumerate(failures)]
    reason_flags = [
        f'({" OR ".join(f"_f{i}" for i, f in enumerate(failures) if f.reason == reason)}) AS "_r_{reason}"'
        for reason in by_reason
    ]
    details = ", ".join(
        f"CASE WHEN _f{i} THEN {sql_str(f'{f.column}: {f.reason}')}"
        + (f" || coalesce(' (' || {f.why} || ')', '')" if f.why else "") + " END"
        for i, f in enumerate(failures)
    )
    reasons = ", ".join(f"CASE WHEN \"_r_{r}\" THEN '{r}' END" for r in by_reason)
    first = " ".join(f"WHEN \"_r_{r}\" THEN '{r}'" for r in by_reason)
    any_failed = " OR ".join(f'"_r_{r}"' for r in by_reason)
    kept = (
        list(LINEAGE) + [f'"{c}"' for c in t.column_names] + [text_column(k) for k in t.key]
        + [f"_f{i}" for i in range(len(failures))] + [f'"_r_{r}"' for r in by_reason]
    )
    raw_cols = ", ".join(f'"{c}" AS "_raw_{c}"' for c in t.column_names)
    return f"""
    WITH src AS (
        SELECT {raw_cols}, {", ".join(LINEAGE)} FROM {raw}
    ),
    texts AS (
        SELECT *, {", ".join(text_cols)} FROM src
    ),
    typed AS (
        SELECT *, {", ".join(typed_cols)} FROM texts
    ),
    joined AS (
        SELECT typed.*{known_cols} FROM typed {known_joins}
    ),
    failed AS (
        SELECT *, {", ".join(failure_flags)} FROM joined
    ),
    flagged AS (
        SELECT *, {", ".join(reason_flags)} FROM failed
    ),
    tagged AS (
        SELECT *, ({any_failed}) AS _invalid FROM flagged
    )
    SELECT {", ".join(kept)}, _invalid,
           CASE WHEN _invalid THEN CASE {first} END END AS _first_reason,
           CASE WHEN _invalid THEN NULLIF(concat_ws(',', {reasons}), '') END AS _reasons,
           CASE WHEN _invalid THEN concat_ws('; ', {details}) END AS _details
    FROM tagged
    """


def duplicates_sql(t: Table, validated: str) -> str:
    """Valid rows that are an older version of a key received again in the same partition
    (by version column, then file order), with the line of the version kept."""
    key = ", ".join(f'"{k}"' for k in t.key)
    version = f'"{t.version_column}" DESC NULLS LAST, ' if t.version_column else ""
    return f"""
    WITH ranked AS (
        SELECT ingest_date, source_line, {sample_key(t)} AS _key,
               row_number() OVER w AS _rank, first_value(source_line) OVER w AS _kept_line
        FROM ({rows_of_repeated_keys(validated, key, "NOT _invalid")})
        WINDOW w AS (PARTITION BY ingest_date, {key} ORDER BY {version}source_line DESC)
    )
    SELECT ingest_date, source_line, _key, _kept_line FROM ranked WHERE _rank > 1
    """


def rows_of_repeated_keys(source: str, key: str, where: str = "true") -> str:
    """SQL: the rows of `source` (those `where` holds for) whose key (`key`, its columns) occurs
    more than once in their partition, candidates included. Keys are found by their 64-bit hash
    first (grouping millions of text keys cost twice as much); a hash shared by different keys
    only brings a few more rows, which the caller's exact grouping by key sets apart."""
    return f"""
        SELECT * FROM {source} s SEMI JOIN (
            SELECT ingest_date, hash({key}) AS _h FROM {source} WHERE {where}
            GROUP BY ALL HAVING count(*) > 1
        ) r ON r.ingest_date = s.ingest_date AND r._h = hash({key})
        WHERE {where}"""


def sample_key(t: Table) -> str:
    """A row's key as text, for sample keys: `a|b` for a composite key."""
    return " || '|' || ".join(f"coalesce({text_column(k)}, '')" for k in t.key)


def staging_columns(t: Table) -> list[str]:
    return [f'"{c}"' for c in t.column_names] + list(LINEAGE)


def quarantine_columns(t: Table) -> list[str]:
    return [
        "ingest_date", "source_file", "source_line", "reject_reason", "reject_reasons",
        "reject_details",
    ] + [f'"{c}"' for c in t.column_names] + ["extra_columns"]


@dataclass(frozen=True)
class Validation:
    staging: pa.Table
    quarantine: pa.Table
    # One row per (ingest_date, reason, column or rule) that failed at least once:
    # failing_rows and up to 10 sample keys, in file order.
    failures: pa.Table


def failure_stats_sql(t: Table) -> str:
    key, failures = sample_key(t), column_failures(t)
    branches = [
        f"""SELECT ingest_date, '{f.reason}' AS reason, {sql_str(f.column)} AS "column",
                   count(*) AS failing_rows,
                   list({key} ORDER BY source_line)[1:10] AS sample_keys
            FROM validated WHERE _f{i} GROUP BY ingest_date"""
        for i, f in enumerate(failures)
    ]
    branches += [  # rows per reason, whatever the number of columns failing it ("*")
        f"""SELECT ingest_date, '{r}' AS reason, '*' AS "column", count(*) AS failing_rows,
                   list({key} ORDER BY source_line)[1:10] AS sample_keys
            FROM validated WHERE "_r_{r}" GROUP BY ingest_date"""
        for r in t.row_reasons
    ]
    branches.append(
        """SELECT ingest_date, 'duplicate' AS reason, '*' AS "column",
                  count(*) AS failing_rows,
                  list(_key ORDER BY source_line)[1:10] AS sample_keys
           FROM duplicates GROUP BY ingest_date"""
    )
    return " UNION ALL ".join(branches) + " ORDER BY ingest_date, reason, \"column\""


@dataclass
class OpenValidation:
    """A validation whose quarantine and failures are fetched and whose raw rows the connection
    no longer holds; its staging rows wait in the connection's temp tables until `staging()`
    fetches them. So a caller that lets its raw rows go first never holds a big day's raw and
    staging rows together (1.4 GB and 1 GB of Arrow for the events of a 1M-order day)."""

    conn: duckdb.DuckDBPyConnection
    t: Table
    quarantine: pa.Table
    failures: pa.Table

    def staging(self) -> pa.Table:
        """The staging rows (once): valid rows but the older versions of a key."""
        rows = fetch_arrow(
            self.conn,
            f"""SELECT {', '.join(staging_columns(self.t))} FROM validated v
                WHERE NOT _invalid AND NOT EXISTS (
                    SELECT 1 FROM duplicates d
                    WHERE d.ingest_date = v.ingest_date AND d.source_line = v.source_line)""",
        )
        self.conn.execute("DROP TABLE validated")
        self.conn.execute("DROP TABLE duplicates")
        return rows


def open_validation(
    conn: duckdb.DuckDBPyConnection, t: Table, raw: pa.Table, refs: dict[str, pa.Table]
) -> OpenValidation:
    """Split raw rows into staging and quarantine (see `validate`): the quarantine and the
    failures now, the staging rows when asked (`OpenValidation.staging`)."""
    conn.execute("SET TimeZone = 'UTC'")  # timestamps without an offset are UTC (contract §2)
    conn.register("raw_rows", raw)
    ref_names = {}
    for col_name, keys in refs.items():
        name = f"ref_{col_name}"
        conn.register(name, keys)
        ref_names[col_name] = name
    conn.execute(f"CREATE OR REPLACE TEMP TABLE validated AS {validated_sql(t, 'raw_rows', ref_names)}")
    conn.execute(f"CREATE OR REPLACE TEMP TABLE duplicates AS {duplicates_sql(t, 'validated')}")
    # Staging rows come in no particular order (sorting millions of wide rows costs more than
    # validating them; the warehouse keeps no order either); quarantine rows, few, in file order.
    rejected = """
        SELECT ingest_date, source_line, _first_reason AS reject_reason,
               _reasons AS reject_reasons, _details AS reject_details
        FROM validated WHERE _invalid
        UNION ALL
        SELECT ingest_date, source_line, 'duplicate', 'duplicate',
               'duplicate: older version of the key kept at line ' || _kept_line
        FROM duplicates"""
    opened = OpenValidation(
        conn, t,
        quarantine=fetch_arrow(
            conn,
            f"""SELECT {', '.join(quarantine_columns(t))}
                FROM raw_rows JOIN ({rejected}) USING (ingest_date, source_line)
                ORDER BY ingest_date, source_line""",
        ),
        failures=fetch_arrow(conn, failure_stats_sql(t)),
    )
    conn.unregister("raw_rows")
    for name in ref_names.values():
        conn.unregister(name)
    return opened


def validate(
    conn: duckdb.DuckDBPyConnection, t: Table, raw: pa.Table, refs: dict[str, pa.Table]
) -> Validation:
    """Split raw rows into staging and quarantine. `refs` maps each referencing column to the
    received keys of its target: a table of (key VARCHAR, ingest_date DATE), a key on as many
    dates, and as many times, as it was received."""
    opened = open_validation(conn, t, raw, refs)
    return Validation(staging=opened.staging(), quarantine=opened.quarantine, failures=opened.failures)
