"""Sensors against a real Dagster instance (a temporary DAGSTER_HOME) after real runs."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from dq_assets.sensors import check_failure_alerts, run_failure_alerts
from dq_assets_tests.conftest import DAY1, Landing, Warehouse
from dq_assets_tests.pg_fixtures import free_port

BAD_DAY = {**DAY1, "payments": DAY1["payments"] + [  # unknown order: ERROR, and 50% quarantined
    ["Y5", "O999", "2025-01-01T10:02:00Z", "card", "captured", "1.00", "EUR"]]}


@pytest.fixture
def real_instance():
    with dg.instance_for_test() as inst:
        yield inst


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


def test_one_alert_per_failed_check_and_none_twice(tmp_path, real_instance, alert_file):
    clean, bad = Landing(tmp_path / "clean"), Landing(tmp_path / "bad")
    clean.write("2025-01-01", DAY1)
    bad.write("2025-01-01", BAD_DAY)
    assert Warehouse(clean.root, tmp_path / "a.duckdb", real_instance).materialize("2025-01-01").success
    cursor = tick(check_failure_alerts, real_instance)
    assert lines(alert_file) == []  # a clean partition: no alert
    result = Warehouse(bad.root, tmp_path / "b.duckdb", real_instance).materialize("2025-01-01")
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    cursor = tick(check_failure_alerts, real_instance, cursor)
    alerts = lines(alert_file)
    assert len(alerts) == len(failed) >= 3
    assert {(a["asset_key"], a["check_name"]) for a in alerts} == {
        (e.asset_key.to_user_string(), e.check_name) for e in failed}
    unknown = next(a for a in alerts if a["check_name"] == "no_unknown_reference")
    assert unknown["severity"] == "ERROR" and unknown["failing_rows"] == 1
    assert unknown["partition"] == "2025-01-01" and unknown["sample_keys"] == ["Y5"]
    assert unknown["run_url"].endswith(f"/runs/{result.run_id}")
    tick(check_failure_alerts, real_instance, cursor)
    assert len(lines(alert_file)) == len(alerts)  # the next tick sends nothing again


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


def test_a_sink_that_is_down_gets_the_alert_on_a_later_tick(tmp_path, real_instance, monkeypatch):
    port = free_port()
    monkeypatch.setenv("DQ_ALERT_SINKS", "jsonl,webhook")
    monkeypatch.setenv("DQ_ALERT_FILE", str(tmp_path / "alerts.jsonl"))
    monkeypatch.setenv("DQ_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{port}/hook")
    bad = Landing(tmp_path / "bad")
    bad.write("2025-01-01", BAD_DAY)
    Warehouse(bad.root, tmp_path / "b.duckdb", real_instance).materialize("2025-01-01")
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


def test_run_failure_alert(tmp_path, real_instance, alert_file):
    bad = Landing(tmp_path / "bad")
    bad.write("2025-01-01", BAD_DAY)
    result = Warehouse(bad.root, tmp_path / "b.duckdb", real_instance).materialize("2025-01-01")
    ctx = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alerts", dagster_instance=real_instance,
        dagster_run=result.dagster_run, dagster_event=result.get_run_failure_event(),
    ).for_run_failure()
    run_failure_alerts(ctx)
    [alert] = lines(alert_file)
    assert alert["kind"] == "run_failed" and alert["run_id"] == result.run_id
