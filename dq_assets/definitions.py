"""The Dagster code location: every asset, check and resource of the warehouse."""

from __future__ import annotations

import dagster as dg

from dq_assets.layers.marts import mart_assets
from dq_assets.layers.quality import quality_assets
from dq_assets.layers.raw import raw_assets
from dq_assets.layers.staging import staging_assets
from dq_assets.resources import build_resources

ALL_ASSETS = [*raw_assets, *staging_assets, *quality_assets, *mart_assets]

defs = dg.Definitions(
    assets=ALL_ASSETS,
    # DQ_DEPLOYMENT (local | aws) picks the resource map when the code location loads.
    resources=build_resources(),
    # One process for the whole run: no per-step subprocess start-up, and one DuckDB writer.
    executor=dg.in_process_executor,
)
