"""Where things are: resolved from the environment when used, never at import time."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

# The repository root when running from a checkout (editable install); otherwise the working
# directory, which is where `dagster dev` and `dagster asset materialize` are started from.
_PACKAGE_PARENT = Path(__file__).resolve().parent.parent

LANDING_ENV = "DQ_LANDING"
WAREHOUSE_ENV = "DQ_WAREHOUSE"

# First daily partition. The last one is today (UTC), so a day can be loaded as soon as it lands.
PARTITIONS_START = "2025-01-01"
DAILY = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, end_offset=1)


def repo_root() -> Path:
    if (_PACKAGE_PARENT / "pyproject.toml").exists():
        return _PACKAGE_PARENT
    return Path.cwd()


def landing_root() -> str:
    """`DQ_LANDING` (a local path or an s3:// URI), else `data/landing` in the repository."""
    return os.environ.get(LANDING_ENV) or str(repo_root() / "data" / "landing")


def warehouse_path() -> str:
    """`DQ_WAREHOUSE`, else `data/warehouse.duckdb` in the repository."""
    return os.environ.get(WAREHOUSE_ENV) or str(repo_root() / "data" / "warehouse.duckdb")

