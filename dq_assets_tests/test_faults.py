"""Faults, against real components: S3 5xx and throttling (a fault-injecting HTTP proxy in front
of moto's server), a PostgreSQL connection killed in the middle of a COPY, the run process
killed with SIGKILL in the middle of a partition and then rerun, and two partitions
materialized at the same time against each backend.

After each fault: no partial partition is visible (each table's partition is either absent or
exactly what a clean run writes), a rerun converges to a clean run's contents, and no alert is
lost.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import boto3
import dagster as dg
import duckdb
import pandas as pd
import psycopg
import pyarrow.parquet as pq
import pytest
from dagster._core.events import DagsterEventType

from dq_assets.operations.failure_alerts import check_failure_alerts
from dq_assets.operations.freshness import CHECK_NAMES as FRESHNESS_CHECKS
from dq_assets.storage.quality_store import APPEND_ONLY_TABLES
from dq_assets.storage.s3.client import s3_client
from dq_assets_tests.conftest import DAY1, DAY2, Landing, Warehouse, hourly_events, ram_dir
from dq_assets_tests.fault_proxy import INTERNAL_ERROR, TRUNCATED, FaultProxy, always, every, first
from dq_assets_tests.pg_fixtures import with_database
from dq_assets_tests.test_aws_deployment import AwsWarehouse
from dq_assets_tests.test_landing_s3 import upload

pytestmark = pytest.mark.slow  # the end-to-end tier: faults against real components, each through the CLI and reruns

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = ("raw", "staging", "quality", "marts")
# Properties of a run, not of the data: when it loaded or evaluated, and which run it was.
VOLATILE = {"loaded_at", "run_id", "evaluated_at", "profiled_at", "marked_at", "decided_at", "inputs_version",
            "current_object"}  # quality.raw_current (aws): the S3 object's name holds its run
# The freshness checks run in the CLI's runs only (a run of the code location selects the
# checks of its assets) and depend on the wall clock: left out of every comparison.
NOT_FRESHNESS = "check_name NOT IN ({})".format(", ".join(f"'{c}'" for c in FRESHNESS_CHECKS))
DAY = "2025-01-01"


# --------------------------------------------------------------------------------------------
# Snapshots of a warehouse (DuckDB file or PostgreSQL database) and of the raw layer on S3
# --------------------------------------------------------------------------------------------


def _snapshot(query) -> dict[str, dict]:
    """table -> {"rows": sorted rows without volatile columns, "by_partition": {day: rows}}.
    Append-only history tables: the SET of distinct rows (a rerun appends the same rows again)."""
    out = {}
    tables = query("SELECT table_schema, table_name FROM information_schema.tables "
                   f"WHERE table_schema IN {SCHEMAS}")
    for schema, name in tables:
        cols = [c for (c,) in query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = '{}' AND "
            "table_name = '{}' ORDER BY ordinal_position".format(schema, name))]
        kept = [c for c in cols if c not in VOLATILE]
        where = f" WHERE {NOT_FRESHNESS}" if name == "check_results" else ""
        rows = [tuple(r) for r in query(f'SELECT {", ".join(kept)} FROM "{schema}"."{name}"{where}')]
        if name in APPEND_ONLY_TABLES:
            rows = list(set(rows))
        rows.sort(key=repr)
        by_partition: dict = {}
        if "ingest_date" in kept:
            i = kept.index("ingest_date")
            for r in rows:
                by_partition.setdefault(str(r[i]), []).append(r)
        out[f"{schema}.{name}"] = {"rows": rows, "by_partition": by_partition,
                                   "partitioned": "ingest_date" in kept}
    return out


def duck_snapshot(path: Path) -> dict:
    conn = duckdb.connect(str(path), read_only=True)
    try:
        return _snapshot(lambda sql: conn.execute(sql).fetchall())
    finally:
        conn.close()


def pg_snapshot(url: str) -> dict:
    with psycopg.connect(url) as conn:
        return _snapshot(lambda sql: conn.execute(sql).fetchall())


VERSIONED_OBJECT = re.compile(r"/data-[^/]+\.parquet$")


def s3_raw(bucket: str, prefix: str) -> dict[str, list]:
    """The raw layer's parquet objects under `prefix`: key (without prefix) -> rows. A raw
    partition is written as a new object each time (data-<version>.parquet, the older ones
    deleted once the new one is current): its one object is listed as data.parquet, and any
    second object of a folder under its own name (so that it shows in any comparison)."""
    s3 = boto3.client("s3")
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in sorted(page.get("Contents", []), key=lambda o: o["Key"], reverse=True):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            table = pq.read_table(io.BytesIO(body))
            table = table.drop([c for c in table.column_names if c in VOLATILE])
            key = obj["Key"][len(prefix) + 1:]
            plain = VERSIONED_OBJECT.sub("/data.parquet", key)
            out[plain if plain not in out else key] = sorted(map(repr, table.to_pylist()))
    return out


def contents(snap: dict) -> dict:
    """Every table's rows (without the volatile columns)."""
    return {name: t["rows"] for name, t in snap.items()}


