"""A backfill split into runs of a few days (DQ_BACKFILL_RUN_DAYS) that the run queue executes side
by side, on the aws deployment with Dagster's instance from deploy/dagster.yaml: `dagster dev`
(webserver and daemon) and a backfill of every asset launched the way the UI launches it.

The range's customers first arrive the day before their first order, each day in a run of its
own: a run that checked its days before the previous run had loaded
its customers would report unknown references (and its landing audit would report an incomplete
history). The declared order across days (dq_assets.partitions.previous_days) must keep every day
after its history, while runs still overlap: the backfill succeeds, no reference check fails, and
every table and check result equals those of one in-order run of the same range.
"""

from __future__ import annotations

import csv
import os
import subprocess
import uuid
from datetime import datetime
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from dq_assets.operations.backfills import graphql, launch_asset_backfill, wait_for_backfill
from dq_assets_tests.conftest import DAY1, DAY2, Landing
from dq_assets_tests.pg_fixtures import free_port, with_database
from dq_assets_tests.test_celery import (
    BIN,
    REPO,
    _base_env,
    _home,
    contents,
    instance_env,
    moto_s3,
    outcomes,
    scratch_databases,
    tables,
)
from dq_assets_tests.test_ui_browser import _text, chromium, need_chromium, new_page, serve_dagster

pytestmark = pytest.mark.slow

FIRST, LAST, RUN_DAYS = "2025-01-01", "2025-01-02", 1
DAYS = ["2025-01-01", "2025-01-02"]
# Day 2 (conftest's): customer C3 arrives; order O3 is of customer C2, who arrived on day 1, and
# order O1 of day 1 comes again, shipped, its payment captured on day 1. Resolving C2, and finding
# O1's captured payment, needs the day before, which is in a run of its own.
DAY2_AGAIN = {**DAY2, "orders": DAY2["orders"] + [
    ["O1", "C1", "2025-01-01T10:00:00Z", "shipped", "EUR", "25.00", "2025-01-02T10:00:00Z"]]}


def _column(path: Path, name: str) -> set[str]:
    """A column of a landed file, whose header may be padded or capitalised (as the generator
    writes some)."""
    with path.open(newline="") as f:
        rows = csv.reader(f)
        at = [h.strip().lower() for h in next(rows)].index(name)
        return {row[at].strip() for row in rows if row}


def first_seen_customers(landing: Path) -> dict[str, str]:
    """customer_id -> the day its first version landed."""
    seen: dict[str, str] = {}
    for day in sorted(p.name.removeprefix("ingest_date=") for p in landing.glob("ingest_date=*")):
        if not (landing / f"ingest_date={day}" / "customers.csv").exists():
            continue
        for cid in _column(landing / f"ingest_date={day}" / "customers.csv", "customer_id"):
            seen.setdefault(cid, day)
    return seen


@pytest.fixture(scope="module")
def site(pg_url, moto_endpoint, tmp_path_factory):
    """The landing zone on S3, two warehouses (PostgreSQL databases and S3 prefixes), Dagster's
    instance database and compute-log bucket; removed afterwards."""
    tag = uuid.uuid4().hex[:10]
    root = tmp_path_factory.mktemp("backfill_runs")
    aws, s3 = moto_s3(moto_endpoint)
    logs_bucket, warehouse_bucket, landing_bucket = (f"dq-runs-{n}-{tag}" for n in ("logs", "wh", "landing"))
    for bucket in (logs_bucket, warehouse_bucket, landing_bucket):
        s3.create_bucket(Bucket=bucket)
    landing = root / "landing"
    for day, files in zip(DAYS, (DAY1, DAY2_AGAIN)):
        Landing(landing).write(day, files)
    for path in landing.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), landing_bucket, f"landing/{path.relative_to(landing).as_posix()}")
    with scratch_databases(pg_url, tag) as create:
        def database(name: str) -> str:
            return with_database(pg_url, create(name))

        instance_url = database("dagster")
        env = {**_base_env(), **aws, "PYTHONPATH": str(REPO),
               **instance_env(pg_url, instance_url.rsplit("/", 1)[1], logs_bucket),
               "DQ_DEPLOYMENT": "aws", "DQ_S3_BUCKET": warehouse_bucket,
               "DQ_LANDING": f"s3://{landing_bucket}/landing"}
        yield {"root": root, "env": env, "landing": landing, "database": database, "instance_url": instance_url}


@pytest.fixture(scope="module")
def in_order_run(site):
    """The range as one CLI run (in order by construction), into a warehouse of its own; started
    here and awaited by `in_order`, so that it runs while the backfill waits for its daemon."""
    cwd = site["root"] / "in_order"
    home = _home(cwd / "dagster_home")
    env = {**site["env"], "DAGSTER_HOME": str(home), "DQ_S3_PREFIX": "in_order",
           "DQ_PG_URL": site["database"]("in_order")}
    log = cwd / "cli.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(BIN / "dagster"), "asset", "materialize", "-m", "dq_assets", "--select", "*",
                                 "--partition-range", f"{FIRST}...{LAST}"],
                                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    yield {"proc": proc, "log": log, "pg": env["DQ_PG_URL"]}
    if proc.poll() is None:
        proc.kill()


