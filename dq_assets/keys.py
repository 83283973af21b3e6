"""Every asset key of the warehouse, and its groups, in one place. The asset key's first part is
the layer and the SQL schema its table lives in; its last part is the table's name."""

from __future__ import annotations

import dagster as dg

from dq_assets.contract.tables import TABLE_NAMES

# Groups: one per layer (the UI's asset groups, the jobs' selections)
RAW_GROUP, STAGING_GROUP, QUALITY_GROUP, MARTS_GROUP = "raw", "staging", "quality", "marts"
MARTS_SCHEMA = "marts"


def raw_key(table_name: str) -> dg.AssetKey:
    """The table as it landed: every column as text, plus lineage."""
    return dg.AssetKey(["raw", table_name])


def staging_key(table_name: str) -> dg.AssetKey:
    """The typed, valid, deduplicated rows."""
    return dg.AssetKey(["staging", table_name])


def quarantine_key(table_name: str) -> dg.AssetKey:
    """The rejected rows, each with its reject reason."""
    return dg.AssetKey(["quality", f"{table_name}_quarantine"])


LANDING_FILES_KEY = dg.AssetKey(["raw", "landing_files"])  # the landing zone's files and manifest
GATE_KEY = dg.AssetKey(["quality", "partition_gate"])  # the gate's decision per partition
RECON_KEY = dg.AssetKey(["quality", "recon_row_mismatches"])  # cross-table reconciliation

FACT_ORDERS_KEY = dg.AssetKey([MARTS_SCHEMA, "fact_orders"])
FACT_REVENUE_KEY = dg.AssetKey([MARTS_SCHEMA, "fact_revenue_daily"])
REVENUE_BY_ORDER_DATE_KEY = dg.AssetKey([MARTS_SCHEMA, "revenue_by_order_date"])
CUSTOMER_VERSIONS_KEY = dg.AssetKey([MARTS_SCHEMA, "customer_versions"])
DIM_CUSTOMERS_KEY = dg.AssetKey([MARTS_SCHEMA, "dim_customers"])
MART_KEYS = (FACT_ORDERS_KEY, FACT_REVENUE_KEY, REVENUE_BY_ORDER_DATE_KEY, CUSTOMER_VERSIONS_KEY,
             DIM_CUSTOMERS_KEY)

RAW_KEYS = tuple(raw_key(t) for t in TABLE_NAMES)
STAGING_KEYS = tuple(staging_key(t) for t in TABLE_NAMES)
QUARANTINE_KEYS = tuple(quarantine_key(t) for t in TABLE_NAMES)