def assert_no_partial_partition(after_fault: dict, clean: dict) -> list[str]:
    """Every table's partition is absent or exactly the clean run's; an unpartitioned table is
    absent, empty or complete; history rows are a subset of the clean run's. Returns the
    tables whose partitions were present (for the record)."""
    present = []
    for name, t in after_fault.items():
        assert name in clean, f"{name} exists after the fault but not after a clean run"
        ref = clean[name]
        if name == "quality.raw_current":  # one row per raw table, published with its staging
            assert set(t["rows"]) <= set(ref["rows"]), f"{name}: rows a clean run never writes"
            continue
        if name.split(".")[1] in APPEND_ONLY_TABLES:
            assert set(t["rows"]) <= set(ref["rows"]), f"{name}: rows a clean run never writes"
            continue
        if not t["partitioned"]:
            assert t["rows"] in ([], ref["rows"]), f"{name}: unpartitioned table half written"
            present += [name] if t["rows"] else []
            continue
        for day, rows in t["by_partition"].items():
            assert rows == ref["by_partition"].get(day), f"{name} partition {day} is partial"
            present.append(f"{name}[{day}]")
    return present


# --------------------------------------------------------------------------------------------
# The CLI as a subprocess: `dagster asset materialize -m dq_assets --select '*' --partition D`
# --------------------------------------------------------------------------------------------