@pytest.fixture(scope="module")
def in_order(in_order_run):
    assert in_order_run["proc"].wait(timeout=600) == 0, in_order_run["log"].read_text()[-4000:]
    return in_order_run["pg"]


@pytest.fixture(scope="module")
def backfill(site, in_order_run):
    """The range as a UI backfill in runs of RUN_DAYS days, executed by `dagster dev`'s daemon
    through the run queue of deploy/dagster.yaml."""
    cwd = site["root"] / "runs"
    home = _home(cwd / "dagster_home")
    env = {**site["env"], "DAGSTER_HOME": str(home), "DQ_S3_PREFIX": "runs",
           "DQ_PG_URL": site["database"]("runs"), "DQ_BACKFILL_RUN_DAYS": str(RUN_DAYS)}
    log = cwd / "dagster_dev.log"
    # the webserver stays up for the pages a user opens afterwards
    with serve_dagster(["dagster", "dev"], env, cwd, log, free_port(), deadline_s=180) as url:
        backfill_id = launch_asset_backfill(url, FIRST, LAST)
        state = wait_for_backfill(url, backfill_id, timeout=600)
        runs, materialized = _records(site, home, backfill_id)
        described = "\n".join(sorted(_describe(r) for r in runs.values()))
        (cwd / "runs.txt").write_text(described)  # what ran when, for whoever reads a failure
        yield {"state": state, "pg": env["DQ_PG_URL"], "runs": runs, "log": log, "described": described,
               "url": url, "id": backfill_id, "materialized": materialized}


def _records(site, home: Path, backfill_id: str) -> tuple[dict, dict]:
    """The backfill's run records, and when it materialized each day of the assets that later
    days need (the instance also holds the in-order CLI run's materializations)."""
    os.environ.update({k: site["env"][k] for k in site["env"] if k.startswith("DAGSTER_")})
    try:
        instance = dg.DagsterInstance.from_config(str(home))
        runs = {r.dagster_run.run_id: r for r in instance.get_run_records(
            dg.RunsFilter(tags={"dagster/backfill": backfill_id}))}
        materialized = {}
        for asset in {earlier for _, earlier in NEEDS_THE_DAY_BEFORE}:
            for day in DAYS:
                found = instance.fetch_materializations(
                    dg.AssetRecordsFilter(dg.AssetKey.from_user_string(asset), asset_partitions=[day]),
                    limit=100, ascending=True).records
                mine = [r.timestamp for r in found if r.event_log_entry.run_id in runs]
                materialized[(asset, day)] = mine[0] if mine else None
    finally:
        for k in site["env"]:
            if k.startswith("DAGSTER_"):
                os.environ.pop(k, None)
    return runs, materialized


def _describe(record) -> str:
    run = record.dagster_run
    tags = run.tags
    days = f"{tags.get('dagster/asset_partition_range_start', tags.get('dagster/partition'))}.." \
           f"{tags.get('dagster/asset_partition_range_end', tags.get('dagster/partition'))}"
    assets = sorted(k.to_user_string() for k in run.asset_selection or [])
    return (f"{record.create_timestamp.isoformat()} start {record.start_time} end {record.end_time} {days} "
            f"{run.status.value} {run.run_id[:8]} {assets}")


def test_the_backfill_succeeds_in_runs_of_a_few_days_that_overlap(backfill):
    state = backfill["state"]
    assert state["status"] == "COMPLETED_SUCCESS", (backfill["described"], backfill["log"].read_text()[-3000:])
    records = list(backfill["runs"].values())
    assert len(records) >= 4 and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
    ranges = set()
    for r in records:
        tags = r.dagster_run.tags
        start = tags.get("dagster/asset_partition_range_start", tags.get("dagster/partition"))
        end = tags.get("dagster/asset_partition_range_end", tags.get("dagster/partition"))
        ranges.add((start, end))
        assert (datetime.fromisoformat(end) - datetime.fromisoformat(start)).days < RUN_DAYS
    assert {(d, d) for d in DAYS} == ranges, ranges
    # the run queue ran some of them side by side
    spans = sorted((r.start_time, r.end_time) for r in records)
    assert any(b_start < a_end for (_, a_end), (b_start, _) in zip(spans, spans[1:])), spans


# (an asset's day, the asset whose previous day it needs): what the order declared when backfills
# are split (dq_assets.partitions.previous_days, same_days) must give
NEEDS_THE_DAY_BEFORE = [("raw/landing_files", "raw/customers"), ("raw/landing_files", "raw/orders"),
                        ("raw/landing_files", "raw/products"), ("raw/customers", "raw/customers"),
                        ("quality/recon_row_mismatches", "quality/recon_row_mismatches")]


