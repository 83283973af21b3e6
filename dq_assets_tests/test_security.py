"""Security: no secret in anything a run leaves behind, and no SQL built from a bad name.

1. Secrets. Distinctive values for every secret the project handles: the password of a real
   PostgreSQL role (read from AWS Secrets Manager, and from DQ_PG_URL), a wrong password, the
   AWS secret access key, a webhook URL whose path is the secret and a Slack bot token. Real
   `dagster asset materialize` runs of the aws deployment (S3 on moto's server, PostgreSQL)
   through the CLI with a persistent DAGSTER_HOME: a clean partition, a failing one and a run
   whose PostgreSQL password is refused. Then the alert sensors run over that instance's
   event log with the jsonl, webhook and Slack sinks (the webhook first answers 500 with the
   request path echoed, so the failure path runs too). Everything captured is searched for
   every secret: CLI stdout/stderr, every event record of every run serialized (messages,
   metadata, errors), the runs themselves, every file under DAGSTER_HOME (event-log databases,
   captured compute logs), the jsonl alert file, the bodies the webhook and Slack servers
   received, Python logging and stdout/stderr of the sensor ticks, and the quality tables.

2. SQL identifiers from configuration (a `schema` in asset metadata, a `partition_expr`, a
   quality table name) are refused with a clear error before any SQL runs, on DuckDB and on
   PostgreSQL (the PostgreSQL case never even connects).
"""

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import boto3
import dagster as dg
import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from dagster._serdes import serialize_value
from psycopg.conninfo import conninfo_to_dict

from dq_assets.operations.failure_alerts import check_failure_alerts
from dq_assets.redaction import redact_url
from dq_assets.storage.duckdb.io_manager import WarehouseIOManager
from dq_assets.storage.duckdb.quality_store import DuckDBQualityStore
from dq_assets.storage.duckdb.warehouse import release_warehouse
from dq_assets.storage.postgres.connection import PostgresConnection
from dq_assets.storage.postgres.io_manager import PostgresIOManager
from dq_assets.storage.postgres.quality_store import PostgresQualityStore
from dq_assets.storage.postgres.tables import read_table
from dq_assets.storage.sql import check_identifier
from dq_assets_tests.conftest import DAY1, DAY2, Landing
from dq_assets_tests.pg_fixtures import PG_ENV_VARS, create_secret, with_database
from dq_assets_tests.test_landing_s3 import upload

REPO = Path(__file__).resolve().parent.parent
TAG = uuid.uuid4().hex[:8]  # names of this test's role, buckets and secret (not secrets)


def _random() -> str:
    return uuid.uuid4().hex[:16]


# Distinctive secrets, each with its own random part: nothing else in a run looks like them.
PG_PASSWORD = f"pgpw-{_random()}-Zq"
WRONG_PASSWORD = f"wrongpw-{_random()}-Kd"
AWS_SECRET = f"awssk/{_random()}+Hy3"
WEBHOOK_TOKEN = f"whk-{_random()}-Vn"
SLACK_TOKEN = f"xoxb-{_random()}-Fm"
MALICIOUS = 'x"; DROP TABLE y; --'

BAD_DAY2 = {**DAY2, "payments": DAY2["payments"] + [  # an unknown order: an ERROR check fails
    ["Y9", "O999", "2025-01-02T10:02:00Z", "card", "captured", "1.00", "EUR"]]}


# --------------------------------------------------------------------------------------------
# Finding secrets


def secret_needles(secrets: dict[str, str]) -> dict[str, list[str]]:
    """Each secret and its random part (a truncated or re-encoded secret still leaks that)."""
    return {name: [value, *re.findall(r"[0-9a-f]{16}", value)] for name, value in secrets.items()}


def find_secrets(text: str, secrets: dict[str, str]) -> list[str]:
    """`name: ...context...` for every secret (or part of one) found in `text`."""
    found = []
    for name, needles in secret_needles(secrets).items():
        for needle in needles:
            i = text.find(needle)
            if i >= 0:
                found.append(f"{name}: ...{text[max(0, i - 80): i + len(needle) + 40]!r}...")
                break
    return found


