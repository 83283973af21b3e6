"""DQ_EXECUTOR=celery on the aws deployment: every step of a run a Celery task, executed by real
`dagster-celery worker start` processes against the real RabbitMQ of the machine (127.0.0.1:5672),
each worker in a working directory and DAGSTER_HOME of its own; nothing is shared with the run
but the broker, S3 (moto's server mode) and PostgreSQL (the warehouse, and Dagster's instance
from deploy/dagster.yaml).

A generated range is materialized twice through the CLI, in process and with the celery
executor, each into a warehouse of its own (an S3 prefix and a PostgreSQL database), and the two
must agree table by table and check by check: once for a clean range, once for a range with an
ERROR-level defect day that the gate must stop in both runs. The run's event log (every step
started by a worker, named) and the workers' own logs show that the steps did run there.

Without a broker at 127.0.0.1:5672 the tests are skipped with the reason (a failure with
DQ_TEST_REQUIRE_ALL=1, as .ci/run sets)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import dagster as dg
import psycopg
import pytest

from dq_assets.contract.tables import TABLE_NAMES
from dq_assets_tests.conftest import missing_part
from dq_assets_tests.pg_fixtures import PG_ENV_VARS, with_database
from dq_assets_tests.test_landing_s3 import upload

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
DEPLOY_YAML = REPO / "deploy" / "dagster.yaml"
BROKER_HOST, BROKER_PORT = "127.0.0.1", 5672
# with its password spelt out: nothing the runs or the workers print may show it
BROKER_PASSWORD = "guest"
BROKER_URL = f"pyamqp://guest:{BROKER_PASSWORD}@{BROKER_HOST}:{BROKER_PORT}//"
BIN = Path(sys.executable).parent
FIRST, LAST = "2025-01-01", "2025-01-03"
DEFECT_DAY = "2025-01-02"
# an ERROR-level defect (contract: unknown references are ERROR): the gate must stop the day
DEFECT = f"{DEFECT_DAY}:payments.unknown_reference=3"
WORKERS = 2

# The shell running the tests must not steer the runs: each one gets what it needs.
_STRIPPED = PG_ENV_VARS + (
    "DAGSTER_HOME", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND",
)


def broker_answers() -> bool:
    try:
        socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def broker():
    if not broker_answers():
        missing_part(f"no RabbitMQ answers at {BROKER_HOST}:{BROKER_PORT}",
                     "start one (guest/guest) to run the celery executor's tests")
    return BROKER_URL


@pytest.fixture(scope="module")
def site(broker, pg_url, moto_endpoint, tmp_path_factory):
    """What every process shares: the broker, the S3 endpoint with the landing zones and the
    compute logs bucket, PostgreSQL with Dagster's instance database; removed afterwards."""
    tag = uuid.uuid4().hex[:10]
    root = tmp_path_factory.mktemp("celery")
    aws = {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    logs_bucket, warehouse_bucket, landing_bucket = (f"dq-celery-{n}-{tag}" for n in ("logs", "wh", "landing"))
    for bucket in (logs_bucket, warehouse_bucket):
        s3.create_bucket(Bucket=bucket)
    gen_env = {**_base_env(), "PYTHONPATH": str(REPO)}
    for name, extra in (("clean", []), ("defect", ["--on", DEFECT])):
        out = root / "landing" / name
        subprocess.run([str(BIN / "dq-generate"), "--out", str(out), "--start", FIRST, "--days", "3",
                        "--orders-per-day", "50", *extra], check=True, env=gen_env, capture_output=True)
        os.environ.update(aws)
        try:
            upload(out, landing_bucket, name)
        finally:
            for k in aws:
                os.environ.pop(k, None)
    databases = []

    def database(prefix: str) -> str:
        db = f"dq_{prefix}_{tag}"
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{db}"')
        databases.append(db)
        return db

    instance_db = database("dagster")
    with psycopg.connect(pg_url) as conn:
        host, port, user = conn.info.host, conn.info.port, conn.info.user
    env = {
        **aws,
        # Dagster's instance (deploy/dagster.yaml): runs and event log in PostgreSQL, logs on S3
        "DAGSTER_PG_HOST": "" if host.startswith("/") else host, "DAGSTER_PG_PORT": str(port),
        "DAGSTER_PG_DB": instance_db, "DAGSTER_PG_USERNAME": user, "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_COMPUTE_LOGS_BUCKET": logs_bucket, "DAGSTER_COMPUTE_LOGS_PREFIX": "logs",
        "DQ_DEPLOYMENT": "aws", "DQ_S3_BUCKET": warehouse_bucket,
        "DQ_CELERY_BROKER_URL": broker,
    }
    if host.startswith("/"):
        env["PGHOST"] = host
    yield {"root": root, "env": env, "pg_url": pg_url, "landing": f"s3://{landing_bucket}",
           "database": database, "instance_db": instance_db}
    with psycopg.connect(pg_url, autocommit=True) as admin:
        for db in databases:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _base_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in _STRIPPED and not k.startswith("DQ_")
            or k.startswith("DQ_TEST_")}


