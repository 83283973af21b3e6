"""Shared fixtures: a landing zone written by hand, a throwaway warehouse, and runs of the
real assets against both (in-process, real DuckDB files, no mocks).

Dagster and the code location are imported where they are used, not here: pytest-xdist's
controller process loads this file too, and only its workers run the warehouse."""

from __future__ import annotations

import atexit
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from pathlib import Path

# A developer's shell may carry the warehouse's own settings (a demo's DQ_LANDING or
# DQ_PARTITIONS_START, say), read when the code location loads: the tests set what they need
# themselves, so they are dropped before anything is imported (the tests' own DQ_TEST_*,
# DQ_PROPERTY_* and DQ_UPDATE_SCREENSHOTS stay).
_KEPT = ("DQ_TEST_", "DQ_PROPERTY_", "DQ_UPDATE_SCREENSHOTS")
for _name in [n for n in os.environ if n.startswith("DQ_") and not n.startswith(_KEPT)]:
    del os.environ[_name]

from typing import TYPE_CHECKING  # noqa: E402

import pytest  # noqa: E402

from dq_assets.contract.tables import table  # noqa: E402
from dq_assets.storage.duckdb.warehouse import release_warehouse, warehouse_connection  # noqa: E402

if TYPE_CHECKING:
    import dagster as dg

pytest_plugins = ["dq_assets_tests.pg_fixtures"]

# A decimal as the contract spells it, around the whitespace it trims (ASCII digits only).
_MONEY = re.compile(r"[ \t\r\n]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)[ \t\r\n]*")
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)

HEADERS = {name: list(table(name).column_names) for name in
           ("customers", "products", "orders", "order_items", "payments", "events")}


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _money_sum(text: str, column: str) -> str:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in next(reader)]
    if column not in header:
        return "0.00"
    i = header.index(column)
    total = Decimal(0)
    for row in reader:
        value = row[i] if i < len(row) else ""
        if _MONEY.fullmatch(value):  # every decimal as sent, exactly, whatever its size
            total = _EXACT.add(total, Decimal(value.strip(" \t\r\n")))
    cents = _EXACT.quantize(total, Decimal("0.01"))
    return f"{cents:.2f}" if cents == total else str(total)


class Landing:
    """Writes `ingest_date=` folders with a correct manifest unless told otherwise."""

    SUM_FIELDS = {"orders": ("amount", "amount_sum"), "payments": ("amount", "amount_sum"),
                  "order_items": ("line_amount", "line_amount_sum")}

    def __init__(self, root: Path):
        self.root = root

    def write(self, day: str, files: dict[str, str | list[list[str]]],
              manifest_override: dict | None = None, unlisted: tuple[str, ...] = (),
              listed_absent: dict | None = None) -> Path:
        folder = self.root / f"ingest_date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        manifest = {"ingest_date": day, "files": {}}
        for name, content in files.items():
            text = content if isinstance(content, str) else csv_text(HEADERS[name], content)
            data = text.encode("utf-8")
            (folder / f"{name}.csv").write_bytes(data)
            if name in unlisted:
                continue
            entry = {"rows": len(list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))) - 1,
                     "sha256": hashlib.sha256(data).hexdigest()}
            if name in self.SUM_FIELDS:
                column, field = self.SUM_FIELDS[name]
                entry[field] = _money_sum(text, column)
            manifest["files"][f"{name}.csv"] = entry
        for name, entry in (listed_absent or {}).items():
            manifest["files"][name] = entry
        for name, changes in (manifest_override or {}).items():
            manifest["files"][name].update(changes)
        (folder / "_manifest.json").write_text(json.dumps(manifest))
        return folder


