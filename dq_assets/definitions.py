"""The Dagster code location: every asset, check and resource of the warehouse."""

from __future__ import annotations

import dagster as dg

from dq_assets.io_managers import WarehouseIOManager
from dq_assets.landing import LandingZone
from dq_assets.layers.marts import mart_assets
from dq_assets.layers.quality import quality_assets
from dq_assets.layers.raw import raw_assets
from dq_assets.layers.staging import staging_assets
from dq_assets.quality_store import DuckDBQualityStore


def build_resources() -> dict:
    """Embedded default: DuckDB for every layer; paths come from the environment at run time."""
    return {
        "io_manager": WarehouseIOManager(),
        "quality_store": DuckDBQualityStore(),
        "landing": LandingZone(),
    }


ALL_ASSETS = [*raw_assets, *staging_assets, *quality_assets, *mart_assets]

defs = dg.Definitions(
    assets=ALL_ASSETS,
    resources=build_resources(),
    # One process for the whole run: no per-step subprocess start-up, and one DuckDB writer.
    executor=dg.in_process_executor,
)
