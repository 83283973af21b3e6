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

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import boto3
import dagster as dg
import psycopg
import pyarrow.parquet as pq
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


def moto_s3(endpoint: str) -> tuple[dict, object]:
    """(the environment that points a process at the moto server, a boto3 S3 client of it)."""
    aws = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    return aws, boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                             aws_access_key_id="testing", aws_secret_access_key="testing")


@contextmanager
def scratch_databases(pg_url: str, tag: str):
    """`create(name)`: a new database on the test server, named for `name` and `tag` (its name
    returned); every one of them dropped when the block ends."""
    databases = []

    def create(name: str) -> str:
        db = f"dq_{name}_{tag}"
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{db}"')
        databases.append(db)
        return db

    try:
        yield create
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            for db in databases:
                admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def instance_env(pg_url: str, instance_db: str, logs_bucket: str) -> dict:
    """The variables deploy/dagster.yaml reads: Dagster's instance in `instance_db` on the test
    server, compute logs in `logs_bucket`."""
    with psycopg.connect(pg_url) as conn:
        host, port, user = conn.info.host, conn.info.port, conn.info.user
    env = {"DAGSTER_PG_HOST": "" if host.startswith("/") else host, "DAGSTER_PG_PORT": str(port),
           "DAGSTER_PG_DB": instance_db, "DAGSTER_PG_USERNAME": user, "DAGSTER_PG_PASSWORD": "",
           "DAGSTER_COMPUTE_LOGS_BUCKET": logs_bucket, "DAGSTER_COMPUTE_LOGS_PREFIX": "logs"}
    if host.startswith("/"):
        env["PGHOST"] = host
    return env