class Warehouse:
    """Runs the real assets against a landing zone and a DuckDB file of the test's own."""

    def __init__(self, landing: Path, database: Path, instance: dg.DagsterInstance):
        self.landing, self.database, self.instance = landing, database, instance

    @property
    def resources(self) -> dict:
        from dq_assets.resources import local_resources

        return local_resources(database=str(self.database), landing=str(self.landing))

    def materialize(self, partition: str, selection=None) -> dg.ExecuteInProcessResult:
        import dagster as dg

        from dq_assets.definitions import ALL_ASSETS

        return dg.materialize(
            ALL_ASSETS, partition_key=partition, resources=self.resources,
            instance=self.instance, raise_on_error=False, selection=selection,
        )

    def materialize_range(self, first: str, last: str) -> dg.ExecuteInProcessResult:
        """One run over a partition range, as `--partition-range first...last` does."""
        import dagster as dg

        from dq_assets.definitions import ALL_ASSETS

        return dg.materialize(
            ALL_ASSETS, resources=self.resources, instance=self.instance, raise_on_error=False,
            tags={"dagster/asset_partition_range_start": first,
                  "dagster/asset_partition_range_end": last},
        )

    def query(self, sql: str, params=None) -> list[tuple]:
        # the process's own connection: the warehouse file stays open between runs
        with warehouse_connection(str(self.database)) as conn:
            return conn.execute(sql, params or []).fetchall()

    def check(self, partition: str, asset: str, check: str) -> tuple:
        rows = self.query(
            """SELECT passed, severity, failing_rows, observed FROM quality.check_results
               WHERE partition_key = ? AND asset_key = ? AND check_name = ?
               ORDER BY evaluated_at DESC LIMIT 1""", [partition, asset, check])
        assert rows, f"no result for {asset}:{check} on {partition}"
        return rows[0]

    def monitor_results(self) -> list[tuple]:
        """(partition, "asset:check", passed, observed) of every statistical monitor's latest
        evaluation of every partition."""
        return self.query(
            """SELECT partition_key, asset_key || ':' || check_name, passed, observed FROM quality.check_results
               WHERE check_name LIKE 'monitor_%'
               QUALIFY row_number() OVER (PARTITION BY partition_key, asset_key, check_name
                                          ORDER BY evaluated_at DESC) = 1""")

    def failed_checks(self, partition: str) -> dict[str, tuple]:
        rows = self.query(
            """SELECT asset_key || ':' || check_name, severity, failing_rows FROM quality.check_results
               WHERE partition_key = ?
               QUALIFY row_number() OVER (PARTITION BY asset_key, check_name
                                          ORDER BY evaluated_at DESC) = 1 AND NOT passed""", [partition])
        return {name: (sev, n) for name, sev, n in rows}


# Parts a developer's machine may lack (a Chromium for the browser tests): their tests are
# skipped with the reason, unless DQ_TEST_REQUIRE_ALL=1 (.ci/run sets it) makes that a failure.
REQUIRE_ALL_ENV = "DQ_TEST_REQUIRE_ALL"


def missing_part(what: str, how: str) -> None:
    """Skip (or, with DQ_TEST_REQUIRE_ALL=1, fail) a test that needs a part this machine lacks."""
    if os.environ.get(REQUIRE_ALL_ENV) == "1":
        pytest.fail(f"{what} ({REQUIRE_ALL_ENV}=1 requires every part): {how}", pytrace=False)
    pytest.skip(f"{what}: {how}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With DQ_TEST_REQUIRE_ALL=1 a skip of any kind (a marker, a skip inside a test or a
    fixture) is a failure: CI runs every test or fails."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get(REQUIRE_ALL_ENV) == "1" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, and {REQUIRE_ALL_ENV}=1 forbids skips: {reason}"


@pytest.fixture(scope="session")
def instance():
    # In-memory run and event storage: the tests read results from the warehouse itself.
    import dagster as dg

    return dg.DagsterInstance.ephemeral()


