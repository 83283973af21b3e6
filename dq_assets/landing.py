"""The landing zone: `<root>/ingest_date=YYYY-MM-DD/<table>.csv` plus `_manifest.json`.

Reading a file into raw is DuckDB's CSV reader (`read_csv_file`); this module only knows the
layout, the manifest, and which files a partition should and does have.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa

from dq_assets.contracts import MANIFEST_FILE, TABLE_NAMES, Table
from dq_assets.duck import fetch_arrow
from dq_assets.settings import landing_root

PARTITION_DIR = re.compile(r"^ingest_date=(\d{4}-\d{2}-\d{2})$")


class LandingError(Exception):
    """A partition-level problem in the landing zone, said in one line."""


@dataclass(frozen=True)
class Manifest:
    ingest_date: str
    files: dict[str, dict]  # file name -> {"rows", "sha256", "<amount>_sum"}

    def lists(self, file_name: str) -> bool:
        return file_name in self.files


def partition_dir_name(partition_key: str) -> str:
    date.fromisoformat(partition_key)  # a key that is not a date cannot name a folder
    return f"ingest_date={partition_key}"


class LandingZone(dg.ConfigurableResource):
    """Local landing zone. `root` defaults to `DQ_LANDING`, else `data/landing`."""

    root: str | None = None

    def resolved_root(self) -> Path:
        root = self.root or landing_root()
        if root.startswith("s3://"):
            raise LandingError(f"{root}: S3 landing needs the aws deployment's landing resource")
        return Path(root)

    def partition_path(self, partition_key: str) -> Path:
        return self.resolved_root() / partition_dir_name(partition_key)

    def partitions(self) -> list[str]:
        """Ingest dates whose folder has a manifest (a complete landing), oldest first."""
        root = self.resolved_root()
        if not root.is_dir():
            return []
        keys = []
        for child in root.iterdir():
            m = PARTITION_DIR.match(child.name)
            if m and (child / MANIFEST_FILE).is_file():
                keys.append(m.group(1))
        return sorted(keys)

    def manifest(self, partition_key: str) -> Manifest:
        folder = self.partition_path(partition_key)
        path = folder / MANIFEST_FILE
        if not folder.is_dir():
            raise LandingError(f"{folder}: no landing folder for partition {partition_key}")
        if not path.is_file():
            raise LandingError(f"{path}: missing; partition {partition_key} is not complete")
        try:
            doc = json.loads(path.read_bytes().decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LandingError(f"{path}: not valid JSON ({e})") from e
        files = doc.get("files") if isinstance(doc, dict) else None
        if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
            raise LandingError(f'{path}: expected {{"ingest_date": ..., "files": {{name: {{...}}}}}}')
        if doc.get("ingest_date") not in (None, partition_key):
            raise LandingError(
                f"{path}: ingest_date {doc.get('ingest_date')!r} does not match its folder"
            )
        return Manifest(ingest_date=partition_key, files=files)

    def present_files(self, partition_key: str) -> list[str]:
        folder = self.partition_path(partition_key)
        return sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST_FILE)

    def file_path(self, partition_key: str, file_name: str) -> Path | None:
        path = self.partition_path(partition_key) / file_name
        return path if path.is_file() else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def normalise_header(name: str) -> str:
    return name.strip().lower()


def read_header(path: Path) -> list[str]:
    """The header record as sent (BOM removed)."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        try:
            return next(csv.reader(f))
        except StopIteration:
            return []
        except UnicodeDecodeError as e:
            raise LandingError(f"{path}: line 1: not UTF-8 ({e.reason})") from e


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
    schema = FileSchema.of(header, t)
    if not header:
        return _empty_raw(conn, t, partition_key, file_name), schema
    names = [f"c{i}" for i in range(len(header))]
    columns = ", ".join(f"'{n}': 'VARCHAR'" for n in names)
    select = [
        (f"c{schema.positions[c]}" if c in schema.positions else "CAST(NULL AS VARCHAR)")
        + f' AS "{c}"'
        for c in t.column_names
    ]
    unknown_pos = [i for i, name in enumerate(header) if name in schema.unknown]
    if unknown_pos:
        pairs = ", ".join(f"{_sql_str(header[i])}, c{i}" for i in unknown_pos)
        select.append(f"CAST(json_object({pairs}) AS VARCHAR) AS extra_columns")
    else:
        select.append("CAST(NULL AS VARCHAR) AS extra_columns")
    # Physical line where each record starts: header is line 1, quoted fields may hold newlines.
    newlines = " + ".join(f"coalesce(length(c{i}) - length(replace(c{i}, chr(10), '')), 0)" for i in range(len(names)))
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
               CAST({header_lines} + ordinality
                    + coalesce(sum(_nl) OVER (ORDER BY ordinality
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                    AS BIGINT) AS source_line,
               CAST(now() AS TIMESTAMPTZ) AS loaded_at
        FROM rows ORDER BY ordinality
    """
    try:
        data = fetch_arrow(conn, sql, [str(path), partition_key, file_name])
    except duckdb.Error as e:
        raise LandingError(f"{path}: cannot be read as CSV: {_first_line(e)}") from e
    return data, schema


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


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def table_of_file(file_name: str) -> str | None:
    stem = file_name[:-4] if file_name.endswith(".csv") else None
    return stem if stem in TABLE_NAMES else None
