"""The UI in a real browser, after what users do: the README's CLI run of a day, then a
backfill launched from the UI over a range with defect days.

Materializes 2025-01-01 with the CLI (as the README says, in the Dagster home `dagster dev`
shares), starts `dagster dev` (webserver and daemon) on a free localhost port, launches a
backfill of every asset over 2025-01-02..2025-01-13 through the UI's own GraphQL mutation (the
daemon runs it), runs the defect day 2025-01-12 again from the CLI, and drives headless
Chromium (Debian's `chromium` package at /usr/bin/chromium, installed by `.ci/run`) through
Playwright. It reads what a user reads, partition by partition, and compares it with what the
warehouse holds. Screenshots go under the test's tmp directory and, with
DQ_UPDATE_SCREENSHOTS=1, into docs/screenshots/ (the README shows those).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pytest

from dq_assets_tests.conftest import missing_part

pytestmark = pytest.mark.slow  # the end-to-end tier: the webserver in a headless Chromium

REPO = Path(__file__).resolve().parent.parent
SAMPLE_LANDING = REPO / "data" / "landing"
DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"
# DQ_TEST_CHROMIUM, else the first Chromium or Chrome on PATH (Debian's is /usr/bin/chromium).
CHROMIUM = os.environ.get("DQ_TEST_CHROMIUM") or next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "chrome"))),
    "/usr/bin/chromium")

# 2025-01-01 from the CLI; 2025-01-02..13 as one backfill from the UI, in which 2025-01-12 and
# 2025-01-13 fail the gate with ERROR checks (data/README.md) and the other days pass.
CLI_DAY = "2025-01-01"
BACKFILL_RANGE = ("2025-01-02", "2025-01-13")
BACKFILL_DAYS = [f"2025-01-{d:02d}" for d in range(2, 14)]
FAIL_DAY, REFUSED = "2025-01-12", {"2025-01-12", "2025-01-13"}
CONSOLE = str(REPO / "dq_assets" / "console.yaml")

VIEWPORT = {"width": 1440, "height": 900}
TIMEOUT_MS = 45_000  # per wait for rendered content (pages load their data after the shell)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(base: str, query: str, variables: dict | None = None) -> dict:
    body = {"query": query, "variables": variables or {}}
    req = urllib.request.Request(f"{base}/graphql", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _dagster(*args: str, env: dict, cwd: Path, log: Path) -> int:
    with log.open("w") as out:
        return subprocess.run([sys.executable, "-m", "dagster", *args], env=env, cwd=cwd,
                              stdout=out, stderr=subprocess.STDOUT, timeout=600).returncode


def _wait_until_served(base: str, proc: subprocess.Popen, log: Path, deadline_s: float = 120) -> None:
    """The webserver answers and the code location `dq_assets` is loaded."""
    deadline = time.monotonic() + deadline_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"`dagster dev` exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/server_info", timeout=5) as resp:
                json.loads(resp.read())
            data = _graphql(base, """{ workspaceOrError { ... on Workspace { locationEntries {
                name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }""")
            entries = data["data"]["workspaceOrError"]["locationEntries"]
            entry = next((e for e in entries if e["name"] == "dq_assets"), None)
            last = json.dumps(entry)
            if entry and entry["loadStatus"] == "LOADED":
                loaded = entry["locationOrLoadError"]
                assert loaded["__typename"] == "RepositoryLocation", f"code location failed to load: {loaded}"
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, TypeError) as exc:
            last = repr(exc)
        time.sleep(0.5)
    pytest.fail(f"`dagster dev` did not serve dq_assets within {deadline_s:.0f}s ({last}):\n"
                f"{log.read_text()[-3000:]}")


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop `dagster dev` and everything it started (webserver, daemon, code servers, runs): it
    runs in a process group of its own. A short grace period, then SIGKILL for the whole group
    (its shutdown can hang; the instance and warehouse are throwaway)."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(pgid, signal.SIGKILL)  # children that outlived the leader
    except ProcessLookupError:
        pass


@contextlib.contextmanager
def serve_dagster(module: list[str], env: dict, cwd: Path, log: Path, port: int, deadline_s: float = 120):
    """`python -m <module...> -m dq_assets` on 127.0.0.1:`port` (`dagster dev`, or the webserver
    alone) in a process group of its own; yields its URL once it serves the code location, and
    stops it and everything it started afterwards."""
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", *module, "-m", "dq_assets", "-p", str(port), "-h", "127.0.0.1"],
                                env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_served(base, proc, log, deadline_s)
        yield base
    finally:
        _stop_group(proc)


def need_chromium() -> None:
    """Skip (or fail, where every part is required) without a headless Chromium and Playwright."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing_part("no headless Chromium found", "install one (Debian: `apt-get install -y "
                     "chromium`; .ci/run does it) or point DQ_TEST_CHROMIUM at it")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing_part("the Python package `playwright` is missing", "pip install -e '.[dev]'")


@contextlib.contextmanager
def chromium():
    """A headless Chromium driven by Playwright, with expect()'s waits set for a busy CI box."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)  # expect's own default is 5 s: too short on a busy CI box
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


@contextlib.contextmanager
def new_page(browser, viewport: dict = VIEWPORT):
    context = browser.new_context(viewport=viewport, device_scale_factor=1)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """A served instance holding a passing backfill and a failed day; yields its state."""
    need_chromium()
    root = tmp_path_factory.mktemp("ui")
    home, landing, shots = root / "dagster_home", root / "landing", root / "screenshots"
    for d in (home, landing, shots):
        d.mkdir()
    # An instance of its own; no newsletter pop-up over the pages, no telemetry.
    (home / "dagster.yaml").write_text("nux:\n  enabled: false\ntelemetry:\n  enabled: false\n")
    for day in sorted(SAMPLE_LANDING.glob("ingest_date=*")):
        if day.name.removeprefix("ingest_date=") <= BACKFILL_RANGE[1]:
            shutil.copytree(day, landing / day.name)

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DQ_DEPLOYMENT", "DQ_GATE_CONFIG", "DQ_SUPPRESSIONS", "DQ_ALERT_SINKS")}
    env.update(DAGSTER_HOME=str(home), DQ_WAREHOUSE=str(root / "warehouse.duckdb"),
               DQ_LANDING=str(landing), DQ_ALERT_FILE=str(root / "alerts.jsonl"), DQ_UI_URL=base)

    # The README's quick start, in the Dagster home that `dagster dev` will share. It also
    # creates the instance's storage (two processes creating a fresh SQLite instance at once
    # race on its schema migrations).
    rc = _dagster("asset", "materialize", "-m", "dq_assets", "--select", "*", "--partition", CLI_DAY,
                  "-c", CONSOLE, env=env, cwd=root, log=root / "cli.log")
    assert rc == 0, f"{CLI_DAY} should pass:\n{(root / 'cli.log').read_text()[-3000:]}"

    log = root / "dagster_dev.log"
    with serve_dagster(["dagster", "dev"], env, root, log, port):
        backfill_id, backfill = _launch_backfill(base)
        # An operator looks at the defect day again from the CLI: its checks' latest results
        # are then that day's (the UI's check pages show an asset check's latest evaluation).
        rc = _dagster("asset", "materialize", "-m", "dq_assets", "--select", "*", "--partition", FAIL_DAY,
                      "-c", CONSOLE, env=env, cwd=root, log=root / "fail.log")
        fail_log = (root / "fail.log").read_text()
        assert rc == 1 and f"gate FAILED for {FAIL_DAY}" in fail_log, (
            f"{FAIL_DAY} should fail at the gate (exit 1), got {rc}:\n{fail_log[-3000:]}")

        # What the warehouse says failed (latest result per check): the UI must show the same.
        with duckdb.connect(env["DQ_WAREHOUSE"], read_only=True) as conn:
            failed = conn.execute(
                """SELECT asset_key, check_name FROM quality.check_results WHERE partition_key = ?
                   QUALIFY row_number() OVER (PARTITION BY asset_key, check_name ORDER BY evaluated_at DESC) = 1
                       AND NOT passed AND severity = 'ERROR' AND check_name <> 'gate_passed'
                   ORDER BY 1, 2""", [FAIL_DAY]).fetchall()
            held = _warehouse_figures(conn)
        yield {"base": base, "failed": failed, "shots": shots, "log": log, "held": held,
               "backfill_id": backfill_id, "backfill": backfill, "cli_log": (root / "cli.log").read_text()}


def _launch_backfill(base: str) -> tuple[str, dict]:
    """What the UI's Materialize > partition range > Launch backfill does for every asset: the
    same GraphQL mutation; then the daemon runs it. Returns its id and its final state."""
    nodes = _graphql(base, "{ assetNodes { assetKey { path } partitionDefinition { type } } }")
    daily = [n["assetKey"] for n in nodes["data"]["assetNodes"] if n["partitionDefinition"]]
    assert len(daily) == 26, daily  # every asset of the warehouse is daily
    launched = _graphql(base, """
        mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
            __typename ... on LaunchBackfillSuccess { backfillId }
            ... on PythonError { message } ... on InvalidSubsetError { message } } }""",
        {"params": {"partitionNames": BACKFILL_DAYS, "assetSelection": daily, "fromFailure": False}})
    result = launched["data"]["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    backfill_id = result["backfillId"]
    deadline, state = time.monotonic() + 420, None
    while time.monotonic() < deadline:
        state = _graphql(base, """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
            ... on PartitionBackfill { status runs(limit: 10) { runId status tags { key value } } } } }""",
            {"id": backfill_id})["data"]["partitionBackfillOrError"]
        if state["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
            return backfill_id, state
        time.sleep(2)
    pytest.fail(f"backfill {backfill_id} did not finish: {state}")


def _warehouse_figures(conn) -> dict[str, dict]:
    """Per day: what the warehouse holds for the figures the UI shows."""
    out = {}
    for day in BACKFILL_DAYS:
        [(rows, quarantined)] = conn.execute(
            """SELECT (SELECT count(*) FROM staging.payments WHERE ingest_date = CAST(? AS DATE)),
                      (SELECT count(*) FROM quality.payments_quarantine WHERE ingest_date = CAST(? AS DATE))""",
            [day, day]).fetchall()
        [(health, at_risk, passed)] = conn.execute(
            "SELECT health_score, revenue_at_risk, gate_passed FROM quality.partition_gate "
            "WHERE ingest_date = CAST(? AS DATE)", [day]).fetchall()
        [(facts,)] = conn.execute("SELECT count(*) FROM marts.fact_orders WHERE ingest_date = CAST(? AS DATE)",
                                  [day]).fetchall()
        out[day] = {"rows": rows, "quarantined_rows": quarantined, "health_score": health,
                    "revenue_at_risk": float(at_risk or 0), "gate_passed": passed, "fact_orders": facts}
    return out


@pytest.fixture(scope="module")
def browser(ui):
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser):
    with new_page(browser) as pg:
        yield pg


def _screenshot(page, ui, name: str, docs: bool = True, clip: dict | None = None) -> None:
    """Under the test's tmp directory (`ui["shots"]`); with DQ_UPDATE_SCREENSHOTS=1 also in
    docs/screenshots/ for the README (so an ordinary test run leaves the tracked images alone).
    `clip`: a region of the page, else the viewport."""
    page.wait_for_timeout(1000)  # let the graph's layout animation and status badges settle
    path = ui["shots"] / name
    page.screenshot(path=str(path), clip=clip)
    if docs and os.environ.get("DQ_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / name)


def _text(page) -> str:
    """What is rendered (innerText skips hidden elements), whitespace collapsed."""
    return re.sub(r"\s+", " ", page.inner_text("body"))


def test_asset_graph_shows_the_layers_and_the_gate(ui, page):
    from playwright.sync_api import expect

    # The global lineage: one node per layer (asset group).
    page.goto(f"{ui['base']}/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    for group in ("raw", "staging", "quality", "marts"):
        expect(page.get_by_text(group, exact=True).last).to_be_visible()
    _screenshot(page, ui, "asset-lineage-layers.png", docs=False)

    # The quality layer's graph: the quarantines feed the gate, the gate feeds the marts.
    page.set_viewport_size({"width": VIEWPORT["width"], "height": 1800})  # the whole group
    page.goto(f"{ui['base']}/locations/dq_assets/asset-groups/quality/lineage")
    gate = page.get_by_text("partition_gate", exact=True).first
    expect(gate).to_be_visible()
    for name in ("orders_quarantine", "payments_quarantine", "recon_row_mismatches",
                 "customer_versions", "fact_orders"):
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    # staging/orders, upstream of the quarantine tables, drawn as a link to another group
    expect(page.get_by_text("orders", exact=True).first).to_be_visible()
    # the gate's node carries the status of its 4 checks (gate_passed failed, see below; the
    # expired suppressions; and the two freshness checks)
    expect(page.get_by_text(re.compile(r"^\d+ / 4 Passed$")).first).to_be_visible()
    _screenshot(page, ui, "asset-graph-quality.png")


def test_failed_check_page_shows_the_failure(ui, page):
    from playwright.sync_api import expect

    failed = ui["failed"]
    assert ("staging/payments", "no_unknown_reference") in failed, failed

    page.goto(f"{ui['base']}/assets/staging/payments?view=checks&checkDetail=no_unknown_reference")
    expect(page.get_by_text("Evaluation result")).to_be_visible()
    expect(page.get_by_text(
        f"{FAIL_DAY}: no_unknown_reference failed (ERROR): observed order_id: 1, expected 0")).to_be_visible()
    text = _text(page)
    assert "This is a non-blocking asset check." in text
    assert re.search(r"Evaluation result Failed", text), text[:3000]
    assert re.search(rf"Partition {FAIL_DAY}", text), text[:3000]
    # the metadata a user reads to act on it: the offending key and the severity
    assert "PAY20250112-500041" in text
    assert re.search(r"severity ERROR", text)
    # the check list on the left marks it failed too
    assert "no_unknown_reference Failed" in text, text[:3000]
    _screenshot(page, ui, "failed-check.png")


def test_gate_check_page_lists_every_error_failure(ui, page):
    from playwright.sync_api import expect

    page.goto(f"{ui['base']}/assets/quality/partition_gate?view=checks&checkDetail=gate_passed")
    expect(page.get_by_text("Evaluation result")).to_be_visible()
    # it blocks nothing: the marts read the decision per partition (a range publishes the days
    # that passed); its failure fails the run
    expect(page.get_by_text("This is a non-blocking asset check.")).to_be_visible()
    text = _text(page)
    assert re.search(r"Evaluation result Failed", text), text[:3000]
    assert re.search(rf"Partition {FAIL_DAY}", text), text[:3000]
    assert re.search(r"severity ERROR", text), text[:3000]
    # every ERROR check that failed in the warehouse's record is named on the page
    m = re.search(r"observed (\S+): refused: (.+?) (?:reproduce_sql|threshold|severity|detail|failing_rows|failed_partitions) ", text)
    assert m, text[:3000]
    assert m.group(1) == FAIL_DAY
    shown = sorted(tuple(x.strip().split(":")) for x in m.group(2).split(","))
    assert shown == sorted(ui["failed"]), (shown, ui["failed"])
    _screenshot(page, ui, "gate-check.png")


def _metadata_number(text: str, name: str) -> float:
    m = re.search(rf"(?:^| ){re.escape(name)} (-?[\d.]+)(?: |$)", text)
    assert m, f"{name} not shown: {text[:3000]}"
    return float(m.group(1))


def test_the_readme_cli_run_is_in_the_ui(ui, page):
    """The quick start's CLI run went to the Dagster home `dagster dev` reads: the UI lists it."""
    from playwright.sync_api import expect

    assert ui["cli_log"].strip().splitlines()[-1] == f"dq_assets gate PASSED for {CLI_DAY}; marts published"
    runs = _graphql(ui["base"], """{ runsOrError { ... on Runs { results { runId status tags { key value } } } } }""")
    cli = [r for r in runs["data"]["runsOrError"]["results"]
           if {"key": "dagster/partition", "value": CLI_DAY} in r["tags"]]
    assert [r["status"] for r in cli] == ["SUCCESS"], cli
    page.goto(f"{ui['base']}/runs")
    expect(page.get_by_text(cli[0]["runId"][:8]).first).to_be_visible()


