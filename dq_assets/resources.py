"""One switch, `DQ_DEPLOYMENT`, picks the resource map; everything else comes from env vars.

- `local` (default): the embedded DuckDB warehouse for every layer.
- `aws`: landing and raw on S3 (parquet), staging, marts and quality on PostgreSQL (RDS).

The asset code is the same for both: raw assets write through `raw_io_manager`, every other
asset through `io_manager`, and append-only quality records through `quality_store`.
"""

import os

from dagster_aws.s3 import S3Resource

from dq_assets.landing.zone import LandingZone
from dq_assets.storage.duckdb.io_manager import WarehouseIOManager
from dq_assets.storage.duckdb.quality_store import DuckDBQualityStore

DEPLOYMENT_ENV = "DQ_DEPLOYMENT"
DEPLOYMENTS = ("local", "aws")


def local_resources(database: str | None = None, landing: str | None = None) -> dict:
    """DuckDB for every layer (paths default to DQ_WAREHOUSE and DQ_LANDING at run time)."""
    warehouse = WarehouseIOManager(database=database)
    return {
        "io_manager": warehouse,
        "raw_io_manager": warehouse,
        "quality_store": DuckDBQualityStore(database=database),
        "landing": LandingZone(root=landing),
    }


def aws_resources(
    bucket: str | None = None,
    prefix: str | None = None,
    landing: str | None = None,
    s3: S3Resource | None = None,
    postgres=None,
) -> dict:
    """S3 (parquet) for raw, PostgreSQL for staging, marts and quality.

    `bucket`/`prefix` default to DQ_S3_BUCKET/DQ_S3_PREFIX; S3 region and endpoint to
    AWS_REGION/AWS_ENDPOINT_URL; credentials always come from the standard AWS chain
    (environment, profile, instance role), never from here. PostgreSQL settings: see
    `dq_assets.storage.postgres.connection`."""
    from dq_assets.storage.postgres.connection import PostgresConnection
    from dq_assets.storage.postgres.io_manager import PostgresIOManager
    from dq_assets.storage.postgres.quality_store import PostgresQualityStore
    from dq_assets.storage.s3.io_manager import S3ParquetIOManager

    bucket = bucket or os.environ.get("DQ_S3_BUCKET")
    if not bucket:
        raise ValueError("the aws deployment needs DQ_S3_BUCKET (the bucket for the raw layer)")
    s3 = s3 or S3Resource(
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
    )
    postgres = postgres or PostgresConnection()
    return {
        "io_manager": PostgresIOManager(connection=postgres),
        "raw_io_manager": S3ParquetIOManager(
            s3=s3, bucket=bucket, prefix=prefix or os.environ.get("DQ_S3_PREFIX") or "warehouse"
        ),
        "quality_store": PostgresQualityStore(connection=postgres),
        "landing": LandingZone(root=landing, s3=s3),
    }


def deployment_name(deployment: str | None = None) -> str:
    """The deployment asked for (default: DQ_DEPLOYMENT, else local), checked."""
    name = (deployment or os.environ.get(DEPLOYMENT_ENV) or "local").strip().lower()
    if name not in DEPLOYMENTS:
        raise ValueError(f"{DEPLOYMENT_ENV}={name!r}: expected one of {', '.join(DEPLOYMENTS)}")
    return name


def build_resources(deployment: str | None = None) -> dict:
    """The resource map of a deployment (default: DQ_DEPLOYMENT, else local)."""
    name = deployment_name(deployment)
    return local_resources() if name == "local" else aws_resources()
