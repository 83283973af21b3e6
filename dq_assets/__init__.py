"""dq_assets: a Dagster data warehouse that is a trust gate for daily e-commerce data."""

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

from dq_assets.definitions import defs  # noqa: E402

__all__ = ["defs"]
