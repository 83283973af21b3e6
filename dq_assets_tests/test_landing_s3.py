"""The landing zone on S3 (DQ_LANDING=s3://bucket/prefix), through boto3 against a real local
HTTP endpoint: the same partition gives the same warehouse as from a local folder."""

import boto3
import pytest

from dq_assets.landing.zone import LandingZone
from dq_assets_tests.conftest import DAY1, DAY2, Landing, Warehouse
from dq_assets_tests.test_pipeline import snapshot


def upload(root, bucket: str, prefix: str) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    for path in root.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root).as_posix()}")


def test_s3_landing_lists_partitions_and_reads_manifests(tmp_path, aws_env):
    landing = Landing(tmp_path / "landing")
    landing.write("2025-01-01", DAY1)
    landing.write("2025-01-02", DAY2)
    upload(landing.root, "landing-bucket", "shop/landing")
    zone = LandingZone(root="s3://landing-bucket/shop/landing")
    assert zone.partitions() == ["2025-01-01", "2025-01-02"]
    assert set(zone.manifest("2025-01-02").files) == {f"{t}.csv" for t in DAY2}
    assert zone.present_files("2025-01-02") == sorted(f"{t}.csv" for t in DAY2)
    with zone.local_file("2025-01-02", "orders.csv") as path:
        assert path.read_bytes() == (landing.root / "ingest_date=2025-01-02" / "orders.csv").read_bytes()
    with zone.local_file("2025-01-02", "products.csv") as path:
        assert path is None


# The end-to-end tier (`-m slow`): every asset over both days from S3 and from a folder (the
# aws deployment's tests load their landing zone from S3 too).
@pytest.mark.slow
def test_materializing_from_s3_equals_materializing_from_a_folder(tmp_path, aws_env, instance):
    landing = Landing(tmp_path / "landing")
    landing.write("2025-01-01", DAY1)
    landing.write("2025-01-02", DAY2)
    upload(landing.root, "landing-bucket-2", "in")
    local = Warehouse(landing.root, tmp_path / "local.duckdb", instance)
    remote = Warehouse("s3://landing-bucket-2/in", tmp_path / "s3.duckdb", instance)
    # each as one run over both days (a range reads every day's files through the same zone)
    assert local.materialize_range("2025-01-01", "2025-01-02").success
    assert remote.materialize_range("2025-01-01", "2025-01-02").success
    assert snapshot(remote) == snapshot(local)
