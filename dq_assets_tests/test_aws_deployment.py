"""The aws deployment end to end: landing and raw on S3 (moto's server mode, a real HTTP
endpoint), staging, marts and quality on a real PostgreSQL. Same landing data, same results
as the embedded DuckDB warehouse: marts, quarantine counts and check outcomes."""

import re
from decimal import Decimal

import boto3
import psycopg
import pytest

from dq_assets.contract.tables import TABLE_NAMES
from dq_assets.resources import aws_resources
from dq_assets.storage.postgres.connection import PostgresConnection
from dq_assets_tests.conftest import DAY1, DAY2, Landing, Warehouse
from dq_assets_tests.pg_fixtures import with_database
from dq_assets_tests.test_landing_s3 import upload

# The end-to-end tier (`-m slow`): the aws deployment (S3 and PostgreSQL) against DuckDB, day by
# day and as a range.
pytestmark = pytest.mark.slow

DAYS = ("2025-01-01", "2025-01-02", "2025-01-03")
DAY3 = {  # a failing day: an unknown payment (ERROR) and an invalid event (WARN)
    "orders": [["O4", "C3", "2025-01-03T10:00:00Z", "paid", "EUR", "5.00", "2025-01-03T10:00:00Z"]],
    "order_items": [["O4", "1", "P2", "2", "2.50", "5.00"]],
    "payments": [["Y4", "O4", "2025-01-03T10:01:00Z", "card", "captured", "5.00", "EUR"],
                 ["Y5", "O999", "2025-01-03T10:02:00Z", "card", "captured", "1.00", "EUR"]],
    "events": DAY1["events"][:2] + [["E9", "", "S9", "page_view", "2025-01-03T09:00:00Z", "tv", "1"]],
}
MARTS = ("fact_orders", "fact_revenue_daily", "revenue_by_order_date", "customer_versions", "dim_customers")


class AwsWarehouse(Warehouse):
    resources_prefix = "wh"

    def __init__(self, landing: str, bucket: str, pg: str, instance):
        super().__init__(landing, None, instance)
        self.bucket, self.pg = bucket, pg

    @property
    def resources(self) -> dict:
        return aws_resources(bucket=self.bucket, prefix=self.resources_prefix, landing=self.landing,
                             postgres=PostgresConnection(url=self.pg))

    def query(self, sql: str, params=None) -> list[tuple]:
        with psycopg.connect(self.pg) as conn:
            return conn.execute(sql.replace("?", "%s"), params or []).fetchall()


def outcomes(wh) -> list[tuple]:
    return sorted(wh.query("""
        SELECT partition_key, asset_key, check_name, passed, severity, failing_rows FROM (
            SELECT *, row_number() OVER (PARTITION BY partition_key, asset_key, check_name
                                         ORDER BY evaluated_at DESC) AS rn
            FROM quality.check_results) latest WHERE rn = 1"""))


def contents(wh, name: str) -> list[tuple]:
    return sorted(wh.query(f"SELECT * FROM {name}"), key=repr)


@pytest.fixture(scope="module")
def both(tmp_path_factory, instance, moto_endpoint, pg_url):
    mp = pytest.MonkeyPatch()
    for var, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        mp.setenv(var, value)
    root = tmp_path_factory.mktemp("aws")
    landing = Landing(root / "landing")
    for day, files in zip(DAYS, (DAY1, DAY2, DAY3)):
        landing.write(day, files)
    s3 = boto3.client("s3")
    upload(landing.root, "aws-landing", "shop")
    s3.create_bucket(Bucket="aws-warehouse")
    dbname = f"dq_aws_{root.name.replace('-', '_')}".lower()[:60]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    pg = with_database(pg_url, dbname)
    local = Warehouse(landing.root, root / "warehouse.duckdb", instance)
    aws = AwsWarehouse("s3://aws-landing/shop", "aws-warehouse", pg, instance)
    results = {}
    for day in DAYS:
        results[day] = (local.materialize(day).success, aws.materialize(day).success)
    yield local, aws, results
    mp.undo()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')


def test_the_same_runs_pass_and_fail(both):
    _, _, results = both
    assert results == {"2025-01-01": (True, True), "2025-01-02": (True, True), "2025-01-03": (False, False)}


def test_marts_are_equal(both):
    local, aws, _ = both
    for mart in MARTS:
        assert contents(aws, f"marts.{mart}") == contents(local, f"marts.{mart}"), mart


