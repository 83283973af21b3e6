"""S3 IO manager: each asset partition as one parquet object.

Layout: s3://<bucket>/<prefix>/<layer>/<table>/ingest_date=YYYY-MM-DD/data.parquet (an
unpartitioned asset: .../<layer>/<table>/data.parquet). One object per partition, written
with a single PUT, so a rerun replaces the partition atomically and a reader sees either the
old or the new partition, never half of one. Arrow types survive the round trip, so exact
decimals and UTC timestamps stay what they are. Outputs that must become visible together
(`PartitionBatches.together`) cannot be stored here: there is no transaction over objects.
In the aws deployment S3 holds the raw layer, one output per step.

An output written as pending versions (the raw layer, `PartitionBatches.pending`) puts each
partition as a new object, `.../ingest_date=YYYY-MM-DD/data-<version>.parquet` (the version:
when, and by which run); the pipeline's readers read the newest. Which one is *current* (the
one that staging and quarantine were made from) is recorded by the staging step's transaction
in the other store (PostgreSQL's `quality.raw_current`); once that committed, the objects it
superseded are deleted. So a folder holds one object, except after a run that died between its
raw and staging steps: then the newer one is not current until a run stages it.
"""

import io
import random
import re
import time
from datetime import date, datetime, timedelta, timezone

import botocore.exceptions
import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster_aws.s3 import S3Resource

from dq_assets.storage.batches import PARTITION_COLUMN, PartitionBatches, PartitionReader, not_materialized
from dq_assets.storage.column_schema import S3_PARQUET, written_column_schema
from dq_assets.storage.duckdb.warehouse import to_arrow, to_pandas
from dq_assets.storage.s3.client import s3_client, s3_error
from dq_assets.storage.sql import check_identifier

PREFIX_PART = re.compile(r"[A-Za-z0-9._=-]{1,200}")  # one folder of DQ_S3_PREFIX
OBJECT_NAME = "data.parquet"
# A pending version of a partition: data-<UTC time>-<run>.parquet; the newest sorts last.
VERSIONED_NAME = re.compile(r"data-(\d{8}T\d{12}Z-[0-9a-z]{1,12})\.parquet")
BODY_READ_ATTEMPTS = 5
_BROKEN_BODY = (botocore.exceptions.ResponseStreamingError, botocore.exceptions.IncompleteReadError,
                botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionClosedError)