@pytest.fixture(scope="module")
def site(broker, pg_url, moto_endpoint, tmp_path_factory):
    """What every process shares: the broker, the S3 endpoint with the landing zones and the
    compute logs bucket, PostgreSQL with Dagster's instance database; removed afterwards."""
    tag = uuid.uuid4().hex[:10]
    root = tmp_path_factory.mktemp("celery")
    aws, s3 = moto_s3(moto_endpoint)
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
    with scratch_databases(pg_url, tag) as database:
        instance_db = database("dagster")
        env = {
            **aws,
            # Dagster's instance (deploy/dagster.yaml): runs and event log in PostgreSQL, logs on S3
            **instance_env(pg_url, instance_db, logs_bucket),
            "DQ_DEPLOYMENT": "aws", "DQ_S3_BUCKET": warehouse_bucket,
            "DQ_CELERY_BROKER_URL": broker,
        }
        yield {"root": root, "env": env, "pg_url": pg_url, "landing": f"s3://{landing_bucket}",
               "database": database, "instance_db": instance_db}


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

    def __init__(self, root: Path, env: dict, queue: str, includes: tuple[str, ...] = ()):
        self.root, self.env, self.queue, self.includes = root, env, queue, includes
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []

    def start(self, n: int) -> None:
        """n more workers (named on from the ones started before), ready when it returns."""
        first = len(self.procs)
        for i in range(first, first + n):
            name = f"{self.queue}-w{i}"
            cwd = self.root / name
            home = _home(cwd / "dagster_home")
            log = cwd / "worker.log"
            env = {**self.env, "DAGSTER_HOME": str(home)}
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [str(BIN / "dagster-celery"), "worker", "start", "-A", "dq_assets.celery_app",
                     "-q", self.queue, "-n", name, "--loglevel", "INFO",
                     *(a for m in self.includes for a in ("-i", m)), "--", "-c", "2"],
                    cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            self.procs.append((name, proc, log))
        deadline = time.monotonic() + 90
        for name, proc, log in self.procs[first:]:
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
        (rpc://, one per run, empty) expire on their own (DQ_CELERY_RESULT_EXPIRES, see
        test_no_reply_queue_outlives_its_run)."""
        from kombu import Connection

        with Connection(self.env["DQ_CELERY_BROKER_URL"], connect_timeout=5) as conn:
            conn.default_channel.queue_delete(self.queue)

    def logs(self) -> dict[str, str]:
        return {name: log.read_text(errors="replace") for name, _, log in self.procs}


def warehouse(site: dict, scenario: str, name: str, executor: str) -> dict:
    """A working directory, DAGSTER_HOME and warehouse (S3 prefix, PostgreSQL database) of its
    own for the runs of `name`, reading the landing zone of `scenario`."""
    cwd = site["root"] / name
    db = site["database"](name.replace("-", "_"))
    env = {**_base_env(), **site["env"], "PYTHONPATH": str(REPO),
           "DQ_LANDING": f"{site['landing']}/{scenario}", "DQ_S3_PREFIX": name,
           "DQ_PG_URL": with_database(site["pg_url"], db)}
    if executor == "celery":
        queue = f"dq-test-{uuid.uuid4().hex[:10]}"  # parallel test runs never take each other's tasks
        env.update({"DQ_EXECUTOR": "celery", "DQ_CELERY_QUEUE": queue})
    elif executor != "in_process":
        env["DQ_EXECUTOR"] = executor
    return {"cwd": cwd, "home": _home(cwd / "dagster_home"), "env": env, "pg": env["DQ_PG_URL"],
            "queue": env.get("DQ_CELERY_QUEUE")}


def cli_args(partition: str | None = None) -> list[str]:
    """`dagster asset materialize` of every asset, for the range or one partition."""
    where = ["--partition", partition] if partition else ["--partition-range", f"{FIRST}...{LAST}"]
    return [str(BIN / "dagster"), "asset", "materialize", "-m", "dq_assets", "--select", "*", *where]


def materialize(site: dict, scenario: str, executor: str, *, partition: str | None = None,
                wh: dict | None = None, includes: tuple[str, ...] = (), env: dict | None = None,
                on_exit=None) -> dict:
    """One CLI run of the range (or of `partition`) into a warehouse of its own (or `wh`); with
    celery, by two workers started for it. `env` is added to the run's and the workers'
    environment. `on_exit()` is called when the run has exited, its workers still up."""
    name = f"{scenario}-{executor}" + (f"-{partition}" if partition else "")
    wh = wh or warehouse(site, scenario, name, executor)
    run_env = {**wh["env"], **(env or {}), "DAGSTER_HOME": str(wh["home"])}
    before = _run_ids(site)
    workers = (Workers(wh["cwd"], {**wh["env"], **(env or {})}, wh["queue"], includes)
               if executor == "celery" else None)
    try:
        if workers:
            workers.start(WORKERS)
        started = time.monotonic()
        proc = subprocess.run(cli_args(partition), cwd=wh["cwd"], env=run_env, capture_output=True,
                              text=True, timeout=900, check=False)  # its exit code is compared by the tests
        seconds = time.monotonic() - started
        if on_exit:
            on_exit()
    finally:
        if workers:
            workers.stop()
            workers.delete_queue()
    [run_id] = _run_ids(site) - before
    return {"exit": proc.returncode, "output": proc.stdout + proc.stderr, "pg": wh["pg"], "wh": wh,
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


@pytest.fixture(scope="module")
def in_process(site):
    """The in-process run of a scenario's range (made once per module: other tests compare with
    it)."""
    done = {}

    def run(scenario: str) -> dict:
        if scenario not in done:
            done[scenario] = materialize(site, scenario, "in_process")
        return done[scenario]

    return run


@pytest.fixture(scope="module", params=["clean", "defect"])
def pair(request, site, in_process):
    scenario = request.param
    inproc = in_process(scenario)
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


# ---------------------------------------------------------------- one partition; reply queues

DAY = FIRST
# the run's reply queue (rpc://) expires this long after the run stopped using it (the
# default, dq_assets.executors.CELERY_DEFAULT_RESULT_EXPIRES, is longer than a test should wait)
REPLY_EXPIRES = 6
PROBE = "dq_assets_tests.celery_reply_probe"


def snapshot(url: str) -> dict:
    """Every table's rows and every check's latest result of a warehouse."""
    return {"tables": {name: contents(url, name) for name in tables(url)}, "outcomes": outcomes(url)}


def reply_queue_exists(broker: str, name: str) -> bool:
    from amqp.exceptions import NotFound
    from kombu import Connection

    with Connection(broker, connect_timeout=5) as conn:
        try:
            conn.channel().queue_declare(name, passive=True)
            return True
        except NotFound:
            return False


@pytest.fixture(scope="module")
def single_day(site, tmp_path_factory):
    """DAY alone (`--partition`), in process and with the celery executor, each into a
    warehouse of its own, snapshotted when its run ends; the celery run's reply queue looked
    for on the broker as soon as the run has exited. The celery warehouse is left for
    test_a_worker_lost_mid_step_fails_the_run_and_a_rerun_converges, as its previous version."""
    inproc = materialize(site, "clean", "in_process", partition=DAY)
    inproc["snapshot"] = snapshot(inproc["pg"])
    replies = tmp_path_factory.mktemp("replies") / "reply_queues.txt"
    seen = {}

    def look():
        seen["queues"] = set(replies.read_text().split()) if replies.exists() else set()
        seen["existed"] = {q: reply_queue_exists(site["env"]["DQ_CELERY_BROKER_URL"], q) for q in seen["queues"]}
        seen["at"] = time.monotonic()

    celery = materialize(site, "clean", "celery", partition=DAY, includes=(PROBE,), on_exit=look,
                         env={"DQ_CELERY_RESULT_EXPIRES": str(REPLY_EXPIRES),
                              "DQ_TEST_REPLY_QUEUES": str(replies)})
    celery["snapshot"] = snapshot(celery["pg"])
    return {"in_process": inproc, "celery": celery, "replies": seen}


def test_a_single_partition_by_the_workers_equals_in_process(single_day, instance):
    """`--partition DAY` with the celery executor: the same exit, tables (DAY only) and check
    results as in process, every step executed by a worker."""
    inproc, celery = single_day["in_process"], single_day["celery"]
    print(f"one day: in process {inproc['seconds']:.1f} s, celery {celery['seconds']:.1f} s")
    assert inproc["exit"] == 0, inproc["output"][-4000:]
    assert celery["exit"] == 0, celery["output"][-4000:]
    assert celery["snapshot"] == inproc["snapshot"]
    days = {r[0] for r in query(celery["pg"], "SELECT DISTINCT ingest_date::text FROM staging.orders")}
    assert days == {DAY}, days
    assert any(o[0] == DAY for o in celery["snapshot"]["outcomes"])
    by_worker, started = worker_steps(instance, celery["run_id"])
    assert started and set(by_worker) == started, started - set(by_worker)


def test_no_reply_queue_outlives_its_run(single_day, site):
    """With rpc:// the run's process gets its steps' results on a reply queue of its own, which
    it polls and never consumes from, so RabbitMQ's auto-delete never removes it; it is declared
    to expire once unused (DQ_CELERY_RESULT_EXPIRES): there when the run has just exited, gone
    soon after."""
    seen = single_day["replies"]
    assert len(seen["queues"]) == 1, seen  # one run, one reply queue, named by every task
    [queue] = seen["queues"]
    assert seen["existed"] == {queue: True}, seen  # the name is right: the queue was there
    time.sleep(max(0.0, seen["at"] + REPLY_EXPIRES + 4 - time.monotonic()))
    assert not reply_queue_exists(site["env"]["DQ_CELERY_BROKER_URL"], queue)


# ---------------------------------------------------------------- a worker lost mid-step

LOST_STEP, LOST_TABLE = "stage_orders", "orders"
# The step writes staging, then quarantine, in one transaction, each table under an advisory
# lock (dq_assets.storage.postgres.tables._lock, key "dq_assets:table:SCHEMA.TABLE"): the test
# holds the quarantine's, so the step stops in the middle of its transaction, staging written.
WRITTEN, HELD = f"staging.{LOST_TABLE}", f"quality.{LOST_TABLE}_quarantine"
LOST_WITHIN = 180  # seconds from the kill to the failed run's end


def _lock_key(conn, table: str) -> int:
    return conn.execute("SELECT hashtextextended(%s, 0)", [f"dq_assets:table:{table}"]).fetchone()[0]


def _advisory_locks(conn) -> list[tuple[int, int, bool]]:
    """(backend pid, key, granted) of the advisory locks in the connection's database."""
    return conn.execute("""
        SELECT pid, (classid::bigint << 32) | objid::bigint, granted FROM pg_locks
        WHERE locktype = 'advisory'
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())""").fetchall()