def test_quarantine_and_staging_are_equal(both):
    local, aws, _ = both
    for t in TABLE_NAMES:
        for name in (f"quality.{t}_quarantine", f"staging.{t}"):
            assert contents(aws, name) == contents(local, name), name


def test_check_outcomes_are_equal(both):
    local, aws, _ = both
    assert outcomes(aws) == outcomes(local)
    failed = [o for o in outcomes(aws) if not o[3]]
    assert ("2025-01-03", "staging/payments", "no_unknown_reference", False, "ERROR", 1) in failed


def test_raw_lives_on_s3_as_parquet(both):
    _, aws, _ = both
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="aws-warehouse", Prefix="wh/raw/orders/")["Contents"]]
    # one object per partition, named after the version that wrote it (dq_assets.storage.s3.io_manager)
    assert [re.sub(r"/data-\d{8}T\d{12}Z-[0-9a-z]{8}\.parquet$", "/data.parquet", k) for k in keys] == [
        f"wh/raw/orders/ingest_date={d}/data.parquet" for d in DAYS]
    schemas = {r[0] for r in aws.query("SELECT schema_name FROM information_schema.schemata")}
    assert {"staging", "marts", "quality"} <= schemas and "raw" not in schemas
    # PostgreSQL records the current object of each raw partition: the one on S3
    current = aws.query("SELECT CAST(ingest_date AS VARCHAR), current_object FROM quality.raw_current "
                        "WHERE asset_key = 'raw/orders' ORDER BY 1")
    assert current == [(d, f"s3://aws-warehouse/{k}") for d, k in zip(DAYS, keys)]


RERUN_NAMES = [f"marts.{m}" for m in MARTS] + [f"staging.{t}" for t in TABLE_NAMES] + [
    f"quality.{t}_quarantine" for t in TABLE_NAMES]
RERUN_RAW_FOLDER = f"wh/raw/orders/ingest_date={DAYS[1]}/"


def raw_object(folder: str) -> bytes:
    """The one object of a raw partition's folder."""
    s3 = boto3.client("s3")
    [key] = [o["Key"] for o in s3.list_objects_v2(Bucket="aws-warehouse", Prefix=folder)["Contents"]]
    return s3.get_object(Bucket="aws-warehouse", Key=key)["Body"].read()


@pytest.fixture(scope="module")
def rerun(both):
    """Day 2 materialized again on aws: (the run, every table and day 2's raw orders object
    before and after it)."""
    _, aws, _ = both
    before = ({n: contents(aws, n) for n in RERUN_NAMES}, raw_object(RERUN_RAW_FOLDER))
    result = aws.materialize(DAYS[1])
    after = ({n: contents(aws, n) for n in RERUN_NAMES}, raw_object(RERUN_RAW_FOLDER))
    return result, before, after


def test_rerunning_a_partition_on_aws_leaves_identical_contents(rerun):
    import io

    import pyarrow.parquet as pq

    result, (tables_before, raw_before), (tables_after, raw_after) = rerun
    assert result.success
    assert tables_after == tables_before
    drop = lambda b: pq.read_table(io.BytesIO(b)).drop(["loaded_at"]).to_pylist()  # noqa: E731
    assert drop(raw_after) == drop(raw_before)