def _home(path: Path) -> Path:
    path.mkdir(parents=True)
    shutil.copy(DEPLOY_YAML, path / "dagster.yaml")
    return path


class Workers:
    """`dagster-celery worker start` processes, each in a directory of its own (cwd and
    DAGSTER_HOME), listening on one queue; stopped with their whole process group."""

    def __init__(self, root: Path, env: dict, queue: str):
        self.root, self.env, self.queue = root, env, queue
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []

    def start(self, n: int) -> None:
        for i in range(n):
            name = f"{self.queue}-w{i}"
            cwd = self.root / name
            home = _home(cwd / "dagster_home")
            log = cwd / "worker.log"
            env = {**self.env, "DAGSTER_HOME": str(home)}
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [str(BIN / "dagster-celery"), "worker", "start", "-A", "dq_assets.celery_app",
                     "-q", self.queue, "-n", name, "--loglevel", "INFO", "--", "-c", "2"],
                    cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            self.procs.append((name, proc, log))
        deadline = time.monotonic() + 90
        for name, proc, log in self.procs:
            while "ready." not in log.read_text(errors="replace"):
                assert proc.poll() is None, f"worker {name} exited:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"worker {name} not ready:\n{log.read_text()[-3000:]}"
                time.sleep(0.5)

    def stop(self) -> None:
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc, _ in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            # the celery children of the group as well
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                continue
            time.sleep(2)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def delete_queue(self) -> None:
        """The test's queue off the broker (Celery declares it durable). The runs' reply queues
        (rpc://, one per run, empty) expire on their own after Celery's result_expires."""
        from kombu import Connection

        with Connection(self.env["DQ_CELERY_BROKER_URL"], connect_timeout=5) as conn:
            conn.default_channel.queue_delete(self.queue)

    def logs(self) -> dict[str, str]:
        return {name: log.read_text(errors="replace") for name, _, log in self.procs}


def materialize(site: dict, scenario: str, executor: str) -> dict:
    """One CLI run of the range into a warehouse of its own; with celery, by two workers."""
    name = f"{scenario}-{executor}"
    cwd = site["root"] / name
    home = _home(cwd / "dagster_home")
    db = site["database"](f"{scenario}_{executor}")
    env = {**_base_env(), **site["env"], "PYTHONPATH": str(REPO),
           "DQ_LANDING": f"{site['landing']}/{scenario}", "DQ_S3_PREFIX": name,
           "DQ_PG_URL": with_database(site["pg_url"], db)}
    before = _run_ids(site)
    workers = None
    if executor == "celery":
        queue = f"dq-test-{uuid.uuid4().hex[:10]}"  # parallel test runs never take each other's tasks
        env.update({"DQ_EXECUTOR": "celery", "DQ_CELERY_QUEUE": queue})
        workers = Workers(cwd, env, queue)
    try:
        if workers:
            workers.start(WORKERS)
        started = time.monotonic()
        proc = subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "dq_assets", "--select", "*",
             "--partition-range", f"{FIRST}...{LAST}"],
            cwd=cwd, env={**env, "DAGSTER_HOME": str(home)}, capture_output=True, text=True, timeout=900,
            check=False)  # its exit code is compared by the tests
        seconds = time.monotonic() - started
    finally:
        if workers:
            workers.stop()
            workers.delete_queue()
    [run_id] = _run_ids(site) - before
    return {"exit": proc.returncode, "output": proc.stdout + proc.stderr, "pg": env["DQ_PG_URL"],
            "run_id": run_id,
            "seconds": seconds, "worker_logs": workers.logs() if workers else {},
            "worker_names": [n for n, _, _ in workers.procs] if workers else []}


def _run_ids(site: dict) -> set[str]:
    url = with_database(site["pg_url"], site["instance_db"])
    with psycopg.connect(url) as conn:
        if not conn.execute("SELECT to_regclass('public.runs')").fetchone()[0]:
            return set()
        return {r for (r,) in conn.execute("SELECT run_id FROM runs")}


def query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def tables(url: str) -> list[str]:
    """Every table of the layers that the runs write: staging, marts, the quarantine."""
    return [f"{s}.{t}" for s, t in query(url, """
        SELECT table_schema, table_name FROM information_schema.tables
        WHERE table_schema IN ('staging', 'marts')
           OR (table_schema = 'quality' AND table_name LIKE '%\\_quarantine')
        ORDER BY 1, 2""")]


# columns that name a run or the moment of a load, different in any two runs
VOLATILE = ("run_id", "loaded_at", "load_ts", "evaluated_at", "written_at", "created_at", "updated_at")


def contents(url: str, name: str) -> list[tuple]:
    schema, table = name.split(".")
    cols = [c for (c,) in query(url, f"""SELECT column_name FROM information_schema.columns
        WHERE table_schema = '{schema}' AND table_name = '{table}' ORDER BY ordinal_position""")
            if c not in VOLATILE]
    select = ", ".join(f'"{c}"' for c in cols)
    return sorted(query(url, f'SELECT {select} FROM "{schema}"."{table}"'), key=repr)


