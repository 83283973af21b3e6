"""Alert sinks against real components: files, local HTTP servers (webhook, a server speaking
the Slack Web API) and moto's SNS/SQS server. No mocks."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dq_assets.operations.alerts.delivery import deliver, sinks_from_env
from dq_assets.operations.alerts.messages import slack_message
from dq_assets.operations.alerts.model import Alert, AlertDeliveryError, Sink, run_url, ui_base_url
from dq_assets.operations.alerts.sinks import JsonlSink

FIELDS = {f.name for f in dataclasses.fields(Alert)}
SECRET_PATH = "/services/T0SECRET/B0SECRET/xoxSECRETwebhookPATH"
TOKEN = "xoxb-123456-SECRET-TOKEN"


def check_alert(run_id="run-aaaa1111", check="no_unknown_reference", partition="2025-01-12",
                severity="ERROR", keys=("pay-1", "pay-2"), event_id=1) -> Alert:
    return Alert(kind="check_failed", run_id=run_id, run_url=f"http://dagster.local:3000/runs/{run_id}",
                 asset_key="staging/payments", check_name=check, partition=partition,
                 severity=severity, failing_rows=42, observed="42 of 1,000 rows (4.2%)",
                 sample_keys=tuple(keys), description="payments must reference a known order",
                 event_id=event_id)


def run_alert(run_id="run-bbbb2222") -> Alert:
    return Alert(kind="run_failed", run_id=run_id, run_url=f"http://dagster.local:3000/runs/{run_id}",
                 asset_key=None, check_name=None, partition="2025-01-12", severity="ERROR",
                 failing_rows=None, observed=None, description="DagsterAssetCheckFailedError: blocking check failed")


# --------------------------------------------------------------------------------------------
# A real local HTTP server that records requests


class Recorder:
    def __init__(self, port: int = 0):
        self.requests: list[dict] = []
        self.status = 200
        self.reply: dict | str = "ok"
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ctype = self.headers.get("Content-Type", "")
                if "json" in ctype:
                    body = json.loads(raw)
                else:
                    body = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
                rec.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                out = rec.reply if isinstance(rec.reply, str) else json.dumps(rec.reply)
                data = out.encode()
                self.send_response(rec.status)
                self.send_header("Content-Type", "text/plain" if isinstance(rec.reply, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_server():
    servers: list[Recorder] = []

    def start(port: int = 0) -> Recorder:
        s = Recorder(port)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for v in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(v, raising=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# jsonl


def test_jsonl_one_line_per_alert_in_run_order(tmp_path):
    path = tmp_path / "nested" / "alerts.jsonl"
    sinks = sinks_from_env({"DQ_ALERT_FILE": str(path)})
    a1, b, a2 = check_alert(event_id=1), run_alert(), check_alert(check="amount_positive", event_id=3)

    assert deliver([a1, b, a2], sinks) == []

    lines = path.read_text().splitlines()
    assert len(lines) == 3
    rows = [json.loads(line) for line in lines]
    assert all(set(r) == FIELDS | {"sent_at"} for r in rows)
    # grouped per run, first-seen run first, order kept inside a group
    assert [(r["run_id"], r["check_name"]) for r in rows] == [
        ("run-aaaa1111", "no_unknown_reference"), ("run-aaaa1111", "amount_positive"), ("run-bbbb2222", None)]
    assert rows[0] == {**a1.to_dict(), "sent_at": rows[0]["sent_at"]}
    assert rows[0]["sample_keys"] == ["pay-1", "pay-2"] and rows[2]["kind"] == "run_failed"

    # a second delivery appends
    assert deliver([check_alert(run_id="run-cccc3333")], sinks) == []
    assert [json.loads(x)["run_id"] for x in path.read_text().splitlines()][-1] == "run-cccc3333"


def test_jsonl_torn_last_line_does_not_swallow_the_next_group(tmp_path):
    path = tmp_path / "alerts.jsonl"
    path.write_text('{"kind": "check_failed", "run_')  # a crash mid-write by some other writer
    assert deliver([check_alert()], sinks_from_env({"DQ_ALERT_FILE": str(path)})) == []
    assert json.loads(path.read_text().splitlines()[-1])["run_id"] == "run-aaaa1111"


def test_jsonl_unwritable_path_is_a_failure_not_an_exception(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    failures = deliver([check_alert()], [JsonlSink(blocker / "alerts.jsonl")])
    assert [(n, r) for n, r, _ in failures] == [("jsonl", "run-aaaa1111")]
    assert isinstance(failures[0][2], AlertDeliveryError)


# --------------------------------------------------------------------------------------------
# webhook


def test_webhook_posts_a_slack_compatible_payload(http_server):
    srv = http_server()
    sinks = sinks_from_env({"DQ_ALERT_SINKS": "webhook", "DQ_ALERT_WEBHOOK_URL": srv.url(SECRET_PATH)})
    keys = [f"pay-{i}" for i in range(12)]
    alerts = [check_alert(keys=keys), check_alert(check="amount_positive", severity="WARN", partition=None)]

    assert deliver(alerts, sinks) == []

    assert len(srv.requests) == 1
    req = srv.requests[0]
    assert req["path"] == SECRET_PATH and req["headers"]["Content-Type"].startswith("application/json")
    body = req["body"]
    assert isinstance(body["text"], str) and isinstance(body["blocks"], list)
    assert all(b["type"] in ("header", "section", "context") for b in body["blocks"])
    blocks_text = json.dumps(body["blocks"])
    run_link = "http://dagster.local:3000/runs/run-aaaa1111"
    assert run_link in body["text"] and run_link in blocks_text
    for needle in ("ERROR", "WARN", "staging/payments", "no_unknown_reference", "amount_positive",
                   "2025-01-12", "42"):
        assert needle in blocks_text
    assert all(f"`pay-{i}`" in blocks_text for i in range(10))
    assert "pay-10" not in blocks_text and "+2 more" in blocks_text  # at most 10 sample keys shown
    # machine-readable part
    assert body["run_id"] == "run-aaaa1111" and body["run_url"] == run_link
    assert [a["check_name"] for a in body["alerts"]] == ["no_unknown_reference", "amount_positive"]
    assert body["alerts"][0]["sample_keys"] == keys


def test_webhook_http_500_returns_the_failure_without_the_url(http_server):
    srv = http_server()
    srv.status, srv.reply = 500, "boom"
    url = srv.url(SECRET_PATH)
    sinks = sinks_from_env({"DQ_ALERT_SINKS": "webhook", "DQ_ALERT_WEBHOOK_URL": url})

    failures = deliver([check_alert(), run_alert()], sinks)

    assert [(n, r) for n, r, _ in failures] == [("webhook", "run-aaaa1111"), ("webhook", "run-bbbb2222")]
    msg = str(failures[0][2])
    assert msg.startswith("webhook (DQ_ALERT_WEBHOOK_URL): HTTP 500")
    assert "\n" not in msg and url not in msg and "SECRET" not in msg and str(srv.port) not in msg
    assert "SECRET" not in repr(sinks[0])
    assert len(srv.requests) == 2  # both groups were attempted


def test_webhook_down_then_up(http_server):
    port = free_port()
    url = f"http://127.0.0.1:{port}{SECRET_PATH}"
    sinks = sinks_from_env({"DQ_ALERT_SINKS": "webhook", "DQ_ALERT_WEBHOOK_URL": url})
    alerts = [check_alert()]

    failures = deliver(alerts, sinks)
    assert len(failures) == 1
    name, run_id, err = failures[0]
    assert (name, run_id) == ("webhook", "run-aaaa1111")
    assert "connection refused" in str(err) and "SECRET" not in str(err) and str(port) not in str(err)

    srv = http_server(port)  # the endpoint comes back: the kept group is retried
    assert deliver(alerts, sinks) == []
    assert len(srv.requests) == 1 and srv.requests[0]["body"]["alerts"][0]["event_id"] == 1


# --------------------------------------------------------------------------------------------
# slack (dagster-slack SlackResource -> slack_sdk WebClient -> a local server speaking the API)


def _slack_env(srv: Recorder) -> dict:
    return {"DQ_ALERT_SINKS": "slack", "SLACK_BOT_TOKEN": TOKEN,
            "DQ_ALERT_SLACK_CHANNEL": "#dq-alerts", "DQ_ALERT_SLACK_API_URL": srv.url("/api")}


def test_slack_chat_post_message(http_server):
    srv = http_server()
    srv.reply = {"ok": True, "ts": "1", "channel": "C1"}
    sinks = sinks_from_env(_slack_env(srv))

    assert deliver([check_alert(), run_alert()], sinks) == []

    assert [r["path"] for r in srv.requests] == ["/api/chat.postMessage"] * 2
    first = srv.requests[0]
    assert first["headers"]["Authorization"] == f"Bearer {TOKEN}"
    body = first["body"]
    assert body["channel"] == "#dq-alerts"
    assert "no_unknown_reference" in body["text"] and "http://dagster.local:3000/runs/run-aaaa1111" in body["text"]
    blocks = body["blocks"] if isinstance(body["blocks"], list) else json.loads(body["blocks"])
    assert blocks[0]["type"] == "header" and "pay-2" in json.dumps(blocks)
    assert "Run failed" in srv.requests[1]["body"]["text"]


def test_slack_api_error_is_a_clear_failure_without_the_token(http_server):
    srv = http_server()
    srv.reply = {"ok": False, "error": "channel_not_found"}
    sinks = sinks_from_env(_slack_env(srv))

    failures = deliver([check_alert()], sinks)

    assert [(n, r) for n, r, _ in failures] == [("slack", "run-aaaa1111")]
    msg = str(failures[0][2])
    assert msg.startswith("slack (channel #dq-alerts): channel_not_found")
    assert "\n" not in msg and TOKEN not in msg and "SECRET" not in msg
    assert TOKEN not in repr(sinks[0])


# --------------------------------------------------------------------------------------------
# sns (moto server: a topic with an SQS queue subscribed)


# moto_endpoint: the shared local S3/SNS/SQS endpoint of conftest.py


def test_sns_publish_reaches_a_subscribed_queue(moto_endpoint, monkeypatch):
    import boto3

    for k, v in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL_SNS", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="dq-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="dq-alerts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setenv("DQ_ALERT_SINKS", "sns")
    monkeypatch.setenv("DQ_ALERT_SNS_TOPIC_ARN", topic)

    alerts = [check_alert(keys=[f"k{i}" for i in range(200)]), check_alert(check="amount_positive")]
    assert deliver(alerts, sinks_from_env()) == []

    msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    assert len(msgs) == 1
    envelope = json.loads(msgs[0]["Body"])
    assert envelope["TopicArn"] == topic
    assert len(envelope["Subject"]) < 100 and "2 failed checks" in envelope["Subject"]
    doc = json.loads(envelope["Message"])
    assert doc["run_id"] == "run-aaaa1111" and doc["run_url"].endswith("/runs/run-aaaa1111")
    assert [a["check_name"] for a in doc["alerts"]] == ["no_unknown_reference", "amount_positive"]
    assert doc["alerts"][0]["sample_keys"][-1] == "k199" and set(doc["alerts"][0]) == FIELDS

    # a topic that does not exist: a returned failure, not an exception
    monkeypatch.setenv("DQ_ALERT_SNS_TOPIC_ARN", topic.replace("dq-alerts", "missing-topic"))
    failures = deliver(alerts[:1], sinks_from_env())
    assert [(n, r) for n, r, _ in failures] == [("sns", "run-aaaa1111")]
    assert "NotFound" in str(failures[0][2]) and "testing" not in str(failures[0][2])


# --------------------------------------------------------------------------------------------
# configuration


def test_sinks_from_env_default_is_jsonl_in_the_repository():
    sinks = sinks_from_env({})
    assert [s.name for s in sinks] == ["jsonl"]
    assert sinks[0].path == Path(__file__).resolve().parents[1] / "data" / "alerts.jsonl"
    assert [s.name for s in sinks_from_env({"DQ_ALERT_SINKS": "  "})] == ["jsonl"]
    assert sinks_from_env({"DQ_ALERT_SINKS": "none"}) == []


def test_sinks_from_env_comma_list(tmp_path):
    env = {"DQ_ALERT_SINKS": " JSONL, webhook ,slack,sns,jsonl", "DQ_ALERT_FILE": str(tmp_path / "a.jsonl"),
           "DQ_ALERT_WEBHOOK_URL": "https://hooks.example.com" + SECRET_PATH, "SLACK_BOT_TOKEN": TOKEN,
           "DQ_ALERT_SLACK_CHANNEL": "C123", "DQ_ALERT_SNS_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:dq"}
    sinks = sinks_from_env(env)
    assert [s.name for s in sinks] == ["jsonl", "webhook", "slack", "sns"]
    assert all(isinstance(s, Sink) for s in sinks)
    assert sinks[0].path == tmp_path / "a.jsonl"
    assert sinks[3].region == "eu-west-1"


@pytest.mark.parametrize("env, needle", [
    ({"DQ_ALERT_SINKS": "jsonl,pagerduty"}, "unknown sink(s) pagerduty"),
    ({"DQ_ALERT_SINKS": "webhook"}, "needs DQ_ALERT_WEBHOOK_URL"),
    ({"DQ_ALERT_SINKS": "webhook", "DQ_ALERT_WEBHOOK_URL": "ftp://x.example" + SECRET_PATH}, "http(s) URL"),
    ({"DQ_ALERT_SINKS": "webhook", "DQ_ALERT_WEBHOOK_URL": "https://x.example/h",
      "DQ_ALERT_WEBHOOK_TIMEOUT": "-1"}, "DQ_ALERT_WEBHOOK_TIMEOUT"),
    ({"DQ_ALERT_SINKS": "slack", "DQ_ALERT_SLACK_CHANNEL": "#c"}, "needs SLACK_BOT_TOKEN"),
    ({"DQ_ALERT_SINKS": "slack", "SLACK_BOT_TOKEN": TOKEN}, "needs DQ_ALERT_SLACK_CHANNEL"),
    ({"DQ_ALERT_SINKS": "sns"}, "needs DQ_ALERT_SNS_TOPIC_ARN"),
    ({"DQ_ALERT_SINKS": "sns", "DQ_ALERT_SNS_TOPIC_ARN": "dq-alerts"}, "not an SNS topic ARN"),
])
def test_sinks_from_env_misconfiguration(env, needle):
    with pytest.raises(ValueError) as e:
        sinks_from_env(env)
    assert needle in str(e.value)
    assert "SECRET" not in str(e.value)


def test_deliver_wraps_foreign_sink_errors_and_keeps_going(tmp_path):
    class Broken:
        name = "broken"

        def send(self, run_id, alerts):
            raise RuntimeError("kaput\nsecond line")

    good = JsonlSink(tmp_path / "a.jsonl")
    failures = deliver([check_alert(), run_alert()], [Broken(), good])
    assert [(n, r, str(e)) for n, r, e in failures] == [
        ("broken", "run-aaaa1111", "broken: RuntimeError: kaput"),
        ("broken", "run-bbbb2222", "broken: RuntimeError: kaput")]
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 2
    assert deliver([], [Broken()]) == []


def test_ui_base_url_and_alert_normalisation():
    assert ui_base_url({}) == "http://localhost:3000"
    assert ui_base_url({"DQ_UI_URL": "https://dagster.acme.io/"}) == "https://dagster.acme.io"
    assert run_url("r1", {"DQ_UI_URL": "https://d.io/"}) == "https://d.io/runs/r1"
    a = dataclasses.replace(check_alert(), sample_keys=["x", 1])
    assert a.sample_keys == ("x", "1") and hash(a)
    with pytest.raises(ValueError):
        dataclasses.replace(check_alert(), kind="oops")


def test_freshness_alerts_read_as_state_changes_not_runs(tmp_path):
    late = Alert(kind="freshness", run_id="freshness_alerts@2025-01-04T06:00:00Z",
                 run_url="http://dagster.local:3000/assets/marts/fact_orders?view=checks",
                 asset_key="marts/fact_orders", check_name="partition_on_time", partition="2025-01-03",
                 severity="WARN", failing_rows=None, observed="FAIL",
                 sample_keys=("marts/fact_orders", "raw/orders"),
                 description="2 asset(s): 2025-01-03 is not materialized and its deadline has passed")
    back = dataclasses.replace(late, observed="recovered", description="2 asset(s): 2025-01-03 is materialized")

    msg = slack_message(late.run_id, [late])
    assert msg["text"].startswith("[DQ WARN] freshness: partition_on_time FAIL on 2 assets")
    assert "Open in Dagster" in msg["text"] and "Open run" not in msg["text"]
    assert "assets: `marts/fact_orders`, `raw/orders`" in json.dumps(msg["blocks"])
    assert slack_message(back.run_id, [back])["text"].startswith(
        "[DQ OK] freshness: partition_on_time recovered on 2 assets")
    path = tmp_path / "alerts.jsonl"
    assert deliver([late, back], [JsonlSink(path)]) == []
    assert [json.loads(x)["observed"] for x in path.read_text().splitlines()] == ["FAIL", "recovered"]
