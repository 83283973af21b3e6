"""The landing zone: `<root>/ingest_date=YYYY-MM-DD/<table>.csv` plus `_manifest.json`.

This module knows the layout, the manifest, and which files a partition should and does have,
on a local file system or under an s3:// URI. Reading a file into raw rows is
`dq_assets.landing.csv_files.read_csv_file`.
"""

from __future__ import annotations

import functools
import hashlib
import json
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
from dagster_aws.s3 import S3Resource

from dq_assets.contract.tables import MANIFEST_FILE, TABLE_NAMES
from dq_assets.settings import landing_root
from dq_assets.storage.s3.client import s3_client, s3_error

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


def table_of_file(file_name: str) -> str | None:
    """The table a landed file holds, by its name (`orders.csv` -> `orders`); None for another file."""
    stem = file_name[:-4] if file_name.endswith(".csv") else None
    return stem if stem in TABLE_NAMES else None
