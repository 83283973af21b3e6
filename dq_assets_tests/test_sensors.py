"""Sensors against a real Dagster instance (in memory, one per test) after real runs: the runs
of a clean and of a bad day are made once (conftest's `recorded_day`) and replayed, records
and all, into each test's instance at the point its story has them happen."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from dq_assets.keys import raw_key
from dq_assets.operations import failure_alerts as sensors
from dq_assets.operations.failure_alerts import check_failure_alerts
from dq_assets_tests.conftest import DAY1, Landing, Warehouse
from dq_assets_tests.pg_fixtures import free_port

BAD_DAY = {**DAY1, "payments": DAY1["payments"] + [  # unknown order: ERROR, and 50% quarantined
    ["Y5", "O999", "2025-01-01T10:02:00Z", "card", "captured", "1.00", "EUR"]]}


@pytest.fixture
def real_instance():
    return dg.DagsterInstance.ephemeral()


@pytest.fixture
def clean_run(recorded_day):
    return recorded_day("2025-01-01", DAY1)


@pytest.fixture
def bad_run(recorded_day):
    """A day whose gate fails: failed checks, and the run failed."""
    return recorded_day("2025-01-01", BAD_DAY)


@pytest.fixture
def alert_file(tmp_path, monkeypatch):
    path = tmp_path / "alerts.jsonl"
    monkeypatch.setenv("DQ_ALERT_SINKS", "jsonl")
    monkeypatch.setenv("DQ_ALERT_FILE", str(path))
    return path


def lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def tick(sensor, instance, cursor=None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor)
    sensor(ctx)
    return ctx.cursor


def test_one_alert_per_failed_check_and_none_twice(real_instance, alert_file, clean_run, bad_run):
    clean_run.replay(real_instance)
    assert clean_run.result.success
    cursor = tick(check_failure_alerts, real_instance)
    assert lines(alert_file) == []  # a clean partition: no alert
    bad_run.replay(real_instance)  # the next run, a bad day
    result = bad_run.result
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    cursor = tick(check_failure_alerts, real_instance, cursor)
    alerts = lines(alert_file)
    checks = [a for a in alerts if a["kind"] == "check_failed"]
    assert len(checks) == len(failed) >= 3
    assert {(a["asset_key"], a["check_name"]) for a in checks} == {
        (e.asset_key.to_user_string(), e.check_name) for e in failed}
    assert [a["kind"] for a in alerts].count("run_failed") == 1  # the run failed too
    unknown = next(a for a in alerts if a["check_name"] == "no_unknown_reference")
    assert unknown["severity"] == "ERROR" and unknown["failing_rows"] == 1
    assert unknown["partition"] == "2025-01-01" and unknown["sample_keys"] == ["Y5"]
    assert unknown["run_url"].endswith(f"/runs/{result.run_id}")
    tick(check_failure_alerts, real_instance, cursor)
    assert len(lines(alert_file)) == len(alerts)  # the next tick sends nothing again


def test_a_run_finishing_in_the_second_a_tick_has_seen_is_still_alerted(real_instance, alert_file,
                                                                       clean_run, bad_run):
    """Run storage keeps update times to the second: a failed run finishing in the same second
    as a run a tick has already handled (or committing a time a tick has passed) is alerted on
    the next tick, once."""
    second = float(int(time.time()))
    clean_run.replay(real_instance, ends_at=second + 0.1)
    cursor = tick(check_failure_alerts, real_instance)
    assert lines(alert_file) == []
    bad_run.replay(real_instance, ends_at=second + 0.6)  # the same second
    cursor = tick(check_failure_alerts, real_instance, cursor)
    alerts = lines(alert_file)
    assert [a["kind"] for a in alerts].count("run_failed") == 1
    assert {a["run_id"] for a in alerts} == {bad_run.run_id}
    tick(check_failure_alerts, real_instance, cursor)
    assert len(lines(alert_file)) == len(alerts)  # and never twice


class Recorder(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_a_sink_that_is_down_gets_the_alert_on_a_later_tick(tmp_path, real_instance, monkeypatch, bad_run):
    port = free_port()
    monkeypatch.setenv("DQ_ALERT_SINKS", "jsonl,webhook")
    monkeypatch.setenv("DQ_ALERT_FILE", str(tmp_path / "alerts.jsonl"))
    monkeypatch.setenv("DQ_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{port}/hook")
    bad_run.replay(real_instance)
    cursor = tick(check_failure_alerts, real_instance)  # webhook down
    first = lines(tmp_path / "alerts.jsonl")
    assert first and json.loads(cursor)["owed"]
    Recorder.received = []
    server = ThreadingHTTPServer(("127.0.0.1", port), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cursor = tick(check_failure_alerts, real_instance, cursor)  # webhook back
        assert len(Recorder.received) == 1  # one delivery for the run group
        assert len(Recorder.received[0]["alerts"]) == len(first)
        assert lines(tmp_path / "alerts.jsonl") == first  # the file sink is not sent twice
        assert json.loads(cursor)["owed"] == {}
        tick(check_failure_alerts, real_instance, cursor)
        assert len(Recorder.received) == 1
    finally:
        server.shutdown()


def test_a_failed_run_outside_any_code_location_is_alerted_once_per_sink(
        tmp_path, real_instance, monkeypatch, bad_run):
    """`materialize()` is what the CLI does: the run has no code-location origin, so Dagster's
    run-status sensors would skip it. The polling sensor alerts it, once per sink."""
    port = free_port()
    monkeypatch.setenv("DQ_ALERT_SINKS", "jsonl,webhook")
    monkeypatch.setenv("DQ_ALERT_FILE", str(tmp_path / "alerts.jsonl"))
    monkeypatch.setenv("DQ_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{port}/hook")
    empty = Landing(tmp_path / "empty")
    empty.root.mkdir(parents=True)
    bad_run.replay(real_instance)
    gate_failed = bad_run.result
    raised = Warehouse(empty.root, tmp_path / "e.duckdb", real_instance).materialize(
        "2025-01-01", selection=[raw_key("orders")])  # no landed day at all: the asset raises
    assert not gate_failed.success and not raised.success
    assert gate_failed.dagster_run.remote_job_origin is None  # no code location

    cursor = tick(check_failure_alerts, real_instance)  # the webhook is down
    run_alerts = [a for a in lines(tmp_path / "alerts.jsonl") if a["kind"] == "run_failed"]
    assert sorted(a["run_id"] for a in run_alerts) == sorted([gate_failed.run_id, raised.run_id])
    assert all(a["partition"] == "2025-01-01" and a["severity"] == "ERROR" and a["description"]
               for a in run_alerts)
    assert set(json.loads(cursor)["owed"]) == {gate_failed.run_id, raised.run_id}

    Recorder.received = []
    server = ThreadingHTTPServer(("127.0.0.1", port), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cursor = tick(check_failure_alerts, real_instance, cursor)  # the webhook is back
        cursor = tick(check_failure_alerts, real_instance, cursor)  # and a tick with nothing new
    finally:
        server.shutdown()
    hooked = [a for body in Recorder.received for a in body["alerts"] if a["kind"] == "run_failed"]
    assert sorted(a["run_id"] for a in hooked) == sorted([gate_failed.run_id, raised.run_id])
    assert [a for a in lines(tmp_path / "alerts.jsonl") if a["kind"] == "run_failed"] == run_alerts
    assert json.loads(cursor)["owed"] == {}


def test_a_run_updated_after_its_alert_is_not_alerted_again(real_instance, alert_file, monkeypatch):
    """A finished run's record changes when it gets a tag (the UI, the retry daemon), so the
    sensor fetches it again: the latest runs it handled are remembered, not the greatest ids."""
    # a memory of the two runs: both finish within the look-back before the watermark
    # (WATERMARK_SLACK_SECONDS), so each tick fetches both again
    monkeypatch.setattr(sensors, "DONE_MEMORY", 2)

    @dg.asset
    def broken():
        raise ValueError("boom")

    runs = [dg.materialize([broken], instance=real_instance, raise_on_error=False) for _ in range(2)]
    cursor = tick(check_failure_alerts, real_instance)
    assert [a["run_id"] for a in lines(alert_file)] == [r.run_id for r in runs]
    real_instance.add_run_tags(runs[-1].run_id, {"reviewed": "yes"})
    tick(check_failure_alerts, real_instance, cursor)
    assert len(lines(alert_file)) == 2