def event_log_texts(instance: dg.DagsterInstance) -> dict[str, str]:
    """Every run of an instance and every event record of it, serialized whole: messages,
    metadata of materializations and check evaluations, error infos, run tags and config."""
    texts = {}
    for record in instance.get_run_records():
        run = record.dagster_run
        texts[f"run {run.run_id}"] = serialize_value(run)
        entries = instance.all_logs(run.run_id)
        texts[f"events of {run.run_id}"] = "\n".join(
            serialize_value(e) + "\n" + str(e.message) + "\n" + str(e.user_message) for e in entries)
    return texts


def tree_texts(root: Path) -> dict[str, str]:
    """Every file under `root` as text (sqlite databases included: events are JSON in them)."""
    return {str(p): p.read_bytes().decode("latin-1") for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_secret_finder_finds_what_it_is_looking_for(tmp_path):
    secrets = {"pg": PG_PASSWORD, "webhook": WEBHOOK_TOKEN}
    assert find_secrets(f"connect to postgresql://u:{PG_PASSWORD}@h/db failed", secrets) == [
        f"pg: ...{f'connect to postgresql://u:{PG_PASSWORD}@h/db failed'!r}..."]
    assert find_secrets(f"...{WEBHOOK_TOKEN[4:-3]}...", secrets)[0].startswith("webhook: ")  # a part
    assert find_secrets("nothing here", secrets) == []

    # A secret in asset metadata, in a log message and in an error is in what is collected.
    @dg.asset
    def leaky(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        context.log.info(f"token {SLACK_TOKEN}")
        return dg.MaterializeResult(metadata={"oops": PG_PASSWORD})

    @dg.asset
    def failing() -> None:
        raise ValueError(f"bad {WEBHOOK_TOKEN}")

    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        dg.materialize([leaky], instance=instance)
        dg.materialize([failing], instance=instance, raise_on_error=False)
        for texts in (event_log_texts(instance), tree_texts(tmp_path / "home")):
            found = find_secrets("\n".join(texts.values()), {"pg": PG_PASSWORD, "slack": SLACK_TOKEN,
                                                               "webhook": WEBHOOK_TOKEN})
            assert [f.split(":")[0] for f in found] == ["pg", "slack", "webhook"]


# --------------------------------------------------------------------------------------------
# A PostgreSQL role with a password, on the test server


def _hba_lines(role: str) -> str:
    return (f"local all {role} scram-sha-256\n"
            f"host all {role} 0.0.0.0/0 scram-sha-256\n"
            f"host all {role} ::/0 scram-sha-256\n")


def _try_connect(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=5):
            return True
    except psycopg.OperationalError:
        return False


def _role_url(server_url: str, role: str, password: str, dbname: str) -> str:
    parts = urlsplit(with_database(server_url, dbname))
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.netloc.rpartition('@')[2]}"))


@pytest.fixture
def pg_role(pg_url):
    """A login role with PG_PASSWORD owning a fresh database. Where the server's pg_hba.conf
    is writable (the embedded server; the tests' servers use trust authentication), lines for
    this role alone require scram-sha-256, so the password is really checked; `enforced` says
    whether it is."""
    role = f"dq_sec_{TAG}"
    dbname = f"dq_sec_{uuid.uuid4().hex[:10]}"
    hba = None
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PG_PASSWORD}'")
        admin.execute(f'CREATE DATABASE "{dbname}" OWNER {role}')
        path = Path(admin.execute("SHOW hba_file").fetchone()[0])
        if path.is_file() and os.access(path, os.W_OK):
            hba = (path, path.read_text())
            path.write_text(_hba_lines(role) + hba[1])
            admin.execute("SELECT pg_reload_conf()")
    good = _role_url(pg_url, role, PG_PASSWORD, dbname)
    wrong = _role_url(pg_url, role, WRONG_PASSWORD, dbname)
    deadline = time.monotonic() + 10
    enforced = False
    while hba and time.monotonic() < deadline and not (enforced := not _try_connect(wrong)):
        time.sleep(0.1)
    assert _try_connect(good)
    try:
        yield {"role": role, "dbname": dbname, "url": good, "wrong_url": wrong, "enforced": enforced}
    finally:
        if hba:
            hba[0].write_text(hba[1])
        with psycopg.connect(pg_url, autocommit=True) as admin:
            if hba:
                admin.execute("SELECT pg_reload_conf()")
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            admin.execute(f"DROP ROLE IF EXISTS {role}")


# --------------------------------------------------------------------------------------------
# A local server for the webhook and the Slack Web API


