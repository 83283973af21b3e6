"""Every use of Dagster's private API (`dagster._…`), in one place, pinned to dagster 1.13.27.

Dagster's public API has no equivalent for these; each is used deliberately. A version bump that
moves or changes one of them fails `dq_assets_tests/test_dagster_private.py` loudly, at import or
on the signatures it checks, instead of somewhere inside a run. Nothing else in the package
imports `dagster._…` (the same test scans for it)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence

import dagster as dg

# The database IO manager machinery that dagster-duckdb builds on: the PostgreSQL IO manager
# is one more DbClient with its type handlers, and the DuckDB one subclasses DuckDB's client.
# Config validation without a cluster or a database: the schemas of deploy/ (instance YAMLs, run
# launchers, executors) are checked the way Dagster checks them when an instance starts.
from dagster._config import validate_config
from dagster._core.definitions.metadata import TableMetadataSet
from dagster._core.errors import DagsterAssetCheckFailedError
from dagster._core.events import DagsterEvent
from dagster._core.execution.plan.objects import StepFailureData
from dagster._core.execution.retries import RetryMode
from dagster._core.instance.config import dagster_instance_config
from dagster._core.storage.db_io_manager import DbClient, DbIOManager, DbTypeHandler, TableSlice
from dagster._grpc.types import ExecuteStepArgs
from dagster._serdes import serialize_value, unpack_value
from dagster._utils.error import serializable_error_info_from_exc_info
from dagster._utils.schedules import get_latest_completed_cron_tick

__all__ = [
    "DbClient", "DbIOManager", "DbTypeHandler", "TableSlice", "TableMetadataSet",
    "EXPECTED_ERROR_CLASSES", "latest_completed_tick", "latest_check_executions",
    "config_errors", "instance_config_errors", "RetryMode", "step_keys_and_run",
    "step_failure_event",
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


def config_errors(schema, value) -> list[str]:
    """The error messages of `value` against a Dagster config schema (a configurable class's
    `config_type()`, an executor's `config_schema`), as Dagster reports them; empty when valid.
    `env:` references are checked for shape, not resolved."""
    result = validate_config(schema, value)
    return [] if result.success else [e.message for e in result.errors]


def instance_config_errors(home: str) -> list[str]:
    """The error messages of `<home>/dagster.yaml` as an instance would report them when it
    starts, without starting it (nothing is connected): the instance's own schema (storage, run
    queue, concurrency, run monitoring, ...), then the `config` of every class it names (run
    launcher, run coordinator, compute logs, ...) against that class's `config_type()`. Empty
    when valid."""
    try:
        config, _ = dagster_instance_config(home)
    except dg.DagsterInvalidConfigError as error:
        return [e.message for e in error.errors] or [str(error)]
    errors = []
    for key, value in config.items():
        if isinstance(value, Mapping) and {"module", "class"} <= set(value):
            cls = getattr(importlib.import_module(value["module"]), value["class"])
            errors += [f"{key}: {m}" for m in config_errors(cls.config_type(), value.get("config") or {})]
    return errors


# The celery executor (dq_assets.executors, dq_assets.celery_app): what a step's task carries, and
# a failed task told to the run as the failure of its step.
def step_keys_and_run(execute_step_args_packed) -> tuple[list[str], str]:
    """(the step keys, the run id) of dagster-celery's packed execute_plan arguments."""
    args = unpack_value(execute_step_args_packed, as_type=ExecuteStepArgs)
    return list(args.step_keys_to_execute or []), args.run_id


def step_failure_event(plan_context, step, exc_info, message: str) -> str:
    """A STEP_FAILURE event of `step` for the error `exc_info`, serialized as an executor's
    step function returns its events."""
    error = serializable_error_info_from_exc_info(exc_info)
    return serialize_value(DagsterEvent.step_failure_event(
        step_context=plan_context.for_step(step),
        step_failure_data=StepFailureData(error=error, user_failure_data=None), message=message))
