"""The S3 parquet IO manager against a real local S3 endpoint (moto's server mode)."""

import datetime as dt
from decimal import Decimal

import boto3
import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest
from dagster_aws.s3 import S3Resource

from dq_assets.partitions import DAILY
from dq_assets.storage.duckdb.warehouse import to_pandas
from dq_assets.storage.s3.io_manager import S3ParquetIOManager

UTC = dt.timezone.utc


def frame(day: str, n: int) -> pd.DataFrame:
    d = dt.date.fromisoformat(day)
    return to_pandas(pa.table({
        "id": pa.array([f"{day}-{i}" for i in range(n)], pa.string()),
        "amount": pa.array([Decimal("0.10") * (i + 1) for i in range(n)], pa.decimal128(38, 6)),
        "ts": pa.array([dt.datetime(d.year, d.month, d.day, i, tzinfo=UTC) for i in range(n)], pa.timestamp("us", tz="UTC")),
        "ingest_date": pa.array([d] * n, pa.date32()),
    }))


SIZES = {"2025-01-01": 2, "2025-01-02": 3, "2025-01-03": 0}


@dg.asset(key=["raw", "things"], partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run(),
          metadata={"partition_expr": "ingest_date"})
def things(context) -> pd.DataFrame:
    return pd.concat([frame(k, SIZES.get(k, 1)) for k in context.partition_keys], ignore_index=True)


@dg.asset(key=["raw", "all_things"], ins={"things": dg.AssetIn(key=["raw", "things"])})
def all_things(things: pd.DataFrame) -> pd.DataFrame:
    return things


@dg.asset(key=["raw", "thing_ids"], partitions_def=DAILY,
          ins={"things": dg.AssetIn(key=["raw", "things"], metadata={"columns": ["id", "ingest_date"]},
                                    partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1))})
def thing_ids(context, things: pd.DataFrame) -> pd.DataFrame:
    assert list(things.columns) == ["id", "ingest_date"]
    LOADED[:] = things["id"].tolist()  # what the window held
    return things[things["ingest_date"] == dt.date.fromisoformat(context.partition_key)]


LOADED: list[str] = []


@pytest.fixture
def bucket(aws_env):
    name = f"wh-{dt.datetime.now().strftime('%H%M%S%f')}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def io_manager(bucket: str, **kw) -> S3ParquetIOManager:
    return S3ParquetIOManager(s3=S3Resource(**kw), bucket=bucket, prefix="dq/test")


def run(bucket, assets, **kw):
    return dg.materialize(assets, resources={"io_manager": io_manager(bucket)}, **kw)