class AlertServer:
    """Records every POST. The webhook path answers 500 once, echoing the request path (a
    server that reflects the secret URL), then 200; the Slack API answers ok."""

    def __init__(self):
        self.requests: list[dict] = []
        self.webhook_failures_left = 1
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8")
                srv.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if self.path.startswith("/slack/"):
                    status, reply = 200, json.dumps({"ok": True, "ts": "1", "channel": "C1"})
                elif srv.webhook_failures_left > 0:
                    srv.webhook_failures_left -= 1
                    status, reply = 500, f"no route for POST {self.path}"
                else:
                    status, reply = 200, "ok"
                data = reply.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        try:
            self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")
        except Exception:  # noqa: BLE001
            self.lines.append(f"{record.name} {record.msg!r} {record.args!r}")


# --------------------------------------------------------------------------------------------
# The runs


def _cli(home: Path, env: dict, partition: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "dq_assets", "--select", "*",
         "--partition", partition],
        cwd=REPO, env={**env, "DAGSTER_HOME": str(home)}, capture_output=True, text=True, timeout=600,
    )


# The end-to-end tier (`-m slow`): three CLI runs of the aws deployment, every trace they leave.
@pytest.mark.slow
def test_no_secret_in_logs_events_alerts_or_metadata(tmp_path, ram_path_factory, pg_role, moto_endpoint,
                                                     pg_auth_stub, monkeypatch, capfd):
    started = time.monotonic()
    webhook_url = f"http://127.0.0.1:{{port}}/hooks/T0/B0/{WEBHOOK_TOKEN}"
    secrets = {"PostgreSQL password": PG_PASSWORD, "wrong PostgreSQL password": WRONG_PASSWORD,
               "AWS secret key": AWS_SECRET, "webhook URL token": WEBHOOK_TOKEN, "Slack token": SLACK_TOKEN}

    # S3 (landing and raw) and Secrets Manager on moto's server.
    aws = {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": f"AKIA{TAG.upper()}",
           "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    landing_bucket, warehouse_bucket = f"sec-landing-{TAG}", f"sec-warehouse-{TAG}"
    landing = Landing(tmp_path / "landing")
    landing.write("2025-01-01", DAY1)
    landing.write("2025-01-02", BAD_DAY2)
    upload(landing.root, landing_bucket, "shop")
    boto3.client("s3").create_bucket(Bucket=warehouse_bucket)
    info = conninfo_to_dict(pg_role["url"])
    secret_id = f"dq/sec/{TAG}"
    create_secret(moto_endpoint, secret_id, {
        "engine": "postgres", "host": info["host"], "port": int(info.get("port") or 5432),
        "username": pg_role["role"], "password": PG_PASSWORD, "dbname": pg_role["dbname"]})

    # The CLI runs: clean day (password from Secrets Manager), failing day (DQ_PG_URL), refused password.
    home = ram_path_factory.mktemp("security") / "dagster_home"  # on /dev/shm where there is one: a SQLite event log
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    base = {k: v for k, v in os.environ.items()
            if k not in PG_ENV_VARS and not k.startswith(("AWS_", "DQ_", "DAGSTER_", "SLACK_"))}
    env = {**base, **aws, "DQ_DEPLOYMENT": "aws", "DQ_LANDING": f"s3://{landing_bucket}/shop",
           "DQ_S3_BUCKET": warehouse_bucket, "DQ_S3_PREFIX": "dq", "DQ_PG_SSLMODE": "disable",
           "DQ_PG_CONNECT_ATTEMPTS": "2", "DQ_PG_CONNECT_BACKOFF_SECONDS": "0.05",
           "DAGSTER_DISABLE_TELEMETRY": "1", "PYTHONUNBUFFERED": "1"}
    if pg_role["enforced"]:
        refused_url, refused_user = pg_role["wrong_url"], pg_role["role"]
    else:  # trust authentication: a stub server refuses the password as PostgreSQL would
        refused_url, refused_user = pg_auth_stub.url("dq_sec", WRONG_PASSWORD), "dq_sec"
    timings = [time.monotonic()]
    clean = _cli(home, {**env, "DQ_PG_SECRET_ID": secret_id}, "2025-01-01")
    timings.append(time.monotonic())
    failing = _cli(home, {**env, "DQ_PG_URL": pg_role["url"]}, "2025-01-02")
    timings.append(time.monotonic())
    refused = _cli(home, {**env, "DQ_PG_URL": refused_url}, "2025-01-01")
    timings.append(time.monotonic())
    outputs = {f"{name} CLI {stream}": getattr(proc, stream)
               for name, proc in (("clean", clean), ("failing", failing), ("refused", refused))
               for stream in ("stdout", "stderr")}
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-3000:]
    assert failing.returncode != 0 and "no_unknown_reference" in failing.stdout + failing.stderr
    assert refused.returncode != 0
    assert f'password authentication failed for user "{refused_user}"' in refused.stdout + refused.stderr
    if not pg_role["enforced"]:
        assert pg_auth_stub.passwords and set(pg_auth_stub.passwords) == {WRONG_PASSWORD}  # it was sent

    # The alert sensors over the instance those runs wrote, to jsonl, webhook and Slack.
    server = AlertServer()
    alert_file = tmp_path / "alerts.jsonl"
    hook = webhook_url.format(port=server.port)
    for name, value in {"DQ_ALERT_SINKS": "jsonl,webhook,slack", "DQ_ALERT_FILE": str(alert_file),
                        "DQ_ALERT_WEBHOOK_URL": hook, "SLACK_BOT_TOKEN": SLACK_TOKEN,
                        "DQ_ALERT_SLACK_CHANNEL": "#dq-alerts",
                        "DQ_ALERT_SLACK_API_URL": f"http://127.0.0.1:{server.port}/slack/api"}.items():
        monkeypatch.setenv(name, value)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    handler = _Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    texts: dict[str, str] = {}
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs()
            assert len(runs) == 3
            cursor = None
            for _ in range(2):  # the first tick's webhook delivery fails (500) and is retried
                ctx = dg.build_sensor_context(instance=instance, cursor=cursor)
                check_failure_alerts(ctx)
                cursor = ctx.cursor
            assert json.loads(cursor)["owed"] == {}
            assert len([r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]) == 2
            texts.update(event_log_texts(instance))
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        server.close()
    out, err = capfd.readouterr()
    texts.update({"python logging": "\n".join(handler.lines), "test stdout": out, "test stderr": err})

    alerts = [json.loads(line) for line in alert_file.read_text().splitlines()]
    kinds = [a["kind"] for a in alerts]
    assert kinds.count("run_failed") == 2 and kinds.count("check_failed") >= 2
    assert any(a["check_name"] == "no_unknown_reference" and a["sample_keys"] == ["Y9"] for a in alerts)
    refused_alert = next(a for a in alerts if a["kind"] == "run_failed" and a["partition"] == "2025-01-01")
    assert refused_alert["description"]
    webhook_posts = [r for r in server.requests if r["path"].startswith("/hooks/")]
    slack_posts = [r for r in server.requests if r["path"].startswith("/slack/")]
    assert len(webhook_posts) >= 3 and len(slack_posts) >= 2  # a group per failed run; the 500 retried
    assert all(r["headers"]["Authorization"] == f"Bearer {SLACK_TOKEN}" for r in slack_posts)  # transport only
    assert "webhook (DQ_ALERT_WEBHOOK_URL): HTTP 500" in texts["python logging"]  # the failure was logged

    # Everything else the runs left: all of DAGSTER_HOME, the quality tables, the alert file.
    texts.update(outputs)
    texts.update(tree_texts(home))
    texts["alerts.jsonl"] = alert_file.read_text()
    texts.update({f"webhook body {i}": r["body"] for i, r in enumerate(webhook_posts)})
    texts.update({f"slack body {i}": r["body"] for i, r in enumerate(slack_posts)})
    with psycopg.connect(pg_role["url"]) as conn:
        for table in ("check_results", "recon_summary", "partition_profiles", "partition_gate"):
            rows = conn.execute(f"SELECT t::text FROM quality.{table} t").fetchall()
            assert rows, table
            texts[f"quality.{table}"] = "\n".join(r[0] for r in rows)
    everything = "\n".join(texts.values())
    assert "ASSET_CHECK_EVALUATION" in everything and "RUN_FAILURE" in everything  # events were read
    assert "failing_rows" in everything and "reproduce_sql" in everything  # ...with their metadata

    leaks = [f"{where}: {hit}" for where, text in texts.items() for hit in find_secrets(text, secrets)]
    assert leaks == [], "secrets leaked:\n" + "\n".join(leaks)
    cli = ", ".join(f"{b - a:.1f}s" for a, b in zip(timings, timings[1:]))
    print(f"security run: {time.monotonic() - started:.1f}s (CLI runs {cli}; password enforced by the "
          f"server: {pg_role['enforced']}), {len(alerts)} alerts, {len(webhook_posts)} webhook and "
          f"{len(slack_posts)} Slack posts, {len(texts)} texts, {len(everything):,} characters searched")