def test_a_backfill_with_defect_days_is_one_run_and_is_not_shown_as_succeeded(ui, page):
    from playwright.sync_api import expect

    state = ui["backfill"]
    assert state["status"] == "COMPLETED_FAILED", state  # not COMPLETED_SUCCESS
    # every asset has the same daily partitions and a single-run policy: one run, the range
    [run] = state["runs"]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == BACKFILL_RANGE
    assert run["status"] == "FAILURE"
    page.goto(f"{ui['base']}/runs/b/{ui['backfill_id']}")
    expect(page.get_by_text("Partition selection").first).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Failed$")).first).to_be_visible()
    text = _text(page)
    assert re.search(r"Status Failed", text), text[:2000]
    assert "Completed" not in text.split("Asset name")[0], text[:2000]
    _screenshot(page, ui, "backfill.png")


def test_every_partition_shows_its_own_figures(ui, page):
    """The rows, quarantined rows, health score and revenue at risk the UI shows for each day
    of the range run are that day's, as the warehouse holds them."""
    from playwright.sync_api import expect

    for day, held in ui["held"].items():
        page.goto(f"{ui['base']}/assets/staging/payments?view=partitions&partition={day}")
        expect(page.get_by_text(f"WHERE ingest_date = DATE '{day}'")).to_be_visible()
        text = _text(page)
        shown = {"rows": _metadata_number(text, "rows"), "quarantined_rows": _metadata_number(text, "quarantined_rows")}
        assert shown == {"rows": held["rows"], "quarantined_rows": held["quarantined_rows"]}, (day, shown, held)
        if day == "2025-01-03":
            _screenshot(page, ui, "partition-figures.png")

        page.goto(f"{ui['base']}/assets/quality/partition_gate?view=partitions&partition={day}")
        expect(page.get_by_text(f"WHERE ingest_date = DATE '{day}'")).to_be_visible()
        text = _text(page)
        assert _metadata_number(text, "health_score") == pytest.approx(held["health_score"]), (day, text[:3000])
        assert _metadata_number(text, "revenue_at_risk") == pytest.approx(held["revenue_at_risk"]), day
        assert f"gate_passed {str(held['gate_passed']).lower()}" in text, (day, text[:3000])


