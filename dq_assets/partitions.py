"""The daily partitions every asset, check, sensor and schedule shares, how a backfill of them is
split into runs, and the order across days that Dagster must keep when it is."""

import dagster as dg

from dq_assets.settings import backfill_run_days, partitions_start

# Read once, when the code location loads (every asset's partitions are built from it): set
# DQ_PARTITIONS_START before `dagster dev` or `dagster asset materialize`. The last partition is
# today (UTC), so a day can be loaded as soon as it lands.
PARTITIONS_START = partitions_start()
DAILY = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, end_offset=1)

# DQ_BACKFILL_RUN_DAYS, read when the code location loads: a backfill launched from the UI is one
# run (the default), or runs of that many days that the run queue may execute side by side. Every
# asset shares the policy, so a run holds every layer of its days.
_RUN_DAYS = backfill_run_days()
BACKFILL_POLICY = (dg.BackfillPolicy.multi_run(_RUN_DAYS) if _RUN_DAYS
                   else dg.BackfillPolicy.single_run())

# Partition D needs partition D-1 (the first partition needs nothing).
PREVIOUS_DAY = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1,
                                             allow_nonexistent_upstream_partitions=True)


def previous_days(*keys: dg.AssetKey) -> list[dg.AssetDep]:
    """Day D of the asset depends on day D-1 of each of `keys` (its own key: a chain of days).

    Declared where a day is checked against every earlier one (dq_assets.rules.history,
    reconciliation), and only when backfills are split into runs: then Dagster starts no run
    before the earlier days it needs are materialized, whatever the run queue does. A backfill
    of one run needs no such order (its steps run after every day of the range is in, and the
    days before it are checked by history_complete), and Dagster never puts an asset that
    depends on its own previous day in a run with the assets it reads, so declaring it there
    would split every backfill."""
    if not _RUN_DAYS:
        return []
    return [dg.AssetDep(key, partition_mapping=PREVIOUS_DAY) for key in keys]


def same_days(*keys: dg.AssetKey) -> list[dg.AssetKey]:
    """Day D of the asset comes after day D of each of `keys`, declared only when backfills are
    split (as previous_days). Where a day must follow another asset's previous day, depend on
    that asset's same day, which follows its own previous day: a previous-day mapping between
    two assets would make a backfill launched for a range of days (the UI's Materialize dialog)
    skip the asset's first day and target the day after the range, which may not have landed."""
    return list(keys) if _RUN_DAYS else []

# Every step that reads or writes the warehouse: Dagster's concurrency pool, whose limit (the
# instance's `concurrency: pools:`) bounds the warehouse connections of concurrent runs.
WAREHOUSE_POOL = "dq_warehouse"
