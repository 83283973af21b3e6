"""The landing zone: `<root>/ingest_date=YYYY-MM-DD/<table>.csv` plus `_manifest.json`.

Reading a file into raw is DuckDB's CSV reader (`read_csv_file`); this module only knows the
layout, the manifest, and which files a partition should and does have.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import mmap
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import botocore.exceptions
import dagster as dg
import duckdb
from dagster_aws.s3 import S3Resource
import pyarrow as pa
import pyarrow.compute as pc

from dq_assets.storage.s3.client import s3_client, s3_error
from dq_assets.contract.tables import MANIFEST_FILE, TABLE_NAMES, Table
from dq_assets.storage.duckdb.warehouse import fetch_arrow
from dq_assets.storage.sql import sql_str
from dq_assets.redaction import first_line
from dq_assets.settings import landing_root

PARTITION_DIR = re.compile(r"^ingest_date=(\d{4}-\d{2}-\d{2})$")


class LandingError(Exception):
    """A partition-level problem in the landing zone, said in one line."""


class _Repeated(list):
    """The values of a key a JSON object holds more than once."""


def _keep_repeated_keys(pairs: list[tuple]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            earlier = out[key]
            out[key] = (earlier if isinstance(earlier, _Repeated) else _Repeated([earlier])) + [value]
            out[key] = _Repeated(out[key])
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class Manifest:
    ingest_date: str
    files: dict[str, dict]  # file name -> {"rows", "sha256", "<amount>_sum"}

    def lists(self, file_name: str) -> bool:
        return file_name in self.files


PARTITION_KEY = re.compile(r"\d{4}-\d{2}-\d{2}")


def partition_dir_name(partition_key: str) -> str:
    # Only a YYYY-MM-DD date names a folder: nothing else can reach outside the landing root.
    if not (isinstance(partition_key, str) and PARTITION_KEY.fullmatch(partition_key)):
        raise ValueError(f"partition key {partition_key!r} is not a date (YYYY-MM-DD)")
    date.fromisoformat(partition_key)
    return f"ingest_date={partition_key}"


def check_file_name(name, where: str) -> None:
    """A file the manifest names lies in its partition folder: a plain name, no path."""
    if (not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name
            or "\0" in name):
        raise LandingError(f"{where}: file name {name!r} is not a plain file name in the "
                           "partition folder; refusing it")


class _LocalStore:
    """The landing zone on a local file system."""

    def __init__(self, root: str):
        self.root = Path(root)

    def where(self, rel: str) -> str:
        return str(self.root / rel)

    def child_dirs(self) -> list[str]:
        return [p.name for p in self.root.iterdir() if p.is_dir()] if self.root.is_dir() else []

    def files(self, folder: str) -> list[str] | None:
        path = self.root / folder
        return [p.name for p in path.iterdir() if p.is_file()] if path.is_dir() else None

    def _inside(self, rel: str) -> Path:
        """The path of `rel`, refused when it (a symlink, say) resolves outside the root."""
        path = self.root / rel
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise LandingError(f"{path}: resolves outside the landing root {self.root}; refusing it")
        return path

    def read_bytes(self, rel: str) -> bytes:
        return self._inside(rel).read_bytes()

    @contextmanager
    def local_copy(self, rel: str) -> Iterator[Path]:
        yield self._inside(rel)


class _S3Store:
    """The landing zone under s3://bucket/prefix, through boto3 (endpoint and credentials
    from the standard AWS environment, e.g. AWS_ENDPOINT_URL)."""

    def __init__(self, uri: str, client):
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = client

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def where(self, rel: str) -> str:
        return f"s3://{self.bucket}/{self._key(rel)}"

    def _list(self, folder: str, delimiter: bool) -> dict:
        prefix = self._key(folder).rstrip("/") + "/" if (self.prefix or folder) else ""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, **({"Delimiter": "/"} if delimiter else {})
        )
        found = {"dirs": [], "files": []}
        try:
            for page in pages:
                found["dirs"] += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
                found["files"] += [o["Key"][len(prefix):] for o in page.get("Contents", [])]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            raise LandingError(s3_error("list", f"s3://{self.bucket}/{prefix}", e).description) from None
        return found

    def child_dirs(self) -> list[str]:
        return self._list("", delimiter=True)["dirs"]

    def files(self, folder: str) -> list[str] | None:
        names = [n for n in self._list(folder, delimiter=True)["files"] if n and "/" not in n]
        return names or None

    def read_bytes(self, rel: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(rel))["Body"].read()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            raise LandingError(s3_error("read", self.where(rel), e).description) from None

    @contextmanager
    def local_copy(self, rel: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="dq_landing_") as tmp:
            path = Path(tmp) / Path(rel).name
            self.client.download_file(self.bucket, self._key(rel), str(path))
            yield path


class LandingZone(dg.ConfigurableResource):
    """The landing zone. `root` (a local path or an s3://bucket/prefix URI) defaults to
    `DQ_LANDING`, else `data/landing` in the repository. An s3:// root is read through
    dagster-aws's S3Resource (`s3`; without one, the standard AWS environment)."""

    root: str | None = None
    s3: S3Resource | None = None

    def resolved_root(self) -> str:
        return self.root or landing_root()

    def _store(self):
        root = self.resolved_root()
        if root.startswith("s3://"):
            return _S3Store(root, s3_client(self.s3 or S3Resource()))
        return _LocalStore(root)

    def partition_path(self, partition_key: str) -> str:
        return self._store().where(partition_dir_name(partition_key))

    def partitions(self) -> list[str]:
        """Ingest dates whose folder has a manifest (a complete landing), oldest first."""
        store = self._store()
        keys = []
        for name in store.child_dirs():
            m = PARTITION_DIR.match(name)
            if m and MANIFEST_FILE in (store.files(name) or []):
                keys.append(m.group(1))
        return sorted(keys)

    def manifest(self, partition_key: str) -> Manifest:
        store, folder = self._store(), partition_dir_name(partition_key)
        names = store.files(folder)
        where = store.where(f"{folder}/{MANIFEST_FILE}")
        if names is None:
            raise LandingError(f"{store.where(folder)}: no landing folder for partition {partition_key}")
        if MANIFEST_FILE not in names:
            raise LandingError(f"{where}: missing; partition {partition_key} is not complete")
        try:
            # numbers as exact decimals (a money total is never rounded through a float);
            # a file listed twice is kept as two entries, for the check below
            doc = json.loads(store.read_bytes(f"{folder}/{MANIFEST_FILE}").decode("utf-8-sig"),
                             parse_float=Decimal, object_pairs_hook=_keep_repeated_keys)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LandingError(f"{where}: not valid JSON ({e})") from e
        files = doc.get("files") if isinstance(doc, dict) else None
        if isinstance(files, dict):
            for name, entries in list(files.items()):
                if isinstance(entries, _Repeated):
                    if any(e != entries[0] for e in entries):
                        raise LandingError(f"{where}: lists {name} {len(entries)} times with different "
                                           "control totals; which one the file must match is ambiguous")
                    files[name] = entries[0]
        if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
            raise LandingError(f'{where}: expected {{"ingest_date": ..., "files": {{name: {{...}}}}}}')
        if doc.get("ingest_date") not in (None, partition_key):
            raise LandingError(f"{where}: ingest_date {doc.get('ingest_date')!r} does not match its folder")
        for name in files:
            check_file_name(name, where)
        return Manifest(ingest_date=partition_key, files=files)

    def manifest_version(self, partition_key: str) -> str:
        """sha256 of the manifest's bytes: a re-sent day gets a new version."""
        folder = partition_dir_name(partition_key)
        return hashlib.sha256(self._store().read_bytes(f"{folder}/{MANIFEST_FILE}")).hexdigest()

    def present_files(self, partition_key: str) -> list[str]:
        names = self._store().files(partition_dir_name(partition_key)) or []
        return sorted(n for n in names if n != MANIFEST_FILE)

    @contextmanager
    def local_file(self, partition_key: str, file_name: str) -> Iterator[Path | None]:
        """The landed file as a local path (downloaded for S3), or None when absent."""
        if file_name not in self.present_files(partition_key):
            yield None
            return
        with self._store().local_copy(f"{partition_dir_name(partition_key)}/{file_name}") as path:
            yield path


def sha256_of(path: Path) -> str:
    """The file's sha256. The raw table and the landing audit both need it in the same run:
    a file unchanged since (same size and modification time) is not read twice."""
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    newlines = " + ".join(
        f"(CASE WHEN contains(c{i}, chr(10)) THEN length(c{i}) - length(replace(c{i}, chr(10), '')) ELSE 0 END)"
        for i in range(len(names)))
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
    with _readable(path, len(header), header_breaks) as readable:
        try:
            data = fetch_arrow(conn, sql, [str(readable), partition_key, file_name])
        except duckdb.Error as e:
            raise _csv_error(path, e) from None
    # Lines are found in the file as sent: the copy read has the same records on the same lines.
    data = _with_source_lines(data, header_lines)
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
def _readable(path: Path, header_fields: int, header_breaks: bool) -> Iterator[Path]:
    """The file for DuckDB's reader: itself, or (rare files) a copy it reads right, with the
    spaces and tabs around quoted values removed (when `_has_padded_quotes`) and, when the
    header's names hold a line break (`header_breaks`), the header record replaced by one line
    of as many fields. The reader's `skip = 1` skips one line, quote-aware except after a BOM:
    a quoted first name with a line break after a BOM left the header's tail as a data row, and
    a header holding a line break of another kind than the file's (or a lone CR) lost every
    record without an error. Every record after the header keeps its bytes and its number, so
    the sha256, every line number (the header's physical lines are counted from its names) and
    the record a reader error names are those of the file itself."""
    with _mapped(path) as data:
        padded = _has_padded_quotes(data)
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
        return any(data.find(blank) >= 0 for blank in (b"\n\n", b"\n\r\n", b"\r\r"))


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


def _with_source_lines(data: pa.Table, header_lines: int) -> pa.Table:
    """Turn the record number (`source_line` as read) into the physical line where the record
    starts: header lines + record number + newlines inside the records before it. A running sum
    in Arrow: as a SQL window it sorted and buffered whole rows, 7x the cost of reading."""
    ordinal = data.column("source_line")
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


def table_of_file(file_name: str) -> str | None:
    stem = file_name[:-4] if file_name.endswith(".csv") else None
    return stem if stem in TABLE_NAMES else None
