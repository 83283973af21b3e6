"""Reading one landed CSV file into raw rows with DuckDB's CSV reader.

The header (read and checked here, matched to the contract as a `FileSchema`), every value as
untrimmed text, and lineage: the physical line where each record starts, whatever quoted line
breaks or empty lines come before it. The rare files DuckDB's reader would misread (padding
around quoted values, a line break inside the header's names) are read from a corrected copy.
A file the reader refuses is said in one line naming the file's own line (`_csv_error`).
"""

from __future__ import annotations

import csv
import io
import mmap
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from dq_assets.contract.tables import Table
from dq_assets.landing.zone import LandingError
from dq_assets.redaction import first_line
from dq_assets.storage.duckdb.warehouse import fetch_arrow
from dq_assets.storage.sql import sql_str


def normalise_header(name: str) -> str:
    return name.strip().lower()


def read_header(path: Path) -> list[str]:
    """The header record as sent (BOM removed), read by the rule of every value (`_unpad`).
    Bytes after the header are not judged here: only the header's own names must be UTF-8."""
    end = next(_record_ends(path), None)
    with path.open("rb") as f:
        head = f.read(end[2]) if end else f.read()
    text = b"".join(_unpad(head)).decode("utf-8-sig", errors="surrogateescape")
    try:
        header = next(csv.reader(io.StringIO(text, newline=""), strict=True))
    except StopIteration:
        return []
    except csv.Error as e:
        raise LandingError(f"{path}: line 1: the header cannot be read as CSV ({e})") from e
    for name in header:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise LandingError(f"{path}: line 1: the header is not UTF-8") from None
    return header


def check_header(path: Path, header: list[str]) -> None:
    """One header row with a distinct, non-blank name per column."""
    if not header:
        why = "empty file" if path.stat().st_size == 0 else "the first line is blank"
        raise LandingError(
            f"{path}: line 1: no header row ({why}); a table with no rows that day is sent "
            "as its header alone, or left out of the manifest"
        )
    seen: dict[str, int] = {}
    for i, name in enumerate(header, start=1):
        norm = normalise_header(name)
        if not norm:
            raise LandingError(f"{path}: line 1: column {i} of the header has a blank name")
        if norm in seen:
            raise LandingError(
                f"{path}: line 1: column name {name.strip()!r} appears twice in the header "
                f"(columns {seen[norm]} and {i})"
            )
        seen[norm] = i


@dataclass(frozen=True)
class FileSchema:
    header: list[str]  # as sent
    positions: dict[str, int]  # contract column -> position in the file
    unknown: list[str]  # columns not in the contract (kept in raw as extra_columns)
    missing: list[str]  # contract columns absent from the file

    @classmethod
    def of(cls, header: list[str], t: Table) -> FileSchema:
        positions: dict[str, int] = {}
        unknown: list[str] = []
        for i, name in enumerate(header):
            norm = normalise_header(name)
            if norm in t.column_names and norm not in positions:
                positions[norm] = i
            else:
                unknown.append(name)
        missing = [c for c in t.column_names if c not in positions]
        return cls(header=header, positions=positions, unknown=unknown, missing=missing)


def read_csv_file(
    conn: duckdb.DuckDBPyConnection, path: Path, t: Table, partition_key: str, file_name: str
) -> tuple[pa.Table, FileSchema]:
    """One landed file as raw rows: contract columns as text (NULL where the file lacks the
    column), unknown columns as a JSON object in `extra_columns`, plus lineage columns."""
    header = read_header(path)
    check_header(path, header)
    schema = FileSchema.of(header, t)
    names = [f"c{i}" for i in range(len(header))]
    columns = ", ".join(f"'{n}': 'VARCHAR'" for n in names)
    select = [
        (f"c{schema.positions[c]}" if c in schema.positions else "CAST(NULL AS VARCHAR)")
        + f' AS "{c}"'
        for c in t.column_names
    ]
    unknown_pos = [i for i, name in enumerate(header) if name in schema.unknown]
    if unknown_pos:
        pairs = ", ".join(f"{sql_str(header[i])}, c{i}" for i in unknown_pos)
        select.append(f"CAST(json_object({pairs}) AS VARCHAR) AS extra_columns")
    else:
        select.append("CAST(NULL AS VARCHAR) AS extra_columns")
    # Physical line where each record starts: header is line 1, quoted fields may hold newlines.
    # (counted only in the rare values that hold one: contains() is a fast scan, replace() is not)
    # A file without a quote character has none: its records are its lines, counted by the reader.
    with _mapped(path) as data:
        quoted = data.find(b'"') >= 0
    newlines = " + ".join(
        f"(CASE WHEN contains(c{i}, chr(10)) THEN length(c{i}) - length(replace(c{i}, chr(10), '')) ELSE 0 END)"
        for i in range(len(names))) if quoted else "0"
    header_lines = 1 + sum(h.count("\n") for h in header)
    sql = f"""
        WITH rows AS (
            SELECT *, ({newlines}) AS _nl
            FROM read_csv(?, header = false, skip = 1, auto_detect = false, delim = ',',
                          quote = '"', escape = '"', columns = {{{columns}}},
                          strict_mode = true)
            WITH ORDINALITY
        )
        SELECT {", ".join(select)},
               CAST(? AS DATE) AS ingest_date,
               CAST(? AS VARCHAR) AS source_file,
               CAST(ordinality AS BIGINT) AS source_line,
               CAST(now() AS TIMESTAMPTZ) AS loaded_at,
               CAST(_nl AS BIGINT) AS _nl
        FROM rows
    """
    # A line break inside the header's names (rare): the reader's `skip = 1` may skip the wrong
    # lines, so it reads a copy whose header is one line (`_readable`).
    header_breaks = any("\n" in h or "\r" in h for h in header)
    with _readable(path, len(header), header_breaks, quoted) as readable:
        try:
            data = fetch_arrow(conn, sql, [str(readable), partition_key, file_name])
        except duckdb.Error as e:
            raise _csv_error(path, e) from None
    # Lines are found in the file as sent: the copy read has the same records on the same lines.
    data = _with_source_lines(data, header_lines, quoted)
    if _has_blank_line(path):
        data = _with_physical_lines(path, data)
    return data, schema


