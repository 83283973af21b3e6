"""The daily partitions every asset, check, sensor and schedule shares."""

import dagster as dg

from dq_assets.settings import partitions_start

# Read once, when the code location loads (every asset's partitions are built from it): set
# DQ_PARTITIONS_START before `dagster dev` or `dagster asset materialize`. The last partition is
# today (UTC), so a day can be loaded as soon as it lands.
PARTITIONS_START = partitions_start()
DAILY = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, end_offset=1)
