"""The production instance of `deploy/`: `deploy/dagster.yaml` copied into a fresh DAGSTER_HOME,
run, event-log and schedule storage in a real PostgreSQL database (the test server or an
embedded one, see pg_fixtures.py), compute logs on a real S3 endpoint (moto's server mode, over
HTTP), and one partition of the sample landing zone run through the CLI as an operator would.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import dagster as dg
import psycopg
import pytest
import yaml

from dq_assets_tests.pg_fixtures import PG_ENV_VARS, with_database
from dq_assets_tests.yaml_tree import leaves

# The end-to-end tier (`-m slow`): the production instance of deploy/ (PostgreSQL storage)
# through the CLI.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
DEPLOY_YAML = REPO / "deploy" / "dagster.yaml"
DEPLOY_README = REPO / "deploy" / "README.md"
PARTITION = "2025-01-01"
BUCKET = f"dq-dagster-logs-{uuid.uuid4().hex[:8]}"  # the moto server is shared by the session
PREFIX = "dagster/compute-logs"
GATE = dg.AssetKey(["quality", "partition_gate"])
REVENUE = dg.AssetKey(["marts", "fact_revenue_daily"])

# The shell running the tests must not steer the run: the test sets what it needs.
_STRIPPED = PG_ENV_VARS + (
    "DAGSTER_HOME", "DQ_DEPLOYMENT", "DQ_LANDING", "DQ_WAREHOUSE", "DQ_GATE_CONFIG",
    "DQ_SUPPRESSIONS", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3",
)


def _env_refs(node):
    """Every (path, value) leaf of a parsed YAML document; `{env: NAME}` counts as one leaf."""
    return leaves(node, is_leaf=lambda n: set(n) == {"env"})


def _deploy_config() -> dict:
    return yaml.safe_load(DEPLOY_YAML.read_text())


@pytest.fixture(scope="module")
def deployed_run(pg_url, moto_endpoint, tmp_path_factory):
    """One partition materialized by `dagster asset materialize` on the deploy/ instance."""
    tmp = tmp_path_factory.mktemp("deploy")
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    landing = tmp / "landing"
    shutil.copytree(REPO / "data" / "landing" / f"ingest_date={PARTITION}",
                    landing / f"ingest_date={PARTITION}")

    # a fresh database for the instance's storage; where the server is, as libpq resolved it
    db = f"dq_dagster_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
        host, port, user = admin.info.host, admin.info.port, admin.info.user
        password = admin.info.password
    # The test servers trust local connections: when the URL has no password any is accepted,
    # so the run gets a distinctive one to look for in its output.
    password = password or f"pw-{uuid.uuid4().hex}"

    try:
        boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing",
                     ).create_bucket(Bucket=BUCKET)
        env = {
            "DAGSTER_HOME": str(home),
            # a Unix-socket server: an empty host leaves it to libpq's PGHOST
            "DAGSTER_PG_HOST": "" if host.startswith("/") else host,
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_DB": db,
            "DAGSTER_PG_USERNAME": user,
            "DAGSTER_PG_PASSWORD": password,
            "DAGSTER_COMPUTE_LOGS_BUCKET": BUCKET,
            "DAGSTER_COMPUTE_LOGS_PREFIX": PREFIX,
            "AWS_ENDPOINT_URL": moto_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "DQ_DEPLOYMENT": "local",
            "DQ_WAREHOUSE": str(tmp / "warehouse.duckdb"),
            "DQ_LANDING": str(landing),
        }
        if host.startswith("/"):
            env["PGHOST"] = host
        with pytest.MonkeyPatch.context() as mp:
            for name in _STRIPPED:
                mp.delenv(name, raising=False)
            for name, value in env.items():
                mp.setenv(name, value)

            cli = Path(sys.executable).with_name("dagster")
            proc = subprocess.run(
                [str(cli), "asset", "materialize", "-m", "dq_assets", "--select", "*",
                 "--partition", PARTITION],
                cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=300,
            )
            output = proc.stdout + proc.stderr
            assert proc.returncode == 0, f"exit {proc.returncode}:\n{output[-4000:]}"

            # the instance as the webserver and the daemon would load it from DAGSTER_HOME
            instance = dg.DagsterInstance.from_config(str(home))
            try:
                yield {"instance": instance, "output": output, "password": password,
                       "home": home, "db_url": with_database(pg_url, db),
                       "endpoint": moto_endpoint}
            finally:
                instance.dispose()
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _the_run(instance: dg.DagsterInstance):
    runs = instance.get_runs()
    assert len(runs) == 1, [r.run_id for r in runs]
    return runs[0]


def test_instance_is_the_production_configuration(deployed_run):
    """The instance from DAGSTER_HOME is the deploy/ one: PostgreSQL storage, S3 compute logs,
    the run queue with its limits, run monitoring."""
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    inst = deployed_run["instance"]
    assert isinstance(inst.run_storage, PostgresRunStorage)
    assert isinstance(inst.event_log_storage, PostgresEventLogStorage)
    assert isinstance(inst.schedule_storage, PostgresScheduleStorage)
    assert isinstance(inst.compute_log_manager, S3ComputeLogManager)
    assert isinstance(inst.run_coordinator, dg.QueuedRunCoordinator)
    concurrency = inst.get_concurrency_config()
    queue = concurrency.run_queue_config
    assert queue.max_concurrent_runs == 4
    # no limit per backfill: a split backfill's runs go side by side, ordered by their assets
    assert list(queue.tag_concurrency_limits) == []
    # the warehouse's steps share the pool dq_warehouse, 4 at a time, claimed per step
    pools = concurrency.pool_config
    assert (pools.default_pool_limit, pools.pool_granularity.value) == (4, "op")
    assert inst.run_monitoring_enabled
    assert inst.run_monitoring_max_runtime_seconds == 21600


def test_run_is_recorded_in_postgres(deployed_run):
    inst = deployed_run["instance"]
    run = _the_run(inst)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["dagster/partition"] == PARTITION

    # the marts of the partition were published, and the instance knows it
    latest = inst.get_latest_materialization_event(REVENUE)
    assert latest is not None and latest.run_id == run.run_id
    assert latest.asset_materialization.partition == PARTITION

    # ... and it is all in PostgreSQL tables, not in files under DAGSTER_HOME
    with psycopg.connect(deployed_run["db_url"]) as conn:
        assert conn.execute("SELECT run_id, status FROM runs").fetchall() == [(run.run_id, "SUCCESS")]
        events = dict(conn.execute(
            "SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = %s GROUP BY 1",
            [run.run_id]).fetchall())
        assert events.get("PIPELINE_SUCCESS") == 1
        assert events.get("ASSET_MATERIALIZATION", 0) >= 20
        # schedule storage lives there too (empty until the daemon ticks)
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
        assert {"runs", "event_logs", "asset_check_executions", "jobs", "job_ticks",
                "instigators"} <= tables
    assert not list(deployed_run["home"].glob("**/*.db")), "SQLite storage was used"


def test_check_evaluations_are_in_the_event_log(deployed_run):
    inst = deployed_run["instance"]
    run = _the_run(inst)
    records = inst.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    evaluations = [r.dagster_event.event_specific_data for r in records]
    assert len(evaluations) >= 50
    by_name = {(e.asset_key, e.check_name): e for e in evaluations}
    gate = by_name[(GATE, "gate_passed")]
    assert gate.passed and gate.partition == PARTITION
    # the clean sample day passes every ERROR check
    failed_errors = [f"{e.asset_key.to_user_string()}:{e.check_name}" for e in evaluations
                     if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    assert failed_errors == []

    # the latest execution of the gate check, as the UI and the alert sensor read it
    latest = inst.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(GATE, "gate_passed")])
    record = latest[dg.AssetCheckKey(GATE, "gate_passed")]
    assert record.run_id == run.run_id and record.partition == PARTITION

    with psycopg.connect(deployed_run["db_url"]) as conn:
        (stored,) = conn.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s"
            " AND dagster_event_type = 'ASSET_CHECK_EVALUATION'", [run.run_id]).fetchone()
        executions = conn.execute(
            "SELECT execution_status, count(*) FROM asset_check_executions WHERE run_id = %s"
            " GROUP BY 1", [run.run_id]).fetchall()
    assert stored == len(evaluations)
    # one SUCCEEDED/FAILED row per evaluation. (The unpartitioned freshness checks of the
    # partitioned assets are planned for the partition but evaluated with partition None, so
    # Dagster leaves their planned row as PLANNED beside the evaluated one.)
    executions = dict(executions)
    assert executions.get("SUCCEEDED", 0) + executions.get("FAILED", 0) == len(evaluations)


def test_compute_logs_are_on_s3(deployed_run):
    """The project runs in process (`in_process_executor`): Dagster captures the whole run's
    stdout/stderr under one log key (execute_plan.inner_plan_execution_iterator; the
    multiprocess executor would capture one per step the same way), and S3ComputeLogManager
    uploads it when the capture closes. Empty files are skipped (`skip_empty_files`), so stderr,
    where Dagster's console logger writes, is what must be there."""
    inst = deployed_run["instance"]
    run = _the_run(inst)
    (captured,) = inst.all_logs(run.run_id, of_type=dg.DagsterEventType.LOGS_CAPTURED)
    file_key = captured.dagster_event.logs_captured_data.file_key

    s3 = boto3.client("s3", endpoint_url=deployed_run["endpoint"], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/storage/{run.run_id}/")
    keys = {o["Key"]: o["Size"] for o in listed.get("Contents", [])}
    err_key = f"{PREFIX}/storage/{run.run_id}/compute_logs/{file_key}.err"
    assert err_key in keys, sorted(keys)
    body = s3.get_object(Bucket=BUCKET, Key=err_key)["Body"].read().decode()
    assert run.run_id in body and "STEP_SUCCESS" in body
    assert "gate passed" in body.lower() or "partition_gate" in body

    # the UI's path: the instance reads the log back from S3 (the local copy is gone)
    log_key = inst.compute_log_manager.build_log_key_for_run(run.run_id, file_key)
    data = inst.compute_log_manager.get_log_data(log_key)
    assert data.stderr and run.run_id in data.stderr.decode()


def test_no_secret_reaches_the_run_output(deployed_run):
    assert deployed_run["password"] not in deployed_run["output"]


def test_deploy_yaml_has_no_literal_secrets():
    text = DEPLOY_YAML.read_text()
    config = _deploy_config()

    # every connection setting comes from the environment
    db = config["storage"]["postgres"]["postgres_db"]
    for field in ("hostname", "port", "db_name", "username", "password"):
        assert set(db[field]) == {"env"}, f"postgres_db.{field} is not read from the environment"
    assert "postgres_url" not in config["storage"]["postgres"]
    logs = config["compute_logs"]["config"]
    assert set(logs["bucket"]) == {"env"} and set(logs["prefix"]) == {"env"}

    # no credential-like key with a literal value, anywhere
    secretish = re.compile(r"pass(word)?|secret|token|access_key|credential|api_key", re.I)
    for path, value in _env_refs(config):
        if isinstance(value, dict):
            continue  # {env: NAME}
        assert not secretish.search(path[-1]), f"{'.'.join(path)} holds a literal value"
    # nor a URL with credentials, an AWS key id or a private key in the text
    assert not re.search(r"://[^/\s:@]+:[^@\s]+@", text)
    assert not re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", text)
    assert "PRIVATE KEY" not in text


def test_every_variable_of_the_yaml_is_documented():
    names = {v["env"] for _, v in _env_refs(_deploy_config()) if isinstance(v, dict)}
    assert names >= {"DAGSTER_PG_HOST", "DAGSTER_PG_PASSWORD", "DAGSTER_COMPUTE_LOGS_BUCKET"}
    guide = DEPLOY_README.read_text()
    missing = sorted(n for n in names if f"`{n}`" not in guide)
    assert missing == [], f"not in deploy/README.md: {missing}"


def test_ecs_launcher_matches_the_installed_schema(tmp_path):
    """The EcsRunLauncher of deploy/ecs/dagster.yaml validates against dagster-aws's own config
    schema, and this instance configuration with it still loads (test_deploy_launchers.py
    checks every launcher file of deploy/ in full)."""
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster_aws.ecs import EcsRunLauncher

    snippet = yaml.safe_load((REPO / "deploy" / "ecs" / "dagster.yaml").read_text())
    launcher = snippet["run_launcher"]
    module = __import__(launcher["module"], fromlist=[launcher["class"]])
    assert getattr(module, launcher["class"]) is EcsRunLauncher
    result = validate_config(EcsRunLauncher.config_type(), launcher["config"])
    assert result.success, [e.message for e in result.errors]

    merged = _deploy_config()
    merged["run_launcher"] = launcher
    merged["run_monitoring"] = {**merged["run_monitoring"], **snippet["run_monitoring"]}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(merged))
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_launcher"]["class"] == "EcsRunLauncher"
    assert config["run_monitoring"]["max_resume_run_attempts"] >= 1
    # the secrets of the snippet come from Secrets Manager, not from literals
    assert all(s["valueFrom"].startswith("arn:aws:secretsmanager:")
               for s in launcher["config"]["secrets"])
    assert not any("PASSWORD=" in v for v in launcher["config"]["env_vars"])


def test_main_readme_points_to_the_guide():
    assert "deploy/README.md" in (REPO / "README.md").read_text()
