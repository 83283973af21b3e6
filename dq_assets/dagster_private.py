"""Every use of Dagster's private API (`dagster._…`), in one place, pinned to dagster 1.13.27.

Dagster's public API has no equivalent for these; each is used deliberately. A version bump that
moves or changes one of them fails `dq_assets_tests/test_dagster_private.py` loudly, at import or
on the signatures it checks, instead of somewhere inside a run. Nothing else in the package
imports `dagster._…` (the same test scans for it)."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

# The database IO manager machinery that dagster-duckdb builds on: the PostgreSQL IO manager
# is one more DbClient with its type handlers, and the DuckDB one subclasses DuckDB's client.
from dagster._core.definitions.metadata import TableMetadataSet
from dagster._core.errors import DagsterAssetCheckFailedError
from dagster._core.storage.db_io_manager import DbClient, DbIOManager, DbTypeHandler, TableSlice
from dagster._utils.schedules import get_latest_completed_cron_tick

__all__ = [
    "DbClient", "DbIOManager", "DbTypeHandler", "TableSlice", "TableMetadataSet",
    "EXPECTED_ERROR_CLASSES", "latest_completed_tick", "latest_check_executions",
]

# The qualified class names Dagster prints for errors the warehouse raises on purpose (the
# console shows their message without a stack trace).
EXPECTED_ERROR_CLASSES = tuple(f"{c.__module__}.{c.__qualname__}"
                               for c in (dg.Failure, DagsterAssetCheckFailedError))


def latest_completed_tick(cron: str, now, timezone: str = "UTC"):
    """The latest tick of `cron` at or before `now` (a deadline that has passed)."""
    return get_latest_completed_cron_tick(cron, now, timezone)


def latest_check_executions(instance: dg.DagsterInstance, keys: Sequence[dg.AssetCheckKey]) -> dict:
    """The latest execution record of each asset check, in one query of the event log."""
    return instance.event_log_storage.get_latest_asset_check_execution_by_key(list(keys))