class S3ParquetIOManager(dg.ConfigurableIOManager):
    """Stores pandas frames as parquet on S3 through dagster-aws's S3Resource (region,
    endpoint URL and credentials from its configuration or the standard AWS environment)."""

    s3: S3Resource
    bucket: str
    prefix: str = "warehouse"

    # ---------------------------------------------------------------- layout

    def _table_prefix(self, asset_key: dg.AssetKey) -> str:
        layer, table = asset_key.path[0], asset_key.path[-1]
        parts = [p for p in self.prefix.strip("/").split("/") if p]
        bad = [p for p in parts if p in (".", "..") or not PREFIX_PART.fullmatch(p)]
        if bad:
            raise ValueError(f"S3 prefix {self.prefix!r}: each part must match "
                             f"{PREFIX_PART.pattern} and not be . or ..; refusing {bad}")
        return "/".join(parts + [check_identifier(layer), check_identifier(table)]) + "/"

    def _key(self, asset_key: dg.AssetKey, partition: str | None, name: str = OBJECT_NAME) -> str:
        base = self._table_prefix(asset_key)
        if partition is None:
            return base + name
        date.fromisoformat(partition)
        return f"{base}{PARTITION_COLUMN}={partition}/{name}"

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def table_location(self, asset_key: dg.AssetKey) -> str:
        """The s3:// prefix of an asset's objects (its `storage` metadata)."""
        return self._where(self._table_prefix(asset_key))

    # ---------------------------------------------------------------- output

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | PartitionBatches) -> None:
        client = s3_client(self.s3)
        if isinstance(obj, PartitionBatches) and (obj.together or obj.written_with):
            others = [b.asset_key for b in obj.together] or [obj.written_with]
            raise dg.Failure(
                f"{context.asset_key.to_user_string()} must become visible together with "
                f"{', '.join(k.to_user_string() for k in others)}: S3 writes one object at a time "
                "and cannot do that; store these outputs with a transactional IO manager (the "
                "warehouse's DuckDB or PostgreSQL)", allow_retries=False)
        if isinstance(obj, PartitionBatches):  # one partition at a time, one object each
            name = _version_name(context.run_id) if obj.pending else OBJECT_NAME
            for key, data in obj:
                self._put(client, self._key(context.asset_key, key, name), data)
            obj.finish(lambda key: {"storage": self._where(self._key(context.asset_key, key, name))})
            context.add_output_metadata({"storage": self.table_location(context.asset_key),
                                         **written_column_schema(context, obj.schema, S3_PARQUET)})
            return
        data = to_arrow(obj)
        asset_key = context.asset_key
        if context.has_asset_partitions:
            start, end = context.asset_partitions_time_window
            days = _days(start.date(), end.date())
            column = data.column(PARTITION_COLUMN).cast(pa.date32())
            for day in days:
                mask = pc.equal(column, pa.scalar(day, pa.date32()))
                self._put(client, self._key(asset_key, day.isoformat()), data.filter(mask))
            outside = set(column.to_pylist()) - set(days)
            if outside:
                raise dg.Failure(f"{asset_key.to_user_string()}: rows for ingest dates outside "
                                 f"the partitions written: {sorted(outside)[:5]}")
        else:
            self._put(client, self._key(asset_key, None), data)
        context.add_output_metadata({
            "storage": self.table_location(asset_key), "rows": data.num_rows,
            **written_column_schema(context, data.schema, S3_PARQUET),
        })

    def _put(self, client, key: str, data: pa.Table) -> None:
        buf = io.BytesIO()
        pq.write_table(data, buf)
        try:
            client.put_object(Bucket=self.bucket, Key=key, Body=buf.getvalue())
        except Exception as e:  # noqa: BLE001 (turned into one clear line)
            raise s3_error("write to", self._where(key), e) from None

    # ---------------------------------------------------------------- input

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | PartitionReader:
        client = s3_client(self.s3)
        asset_key = context.asset_key
        columns = (context.definition_metadata or {}).get("columns")
        existing = self._list(client, asset_key)
        if not existing:
            raise not_materialized(asset_key.to_user_string(), f"at {self.table_location(asset_key)}")
        if context.dagster_type.typing_type is PartitionReader:
            versions: dict[str, str] = {}

            def read_many(partition_keys: list[str]) -> pa.Table:
                versions.update((k, self._where(existing[k])) for k in partition_keys if k in existing)
                tables = [self._get(client, existing[k], columns) for k in partition_keys if k in existing]
                if not tables:  # nothing stored: no rows, the same columns
                    return self._get(client, next(iter(existing.values())), columns).schema.empty_table()
                return pa.concat_tables(tables, promote_options="default")

            def read_through(partition_key: str) -> pa.Table:
                return read_many(sorted(k for k in existing if k is not None and k <= partition_key))

            def published(current: dict[str, str]) -> None:
                self._drop_superseded(client, asset_key, current)

            return PartitionReader(context.asset_partition_keys, read_many, read_through,
                                   asset_key=asset_key, versions=versions, published=published)
        if context.has_asset_partitions:
            if not context.asset_partition_keys:
                wanted = []
            else:
                start, end = context.asset_partitions_time_window
                wanted = [d.isoformat() for d in _days(start.date(), end.date())]
            keys = [existing[p] for p in wanted if p in existing]
        elif None in existing:
            keys = [existing[None]]
        else:  # an unpartitioned reader of a partitioned asset: every partition
            keys = [existing[p] for p in sorted(p for p in existing if p is not None)]
        tables = [self._get(client, k, columns) for k in keys]
        if not tables:  # nothing in the window: an empty frame with the table's columns
            schema = self._get(client, next(iter(existing.values())), columns).schema
            return to_pandas(schema.empty_table())
        return to_pandas(pa.concat_tables(tables, promote_options="default"))

    def _list(self, client, asset_key: dg.AssetKey) -> dict:
        """partition (or None) -> object key, for every stored part of the table: of a
        partition with several versions, the newest."""
        newest: dict = {}
        for partition, version, key in self._objects(client, self._table_prefix(asset_key)):
            if partition not in newest or version > newest[partition][0]:
                newest[partition] = (version, key)
        return {partition: key for partition, (_, key) in newest.items()}

    def _objects(self, client, prefix: str) -> list[tuple[str | None, str, str]]:
        """(partition or None, version, key) of every object of the table at `prefix`; the
        version of a plain data.parquet is "" (older than any other)."""
        found = []
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    rest = obj["Key"][len(prefix):]
                    if rest == OBJECT_NAME:
                        found.append((None, "", obj["Key"]))
                    elif rest.startswith(f"{PARTITION_COLUMN}=") and "/" in rest:
                        folder, name = rest[len(PARTITION_COLUMN) + 1:].split("/", 1)
                        version = VERSIONED_NAME.fullmatch(name)
                        if name == OBJECT_NAME or version:
                            found.append((folder, version.group(1) if version else "", obj["Key"]))
        except Exception as e:  # noqa: BLE001
            raise s3_error("list", self._where(prefix), e) from None
        return found

    def _drop_superseded(self, client, asset_key: dg.AssetKey, current: dict[str, str]) -> None:
        """Delete the objects of each partition older than its current one (`current`:
        partition -> s3:// location, committed as current elsewhere). Newer ones stay: another
        run's, not yet published. One listing of the table for all the partitions."""
        current_keys = {p: loc.removeprefix(f"s3://{self.bucket}/") for p, loc in current.items()}
        objects = [o for o in self._objects(client, self._table_prefix(asset_key)) if o[0] in current_keys]
        kept = {p: v for p, v, k in objects if k == current_keys[p]}  # the current one's version
        for partition, version, other in objects:
            if partition in kept and version < kept[partition]:
                try:
                    client.delete_object(Bucket=self.bucket, Key=other)
                except Exception as e:  # noqa: BLE001
                    raise s3_error("delete", self._where(other), e) from None

    def _get(self, client, key: str, columns) -> pa.Table:
        # botocore retries errors and throttling up to the response headers; a connection
        # dropped in the middle of the body is not retried there, so it is retried here.
        for attempt in range(1, BODY_READ_ATTEMPTS + 1):
            try:
                body = client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                break
            except _BROKEN_BODY as e:
                if attempt == BODY_READ_ATTEMPTS:
                    raise s3_error("read", self._where(key), e) from None
                time.sleep(random.uniform(0, 0.05 * 2 ** attempt))  # backoff with jitter
            except Exception as e:  # noqa: BLE001
                raise s3_error("read", self._where(key), e) from None
        return pq.read_table(io.BytesIO(body), columns=list(columns) if columns else None)


def _version_name(run_id: str) -> str:
    """The object name of a new pending version written by run `run_id`."""
    now = datetime.now(timezone.utc)
    return f"data-{now:%Y%m%dT%H%M%S%f}Z-{run_id.replace('-', '')[:8].lower()}.parquet"


def _days(start: date, end: date) -> list[date]:
    """Every day of the half-open window [start, end)."""
    return [start + timedelta(days=i) for i in range((end - start).days)]
