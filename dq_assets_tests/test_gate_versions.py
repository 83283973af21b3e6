"""The marts publish only the version of a partition that passed the gate.

The scenario of the issue: 2025-01-01 passes; a re-sent version of the day lands whose run
fails before the gate (its orders.csv leads outside the landing zone) after it rewrote
customers with bad emails; then the marts job runs alone for that day. It must refuse, say why,
and leave the marts as they were, although the latest gate decision on record is "passed".
Each test has an instance of its own, in memory: the gate's decisions and the writes it judges
are recorded in the warehouse, not in Dagster's event log."""

import dagster as dg
import pytest

from dq_assets.definitions import defs
from dq_assets.storage.duckdb.warehouse import release_warehouse
from dq_assets_tests.conftest import DAY1, Landing, Warehouse

DAY = "2025-01-01"
MARTS = ("fact_orders", "fact_revenue_daily", "revenue_by_order_date", "customer_versions", "dim_customers")


@pytest.fixture
def site(tmp_path, monkeypatch):
    landing, database = Landing(tmp_path / "landing"), tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("DQ_LANDING", str(landing.root))
    monkeypatch.setenv("DQ_WAREHOUSE", str(database))
    # A fresh in-memory instance: no other test's runs of the day in its event log (the
    # freshness checks read it), and no SQLite event log making every run three times slower.
    with dg.DagsterInstance.ephemeral() as instance:
        yield landing, Warehouse(landing.root, database, instance)
    release_warehouse(str(database))


def marts(wh: Warehouse) -> dict:
    return {m: sorted(wh.query(f"SELECT * FROM marts.{m}"), key=repr) for m in MARTS}


def run_job(wh: Warehouse, name: str) -> dg.ExecuteInProcessResult:
    """`dagster job execute -m dq_assets -j <name> --tags '{"dagster/partition": DAY}'`."""
    return defs.resolve_job_def(name).execute_in_process(
        instance=wh.instance, partition_key=DAY, raise_on_error=False)


def resend_broken_day(landing: Landing) -> None:
    customers = [[c[0], "not-an-email", *c[2:5], "2025-01-01T12:00:00Z"] for c in DAY1["customers"]]
    folder = landing.write(DAY, {**DAY1, "customers": customers})
    # orders.csv now leads outside the landing zone: refused, and the steps that read it fail
    # (an unreadable file would not do: it fails its day at the gate, not the run before it)
    outside = landing.root.parent / "elsewhere.csv"
    (folder / "orders.csv").replace(outside)
    (folder / "orders.csv").symlink_to(outside)


def test_a_run_that_failed_before_the_gate_leaves_nothing_publishable(site, recorded_day):
    landing, wh = site
    first = recorded_day(DAY, DAY1)  # the day passed (run once per process, replayed here)
    assert first.result.success
    first.into(wh)
    published = marts(wh)
    assert published["dim_customers"]

    resend_broken_day(landing)
    failed = wh.materialize(DAY)
    assert not failed.success
    assert "orders.csv: resolves outside the landing root" in str(
        [e.step_failure_data.error.message for e in failed.get_step_failure_events()])
    # raw customers were rewritten before the run failed, as a pending version (no staging step
    # ran to make it current: raw.customers still adds up to staging and quarantine); the gate
    # did not run again, so its latest decision is still the earlier "passed"
    assert wh.query("SELECT DISTINCT email FROM raw_pending.customers WHERE ingest_date = ?", [DAY]) == [("not-an-email",)]
    assert wh.query("SELECT DISTINCT email FROM raw.customers WHERE ingest_date = ?", [DAY]) != [("not-an-email",)]
    assert wh.query("SELECT gate_passed FROM quality.partition_gate WHERE ingest_date = ?", [DAY]) == [(True,)]

    # the marts job alone: refused, with the reason, and nothing published
    only_marts = run_job(wh, "marts_layer")
    assert not only_marts.success
    [failure] = only_marts.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert f"marts not published for {DAY}: its data changed after the gate decision of run " in message
    assert "raw/customers by run" in message and "raw/orders by run" in message
    assert "materialize the partition again" in message
    assert marts(wh) == published
    assert not only_marts.asset_materializations_for_node("publish_marts")

    # the gate alone, run again over the same data: it sees assets rewritten without their
    # checks (raw/orders never got its checks in the failed run) and refuses
    gate_only = wh.materialize(DAY, selection=[dg.AssetKey(["quality", "partition_gate"])])
    assert not gate_only.success  # its gate_passed check fails the run, after recording it
    [(passed, errors)] = wh.query(
        "SELECT gate_passed, error_failures FROM quality.partition_gate WHERE ingest_date = ?", [DAY])
    assert passed is False and "raw/orders:rewritten_after_its_checks" in errors
    assert not run_job(wh, "marts_layer").success
    assert marts(wh) == published

    # the day landed again, in place: a full run gates and publishes the new version
    (landing.root / f"ingest_date={DAY}" / "orders.csv").unlink()
    landing.write(DAY, DAY1)
    assert wh.materialize(DAY).success
    assert marts(wh)["dim_customers"] == published["dim_customers"]


def test_the_marts_job_publishes_what_the_gate_passed(site):
    landing, wh = site
    landing.write(DAY, DAY1)
    assert wh.materialize(DAY, selection=dg.AssetSelection.groups("raw", "staging", "quality")).success
    assert not wh.query("SELECT 1 FROM information_schema.tables WHERE table_schema = 'marts'")
    assert run_job(wh, "marts_layer").success  # nothing changed since the gate: published
    assert wh.query("SELECT count(*) FROM marts.fact_orders WHERE ingest_date = ?", [DAY]) == [(2,)]


def test_a_gated_asset_without_check_results_refuses_the_partition(site):
    landing, wh = site
    landing.write(DAY, DAY1)
    # the raw layer and the gate only: staging and recon were never checked for the day
    assert not wh.materialize(DAY, selection=dg.AssetSelection.groups("raw")
                              | dg.AssetSelection.assets(dg.AssetKey(["quality", "partition_gate"]))).success
    [(passed, errors)] = wh.query(
        "SELECT gate_passed, error_failures FROM quality.partition_gate WHERE ingest_date = ?", [DAY])
    assert passed is False
    assert {"staging/orders:no_check_results", "quality/recon_row_mismatches:no_check_results"} <= set(errors.split(", "))