# Spaces and tabs around a quoted value are no part of it (contract §1: a value may carry
# surrounding whitespace, and RFC 4180 quotes it): `  "Schmidt, Sofia"  ` is `Schmidt, Sofia`.
# A quoted value starts a field (after a separator, a line end or the BOM, and its padding) and
# ends at a lone quote followed by padding and a separator or the end. Every quoted field is
# matched whole, so quotes inside one ("" or text like `a, "b"`) never start another. A field
# whose quote is never closed, or is followed by text (`  "ab"c`), loses its leading padding
# only: the reader then sees its quote and refuses the file (with two spaces before it, DuckDB
# would take the field as unquoted text, quotes and all).
_QUOTED_FIELD = re.compile(rb'(?:(?<![^,\r\n])|(?<=\A\xef\xbb\xbf))[ \t]*+'
                           rb'(?:("[^"]*+(?:""[^"]*+)*+")[ \t]*+(?![^,\r\n])|(?="))')
# Padding DuckDB's reader does not take by that rule (it takes one space before an opening quote
# and spaces after a closing one): a tab after a quote, before a separator or the end; and, in
# the bytes read backwards, a tab or two spaces before a quote that starts a field.
_PADDED_AFTER = re.compile(rb'" *\t[ \t]*(?:[,\r\n]|\Z)')
_PADDED_BEFORE_BACKWARDS = re.compile(rb'"(?: *\t| {2})[ \t]*(?:[,\r\n]|(?:\xbf\xbb\xef)?\Z)')


def _unpad(data) -> Iterator[bytes]:
    """The bytes, in pieces, with the spaces and tabs around every quoted value removed (nothing
    else: no line end, no quote, so every record keeps its physical lines)."""
    return filter(None, _QUOTED_FIELD.split(data))


def _has_padded_quotes(data) -> bool:
    """Whether the file may hold padding around a quoted value that DuckDB's reader would not
    drop (then it is read from an unpadded copy). Cheap: such padding holds a tab, or two spaces
    before a quote, and most files hold neither (memchr-speed searches); the others are
    searched exactly."""
    if data.find(b'"') < 0 or (data.find(b"\t") < 0 and data.find(b'  "') < 0):
        return False
    return (_PADDED_AFTER.search(data) is not None
            or _PADDED_BEFORE_BACKWARDS.search(data[::-1]) is not None)


@contextmanager
def _readable(path: Path, header_fields: int, header_breaks: bool, quoted: bool = True) -> Iterator[Path]:
    """The file for DuckDB's reader: itself, or (rare files) a copy it reads right, with the
    spaces and tabs around quoted values removed (when `_has_padded_quotes`) and, when the
    header's names hold a line break (`header_breaks`), the header record replaced by one line
    of as many fields. The reader's `skip = 1` skips one line, quote-aware except after a BOM:
    a quoted first name with a line break after a BOM left the header's tail as a data row, and
    a header holding a line break of another kind than the file's (or a lone CR) lost every
    record without an error. Every record after the header keeps its bytes and its number, so
    the sha256, every line number (the header's physical lines are counted from its names) and
    the record a reader error names are those of the file itself."""
    if quoted:  # (a file without a quote character has no quoted value to unpad)
        with _mapped(path) as data:
            padded = _has_padded_quotes(data)
    else:
        padded = False
    if not (padded or header_breaks):
        yield path
        return
    end = next(_record_ends(path), None) if header_breaks else None
    with tempfile.TemporaryDirectory(prefix="dq_readable_") as tmp:
        copy = Path(tmp) / path.name
        with _mapped(path) as data, memoryview(data) as whole, copy.open("wb") as out:
            start = 0
            if header_breaks:  # the header's line end, if any, ends the placeholder too
                out.write(b",".join([b"h"] * header_fields) + (end[1] if end else b""))
                start = end[3] if end else len(whole)
            with whole[start:] as body:
                if padded:
                    out.writelines(_unpad(body))
                else:
                    out.write(body)
        yield copy