def outcomes(url: str) -> list[tuple]:
    return sorted(query(url, """
        SELECT partition_key, asset_key, check_name, passed, severity, failing_rows, observed FROM (
            SELECT *, row_number() OVER (PARTITION BY partition_key, asset_key, check_name
                                         ORDER BY evaluated_at DESC) AS rn
            FROM quality.check_results) latest WHERE rn = 1"""), key=repr)


@pytest.fixture(scope="module")
def instance(site):
    mp = pytest.MonkeyPatch()
    for k, v in site["env"].items():
        mp.setenv(k, v)
    inst = dg.DagsterInstance.from_config(str(_home(site["root"] / "reader_home")))
    yield inst
    inst.dispose()
    mp.undo()


def worker_steps(inst: dg.DagsterInstance, run_id: str) -> tuple[dict, set]:
    """(step key -> the celery worker that executed it, every step started) of a run."""
    by_worker, started = {}, set()
    for record in inst.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started.add(event.step_key)
        if event.event_type == dg.DagsterEventType.ENGINE_EVENT and "in celery worker" in (event.message or ""):
            meta = event.event_specific_data.metadata
            by_worker[event.step_key] = meta["Celery worker"].value
    return by_worker, started


@pytest.fixture(scope="module", params=["clean", "defect"])
def pair(request, site):
    scenario = request.param
    inproc = materialize(site, scenario, "in_process")
    celery = materialize(site, scenario, "celery")
    return scenario, inproc, celery


def test_the_same_gate_decisions(pair):
    scenario, inproc, celery = pair
    print(f"{scenario}: in process {inproc['seconds']:.1f} s, celery {celery['seconds']:.1f} s")
    expected = 0 if scenario == "clean" else 1
    assert inproc["exit"] == expected, inproc["output"][-4000:]
    assert celery["exit"] == expected, celery["output"][-4000:]

    def gate(r: dict) -> list[tuple]:
        return [o for o in outcomes(r["pg"]) if o[1] == "quality/partition_gate"]

    assert gate(celery) == gate(inproc)
    decisions = {o[0]: o[3] for o in gate(inproc) if o[2] == "gate_passed"}
    days = ("2025-01-01", "2025-01-02", "2025-01-03")
    if scenario == "clean":
        assert decisions == dict.fromkeys(days, True), decisions
    else:
        assert decisions == {**dict.fromkeys(days, True), DEFECT_DAY: False}, decisions
        for r in (inproc, celery):  # the run fails at the gate, and at the gate only
            assert f"1 of 3 partition(s) refused by the gate: {DEFECT_DAY}" in r["output"], r["output"][-4000:]
            assert "Steps failed: ['gate_passed']" in r["output"], r["output"][-4000:]


def test_the_same_tables(pair):
    _, inproc, celery = pair
    names = tables(inproc["pg"])
    assert tables(celery["pg"]) == names
    for t in TABLE_NAMES:
        assert f"staging.{t}" in names and f"quality.{t}_quarantine" in names
    assert any(n.startswith("marts.") for n in names)
    for name in names:
        assert contents(celery["pg"], name) == contents(inproc["pg"], name), name
    assert query(celery["pg"], "SELECT count(*) FROM staging.orders")[0][0] > 0


def test_the_same_check_results(pair):
    scenario, inproc, celery = pair
    assert outcomes(celery["pg"]) == outcomes(inproc["pg"])
    failed = {(o[0], o[1], o[2]) for o in outcomes(inproc["pg"]) if not o[3] and o[4] == "ERROR"}
    if scenario == "defect":
        assert (DEFECT_DAY, "staging/payments", "no_unknown_reference") in failed, failed
    else:
        assert not failed, failed


def test_the_steps_ran_in_the_workers(pair, instance):
    _, inproc, celery = pair
    by_worker, started = worker_steps(instance, celery["run_id"])
    assert started and set(by_worker) == started, started - set(by_worker)
    names = celery["worker_names"]
    # every step by one of this test's workers (celery names them NAME@host), and both took some
    assert {w.split("@")[0] for w in by_worker.values()} == set(names), by_worker
    logs = celery["worker_logs"]
    for name in names:
        assert "Task execute_plan[" in logs[name] and "succeeded" in logs[name], logs[name][-3000:]
    done = sum(log.count("] succeeded in") for log in logs.values())
    assert done == len(started), (done, len(started))
    # the in-process run had no worker
    by_worker_inproc, started_inproc = worker_steps(instance, inproc["run_id"])
    assert started_inproc and not by_worker_inproc
    # the broker's password nowhere: not in the workers' logs, the run's output or its event log
    events = "\n".join(repr(r) for r in instance.all_logs(celery["run_id"]))
    for text in (*logs.values(), celery["output"], events):
        assert f":{BROKER_PASSWORD}@" not in text