def _step_events(inst: dg.DagsterInstance, run_id: str, step_key: str) -> list:
    return [r.dagster_event for r in inst.all_logs(run_id)
            if r.dagster_event is not None and r.dagster_event.step_key == step_key]


def partition_rows(wh: dict, s3_endpoint: str) -> dict:
    """(table, day) -> (raw rows, staging rows, quarantine rows) of every partition of a
    warehouse that has any: raw counted in the S3 object that quality.raw_current names for the
    day (the version its staging and quarantine were published with); nothing where nothing."""
    pg = wh["pg"]
    out: dict = {}

    def add(key, i, n):
        out.setdefault(key, [0, 0, 0])[i] = n

    if query(pg, "SELECT to_regclass('quality.raw_current')")[0][0]:
        s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        for asset_key, day, location in query(
                pg, "SELECT asset_key, ingest_date::text, current_object FROM quality.raw_current"):
            bucket, key = location.removeprefix("s3://").split("/", 1)
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            add((asset_key.removeprefix("raw/"), day), 0, pq.read_metadata(io.BytesIO(body)).num_rows)
    for t in TABLE_NAMES:
        for i, name in ((1, f"staging.{t}"), (2, f"quality.{t}_quarantine")):
            if query(pg, f"SELECT to_regclass('{name}')")[0][0]:
                for day, n in query(pg, f"SELECT ingest_date::text, count(*) FROM {name} GROUP BY 1"):
                    add((t, day), i, n)
    return {k: tuple(v) for k, v in out.items()}


