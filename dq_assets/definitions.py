"""The Dagster code location: every asset, check and resource of the warehouse."""

from __future__ import annotations

import warnings

import dagster as dg

# Single-run backfills and history-reaching partition mappings are deliberate here; Dagster
# flags both arguments as beta on every load.
for _beta in ("backfill_policy", "allow_nonexistent_upstream_partitions"):
    warnings.filterwarnings("ignore", message=f".*{_beta}.*", category=dg.BetaWarning)
warnings.filterwarnings("ignore", message=".*map_(resolved_)?asset_specs.*", category=dg.PreviewWarning)
# Partition-aware asset checks are what we rely on for per-partition results (preview in 1.13).
warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*", category=dg.PreviewWarning)
# Beta parameters Dagster itself passes when the CLI resolves a selection or builds the job.
for _beta in ("include_sources", "execution_type"):
    warnings.filterwarnings("ignore", message=f".*`{_beta}`.*", category=dg.BetaWarning)

# (the warehouse's modules after the filters: they define assets as they are imported)
from dq_assets.catalog.apply import with_catalog
from dq_assets.executors import build_executor
from dq_assets.layers.marts import mart_assets
from dq_assets.layers.quality import quality_assets
from dq_assets.layers.raw import raw_assets
from dq_assets.layers.staging import staging_assets
from dq_assets.operations.console import gate_console
from dq_assets.operations.failure_alerts import sensors
from dq_assets.operations.freshness import freshness_checks, freshness_sensor, with_freshness_policies
from dq_assets.operations.jobs import jobs
from dq_assets.operations.landing_runs import daily_warehouse_schedule, landing_sensor
from dq_assets.resources import build_resources, deployment_name

ALL_ASSETS = [*raw_assets, *staging_assets, *quality_assets, *mart_assets]

FRESHNESS_CHECKS = freshness_checks(ALL_ASSETS)

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=[FRESHNESS_CHECKS],
    jobs=jobs,
    schedules=[daily_warehouse_schedule],
    sensors=[*sensors, landing_sensor, freshness_sensor(FRESHNESS_CHECKS)],
    # DQ_DEPLOYMENT (local | aws) picks the resource map when the code location loads.
    resources=build_resources(),
    # Each failure once and a one-line gate summary on the console (dq_assets.operations.console).
    loggers={"console": gate_console},
    # DQ_EXECUTOR (dq_assets.executors): in process by default, one process for the whole run (no
    # per-step start-up, one DuckDB writer); multiprocess or k8s (a pod per step) on aws only.
    executor=build_executor(deployment_name()),
)
defs = with_freshness_policies(defs)
defs = with_catalog(defs)  # column schemas, table names, kinds, owners, code references