def stored(bucket: str) -> list[str]:
    return sorted(o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", []))


def test_one_parquet_object_per_partition_and_exact_round_trip(bucket):
    assert run(bucket, [things], partition_key="2025-01-01").success
    assert run(bucket, [things], tags={"dagster/asset_partition_range_start": "2025-01-02",
                                       "dagster/asset_partition_range_end": "2025-01-03"}).success
    assert stored(bucket) == [f"dq/test/raw/things/ingest_date=2025-01-0{i}/data.parquet" for i in (1, 2, 3)]
    result = run(bucket, [things, all_things], selection=["raw/all_things"])
    loaded = result.output_for_node("raw__all_things")
    expected = pd.concat([frame(k, n) for k, n in SIZES.items()], ignore_index=True)
    assert loaded.to_dict("records") == expected.to_dict("records")
    assert str(loaded.dtypes["amount"]) == "decimal128(38, 6)[pyarrow]"
    assert loaded["amount"].iloc[1] == Decimal("0.2")
    assert str(loaded.dtypes["ts"]) == "timestamp[us, tz=UTC][pyarrow]"


def test_a_rerun_replaces_only_its_partition(bucket):
    run(bucket, [things], tags={"dagster/asset_partition_range_start": "2025-01-01",
                                "dagster/asset_partition_range_end": "2025-01-02"})
    before = boto3.client("s3").get_object(Bucket=bucket, Key="dq/test/raw/things/ingest_date=2025-01-01/data.parquet")["ETag"]
    SIZES["2025-01-02"] = 1
    try:
        assert run(bucket, [things], partition_key="2025-01-02").success
    finally:
        SIZES["2025-01-02"] = 3
    loaded = run(bucket, [things, all_things], selection=["raw/all_things"]).output_for_node("raw__all_things")
    assert loaded.groupby("ingest_date").size().to_dict() == {dt.date(2025, 1, 1): 2, dt.date(2025, 1, 2): 1}
    after = boto3.client("s3").get_object(Bucket=bucket, Key="dq/test/raw/things/ingest_date=2025-01-01/data.parquet")["ETag"]
    assert after == before


def test_a_partition_window_and_column_projection(bucket):
    run(bucket, [things], tags={"dagster/asset_partition_range_start": "2025-01-01",
                                "dagster/asset_partition_range_end": "2025-01-03"})
    assert run(bucket, [things, thing_ids], selection=["raw/thing_ids"], partition_key="2025-01-02").success
    assert LOADED == ["2025-01-01-0", "2025-01-01-1", "2025-01-02-0", "2025-01-02-1", "2025-01-02-2"]


def test_missing_bucket_and_unreachable_endpoint_are_one_clear_line(aws_env):
    result = dg.materialize([things], partition_key="2025-01-01", raise_on_error=False,
                            resources={"io_manager": io_manager("no-such-bucket")})
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "s3://no-such-bucket/dq/test/raw/things/ingest_date=2025-01-01/data.parquet" in message
    assert "the bucket does not exist" in message
    result = dg.materialize([things], partition_key="2025-01-01", raise_on_error=False, resources={
        "io_manager": io_manager("b", endpoint_url="http://127.0.0.1:9", max_attempts=1)})
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "cannot reach the S3 endpoint" in message and "testing" not in message


@pytest.fixture(scope="module")
def authenticating_s3():
    """A second moto server that checks credentials (moto's IAM auth switched on)."""
    import os
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


def test_wrong_credentials_are_one_clear_line_without_the_secret(authenticating_s3):
    resource = S3Resource(endpoint_url=authenticating_s3, region_name="us-east-1", max_attempts=1,
                          aws_access_key_id="AKIAWRONGWRONGWRONG", aws_secret_access_key="s3cr3t-value")
    result = dg.materialize([things], partition_key="2025-01-01", raise_on_error=False, resources={
        "io_manager": S3ParquetIOManager(s3=resource, bucket="any-bucket", prefix="p")})
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "access denied (InvalidAccessKeyId): check the AWS credentials" in message
    assert "s3cr3t-value" not in message and "AKIAWRONGWRONGWRONG" not in message


def test_an_empty_partition_is_stored_and_read_back_empty(bucket):
    assert run(bucket, [things], partition_key="2025-01-03").success  # 0 rows
    assert stored(bucket) == ["dq/test/raw/things/ingest_date=2025-01-03/data.parquet"]
    loaded = run(bucket, [things, all_things], selection=["raw/all_things"]).output_for_node("raw__all_things")
    assert len(loaded) == 0 and list(loaded.columns) == ["id", "amount", "ts", "ingest_date"]


@pytest.mark.parametrize("prefix", ["../other", "a/./b", "wh/$(x)", "wh\\x", "w h"])
def test_a_prefix_that_could_leave_its_folder_is_refused(prefix):
    manager = S3ParquetIOManager(s3=S3Resource(), bucket="b", prefix=prefix)
    with pytest.raises(ValueError, match="S3 prefix"):
        manager._table_prefix(dg.AssetKey(["raw", "orders"]))


def test_a_nested_prefix_is_kept():
    manager = S3ParquetIOManager(s3=S3Resource(), bucket="b", prefix="/team-a/warehouse_v2/")
    assert manager._table_prefix(dg.AssetKey(["raw", "orders"])) == "team-a/warehouse_v2/raw/orders/"


@dg.multi_asset(
    outs={"a": dg.AssetOut(key=["raw", "pair_a"], metadata={"partition_expr": "ingest_date"}),
          "b": dg.AssetOut(key=["raw", "pair_b"], metadata={"partition_expr": "ingest_date"})},
    partitions_def=DAILY)
def pair(context):
    from dq_assets.storage.batches import PartitionBatches

    b = PartitionBatches.for_asset(context, dg.AssetKey(["raw", "pair_b"]), lambda k: pa.Table.from_pandas(frame(k, 1)))
    yield dg.Output(PartitionBatches.for_asset(context, dg.AssetKey(["raw", "pair_a"]),
                                               lambda k: pa.Table.from_pandas(frame(k, 2)), together=[b]),
                    output_name="a")
    yield dg.Output(b, output_name="b")


def test_outputs_that_must_be_visible_together_are_refused_on_s3(bucket):
    """No transaction over objects: the IO manager says so rather than writing one output and
    then the other, and writes nothing."""
    result = run(bucket, [pair], partition_key="2025-01-01", raise_on_error=False)
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_failure_data.error.message.startswith(
        "dagster._core.definitions.events.Failure: raw/pair_a must become visible together with "
        "raw/pair_b: S3 writes one object at a time and cannot do that")
    assert stored(bucket) == []


def test_pending_versions_are_new_objects_the_newest_read_the_superseded_dropped_once_published(bucket):
    """A raw partition written as pending (dq_assets.storage.batches): a new object per write, the newest
    one read downstream, and the older ones deleted only once the step that read it says its
    publication was committed (on aws: quality.raw_current in PostgreSQL)."""
    import re

    from dq_assets.storage.batches import PartitionBatches, PartitionReader

    day, sent, seen = "2025-01-01", {"rows": 2}, {}

    @dg.asset(key=["raw", "pnums"], partitions_def=DAILY, metadata={"partition_expr": "ingest_date"})
    def pnums(context):
        return PartitionBatches.for_asset(
            context, context.asset_key, lambda k: pa.Table.from_pandas(frame(k, sent["rows"]), preserve_index=False),
            pending=True)

    @dg.asset(key=["staging", "pnums"], partitions_def=DAILY,
              ins={"raw": dg.AssetIn(key=["raw", "pnums"], dagster_type=PartitionReader)})
    def staged(raw: PartitionReader) -> None:
        seen["rows"] = raw.read(day).num_rows
        seen["current"] = dict(raw.publication().versions)
        if seen.get("commit"):
            raw.published()

    def materialize(*assets):
        assert dg.materialize([pnums, staged], selection=list(assets), partition_key=day,
                              resources={"io_manager": io_manager(bucket)}).success
        return stored(bucket)

    [first] = materialize(pnums)
    assert re.fullmatch(rf"dq/test/raw/pnums/ingest_date={day}/data-\d{{8}}T\d{{12}}Z-[0-9a-z]{{8}}\.parquet", first)
    sent["rows"] = 3
    first_again, second = materialize(pnums)  # a second version beside the first
    assert first_again == first and second > first
    assert materialize(staged) == [first, second]  # read, not published: both kept
    assert seen == {"rows": 3, "current": {day: f"s3://{bucket}/{second}"}}
    seen["commit"] = True
    assert materialize(staged) == [second]  # published: the superseded version is gone