@contextmanager
def _mapped(path: Path) -> Iterator[mmap.mmap | bytes]:
    """The file's bytes, mapped rather than read into memory (an empty file, which cannot be
    mapped, as b"")."""
    if path.stat().st_size == 0:
        yield b""
        return
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        yield data


def _has_blank_line(path: Path) -> bool:
    """Whether the file may hold an empty line (C-speed scan): the reader skips those without
    counting them, so the lines of the records after one must be found in the file itself."""
    with _mapped(path) as data:
        # Most files hold no CR at all (one memchr-speed scan): then only LF LF can be one.
        blanks = (b"\n\n", b"\n\r\n", b"\r\r") if data.find(b"\r") >= 0 else (b"\n\n",)
        return any(data.find(blank) >= 0 for blank in blanks)


def _with_physical_lines(path: Path, data: pa.Table) -> pa.Table:
    """`source_line` from the file: the physical line where each non-empty record starts,
    whatever empty lines or quoted newlines come before it (rare files: a pass over the file)."""
    starts = _record_starts(path)
    if len(starts) != data.num_rows:  # the reader saw the records otherwise: a bug, not data
        raise LandingError(f"{path}: {data.num_rows} records read but {len(starts)} found in the "
                           "file; cannot name their lines")
    index = data.schema.get_field_index("source_line")
    return data.set_column(index, "source_line", pa.array(starts, pa.int64()))


def _record_starts(path: Path) -> list[int]:
    """The physical line (the header is line 1) where each non-empty record after the header
    starts. Newlines inside quotes belong to their record; an empty line is no record."""
    starts: list[int] = []
    start_line, record_from = 1, 0
    for line, ending, at, after in _record_ends(path):
        if at > record_from:  # the record has content: it is one
            starts.append(start_line)
        start_line, record_from = line + ending.endswith(b"\n"), after
    if path.stat().st_size > record_from:
        starts.append(start_line)  # the last record, without a line end
    return starts[1:]  # the header is no data record


def _with_source_lines(data: pa.Table, header_lines: int, quoted: bool = True) -> pa.Table:
    """Turn the record number (`source_line` as read) into the physical line where the record
    starts: header lines + record number + newlines inside the records before it. A running sum
    in Arrow: as a SQL window it sorted and buffered whole rows, 7x the cost of reading. Without
    a quoted value (`quoted` False) no record holds a newline: the sum is 0 and order is moot."""
    ordinal = data.column("source_line")
    if not quoted:
        lines = pc.add(ordinal, header_lines)
        data = data.set_column(data.schema.get_field_index("source_line"), "source_line", lines)
        return data.drop_columns(["_nl"])
    if len(ordinal) > 1 and not pc.all(pc.greater(ordinal.slice(1), ordinal.slice(0, len(ordinal) - 1))).as_py():
        data = data.take(pc.sort_indices(ordinal))  # DuckDB keeps file order; this is the guard
        ordinal = data.column("source_line")
    newlines = data.column("_nl")
    before = pc.subtract(pc.cumulative_sum(newlines), newlines)
    lines = pc.add(pc.add(ordinal, header_lines), before)
    data = data.set_column(data.schema.get_field_index("source_line"), "source_line", lines)
    return data.drop_columns(["_nl"])


# DuckDB's CSV errors, said in one line: what is wrong, without the record's contents.
_CSV_PROBLEMS = (
    (re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)"),
     lambda m: f"expected {m[1]} fields as in the header, found {m[2]}"),
    (re.compile(r"unterminated quote"), lambda m: "a quoted value is never closed (unterminated quote)"),
    (re.compile(r"Invalid unicode"), lambda m: "not UTF-8"),
    (re.compile(r"Maximum line size of (\d+) bytes exceeded\. Actual Size: ?(\d+)"),
     lambda m: f"a record of {m[2]} bytes, longer than the reader's limit of {m[1]} bytes"),
)
_ENDINGS = {b"\r\n": "CRLF", b"\n": "LF", b"\r": "CR"}