def _runs_of(records, asset: str, day: str) -> list:
    out = []
    for r in records:
        tags = r.dagster_run.tags
        start = tags.get("dagster/asset_partition_range_start", tags.get("dagster/partition"))
        end = tags.get("dagster/asset_partition_range_end", tags.get("dagster/partition"))
        keys = {k.to_user_string() for k in r.dagster_run.asset_selection or []}
        if asset in keys and start <= day <= end:
            out.append(r)
    return out


def test_no_run_started_before_the_day_before_it_needs_was_in(backfill):
    """Whatever the timing: the run that audits (or reconciles, or loads a referenced table of)
    day D was created after what it needs of day D-1 had been materialized. Dagster's backfill
    daemon creates such a run only once it has seen that event (the run that holds it may still
    go on; a staging step reads a raw day from the moment its raw step wrote it,
    dq_assets.storage.batches). Without the declared order every day's run is created at the
    backfill's first tick, before anything is materialized."""
    records = list(backfill["runs"].values())
    for later, earlier in NEEDS_THE_DAY_BEFORE:
        for before, day in zip(DAYS, DAYS[1:]):
            [run] = _runs_of(records, later, day)
            needed_at = backfill["materialized"][(earlier, before)]
            assert needed_at is not None, (earlier, before)
            created = run.create_timestamp.timestamp()
            assert created >= needed_at, (later, day, earlier, before, created, needed_at, backfill["described"])


def test_customers_first_arrive_the_day_before_across_the_run_boundary(site):
    """The case the order is for is in the data (else the test would prove nothing): on each
    day after the first, an order of a customer first seen the day before, in another run."""
    landing = site["landing"]
    seen = first_seen_customers(landing)
    for before, day in zip(DAYS, DAYS[1:]):
        ordered = _column(landing / f"ingest_date={day}" / "orders.csv", "customer_id")
        assert any(seen.get(c) == before for c in ordered), f"no order on {day} of a customer first seen {before}"


def test_no_reference_fails_and_every_day_passes_the_gate(backfill):
    with psycopg.connect(backfill["pg"]) as conn:
        failed = conn.execute("""SELECT partition_key, asset_key, check_name, observed FROM quality.check_results
                                 WHERE NOT passed AND severity = 'ERROR'""").fetchall()
        gates = conn.execute("SELECT ingest_date::text, gate_passed FROM quality.partition_gate ORDER BY 1").fetchall()
    assert failed == [], backfill["described"]
    assert gates == [(d, True) for d in DAYS]


def test_tables_and_check_results_equal_one_in_order_run(backfill, in_order):
    assert tables(backfill["pg"]) == tables(in_order)
    for name in tables(in_order):
        assert contents(backfill["pg"], name) == contents(in_order, name), name
    assert outcomes(backfill["pg"]) == outcomes(in_order)


_ASSET_STATUSES = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { assetBackfillData { assetBackfillStatuses {
        ... on AssetPartitionsStatusCounts { assetKey { path } numPartitionsTargeted
            numPartitionsInProgress numPartitionsMaterialized numPartitionsFailed } } } } } }"""


def test_the_ui_shows_the_backfill_completed_with_exactly_the_range_of_every_asset(backfill):
    """What a user sees: the backfill completed, every asset targeted the range's days and no
    other, each materialized; the backfill's page says so in a real browser."""
    from playwright.sync_api import expect

    need_chromium()
    statuses = graphql(backfill["url"], _ASSET_STATUSES, {"id": backfill["id"]})
    counts = {"/".join(a["assetKey"]["path"]): (a["numPartitionsTargeted"], a["numPartitionsMaterialized"],
                                                a["numPartitionsFailed"], a["numPartitionsInProgress"])
              for a in statuses["partitionBackfillOrError"]["assetBackfillData"]["assetBackfillStatuses"]}
    assert len(counts) == 26 and set(counts.values()) == {(len(DAYS), len(DAYS), 0, 0)}, counts
    # tall enough that the asset table (rendered as it scrolls into view) shows all 26 rows
    with chromium() as browser, new_page(browser, {"width": 1440, "height": 3200}) as page:
        page.goto(f"{backfill['url']}/runs/b/{backfill['id']}")
        expect(page.get_by_text("Partition selection").first).to_be_visible()
        expect(page.get_by_text("raw / landing_files").first).to_be_visible()
        text = _text(page)
    (backfill["log"].parent / "backfill_page.txt").write_text(text)
    head, rows = text.split("Asset name", 1)
    assert f"Partition selection {FIRST}...{LAST} Status Succeeded" in head, text[:3000]
    # each asset's row: targeted, in progress, succeeded, failed
    for asset in counts:
        shown = asset.replace("/", " / ")
        assert f"{shown} {shown} 100% completed {len(DAYS)} 0 {len(DAYS)} 0" in rows, (asset, text[:6000])
