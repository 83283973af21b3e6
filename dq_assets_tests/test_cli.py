"""The CLI as the README runs it: `dagster asset materialize ... -c dq_assets/console.yaml` in a
Dagster home that `dagster dev` shares. A failing run explains each failure once, without a
stack trace, and ends with a one-line gate summary (before Dagster's own exit message); so does
a passing one."""

import datetime as dt
import re

import dagster as dg
import pytest

from dq_assets.generator.generate import generate
from dq_assets_tests.conftest import materialize_cli


@pytest.fixture(scope="module")
def site(tmp_path_factory, dagster_home):
    root = tmp_path_factory.mktemp("cli")
    generate(root / "landing", dt.date(2025, 1, 1), 2, orders_per_day=40, seed=9,
             defects=["2025-01-02:payments.unknown_reference=1", "2025-01-02:orders.manifest_drift@sum"])

    def run(partition: str) -> tuple[int, list[str]]:
        done = materialize_cli(dagster_home, root / "landing", root / "warehouse.duckdb", "--partition", partition)
        lines = [x for x in (done.stdout + done.stderr).splitlines()
                 if x.strip() and "SupersessionWarning" not in x and "return callback(" not in x]
        return done.returncode, lines

    return {"home": dagster_home, "clean": run("2025-01-01"), "defect": run("2025-01-02")}


def test_a_passing_run_is_short_and_ends_with_the_gate_summary(site):
    code, lines = site["clean"]
    assert code == 0, "\n".join(lines)
    assert lines[-1] == "dq_assets gate PASSED for 2025-01-01; marts published", lines
    assert len(lines) < 10, lines  # no event-by-event DEBUG output
    assert not any("Stack Trace" in x or "DEBUG" in x for x in lines)


def test_a_failing_run_explains_each_failure_once_and_ends_with_the_gate_summary(site):
    code, lines = site["defect"]
    assert code == 1, "\n".join(lines)
    text = "\n".join(lines)
    assert lines[-1] == "Error: Materialization failed."  # Dagster's own last word
    summary = lines[-2]
    assert summary.startswith("dq_assets gate FAILED: 2025-01-02 refused (")
    for check in ("raw/orders:manifest_amount_sum", "staging/payments:no_unknown_reference"):
        assert check in summary
        asset, name = check.split(":")
        # the check's own line, once, with its reproducing SQL
        assert len(re.findall(rf"\[ERROR\] {asset} 2025-01-02: {name} failed", text)) == 1, text
    assert text.count("reproduce: ") >= 2
    assert "Stack Trace" not in text and "Traceback" not in text
    # the run fails once, for the gate, and says so in one line
    assert len([x for x in lines if " FAILED: " in x and not x.startswith("dq_assets")]) == 1, text
    assert "gate_passed FAILED: 1 of 1 partition(s) refused by the gate: 2025-01-02" in text


def test_the_runs_are_in_the_shared_dagster_home(site):
    """`dagster dev` with the same DAGSTER_HOME (the README's) lists the CLI's runs."""
    instance = dg.DagsterInstance.from_config(str(site["home"]))
    try:
        runs = instance.get_runs()
        assert sorted((r.tags.get("dagster/partition"), r.status.value) for r in runs) == [
            ("2025-01-01", "SUCCESS"), ("2025-01-02", "FAILURE")]
    finally:
        instance.dispose()


def test_a_failed_cli_run_is_alerted_once(site, tmp_path, monkeypatch):
    """The daemon's alert sensor on the Dagster home the CLI wrote to: the failed run (no code
    location launched it) is alerted once, and a second tick sends nothing."""
    import json

    from dq_assets.operations.failure_alerts import check_failure_alerts

    alerts = tmp_path / "alerts.jsonl"
    monkeypatch.setenv("DQ_ALERT_SINKS", "jsonl")
    monkeypatch.setenv("DQ_ALERT_FILE", str(alerts))
    instance = dg.DagsterInstance.from_config(str(site["home"]))
    try:
        cursor = None
        for _ in range(2):
            with dg.build_sensor_context(instance=instance, cursor=cursor) as ctx:
                check_failure_alerts(ctx)
                cursor = ctx.cursor
        [failed_run] = [r for r in instance.get_runs() if r.status.value == "FAILURE"]
    finally:
        instance.dispose()
    sent = [json.loads(x) for x in alerts.read_text().splitlines()]
    run_failed = [a for a in sent if a["kind"] == "run_failed"]
    assert [(a["run_id"], a["partition"]) for a in run_failed] == [(failed_run.run_id, "2025-01-02")]
    assert {a["check_name"] for a in sent if a["kind"] == "check_failed"} >= {
        "manifest_amount_sum", "no_unknown_reference", "gate_passed"}