def assert_no_partial_partition(rows: dict) -> None:
    """Every partition of a staged table is whole: its raw version is published (current) and
    its rows are the staging rows plus the quarantined ones; no staging or quarantine rows of an
    unpublished partition."""
    for (t, day), (raw, staging, quarantine) in sorted(rows.items()):
        assert raw == staging + quarantine, f"{t} {day}: raw {raw} != staging {staging} + quarantine {quarantine}"


def test_a_worker_lost_mid_step_fails_the_run_and_a_rerun_converges(site, instance, in_process, single_day):
    """A worker SIGKILLed (its whole process group: `celery worker` and the pool process
    executing the step) in the middle of LOST_STEP's write, over a warehouse that holds DAY
    from an earlier run:

    - no partial partition: the step's tables hold their previous version (DAY as before, the
      other days nothing), and in every table raw = staging + quarantine per partition;
    - the run fails within LOST_WITHIN seconds, the step failed with a message that says its
      worker was lost. What happens (seen with dagster-celery 0.29.27): the lost worker had
      not acknowledged the task (dq_assets.celery_app.StepTask, acks_late), so RabbitMQ gives
      it to the other worker, which refuses to execute it again (StepWorkerLost); the run reads
      the failed task as the step's failure (dq_assets.executors), skips what is downstream,
      finishes the rest and fails. Without these two, the run waits forever;
    - a rerun of the range with workers up equals the in-process run, table by table and check
      by check."""
    reference = in_process("clean")
    wh = single_day["celery"]["wh"]
    pg, s3_endpoint = wh["pg"], site["env"]["AWS_ENDPOINT_URL"]
    previous = {name: contents(pg, name) for name in (WRITTEN, HELD)}
    assert {r[0] for r in query(pg, f"SELECT DISTINCT ingest_date::text FROM {WRITTEN}")} == {DAY}
    # the premise of the invariant, in a clean warehouse: raw = staging + quarantine
    clean_rows = partition_rows({"pg": reference["pg"]}, s3_endpoint)
    assert len(clean_rows) == len(TABLE_NAMES) * 3 and all(r[0] for r in clean_rows.values()), clean_rows
    assert_no_partial_partition(clean_rows)

    queue = f"dq-test-{uuid.uuid4().hex[:10]}"  # workers of its own (the earlier run's are gone)
    env = {**wh["env"], "DQ_CELERY_QUEUE": queue}
    workers = Workers(wh["cwd"], env, queue)
    run_env = {**env, "DAGSTER_HOME": str(wh["home"])}
    try:
        workers.start(WORKERS)
        with psycopg.connect(pg, autocommit=True) as hold:
            written, held = _lock_key(hold, WRITTEN), _lock_key(hold, HELD)
            hold.execute("SELECT pg_advisory_lock(%s)", [held])
            before = _run_ids(site)
            with open(wh["cwd"] / "killed_run.log", "wb") as log:
                run = subprocess.Popen(cli_args(), cwd=wh["cwd"], env=run_env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            try:
                # wait for the step to stop on the held lock, in the middle of its transaction
                deadline, run_id, writer = time.monotonic() + 300, None, None
                while writer is None:
                    assert run.poll() is None, (wh["cwd"] / "killed_run.log").read_text()[-4000:]
                    assert time.monotonic() < deadline, f"{LOST_STEP} never reached its write"
                    time.sleep(0.5)
                    run_id = run_id or next(iter(_run_ids(site) - before), None)
                    locks = _advisory_locks(hold)
                    waiting = [pid for pid, key, granted in locks if key == held and not granted]
                    if run_id and waiting:
                        writer = waiting[0]
                        # staging written, in the same open transaction (asserted below)
                        mid_transaction = (writer, written, True) in locks
                by_worker, _ = worker_steps(instance, run_id)
                kinds = [e.event_type for e in _step_events(instance, run_id, LOST_STEP)]
                # mid-step: started, not finished
                assert dg.DagsterEventType.STEP_START in kinds, kinds
                assert not {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE} & set(kinds)
                lost = by_worker[LOST_STEP].split("@")[0]
                [(_, proc, _)] = [p for p in workers.procs if p[0] == lost]
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                killed = time.monotonic()
            finally:
                hold.execute("SELECT pg_advisory_unlock(%s)", [held])
            # the killed step's connection goes, its transaction rolled back
            while any(pid == writer for pid, *_ in _advisory_locks(hold)):
                assert time.monotonic() < killed + 60, "the killed step's transaction is still open"
                time.sleep(0.5)
        try:
            exit_code = run.wait(timeout=LOST_WITHIN)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=30)
            pytest.fail(f"the run did not end within {LOST_WITHIN} s of its worker's loss:\n"
                        + (wh["cwd"] / "killed_run.log").read_text()[-4000:])
        failed_in = time.monotonic() - killed
        output = (wh["cwd"] / "killed_run.log").read_text(errors="replace")
        print(f"killed {lost} in {LOST_STEP}'s write; the run failed {failed_in:.1f} s later")

        # the run failed, naming the step and its lost worker
        assert exit_code == 1, output[-4000:]
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
        [failure] = [e for e in _step_events(instance, run_id, LOST_STEP)
                     if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        assert "StepWorkerLost" in failure.message and "was lost" in failure.message, failure.message
        assert f"step {LOST_STEP} of run {run_id}" in failure.step_failure_data.error.message
        [steps_failed] = [line for line in output.splitlines() if "Steps failed:" in line]
        assert f"'{LOST_STEP}'" in steps_failed, steps_failed
        # the other worker received the task again and refused it
        others = "\n".join(text for name, text in workers.logs().items() if name != lost)
        assert "StepWorkerLost" in others and f"step {LOST_STEP} of run {run_id}" in others

        # no partial partition: the step's tables as before the run, every partition whole
        for name, rows in previous.items():
            assert contents(pg, name) == rows, name
        assert_no_partial_partition(partition_rows(wh, s3_endpoint))
        # and the kill did hit the step's transaction with staging written (checked after the
        # tables, so that a write that is not one transaction shows as the partial partition)
        assert mid_transaction, f"{LOST_STEP} was not holding {WRITTEN}'s write lock"

        # a rerun of the range, workers up (one started in place of the lost one), converges
        workers.start(1)
        rerun = subprocess.run(cli_args(), cwd=wh["cwd"], env=run_env, capture_output=True, text=True,
                               timeout=900, check=False)
        assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-4000:]
    finally:
        workers.stop()
        workers.delete_queue()
    assert snapshot(pg) == snapshot(reference["pg"])
    assert_no_partial_partition(partition_rows(wh, s3_endpoint))

