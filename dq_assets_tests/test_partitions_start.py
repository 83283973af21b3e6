"""The first daily partition: `DQ_PARTITIONS_START`, read when the code location loads, takes
effect in the CLI and the definitions, and a value that is no date is refused with a message
naming the variable. The tests' own process keeps the default (the sample's 2025-01-01), so
everything that must see another value runs in a fresh interpreter, as `dagster dev` and
`dagster asset materialize` load the code location. One interpreter serves both looks at a
valid value (the definitions it loaded, then the CLI run as `python -m dagster` runs it): a
process that loads Dagster is the expensive part."""

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dq_assets import partitions, settings
from dq_assets.checks.history import history_advice
from dq_assets.definitions import ALL_ASSETS

REPO = Path(__file__).resolve().parent.parent


def fresh_env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    env.update(DAGSTER_HOME=str(tmp_path), DQ_WAREHOUSE=str(tmp_path / "warehouse.duckdb"),
               DQ_ALERT_SINKS="none", **extra)
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return env


def python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


MATERIALIZE = ["asset", "materialize", "-m", "dq_assets", "--select", "raw/landing_files", "--partition"]


def materialize(partition: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dagster", *MATERIALIZE, partition],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def started_on_the_5th(tmp_path_factory) -> subprocess.CompletedProcess:
    """A fresh interpreter with DQ_PARTITIONS_START=2025-01-05: it prints the first partition of
    what it loaded, then runs `dagster asset materialize` of 2025-01-01 as `python -m dagster`
    does (its exit code is the process's)."""
    env = fresh_env(tmp_path_factory.mktemp("started-on-the-5th"), DQ_PARTITIONS_START="2025-01-05")
    return python(
        "from dq_assets.definitions import ALL_ASSETS, FRESHNESS_CHECKS\n"
        "firsts = {a.partitions_def.get_first_partition_key() for a in ALL_ASSETS if a.partitions_def}\n"
        "print(sorted(firsts))\n"
        "from dq_assets.operations import freshness, landing_runs\n"
        "print(freshness.PARTITIONS_START, landing_runs.DAILY.get_first_partition_key(), flush=True)\n"
        "import runpy, sys\n"
        f"sys.argv = ['dagster', *{MATERIALIZE!r}, '2025-01-01']\n"
        "runpy.run_module('dagster', run_name='__main__')\n", env)


def test_the_default_is_the_samples_first_day(monkeypatch):
    monkeypatch.delenv(settings.PARTITIONS_START_ENV, raising=False)
    assert settings.partitions_start() == "2025-01-01" == settings.DEFAULT_PARTITIONS_START
    # this process was started without the variable (a developer's shell may carry one: the
    # sample-based tests then fail; unset it)
    assert partitions.PARTITIONS_START == "2025-01-01"
    assert {a.partitions_def.get_first_partition_key() for a in ALL_ASSETS if a.partitions_def} == {
        "2025-01-01"}


def test_a_valid_value_is_used_as_given(monkeypatch):
    monkeypatch.setenv(settings.PARTITIONS_START_ENV, " 2026-03-01 ")
    assert settings.partitions_start() == "2026-03-01"
    today = datetime.now(timezone.utc).date()  # any date up to today (UTC) is valid; tomorrow never is
    assert settings.partitions_start((today - timedelta(days=1)).isoformat())


@pytest.mark.parametrize("value, reason", [
    ("2025-1-5", "expected a date YYYY-MM-DD"),
    ("20250105", "expected a date YYYY-MM-DD"),
    ("yesterday", "expected a date YYYY-MM-DD"),
    ("2025-02-30", "day is out of range for month"),
    ("2025-13-01", "month must be in 1..12"),
    ((datetime.now(timezone.utc).date() + timedelta(days=3)).isoformat(), "after today"),
])
def test_an_invalid_value_is_refused_naming_the_variable(value, reason):
    with pytest.raises(ValueError) as e:
        settings.partitions_start(value)
    message = str(e.value)
    assert message.startswith(f"DQ_PARTITIONS_START={value!r} is not a valid first partition"), message
    assert reason in message, message


def test_the_configured_start_takes_effect_when_the_code_location_loads(started_on_the_5th):
    done = started_on_the_5th
    assert done.stdout.splitlines() == ["['2025-01-05']", "2025-01-05 2025-01-05"], done.stderr
    # the code location loaded: the one error is the CLI's refusal of the day (the test below)
    assert done.stderr.strip().splitlines()[-1].startswith(
        "dagster._core.errors.DagsterInvalidSubsetError: "), done.stderr[-2000:]


def test_the_cli_uses_the_configured_start(started_on_the_5th):
    """`dagster asset materialize` with the variable set: a day before the start is no partition."""
    done = started_on_the_5th
    assert done.returncode != 0
    assert "containing the passed partition key `2025-01-01`" in done.stdout + done.stderr


def test_the_cli_refuses_an_invalid_start_clearly(tmp_path):
    done = materialize("2025-01-01", fresh_env(tmp_path, DQ_PARTITIONS_START="2025-1-5"))
    assert done.returncode != 0
    last = (done.stdout + done.stderr).strip().splitlines()[-1]
    assert last == ("ValueError: DQ_PARTITIONS_START='2025-1-5' is not a valid first partition: "
                    "expected a date YYYY-MM-DD, e.g. 2025-01-01 (not in the form YYYY-MM-DD)"), last


def test_history_names_landed_days_before_the_start():
    """Days that landed before the first partition can never be loaded: the history check says
    which, and what to set, instead of asking to load them."""
    assert history_advice(["2024-12-30", "2024-12-31"], "2025-01-01", "2025-01-03") == (
        " (2024-12-30..2024-12-31 before the first daily partition, 2025-01-01)",
        "references resolve against every earlier day: 2024-12-30..2024-12-31 landed before the "
        "first daily partition (2025-01-01) and cannot be loaded: set DQ_PARTITIONS_START=2024-12-30 "
        "(or earlier) when the code location loads")
    note, detail = history_advice(["2024-12-31", "2025-01-02"], "2025-01-01", "2025-01-03")
    assert note == " (2024-12-31 before the first daily partition, 2025-01-01)"
    assert detail.endswith("DQ_PARTITIONS_START=2024-12-31 (or earlier) when the code location loads; "
                           "load 2025-01-02 first (the landing sensor runs landed days in order), or "
                           "run them in one range with 2025-01-03")
    assert history_advice(["2025-01-02"], "2025-01-01", "2025-01-03") == (
        "", "references resolve against every earlier day: load 2025-01-02 first (the landing sensor "
            "runs landed days in order), or run them in one range with 2025-01-03")
