"""What the daily assets of every layer share: their partitioning, where their partition is in
their table, and the write marks a step leaves before it writes."""

import dagster as dg

from dq_assets.partitions import BACKFILL_POLICY, DAILY, WAREHOUSE_POOL
from dq_assets.storage.batches import PARTITION_COLUMN
from dq_assets.storage.quality_store import QualityStore


def partition_metadata() -> dict:
    """The metadata that tells the IO managers and the catalog which column is the partition."""
    return {"partition_expr": PARTITION_COLUMN}


def partition_asset_args(group: str) -> dict:
    """What every daily asset of the warehouse shares."""
    return dict(
        partitions_def=DAILY,
        backfill_policy=BACKFILL_POLICY,
        pool=WAREHOUSE_POOL,
        group_name=group,
        metadata=partition_metadata(),
    )


def mark_writes(context, quality_store: QualityStore, asset_keys: list[dg.AssetKey]) -> None:
    """Before writing: mark the asset partitions this run is about to replace (see
    dq_assets.storage.quality_store), so a gate decision taken before is no longer theirs."""
    quality_store.mark_writes(context.run.run_id, [k.to_user_string() for k in asset_keys],
                              list(context.partition_keys))
