"""The statistical monitors as a user meets them in the UI: 30 generated days ending yesterday
(the UI plots metadata over an asset's latest 120 partitions, which end today), one run from
the CLI, the last day's events with a third of their customers blanked. The webserver in a
headless Chromium: the events' page plots the monitored metric over the partitions, and the
monitor's check failed on the last day, saying why. With DQ_UPDATE_SCREENSHOTS=1 the plot goes
to docs/screenshots/metric-plot.png (the README shows it)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta

import pytest

from dq_assets.generator import cli
from dq_assets_tests import test_ui_browser as ui

pytestmark = pytest.mark.slow

# at most DQ_CHECK_EVENTS_MAX_PARTITIONS (31): a range run records each day's check results
DAYS = 30
METRIC = "customer_id.null_share"  # gate.yaml monitors.plotted of events


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    ui.need_chromium()
    from dq_assets_tests.pg_fixtures import free_port

    root = tmp_path_factory.mktemp("ui_monitors")
    last = date.today() - timedelta(days=1)
    first = last - timedelta(days=DAYS - 1)
    landing, home = root / "landing", root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("nux:\n  enabled: false\ntelemetry:\n  enabled: false\n")
    assert cli.main(["--out", str(landing), "--clean", "--start", first.isoformat(), "--days", str(DAYS),
                     "--orders-per-day", "100", "--seed", "5",
                     "--on", f"{last.isoformat()}:events.null_share@customer_id=0.3"]) == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    env.update(DAGSTER_HOME=str(home), DQ_LANDING=str(landing), DQ_WAREHOUSE=str(root / "warehouse.duckdb"),
               DQ_PARTITIONS_START=first.isoformat(), DQ_ALERT_SINKS="none")
    log = root / "cli.log"
    with log.open("w") as out:
        rc = subprocess.run([sys.executable, "-m", "dagster", "asset", "materialize", "-m", "dq_assets",
                             "--select", "*", "--partition-range", f"{first.isoformat()}...{last.isoformat()}",
                             "-c", "dq_assets/console.yaml"], env=env, cwd=os.path.dirname(os.path.dirname(__file__)),
                            stdout=out, stderr=subprocess.STDOUT, timeout=600).returncode
    printed = log.read_text()
    assert rc == 0, printed[-3000:]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web_log = root / "webserver.log"
    with web_log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dagster_webserver", "-m", "dq_assets", "-p", str(port),
                                 "-h", "127.0.0.1"], env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        ui._wait_until_served(base, proc, web_log)
        yield {"base": base, "first": first.isoformat(), "last": last.isoformat(), "printed": printed,
               "root": root}
    finally:
        ui._stop_group(proc)


def test_the_cli_prints_the_monitor_failure(served):
    day = served["last"]
    assert (f"[WARN] staging/events {day}: monitor_nulls failed (WARN): observed {METRIC} "
            in served["printed"]), served["printed"][-3000:]
    assert f"dq_assets gate PASSED for {served['first']}..{day}, 1 WARN check(s) failed" in served["printed"]
    assert "reproduce: SELECT ingest_date, count(*) FILTER (WHERE customer_id IS NULL) AS nulls" in served["printed"]


def test_the_check_failed_on_the_last_day_only(served):
    data = ui._graphql(served["base"], """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
        ... on AssetNode { assetChecksOrError { ... on AssetChecks { checks { name
            executionForLatestMaterialization { evaluation { success partition description } } } } } } } }""",
                    {"key": {"path": ["staging", "events"]}})
    checks = {c["name"]: c for c in data["data"]["assetNodeOrError"]["assetChecksOrError"]["checks"]}
    evaluation = checks["monitor_nulls"]["executionForLatestMaterialization"]["evaluation"]
    assert evaluation["success"] is False and evaluation["partition"] == served["last"], evaluation
    assert METRIC in evaluation["description"]
    assert checks["monitor_volume"]["executionForLatestMaterialization"]["evaluation"]["success"] is True


def test_the_metric_is_plotted_over_the_partitions(served):
    from playwright.sync_api import expect

    with ui.chromium() as browser, ui.new_page(browser, {"width": 1440, "height": 2600}) as page:
        page.goto(f"{served['base']}/assets/staging/events")
        page.get_by_role("button", name="Plots").first.click()
        title = page.get_by_text(METRIC, exact=True).first
        expect(title).to_be_visible()
        text = ui._text(page)
        (served["root"] / "plots.txt").write_text(text)
        assert "Asset plots are automatically generated by metadata" not in text
        page.wait_for_timeout(1500)  # the chart's animation
        box = page.get_by_text("Metadata", exact=True).first.bounding_box()
        path = served["root"] / "metric-plot.png"
        page.screenshot(path=str(path), clip={"x": box["x"] - 48, "y": box["y"] - 10, "width": 860, "height": 620})
    if os.environ.get("DQ_UPDATE_SCREENSHOTS") == "1":
        ui.DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (ui.DOCS_SCREENSHOTS / "metric-plot.png").write_bytes(path.read_bytes())
