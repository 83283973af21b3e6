"""Where things are: resolved from the environment when used, never at import time (the first
daily partition is read once, by `dq_assets.partitions`, when the code location loads). No Dagster:
the contract and the storage backends read their settings here."""

from __future__ import annotations

import os
import re
from datetime import date, datetime, timezone
from pathlib import Path

import yaml

# The repository root when running from a checkout (editable install); otherwise the working
# directory, which is where `dagster dev` and `dagster asset materialize` are started from.
_PACKAGE_PARENT = Path(__file__).resolve().parent.parent

LANDING_ENV = "DQ_LANDING"
WAREHOUSE_ENV = "DQ_WAREHOUSE"

PARTITIONS_START_ENV = "DQ_PARTITIONS_START"
# The sample landing zone's first day (data/landing starts there).
DEFAULT_PARTITIONS_START = "2025-01-01"


def partitions_start(value: str | None = None) -> str:
    """The first daily partition: `value`, else `DQ_PARTITIONS_START`, else the sample's first
    day. Refused with a message naming the variable unless it is a real date, YYYY-MM-DD, no
    later than today (UTC)."""
    if value is None:
        value = os.environ.get(PARTITIONS_START_ENV) or DEFAULT_PARTITIONS_START
    text = value.strip()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError("not in the form YYYY-MM-DD")
        day = date.fromisoformat(text)
    except ValueError as e:
        raise ValueError(f"{PARTITIONS_START_ENV}={value!r} is not a valid first partition: "
                         f"expected a date YYYY-MM-DD, e.g. {DEFAULT_PARTITIONS_START} ({e})") from None
    today = datetime.now(timezone.utc).date()
    if day > today:
        raise ValueError(f"{PARTITIONS_START_ENV}={value!r} is not a valid first partition: it is "
                         f"after today ({today.isoformat()}, UTC), so there would be no partition")
    return day.isoformat()


BACKFILL_RUN_DAYS_ENV = "DQ_BACKFILL_RUN_DAYS"


def backfill_run_days(value: str | None = None) -> int | None:
    """Days per run of a backfill launched from the UI (or Dagster's GraphQL): `value`, else
    `DQ_BACKFILL_RUN_DAYS`; unset, empty or 0 means every backfill is one run. Refused with a
    message naming the variable unless it is a whole number of days."""
    if value is None:
        value = os.environ.get(BACKFILL_RUN_DAYS_ENV, "")
    text = value.strip()
    if not text:
        return None
    if not re.fullmatch(r"\d+", text):
        raise ValueError(f"{BACKFILL_RUN_DAYS_ENV}={value!r}: expected a whole number of days per "
                         "backfill run (unset or 0: one run per backfill)")
    return int(text) or None


def repo_root() -> Path:
    """The checkout's root (where data/ is) when running from one, else the working directory."""
    if (_PACKAGE_PARENT / "pyproject.toml").exists():
        return _PACKAGE_PARENT
    return Path.cwd()


def landing_root() -> str:
    """`DQ_LANDING` (a local path or an s3:// URI), else `data/landing` in the repository."""
    return os.environ.get(LANDING_ENV) or str(repo_root() / "data" / "landing")


def warehouse_path() -> str:
    """`DQ_WAREHOUSE`, else `data/warehouse.duckdb` in the repository."""
    return os.environ.get(WAREHOUSE_ENV) or str(repo_root() / "data" / "warehouse.duckdb")


def read_yaml(path: Path) -> object:
    """A YAML file's document (safe loading), through libyaml where PyYAML has it: the gate
    reads its configuration in every step, and the pure-Python parser costs a run ~0.2 s."""
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