# --------------------------------------------------------------------------------------------
# Identifiers from configuration


def test_check_identifier_is_an_allow_list():
    for good in ("staging", "_x", "fact_orders", "a" * 63):
        assert check_identifier(good) == good
    for bad in (MALICIOUS, "staging\n", "Staging", "1abc", "a" * 64, "a b", "a-b", 'a"b', "", "ä", None, 3):
        with pytest.raises(ValueError, match="not a valid SQL identifier"):
            check_identifier(bad)


def test_redact_url_shows_scheme_and_host_only():
    assert redact_url(f"https://u:p@hooks.slack.com:8443/services/{WEBHOOK_TOKEN}?t=1#f") == "https://hooks.slack.com/***"
    assert redact_url("not a url") == "***" and redact_url("http://[::1") == "***"


DAILY = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_date="2025-01-03")


def _frame(day: str = "2025-01-01") -> pd.DataFrame:
    return pd.DataFrame({"n": [1], "ingest_date": pd.to_datetime([day]).date})


@dg.asset(key=["staging", "configured_schema"], metadata={"schema": MALICIOUS})
def configured_schema() -> pd.DataFrame:
    return _frame()


@dg.asset(key=["staging", "configured_expr"], partitions_def=DAILY,
          metadata={"partition_expr": "ingest_date) OR (1=1"})