def test_refused_days_marts_are_shown_failed_not_materialized(ui, page):
    from playwright.sync_api import expect

    for day, held in ui["held"].items():
        assert (held["fact_orders"] > 0) == (day not in REFUSED), (day, held)
    statuses = _graphql(ui["base"], """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
        ... on AssetNode { assetPartitionStatuses { ... on TimePartitionStatuses {
            ranges { status startKey endKey } } } } } }""", {"key": {"path": ["marts", "fact_orders"]}})
    ranges = statuses["data"]["assetNodeOrError"]["assetPartitionStatuses"]["ranges"]
    assert [(r["status"], r["startKey"], r["endKey"]) for r in ranges] == [
        ("MATERIALIZED", CLI_DAY, "2025-01-11"), ("FAILED", "2025-01-12", "2025-01-13")], ranges

    page.goto(f"{ui['base']}/assets/marts/fact_orders?view=partitions&partition={FAIL_DAY}")
    expect(page.get_by_text("did not materialize this asset").first).to_be_visible()
    text = _text(page)
    assert "Failed (2)" in text and "Materialized (11)" in text, text[:2000]
    _screenshot(page, ui, "refused-mart.png")
    page.goto(f"{ui['base']}/assets/marts/fact_orders?view=partitions&partition=2025-01-11")
    expect(page.get_by_text("WHERE ingest_date = DATE '2025-01-11'")).to_be_visible()