class CliRun:
    """A `dagster asset materialize` process whose merged output is collected by a thread;
    `wait_for(text)` blocks until a line containing `text` appeared."""

    def __init__(self, env: dict, partition: str):
        self.lines: list[str] = []
        self._new_line = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "dq_assets",
             "--select", "*", "--partition", partition],
            cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._new_line:
                self.lines.append(line)
                self._new_line.notify_all()
        with self._new_line:
            self.lines.append("<eof>")
            self._new_line.notify_all()

    def wait_for(self, text: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._new_line:
            while True:
                for line in self.lines[seen:]:
                    if text in line:
                        return line
                    if line == "<eof>":
                        raise AssertionError(f"the run ended before {text!r}:\n{self.output()[-3000:]}")
                seen = len(self.lines)
                left = deadline - time.monotonic()
                assert left > 0, f"no {text!r} within {timeout}s"
                self._new_line.wait(left)

    def kill(self) -> int:
        self.proc.send_signal(signal.SIGKILL)  # this process only, by its id
        return self.wait()

    def wait(self, timeout: float = 600) -> int:
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return rc

    def output(self) -> str:
        return "".join(line for line in self.lines if line != "<eof>")

    @property
    def run_id(self) -> str:
        line = next(ln for ln in self.lines if "RUN_START" in ln or "STEP_START" in ln)
        return line.split(" - ")[4].strip()


def step_start(step: str) -> str:
    return f'STEP_START - Started execution of step "{step}"'


def base_env(tmp: Path, landing: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DQ_", "AWS_", "PG", "DAGSTER_"))}
    home = ram_dir("dagster-home") or tmp / "dagster_home"  # in memory where there is /dev/shm
    home.mkdir(parents=True, exist_ok=True)
    env.update(DAGSTER_HOME=str(home), DQ_LANDING=str(landing), DQ_ALERT_SINKS="jsonl",
               DQ_ALERT_FILE=str(tmp / "alerts.jsonl"), PYTHONUNBUFFERED="1")
    return env


def duck_env(tmp: Path, landing: Path) -> dict:
    return {**base_env(tmp, landing), "DQ_DEPLOYMENT": "local",
            "DQ_WAREHOUSE": str(tmp / "warehouse.duckdb")}


def aws_env_for(tmp: Path, landing: Path, endpoint: str, bucket: str, prefix: str, pg: str) -> dict:
    return {**base_env(tmp, landing), "DQ_DEPLOYMENT": "aws", "DQ_S3_BUCKET": bucket,
            "DQ_S3_PREFIX": prefix, "DQ_PG_URL": pg, "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1"}


def instance_at(env: dict) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(env["DAGSTER_HOME"])


def check_evaluations(instance: dg.DagsterInstance, run_id: str) -> set[tuple]:
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    out = set()
    for r in records:
        e = r.event_log_entry.dagster_event.event_specific_data
        if e.check_name in FRESHNESS_CHECKS or e.check_name == "column_schema_change":
            continue  # see NOT_FRESHNESS; the catalog's checks are the code location's, not ALL_ASSETS'

        out.add((e.asset_key.to_user_string(), e.check_name, getattr(e, "partition", None), e.passed,
                 e.severity.value if e.severity else None))
    return out


def latest_outcomes(snap: dict) -> set[tuple]:
    """(partition, asset, check, passed, severity, failing_rows) of quality.check_results."""
    return {r[:6] for r in snap["quality.check_results"]["rows"]}


# --------------------------------------------------------------------------------------------
# Data: the conftest shop, and self-contained days (no reference to another day), so that two
# partitions run at the same time give the same result in either order
# --------------------------------------------------------------------------------------------

_IDS = {"C1", "C2", "P1", "P2", "O1", "O2", "Y1", "E1", "E2", "S1", "SKU-1", "SKU-2"}


def independent_day(day: str, tag: str) -> dict:
    def field(v: str) -> str:
        if v in _IDS:
            return tag + v
        if v == "1735722000":  # an epoch timestamp of 2025-01-01: keep it on the day
            return f"{day}T09:00:00Z"
        return v.replace("2025-01-01", day)
    files = {name: [[field(v) for v in row] for row in rows] for name, rows in DAY1.items()}
    files["events"] = [r for r in files["events"] if not r[0].startswith("D1")] + hourly_events(day, tag)
    return files


PAIR = {"2025-01-01": independent_day("2025-01-01", "A"), "2025-01-02": independent_day("2025-01-02", "B")}
SAMPLE_DAY = REPO / "data" / "landing" / f"ingest_date={DAY}"


def sample_landing(tmp: Path) -> Path:
    """A copy of one day of the sample landing zone (the runs never write to it)."""
    root = tmp / "landing"
    shutil.copytree(SAMPLE_DAY, root / SAMPLE_DAY.name)
    return root


@pytest.fixture(scope="module")
def mp():
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


@pytest.fixture(scope="module")
def s3(moto_endpoint, mp):
    for var, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        mp.setenv(var, value)
    client = boto3.client("s3")
    client.create_bucket(Bucket="faults")
    return client


@pytest.fixture
def new_db(pg_url):
    """Fresh PostgreSQL databases for one test: new_db() -> URL (all dropped afterwards)."""
    made = []

    def make() -> str:
        name = f"dq_faults_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return with_database(pg_url, name)

    yield make
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def shop_on_s3(tmp_path_factory, s3) -> str:
    """The conftest shop's two days, landed on S3 (uploaded straight to moto)."""
    landing = Landing(tmp_path_factory.mktemp("shop") / "landing")
    landing.write("2025-01-01", DAY1)
    landing.write("2025-01-02", DAY2)
    upload(landing.root, "faults-landing", "shop")
    return "s3://faults-landing/shop"


@pytest.fixture(scope="module")
def aws_reference(shop_on_s3, pg_url, instance):
    """A fault-free aws run of both days: the contents every faulted run must converge to."""
    name = f"dq_faults_ref_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    pg = with_database(pg_url, name)
    wh = AwsWarehouse(shop_on_s3, "faults", pg, instance)
    wh.resources_prefix = "reference"
    assert [wh.materialize(d).success for d in ("2025-01-01", "2025-01-02")] == [True, True]
    yield pg_snapshot(pg), s3_raw("faults", "reference")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def proxy(moto_endpoint):
    p = FaultProxy(moto_endpoint)
    yield p
    p.close()


# --------------------------------------------------------------------------------------------
# S3: 5xx and throttling
# --------------------------------------------------------------------------------------------


def test_the_s3_client_retries_with_exponential_backoff(s3):
    """What the project configures: dagster-aws's S3Resource gives every client botocore's
    `standard` retry mode (exponential backoff with jitter; retries 500/502/503/504, 429 and
    throttling codes such as SlowDown) with 5 retries, 6 attempts in all."""
    from dagster_aws.s3 import S3Resource

    retries = s3_client(S3Resource()).meta.config.retries
    assert retries == {"mode": "standard", "total_max_attempts": 6}


def test_s3_errors_are_retried_and_the_partitions_land_as_without_faults(
        shop_on_s3, aws_reference, proxy, new_db, instance, mp):
    # the first three requests fail in a row (SlowDown, InternalError, 429), then every 4th
    policy_first, policy_every = first(3), every(4)
    proxy.reset(lambda i, m, p: policy_first(i, m, p) if i <= 3 else policy_every(i - 3, m, p))
    mp.setenv("AWS_ENDPOINT_URL", proxy.url)  # landing reads and raw writes go through it
    pg = new_db()
    wh = AwsWarehouse(shop_on_s3, "faults", pg, instance)
    wh.resources_prefix = "retried"
    try:
        assert [wh.materialize(d).success for d in ("2025-01-01", "2025-01-02")] == [True, True]
    finally:
        mp.setenv("AWS_ENDPOINT_URL", proxy_upstream(proxy))
    faults = proxy.faults()
    kinds = Counter(h.fault.code for h in faults)
    assert set(kinds) == {"SlowDown", "InternalError", "TooManyRequests"}, kinds
    assert {h.method for h in faults} >= {"GET", "PUT"}  # landing reads and parquet writes
    assert all(proxy.retried(h) for h in faults)  # each failed request was sent again
    first_three = proxy.hits[:4]
    assert [h.status for h in first_three] == [503, 500, 429, 200]
    assert len({(h.method, h.path) for h in first_three}) == 1  # one request, retried 3 times
    ref_pg, ref_raw = aws_reference
    assert contents(pg_snapshot(pg)) == contents(ref_pg)
    assert s3_raw("faults", "retried") == ref_raw


def proxy_upstream(proxy: FaultProxy) -> str:
    host, port = proxy.upstream
    return f"http://{host}:{port}"


def test_s3_retries_give_up_cleanly_and_a_rerun_converges(
        shop_on_s3, aws_reference, proxy, new_db, instance, mp):
    pg = new_db()
    wh = AwsWarehouse(shop_on_s3, "faults", pg, instance)
    wh.resources_prefix = "exhausted"
    assert wh.materialize("2025-01-01").success
    before = s3_raw("faults", "exhausted")
    # every parquet write of day 2 fails (a persistent 500): boto3 gives up after 6 attempts
    proxy.reset(always(INTERNAL_ERROR, method="PUT"))
    mp.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        result = wh.materialize("2025-01-02")
    finally:
        mp.setenv("AWS_ENDPOINT_URL", proxy_upstream(proxy))
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failures[0].event_specific_data.error.message
    assert "S3 write to s3://faults/exhausted/raw/" in message and "InternalError" in message
    attempts = Counter(h.path for h in proxy.hits if h.method == "PUT")
    assert attempts and set(attempts.values()) == {6}, attempts  # 1 try + 5 retries per object
    # nothing of day 2 is visible anywhere; day 1 is untouched
    assert s3_raw("faults", "exhausted") == before
    snap = pg_snapshot(pg)
    assert all("2025-01-02" not in t["by_partition"] for t in snap.values())
    # the fault goes away: a rerun converges to the fault-free contents
    assert wh.materialize("2025-01-02").success
    ref_pg, ref_raw = aws_reference
    assert contents(pg_snapshot(pg)) == contents(ref_pg)
    assert s3_raw("faults", "exhausted") == ref_raw


def test_a_body_cut_off_mid_read_is_read_again(s3, proxy):
    """botocore does not retry a connection dropped in the middle of a response body; the S3
    IO manager reads the object again instead of failing the step."""
    from dagster_aws.s3 import S3Resource

    from dq_assets.storage.s3.io_manager import S3ParquetIOManager

    frame = pd.DataFrame({"n": list(range(20_000)), "s": [f"row {i}" for i in range(20_000)]})

    @dg.asset(key=["raw", "numbers"])
    def numbers() -> pd.DataFrame:
        return frame

    @dg.asset(key=["staging", "numbers_copy"], ins={"numbers": dg.AssetIn(key=["raw", "numbers"])})
    def numbers_copy(numbers: pd.DataFrame) -> pd.DataFrame:
        return numbers

    io_manager = S3ParquetIOManager(s3=S3Resource(endpoint_url=proxy.url), bucket="faults", prefix="truncated")
    proxy.reset(lambda i, m, p: TRUNCATED if m == "GET" and p.endswith("/numbers/data.parquet")
                and not any(h.fault for h in proxy.hits) else None)
    result = dg.materialize([numbers, numbers_copy], resources={"io_manager": io_manager})
    assert result.success
    assert [h.fault for h in proxy.faults()] == [TRUNCATED]
    assert result.asset_value(["staging", "numbers_copy"]).astype({"n": "int64", "s": "object"}).equals(frame)


# --------------------------------------------------------------------------------------------
# PostgreSQL: the IO manager's connection killed in the middle of a COPY
# --------------------------------------------------------------------------------------------

# Version B of day 1: one more order (with its item and payment), re-landed after version A.
DAY1_B = {**DAY1,
          "orders": DAY1["orders"] + [["O9", "C2", "2025-01-01T12:00:00Z", "paid", "EUR", "10.00",
                                       "2025-01-01T12:00:00Z"]],
          "order_items": DAY1["order_items"] + [["O9", "1", "P1", "1", "10.00", "10.00"]],
          "payments": DAY1["payments"] + [["Y9", "O9", "2025-01-01T12:01:00Z", "card", "captured",
                                           "10.00", "EUR"]]}


def test_a_connection_killed_mid_copy_leaves_the_old_partition_and_a_rerun_converges(
        tmp_path, s3, new_db, instance, pg_url):
    a, b = Landing(tmp_path / "a"), Landing(tmp_path / "b")
    a.write(DAY, DAY1)
    b.write(DAY, DAY1_B)
    clean_pg = new_db()
    clean = AwsWarehouse(str(b.root), "faults", clean_pg, instance)
    clean.resources_prefix = "kill-clean"
    assert clean.materialize(DAY).success
    reference = pg_snapshot(clean_pg)

    pg = new_db()
    wh = AwsWarehouse(str(a.root), "faults", pg, instance)
    wh.resources_prefix = "kill"
    assert wh.materialize(DAY).success
    version_a = pg_snapshot(pg)
    orders_a = version_a["staging.orders"]["rows"]
    assert len(orders_a) == 2
    # the server stalls in the middle of the COPY of staging.orders, at the new order's row
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute("""
            CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN PERFORM pg_sleep(120); RETURN NEW; END $$;
            CREATE TRIGGER stall BEFORE INSERT ON staging.orders
            FOR EACH ROW WHEN (NEW.order_id = 'O9') EXECUTE FUNCTION stall();""")
    wh.landing = str(b.root)
    box = {}
    runner = threading.Thread(target=lambda: box.setdefault("result", wh.materialize(DAY)))
    runner.start()
    try:
        with psycopg.connect(pg, autocommit=True) as watcher:
            deadline = time.monotonic() + 120
            while True:
                row = watcher.execute(
                    "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state = 'active' AND wait_event = 'PgSleep' AND query LIKE 'COPY%'").fetchone()
                if row or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            assert row, "the COPY never started"
            pid, query = row
            assert '"staging"."orders"' in query.replace('" . "', '"."')  # ADBC: "staging" . "orders"
            # mid-write, other sessions still see version A, whole
            assert [r for r in watcher.execute("SELECT count(*) FROM staging.orders")] == [(2,)]
            watcher.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        runner.join(timeout=180)
    result = box["result"]
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    assert "writing staging.orders failed: terminating connection due to administrator command" in message
    after = pg_snapshot(pg)
    assert after["staging.orders"]["rows"] == orders_a  # version A, not a part of version B
    for name, t in after.items():  # every other table: version A or version B, never a mix
        if name.split(".")[1] in APPEND_ONLY_TABLES:
            continue
        assert t["rows"] in (version_a[name]["rows"], reference[name]["rows"]), name
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute("DROP TRIGGER stall ON staging.orders")
    assert wh.materialize(DAY).success
    final = pg_snapshot(pg)
    for name, t in reference.items():
        if name.split(".")[1] not in APPEND_ONLY_TABLES:
            assert final[name]["rows"] == t["rows"], name
    assert latest_rows(pg) == latest_rows(clean_pg)


def latest_rows(pg: str) -> list[tuple]:
    with psycopg.connect(pg) as conn:
        return sorted(conn.execute("""
            SELECT partition_key, asset_key, check_name, passed, severity, failing_rows, observed
            FROM (SELECT *, row_number() OVER (PARTITION BY partition_key, asset_key, check_name
                                              ORDER BY evaluated_at DESC) AS rn
                  FROM quality.check_results WHERE {}) latest WHERE rn = 1""".format(NOT_FRESHNESS)).fetchall())


def duck_latest_rows(path: Path) -> list[tuple]:
    conn = duckdb.connect(str(path), read_only=True)
    try:
        return sorted(conn.execute("""
            SELECT partition_key, asset_key, check_name, passed, severity, failing_rows, observed
            FROM quality.check_results WHERE {}
            QUALIFY row_number() OVER (PARTITION BY partition_key, asset_key, check_name
                                       ORDER BY evaluated_at DESC) = 1""".format(NOT_FRESHNESS)).fetchall())
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# SIGKILL in the middle of a partition, then a rerun (the CLI, as CI and operators run it)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def duck_reference(tmp_path_factory, instance):
    """A clean in-process run of the sample day on DuckDB, with its check evaluations."""
    tmp = tmp_path_factory.mktemp("duck_ref")
    wh = Warehouse(sample_landing(tmp), tmp / "warehouse.duckdb", instance)
    result = wh.materialize(DAY)
    assert result.success
    from dq_assets.storage.duckdb.warehouse import release_warehouse

    release_warehouse(str(wh.database))
    evaluations = {(e.asset_key.to_user_string(), e.check_name, e.partition, e.passed, e.severity.value)
                   for e in result.get_asset_check_evaluations()}
    return duck_snapshot(wh.database), evaluations, duck_latest_rows(wh.database)


@pytest.mark.parametrize("step", ["stage_orders", "publish_marts"])
def test_sigkill_mid_partition_on_duckdb_then_rerun(tmp_path, duck_reference, step):
    ref, ref_evaluations, ref_latest = duck_reference
    env = duck_env(tmp_path, sample_landing(tmp_path))
    killed = CliRun(env, DAY)
    killed.wait_for(step_start(step))
    assert killed.kill() == -signal.SIGKILL
    # the warehouse opens (the WAL of committed writes is replayed), nothing is half there
    present = assert_no_partial_partition(duck_snapshot(Path(env["DQ_WAREHOUSE"])), ref)
    assert any(p.startswith("raw.") for p in present)  # it was killed after raw had landed
    rerun = CliRun(env, DAY)
    assert rerun.wait() == 0, rerun.output()[-3000:]
    final = duck_snapshot(Path(env["DQ_WAREHOUSE"]))
    assert contents(final) == contents(ref)
    assert duck_latest_rows(Path(env["DQ_WAREHOUSE"])) == ref_latest
    inst = instance_at(env)
    try:
        assert inst.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.STARTED
        assert inst.get_run_by_id(rerun.run_id).status == dg.DagsterRunStatus.SUCCESS
        assert check_evaluations(inst, rerun.run_id) == ref_evaluations
    finally:
        inst.dispose()


def test_sigkill_mid_partition_on_aws_then_rerun(tmp_path, s3, new_db, moto_endpoint, instance):
    landing = sample_landing(tmp_path)
    clean_pg = new_db()
    clean = AwsWarehouse(str(landing), "faults", clean_pg, instance)
    clean.resources_prefix = "sigkill-clean"
    assert clean.materialize(DAY).success
    ref, ref_raw = pg_snapshot(clean_pg), s3_raw("faults", "sigkill-clean")
    pg = new_db()
    env = aws_env_for(tmp_path, landing, moto_endpoint, "faults", "sigkill", pg)
    killed = CliRun(env, DAY)
    killed.wait_for(step_start("stage_payments"))
    assert killed.kill() == -signal.SIGKILL
    assert_no_partial_partition(pg_snapshot(pg), ref)
    raw = s3_raw("faults", "sigkill")
    assert raw and all(rows == ref_raw[key] for key, rows in raw.items())
    with psycopg.connect(pg) as conn:  # the killed run's connections are gone with it
        assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND application_name = 'dq_assets'").fetchone() == (0,)
    rerun = CliRun(env, DAY)
    assert rerun.wait() == 0, rerun.output()[-3000:]
    assert contents(pg_snapshot(pg)) == contents(ref)
    assert s3_raw("faults", "sigkill") == ref_raw
    assert latest_rows(pg) == latest_rows(clean_pg)


# --------------------------------------------------------------------------------------------
# No alert lost: a killed run, a rerun, then the sensors
# --------------------------------------------------------------------------------------------

BAD_DAY = {**DAY1, "payments": DAY1["payments"] + [  # an unknown order: ERROR, the gate fails
    ["Y5", "O999", "2025-01-01T10:02:00Z", "card", "captured", "1.00", "EUR"]]}


def alert_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_no_alert_is_lost_or_doubled_after_a_killed_run(tmp_path, monkeypatch):
    from dagster._daemon.monitoring.run_monitoring import check_run_timeout

    landing = Landing(tmp_path / "landing")
    landing.write(DAY, BAD_DAY)
    env = duck_env(tmp_path, landing.root)
    alerts = Path(env["DQ_ALERT_FILE"])
    monkeypatch.setenv("DQ_ALERT_SINKS", "jsonl")
    monkeypatch.setenv("DQ_ALERT_FILE", str(alerts))
    inst = instance_at(env)
    try:
        def tick(cursor):
            ctx = dg.build_sensor_context(instance=inst, cursor=cursor)
            check_failure_alerts(ctx)
            return ctx.cursor

        cursor = tick(None)  # the sensor switched on
        killed = CliRun(env, DAY)  # killed after every staging check was evaluated
        killed.wait_for(step_start("quality__recon_row_mismatches"))
        assert killed.kill() == -signal.SIGKILL
        killed_failures = {(a, c) for a, c, _, passed, _ in check_evaluations(inst, killed.run_id) if not passed}
        assert ("staging/payments", "no_unknown_reference") in killed_failures
        rerun = CliRun(env, DAY)
        assert rerun.wait() == 1  # the gate fails, as it should
        rerun_failures = {(a, c) for a, c, _, passed, _ in check_evaluations(inst, rerun.run_id) if not passed}

        cursor = tick(cursor)
        sent = alert_lines(alerts)
        by_run = Counter((a["run_id"], a["kind"]) for a in sent)
        # the rerun: one alert per failed check and one for the failed run, exactly once
        assert by_run[(rerun.run_id, "check_failed")] == len(rerun_failures) >= 3
        assert by_run[(rerun.run_id, "run_failed")] == 1
        # the killed run: left STARTED in the instance (nothing marks a SIGKILLed CLI run as
        # failed unless run monitoring's max_runtime_seconds is set), so not alerted yet
        assert inst.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.STARTED
        assert not [a for a in sent if a["run_id"] == killed.run_id]

        # What the monitoring daemon does to a run past `run_monitoring.max_runtime_seconds`:
        # it is marked FAILED; the next ticks then alert its failures, once.
        record = inst.get_run_record_by_id(killed.run_id)
        time.sleep(1.1)
        check_run_timeout(inst, record, logging.getLogger("test"), 1)
        assert inst.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
        cursor = tick(tick(cursor))  # a 2nd tick: nothing
        sent = alert_lines(alerts)
        by_run = Counter((a["run_id"], a["kind"]) for a in sent)
        assert by_run[(killed.run_id, "check_failed")] == len(
            [e for e in check_evaluations(inst, killed.run_id) if not e[3]])
        assert {(a["asset_key"], a["check_name"]) for a in sent
                if a["run_id"] == killed.run_id and a["kind"] == "check_failed"} == killed_failures
        assert by_run[(killed.run_id, "run_failed")] == 1
        assert by_run[(rerun.run_id, "check_failed")] == len(rerun_failures)  # not sent again
        assert by_run[(rerun.run_id, "run_failed")] == 1
    finally:
        inst.dispose()


# --------------------------------------------------------------------------------------------
# Two partitions at the same time
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair_landing(tmp_path_factory) -> Path:
    landing = Landing(tmp_path_factory.mktemp("pair") / "landing")
    for day, files in PAIR.items():
        landing.write(day, files)
    return landing.root


def test_two_partitions_at_once_on_duckdb_one_waits_for_the_lock(tmp_path, pair_landing, instance):
    seq = Warehouse(pair_landing, tmp_path / "sequential.duckdb", instance)
    assert [seq.materialize(d).success for d in PAIR] == [True, True]
    from dq_assets.storage.duckdb.warehouse import release_warehouse

    release_warehouse(str(seq.database))
    reference = duck_snapshot(seq.database)
    env = {**duck_env(tmp_path, pair_landing), "DQ_WAREHOUSE_LOCK_WAIT": "300"}
    first_run = CliRun(env, "2025-01-01")
    first_run.wait_for("ASSET_MATERIALIZATION")  # it has written: it holds the file
    second_run = CliRun(env, "2025-01-02")
    assert first_run.wait() == 0, first_run.output()[-3000:]
    assert second_run.wait() == 0, second_run.output()[-3000:]
    # the second one waited: its first write came after the first run had finished
    inst = instance_at(env)
    try:
        one = inst.get_run_record_by_id(first_run.run_id)
        two_writes = [r.timestamp for r in inst.get_records_for_run(
            second_run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records]
        assert min(two_writes) >= one.end_time
    finally:
        inst.dispose()
    assert contents(duck_snapshot(Path(env["DQ_WAREHOUSE"]))) == contents(reference)
    assert duck_latest_rows(Path(env["DQ_WAREHOUSE"])) == duck_latest_rows(seq.database)


def test_two_partitions_at_once_on_aws(tmp_path, pair_landing, s3, new_db, moto_endpoint, instance):
    seq_pg = new_db()
    seq = AwsWarehouse(str(pair_landing), "faults", seq_pg, instance)
    seq.resources_prefix = "pair-seq"
    assert [seq.materialize(d).success for d in PAIR] == [True, True]
    pg = new_db()
    env = aws_env_for(tmp_path, pair_landing, moto_endpoint, "faults", "pair", pg)
    # The instance's SQLite storage exists already, as in any deployment: two CLI processes
    # creating a brand-new DAGSTER_HOME at the same instant race in its schema migration
    # (alembic_version UNIQUE constraint), a Dagster limit rather than the warehouse's.
    instance_at(env).dispose()
    # The day after reads a landing zone of its own that holds only itself: started together,
    # it would otherwise (rightly) be held back until the day before is loaded
    # (dq_assets.rules.history); what is tested here is two writers at once on the same warehouse.
    alone = tmp_path / "alone"
    shutil.copytree(pair_landing / "ingest_date=2025-01-02", alone / "ingest_date=2025-01-02")
    runs = [CliRun(env, "2025-01-01"), CliRun({**env, "DQ_LANDING": str(alone)}, "2025-01-02")]
    codes = [r.wait() for r in runs]
    for i, r in enumerate(runs):
        (tmp_path / f"run{i}.log").write_text(r.output())
    assert codes == [0, 0], [r.output()[-2000:] for r in runs]
    # every table equal, but check_results: the volume check's `observed` names how many
    # earlier partitions it saw, which depends on which run profiled its partition first
    together, sequential = contents(pg_snapshot(pg)), contents(pg_snapshot(seq_pg))
    assert {k: v for k, v in together.items() if k != "quality.check_results"} == {
        k: v for k, v in sequential.items() if k != "quality.check_results"}
    assert s3_raw("faults", "pair") == s3_raw("faults", "pair-seq")
    outcome = lambda rows: sorted(r[:6] for r in rows)  # noqa: E731
    assert outcome(latest_rows(pg)) == outcome(latest_rows(seq_pg))