def configured_expr() -> pd.DataFrame:
    return _frame()


def _refused(asset, resources, partition=None) -> str:
    result = dg.materialize([asset], resources=resources, partition_key=partition, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.step_failure_data.error
    text = error.to_string()
    while error.cause is not None:
        error = error.cause
        text += error.to_string()
    return text


def test_malicious_identifiers_are_refused_before_any_sql_duckdb(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    resources = {"io_manager": WarehouseIOManager(database=str(database))}
    try:
        text = _refused(configured_schema, resources)
        assert f"not a valid SQL identifier: {MALICIOUS!r} (schema)" in text
        text = _refused(configured_expr, resources, "2025-01-01")
        assert "not a valid SQL identifier: 'ingest_date) OR (1=1' (partition_expr)" in text
        with pytest.raises(ValueError, match="not a valid SQL identifier"):
            DuckDBQualityStore(database=str(database)).append(MALICIOUS, pa.table({"a": [1]}))
        assert not database.exists()  # the warehouse was never even opened
    finally:
        release_warehouse(str(database))


def test_malicious_identifiers_are_refused_before_any_sql_postgres(pg_database, pg_auth_stub):
    # A server that records every connection attempt: none may be made.
    stub = PostgresConnection(url=pg_auth_stub.url("dq", WRONG_PASSWORD), connect_attempts=1)
    text = _refused(configured_schema, {"io_manager": PostgresIOManager(connection=stub)})
    assert f"not a valid SQL identifier: {MALICIOUS!r} (schema)" in text
    text = _refused(configured_expr, {"io_manager": PostgresIOManager(connection=stub)}, "2025-01-01")
    assert "not a valid SQL identifier: 'ingest_date) OR (1=1' (partition_expr)" in text
    with pytest.raises(ValueError, match="not a valid SQL identifier"):
        PostgresQualityStore(connection=stub).append(MALICIOUS, pa.table({"a": [1]}))
    assert pg_auth_stub.users == []  # no connection was attempted

    # On a real server: the table `y` survives and no schema was created.
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE y (a int)")
        text = _refused(configured_schema, {"io_manager": PostgresIOManager(connection=PostgresConnection(url=pg_database))})
        assert "not a valid SQL identifier" in text
        assert conn.execute("SELECT count(*) FROM y").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'x%'").fetchone() == (0,)
        with pytest.raises(ValueError, match="not a valid SQL identifier"):
            read_table(conn, MALICIOUS, "y")  # an error, not "no such table"
