"""The crash matrix of test_crash_matrix.py on the aws deployment: raw on S3 (moto's server),
staging, quarantine, marts and quality on PostgreSQL. (A module of its own so that the two
backends run on two workers at once.)"""

from __future__ import annotations

import io

import boto3
import psycopg
import pyarrow.parquet as pq
import pytest

from dq_assets_tests.test_aws_deployment import AwsWarehouse
from dq_assets_tests.test_crash_matrix import (
    DAY,
    HOOK,
    TABLES,
    assert_consistent,
    crash_chain,
    kept,
    landing_at,
    tables_of,
)
from dq_assets_tests.test_faults import CliRun, aws_env_for, latest_rows, mp, new_db, pg_snapshot, s3_raw  # noqa: F401 (mp and new_db: fixtures used below)

pytestmark = pytest.mark.slow  # the end-to-end tier: a CLI run killed at every output boundary

BUCKET = "crash-matrix"


@pytest.fixture(scope="module")
def bucket(moto_endpoint, mp):  # noqa: F811
    for var, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        mp.setenv(var, value)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


def test_crash_matrix_on_aws(tmp_path, bucket, moto_endpoint, instance, new_db):  # noqa: F811
    clean_pg, pg = new_db(), new_db()
    clean = tmp_path / "clean"
    clean.mkdir()
    ref = AwsWarehouse(str(landing_at(clean, 2)), bucket, clean_pg, instance)
    ref.resources_prefix = "matrix-clean"
    assert ref.materialize(DAY).success
    new_snap = pg_snapshot(clean_pg)
    new = tables_of(new_snap, raw_counts("matrix-clean", clean_pg))

    work = tmp_path / "work"
    work.mkdir()
    env = {**aws_env_for(work, work / "landing", moto_endpoint, bucket, "matrix", pg),
           "PYTHONPATH": str(HOOK)}

    def state() -> dict:
        return tables_of(pg_snapshot(pg), raw_counts("matrix", pg))

    for boundary, staged, before in crash_chain(work, env, state):
        assert_consistent(boundary, staged, state(), before, new)
    rerun = CliRun(env, DAY)
    assert rerun.wait() == 0, rerun.output()[-3000:]
    assert kept(pg_snapshot(pg)) == kept(new_snap)
    # one object per raw partition again (the superseded ones deleted), as after a clean run
    assert s3_raw(BUCKET, "matrix") == s3_raw(BUCKET, "matrix-clean")
    assert latest_rows(pg) == latest_rows(clean_pg)


def raw_counts(prefix: str, pg: str) -> dict[str, int]:
    """Rows of DAY in each raw table on S3: in its current object, the one that
    quality.raw_current names (a newer one, written by a run that died before staging it, is
    not current)."""
    with psycopg.connect(pg) as conn:
        current = dict(conn.execute(
            "SELECT asset_key, current_object FROM quality.raw_current WHERE ingest_date = %s",
            [DAY]).fetchall()) if conn.execute("SELECT to_regclass('quality.raw_current')").fetchone()[0] else {}
    s3, counts = boto3.client("s3"), {}
    for t in TABLES:
        location = current.get(f"raw/{t.name}")
        assert location is None or location.startswith(f"s3://{BUCKET}/{prefix}/raw/{t.name}/ingest_date={DAY}/")
        body = (s3.get_object(Bucket=BUCKET, Key=location.removeprefix(f"s3://{BUCKET}/"))["Body"].read()
                if location else None)
        counts[t.name] = pq.read_metadata(io.BytesIO(body)).num_rows if body else 0
    return counts