def test_a_range_on_aws_equals_day_by_day_on_duckdb(both, pg_url, instance):
    local, aws, _ = both
    dbname = "dq_aws_range_test"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    try:
        ranged = AwsWarehouse(aws.landing, aws.bucket, with_database(pg_url, dbname), instance)
        ranged.resources_prefix = "range"
        assert not ranged.materialize_range(DAYS[0], DAYS[-1]).success  # day 3 fails its gate
        for mart in MARTS:
            assert contents(ranged, f"marts.{mart}") == contents(local, f"marts.{mart}"), mart
        assert outcomes(ranged) == outcomes(local)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def test_the_published_columns_are_what_postgresql_and_the_parquet_objects_hold(both, rerun):
    """The catalog of the aws deployment (dq_assets/catalog/) against what the runs left:
    PostgreSQL's own spelling of each column type, the Arrow schema of each parquet object."""
    import io

    import dagster as dg
    import pyarrow.parquet as pq

    from dq_assets.catalog.apply import with_catalog
    from dq_assets.definitions import ALL_ASSETS
    from dq_assets.storage.column_schema import S3_PARQUET, column_type

    _, aws, _ = both
    catalog = with_catalog(dg.Definitions(assets=ALL_ASSETS, resources=aws.resources))
    result = rerun[0]  # a run of every asset on aws (day 2 again)
    assert result.success
    written = {m.asset_key: m.metadata["dagster/column_schema"].value for m in
               (e.event_specific_data.materialization for e in result.get_asset_materialization_events())}
    specs = list(catalog.resolve_all_asset_specs())
    assert len(specs) == 26
    for spec in specs:
        published = [(c.name, c.type) for c in spec.metadata["dagster/column_schema"].columns]
        schema, name = spec.metadata["dagster/table_name"].split(".")
        if schema == "raw":
            assert spec.kinds == {"s3", "parquet"}
            prefix = spec.metadata["storage"]
            assert prefix == f"s3://aws-warehouse/wh/raw/{name}/"
            body = raw_object(f"wh/raw/{name}/ingest_date={DAYS[-1]}/")
            held = [(f.name, column_type(f.type, S3_PARQUET)) for f in pq.read_schema(io.BytesIO(body))]
        else:
            assert spec.kinds == {"postgres"}
            held = [tuple(r) for r in aws.query(
                """SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
                   WHERE attrelid = CAST(? AS regclass) AND attnum > 0 AND NOT attisdropped
                   ORDER BY attnum""", [f'"{schema}"."{name}"'])]
        assert published == held, spec.key.to_user_string()
        # what the S3 and PostgreSQL IO managers reported writing
        assert [(c.name, c.type) for c in written[spec.key].columns] == held, spec.key.to_user_string()


def test_money_at_the_bound_is_exact_in_postgresql_and_beyond_it_quarantined(tmp_path, aws_env, pg_database,
                                                                             instance):
    """Issue 14.3 on the aws deployment: the largest supported amount is stored and summed
    exactly in PostgreSQL's NUMERIC(38,6), through staging and the marts; payments beyond the
    bound (2 x 6x10^31, once an overflow in raw) are quarantined there with their lines, and
    the landed total agrees with the manifest exactly."""
    top = "999999999999999999.999999"
    landing = Landing(tmp_path / "landing")
    order, pay = DAY1["orders"][0], DAY1["payments"][0]
    landing.write("2025-01-01", {
        **DAY1,
        "orders": DAY1["orders"] + [[f"O{i}", "C1", order[2], "paid", "EUR", top, order[6]] for i in (5, 6)],
        "payments": [pay] + [[f"Y{i}", f"O{i}", pay[2], "card", "captured", top, "EUR"] for i in (5, 6)],
    })
    huge = "6" + "0" * 31
    landing.write("2025-01-02", {"payments": [[f"Y{i}", "O1", "2025-01-02T08:00:00Z", "card", "captured",
                                               huge, "EUR"] for i in (7, 8)]})
    upload(landing.root, "money-landing", "shop")
    boto3.client("s3").create_bucket(Bucket="money-warehouse")
    aws = AwsWarehouse("s3://money-landing/shop", "money-warehouse", pg_database, instance)
    assert aws.materialize("2025-01-01").success
    assert not aws.materialize("2025-01-02").success  # every payment quarantined: above 5%
    revenue = 2 * Decimal(top) + Decimal("25")
    assert aws.query("SELECT revenue FROM marts.fact_revenue_daily WHERE currency = 'EUR'") == [(revenue,)]
    assert aws.query("SELECT revenue FROM marts.revenue_by_order_date") == [(revenue,)]
    assert aws.query("SELECT sum(amount) FROM staging.payments") == [(revenue,)]
    assert aws.query("SELECT partition_key, passed, observed FROM quality.check_results "
                     "WHERE check_name = 'manifest_amount_sum' AND asset_key = 'raw/payments' ORDER BY 1") == [
        ("2025-01-01", True, str(revenue)), ("2025-01-02", True, f"{12 * 10**31}.000000")]
    assert aws.query("SELECT source_line, amount, reject_details FROM quality.payments_quarantine "
                     "ORDER BY source_line") == [
        (2, huge, "amount: out_of_range (10^18 or more in magnitude)"),
        (3, huge, "amount: out_of_range (10^18 or more in magnitude)")]