def ram_dir(name: str) -> Path | None:
    """A fresh directory in memory (tmpfs) where the machine has one, removed when the test
    process ends; None where there is none. For a DAGSTER_HOME of CLI runs: Dagster's SQLite
    event log commits every event on its own (about 700 per day's run), and on a disk each
    commit waits for a sync."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        return None
    path = Path(tempfile.mkdtemp(prefix=f"dq-{name}-", dir=shm))
    atexit.register(shutil.rmtree, path, True)
    return path


@pytest.fixture(scope="session")
def ram_path_factory(tmp_path_factory):
    """`mktemp(name)`: `ram_dir(name)`, else a temporary directory on disk."""

    class RamPathFactory:
        def mktemp(self, name: str) -> Path:
            return ram_dir(name) or tmp_path_factory.mktemp(name)

    return RamPathFactory()


@pytest.fixture
def landing(tmp_path) -> Landing:
    return Landing(tmp_path / "landing")


@pytest.fixture
def warehouse(tmp_path, landing, instance) -> Warehouse:
    wh = Warehouse(landing.root, tmp_path / "warehouse.duckdb", instance)
    yield wh
    release_warehouse(str(wh.database))


def hourly_events(day: str, prefix: str) -> list[list[str]]:
    """One page view in every hour of the day: a complete load of events."""
    return [[f"{prefix}E{h:02d}", "", f"{prefix}S", "page_view", f"{day}T{h:02d}:30:00Z", "web", "10"]
            for h in range(24)]


# A small, clean, two-day shop used by the pipeline tests.
C_HDR = HEADERS["customers"]
DAY1 = {
    "customers": [
        ["C1", "Ann@Example.com ", "Ann A", "de", "2024-12-01T00:00:00Z", "2025-01-01T00:00:00Z"],
        ["C2", "bob@example.com", " Bob B", "US", "2024-12-02 08:00:00", "2025-01-01T00:00:00+00:00"],
    ],
    "products": [
        ["P1", "SKU-1", "Thing", "toys", "10.00", "eur", "2025-01-01T00:00:00Z"],
        ["P2", "SKU-2", "Other", "books", "2.50", "EUR", "2025-01-01T00:00:00Z"],
    ],
    "orders": [
        ["O1", "C1", "2025-01-01T10:00:00Z", "paid", "EUR", "25.00", "2025-01-01T10:00:00Z"],
        ["O2", "C2", "2025-01-01 11:00:00", "Placed", "eur", "10.00", "2025-01-01T11:00:00Z"],
    ],
    "order_items": [
        ["O1", "1", "P1", "2", "10.00", "20.00"],
        ["O1", "2", "P2", "2", "2.50", "5.00"],
        ["O2", "1", "P1", "1", "10.00", "10.00"],
    ],
    "payments": [["Y1", "O1", "2025-01-01T10:05:00Z", "card", "captured", "25.00", "EUR"]],
    "events": [
        ["E1", "", "S1", "page_view", "2025-01-01T09:00:00Z", "web", "100"],
        ["E2", "C1", "S1", "purchase", "1735722000", "ios", "200"],
    ] + hourly_events("2025-01-01", "D1"),
}
DAY2 = {
    # C1 changes email; C3 is new
    "customers": [
        ["C1", "ann@new.example.com", "Ann A", "DE", "2024-12-01T00:00:00Z", "2025-01-02T00:00:00Z"],
        ["C3", "cy@example.com", "Cy", "FR", "2025-01-02T00:00:00Z", "2025-01-02T00:00:00Z"],
    ],
    # O2 re-sent with a newer version (shipped); O3 references C2 from day 1
    "orders": [
        ["O2", "C2", "2025-01-01T11:00:00Z", "shipped", "EUR", "10.00", "2025-01-02T09:00:00Z"],
        ["O3", "C2", "2025-01-02T08:00:00+01:00", "delivered", "EUR", "2.50", "2025-01-02T09:00:00Z"],
    ],
    "order_items": [["O3", "1", "P2", "1", "2.50", "2.50"]],
    # a late payment for an order of day 1
    "payments": [
        ["Y2", "O2", "2025-01-02T08:00:00Z", "paypal", "captured", "10.00", "EUR"],
        ["Y3", "O3", "2025-01-02T08:05:00Z", "card", "captured", "2.50", "EUR"],
    ],
    "events": hourly_events("2025-01-02", "D2"),
}


DAY1_EPOCH = "1735722000"  # an event of DAY1 at 2025-01-01T09:00:00Z, as epoch seconds


def moved_to(day: str, files: dict | None = None) -> dict:
    """A day's files of 2025-01-01 (DAY1 unless given) sent for `day` instead: every date in them
    (and DAY1's epoch timestamp) moved along, rows or text alike. Cases that need a clean day
    of their own then share one warehouse and one range run, each on its own date."""
    shift = (date.fromisoformat(day) - date.fromisoformat("2025-01-01")).days
    epoch = str(int(DAY1_EPOCH) + shift * 86400)

    def move(value: str) -> str:
        return value.replace("2025-01-01", day).replace(DAY1_EPOCH, epoch)

    return {t: move(content) if isinstance(content, str) else [[move(v) for v in row] for row in content]
            for t, content in (DAY1 if files is None else files).items()}


@pytest.fixture
def two_days(landing) -> Landing:
    landing.write("2025-01-01", DAY1)
    landing.write("2025-01-02", DAY2)
    return landing


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real S3-compatible HTTP endpoint on localhost (moto's server mode)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_endpoint, monkeypatch):
    """Standard AWS environment pointing boto3 at the local endpoint."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return moto_endpoint


# ---------------------------------------------------------------- runs recorded once, replayed


class RecordedRun:
    """A day run once, on an instance, landing zone and warehouse of its own, that a test can
    start from: its records replayed into the test's instance (what a sensor reads there is
    what it would read had the run happened there) and copies of its landing zone and warehouse."""

    def __init__(self, warehouse: Warehouse, result: dg.ExecuteInProcessResult):
        self.warehouse, self.result = warehouse, result

    @property
    def run_id(self) -> str:
        return self.result.run_id

    def replay(self, instance: dg.DagsterInstance, ends_at: float | None = None) -> None:
        """The run, its snapshots and every event of it, stored in `instance` as if it had just
        happened there: the events keep their order and spacing and end now (or at `ends_at`).
        (Kept at the time they were recorded, a run replayed after another would seem to have
        finished before it.)"""
        source = self.warehouse.instance
        run = source.get_run_by_id(self.run_id)
        instance.run_storage.add_job_snapshot(source.get_job_snapshot(run.job_snapshot_id))
        instance.run_storage.add_execution_plan_snapshot(
            source.get_execution_plan_snapshot(run.execution_plan_snapshot_id))
        instance.add_run(run)  # finished, with its final status
        entries = source.all_logs(self.run_id)
        shift = (ends_at or time.time()) - max(e.timestamp for e in entries)
        for entry in entries:
            instance.event_log_storage.store_event(entry._replace(timestamp=entry.timestamp + shift))

    def into(self, warehouse: Warehouse) -> Warehouse:
        """`warehouse` (its paths still unused) as this run left its own, the run in its instance."""
        release_warehouse(str(self.warehouse.database))  # closed, so the file copied is whole
        shutil.copytree(self.warehouse.landing, warehouse.landing, dirs_exist_ok=True)
        shutil.copyfile(self.warehouse.database, warehouse.database)
        self.replay(warehouse.instance)
        return warehouse


@pytest.fixture(scope="session")
def recorded_day(tmp_path_factory):
    """`recorded_day(day, files)`: that day landed and materialized once per test process (on a
    fresh in-memory instance), for every test that starts from it."""
    runs: dict[str, RecordedRun] = {}

    def record(day: str, files: dict) -> RecordedRun:
        key = json.dumps([day, files], sort_keys=True)
        if key not in runs:
            root = tmp_path_factory.mktemp("recorded")
            landing = Landing(root / "landing")
            landing.write(day, files)
            import dagster as dg

            wh = Warehouse(landing.root, root / "warehouse.duckdb", dg.DagsterInstance.ephemeral())
            runs[key] = RecordedRun(wh, wh.materialize(day))
            release_warehouse(str(wh.database))
        return runs[key]

    return record


# --- the real CLI, shared by the modules that run `dagster asset materialize` -----------------


REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dagster_home(ram_path_factory) -> Path:
    """A DAGSTER_HOME for a module's CLI runs, in memory where the machine has one (see
    `ram_path_factory`). Each run is a run of its own in it, as on an operator's instance."""
    home = ram_path_factory.mktemp("dagster-home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


@pytest.fixture(scope="module")
def cli_home(ram_path_factory) -> Path:
    """A DAGSTER_HOME for CLI runs whose Dagster record no test reads afterwards: its event log
    is Dagster's in-memory one, gone with the process. The SQLite one of `dagster_home` (an
    operator's) costs over half of a CLI run's time (an engine and a commit per event); what is
    tested here is what the CLI prints and leaves in the warehouse."""
    home = ram_path_factory.mktemp("cli-home")
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        "event_log_storage:\n  module: dagster._core.storage.event_log\n  class: InMemoryEventLogStorage\n")
    return home


def materialize_cli(home: Path, landing: Path, warehouse: Path, *args: str) -> subprocess.CompletedProcess:
    """`dagster asset materialize` of every asset with the warehouse's console (as an operator
    runs it), on the caller's landing zone and warehouse file; `args` name the partition(s)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    env.update(DAGSTER_HOME=str(home), DQ_LANDING=str(landing), DQ_WAREHOUSE=str(warehouse),
               DQ_ALERT_SINKS="none")
    return subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "dq_assets", "--select", "*",
         *args, "-c", str(REPO / "dq_assets" / "console.yaml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