def _csv_error(path: Path, e: duckdb.Error) -> LandingError:
    """`<file>: line <n>: cannot be read as CSV: <what>`, with n the physical line (as in
    `source_line`) where the offending record starts."""
    text = str(e)
    what = next((say(m) for pattern, say in _CSV_PROBLEMS if (m := pattern.search(text))), None)
    record = re.search(r"CSV Error on Line: (\d+)", text)
    if record:
        line, offset = _record_start(path, int(record[1]))
        if "unterminated quote" in text and offset is not None and _text_after_quote(path, offset):
            what = "text follows the closing quote of a quoted value (only spaces or tabs may)"
        return LandingError(f"{path}: line {line}: cannot be read as CSV: {what or (first_line(e) or type(e).__name__)}")
    mixed = _mixed_line_ending(path)
    if mixed:
        line, ending, first_ending_line, first = mixed
        return LandingError(f"{path}: line {line}: cannot be read as CSV: mixed line endings "
                            f"({_ENDINGS[ending]} here, {_ENDINGS[first]} at line {first_ending_line}); "
                            "a file uses one kind")
    return LandingError(f"{path}: cannot be read as CSV: {what or (first_line(e) or type(e).__name__)}")


def _record_ends(path: Path) -> Iterator[tuple[int, bytes, int, int]]:
    """(physical line, line ending, its start and end offset) of every record end outside
    quotes, in file order. For the header's end and the rare files that need more (errors,
    empty lines); the file is mapped, not read into memory. A quote opens a quoted value only
    where one starts a field, as the reader takes it (`5" screen` is text); padding around it
    moves no record end, so this scan of the file as sent agrees with the unpadded copy read."""
    with _mapped(path) as data:
        in_quotes, line, closed = False, 1, -2
        for m in re.finditer(rb'"|\r\n|\n|\r', data):
            token = m.group()
            if token == b'"':
                if in_quotes:
                    in_quotes, closed = False, m.start()
                elif m.start() == closed + 1 or _starts_field(data, m.start()):  # "" or an opening
                    in_quotes = True
                continue
            if not in_quotes:
                yield line, token, m.start(), m.end()
            line += token.endswith(b"\n")


def _starts_field(data, at: int) -> bool:
    """Whether the byte at `at` starts a field, after its padding (as `_QUOTED_FIELD` says)."""
    while at > 0 and data[at - 1] in b" \t":
        at -= 1
    return at == 0 or data[at - 1] in b",\r\n" or (at == 3 and data[:3] == b"\xef\xbb\xbf")


def _record_start(path: Path, record: int) -> tuple[int, int | None]:
    """The physical line where record `record` (the header is record 1) starts, and its offset."""
    for n, (line, ending, _, after) in enumerate(_record_ends(path), start=2):
        if n == record:
            return line + ending.endswith(b"\n"), after
    return record, None


# A quoted value within one line, consumed whole, and the text after its closing quote if any
# (DuckDB says "unterminated quote" for both: a quote never closed and text after one).
_CLOSED_QUOTE = re.compile(rb'(?<![^,\r\n])[ \t]*+"(?:[^"\r\n]|"")*+"[ \t]*+(?P<after>[^,\r\n])?')


def _text_after_quote(path: Path, offset: int) -> bool:
    """Whether the physical line at `offset` holds a quoted value followed by text."""
    with _mapped(path) as data:  # (no match may outlive the mapping)
        ends = [data.find(b"\n", offset), data.find(b"\r", offset), len(data)]
        end = min(e for e in ends if e >= 0)
        after = [m["after"] for m in _CLOSED_QUOTE.finditer(data, offset, end)]
    return any(a is not None for a in after)


def _mixed_line_ending(path: Path) -> tuple[int, bytes, int, bytes] | None:
    """The first record end whose line ending differs from the first one's, if any."""
    first = None
    for line, ending, _, _ in _record_ends(path):
        if first is None:
            first = (line, ending)
        elif ending != first[1]:
            return line, ending, first[0], first[1]
    return None


def _empty_raw(conn, t: Table, partition_key: str, file_name: str) -> pa.Table:
    cols = ", ".join(f'CAST(NULL AS VARCHAR) AS "{c}"' for c in t.column_names)
    return fetch_arrow(
        conn,
        f"""SELECT {cols}, CAST(NULL AS VARCHAR) AS extra_columns,
                   CAST(? AS DATE) AS ingest_date, CAST(? AS VARCHAR) AS source_file,
                   CAST(NULL AS BIGINT) AS source_line, CAST(now() AS TIMESTAMPTZ) AS loaded_at
            LIMIT 0""",
        [partition_key, file_name],
    )


def empty_raw(conn, t: Table) -> pa.Table:
    return _empty_raw(conn, t, "2000-01-01", t.file_name)
