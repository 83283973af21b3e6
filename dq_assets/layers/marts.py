"""Marts: only data of partitions that passed the gate, in the version the gate judged.

One step publishes every mart. It reads the gate decision of each partition of the run and
publishes a partition only when the decision passed and the partition's write marks are still
the ones the gate judged (dq_assets.storage.quality_store); the others keep their previous contents.

What Dagster records is what was published. The marts are written by the step itself (through
the deployment's store), all of a run in one transaction, and a partition gets a materialization, with its own figures, only
when it was published: a refused one gets none, so in the failed run it shows as failed, not
as materialized. (An output of a range run would give every partition of the range one.) The
two current-state marts are rebuilt as a whole from every published day, never from staging;
their daily partitions say which days they include.
"""


from collections.abc import Iterator
from datetime import date

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dq_assets.catalog.docs import published_column_schema
from dq_assets.checks.gate import by_partition, inputs_version
from dq_assets.checks.marts import (
    MATCHES_STAGING,
    REVENUE_MONITOR,
    mart_totals_outcomes,
    revenue_monitor_outcomes,
)
from dq_assets.checks.reporting import check_output, report
from dq_assets.contract.gate import load_gate_config
from dq_assets.keys import (
    CUSTOMER_VERSIONS_KEY,
    DIM_CUSTOMERS_KEY,
    FACT_ORDERS_KEY,
    FACT_REVENUE_KEY,
    GATE_KEY,
    MARTS_GROUP,
    MARTS_SCHEMA,
    REVENUE_BY_ORDER_DATE_KEY,
    staging_key,
)
from dq_assets.layers.common import partition_metadata
from dq_assets.partitions import BACKFILL_POLICY, DAILY, WAREHOUSE_POOL
from dq_assets.rules.profiling import REVENUE_IN
from dq_assets.storage.batches import (
    PARTITION_COLUMN,
    PartitionBatches,
    PartitionReader,
    chunk_producer,
    run_partition_keys,
)
from dq_assets.storage.column_schema import store_of
from dq_assets.storage.duckdb.warehouse import partition_query, query_tables
from dq_assets.storage.quality_store import Publication, QualityStore

FACT_ORDERS_SQL = """
    SELECT ingest_date, order_id, customer_id, order_ts,
           CAST(order_ts AS DATE) AS order_date, status, currency, amount, updated_at
    FROM source ORDER BY order_id"""

FACT_REVENUE_SQL = f"""
    SELECT ingest_date, order_date, currency,
           count(DISTINCT order_id) AS order_count,
           coalesce(sum(amount) FILTER (WHERE status IN {REVENUE_IN}), 0) AS revenue
    FROM fact_orders GROUP BY ALL ORDER BY ALL"""

REVENUE_BY_ORDER_DATE_SQL = f"""
    WITH current_orders AS (
        SELECT * FROM fact_orders
        QUALIFY row_number() OVER (PARTITION BY order_id
                                   ORDER BY updated_at DESC, ingest_date DESC) = 1)
    SELECT order_date, currency,
           count(*) AS order_count,
           coalesce(sum(amount) FILTER (WHERE status IN {REVENUE_IN}), 0) AS revenue
    FROM current_orders GROUP BY ALL ORDER BY ALL"""

DIM_CUSTOMERS_SQL = """
    WITH one_per_instant AS (  -- the same version re-sent: keep the latest received
        SELECT * FROM versions
        QUALIFY row_number() OVER (PARTITION BY customer_id, updated_at
                                   ORDER BY ingest_date DESC, source_line DESC) = 1),
    changes AS (  -- a version that changes nothing is not a new version
        SELECT * FROM one_per_instant
        QUALIFY {'e': email, 'n': full_name, 'c': country_code, 's': signup_ts}
                IS DISTINCT FROM lag({'e': email, 'n': full_name, 'c': country_code,
                                      's': signup_ts})
                OVER (PARTITION BY customer_id ORDER BY updated_at))
    SELECT customer_id, email, full_name, country_code, signup_ts,
           updated_at AS valid_from,
           lead(updated_at) OVER (PARTITION BY customer_id ORDER BY updated_at) AS valid_to,
           valid_to IS NULL AS is_current,
           ingest_date AS received_on
    FROM changes ORDER BY customer_id, valid_from"""


def _partitioned(key: dg.AssetKey, description: str, deps) -> dg.AssetSpec:
    return dg.AssetSpec(key, partitions_def=DAILY, skippable=True, group_name=MARTS_GROUP, deps=deps,
                        metadata=partition_metadata(), description=description)


def _current_state(key: dg.AssetKey, description: str, deps) -> dg.AssetSpec:
    """A mart over every published day, rebuilt as a whole. Its daily partitions say which
    days it includes: partition D is materialized when D's gated data went into it, so a
    refused day is not shown as part of the current state, and every mart of the warehouse
    shares one partitioning (a backfill of everything is one run)."""
    return dg.AssetSpec(key, partitions_def=DAILY, skippable=True, group_name=MARTS_GROUP, deps=deps,
                        description=description + " Partition D: D's gated data is included.")


MART_SPECS = [
    _partitioned(FACT_ORDERS_KEY, "Orders received in each ingest date that passed the gate "
                 "(latest version within the partition), with their UTC order_date.",
                 [staging_key("orders"), GATE_KEY]),
    _partitioned(FACT_REVENUE_KEY, "Per ingest_date, order_date (UTC) and currency: distinct "
                 "orders received in that partition and the revenue of those paid, shipped or "
                 "delivered.", [FACT_ORDERS_KEY]),
    _current_state(REVENUE_BY_ORDER_DATE_KEY, "Revenue by order_date and currency over the "
                   "current state of every order in all gated partitions: a re-sent order "
                   "replaces its earlier version (newer updated_at, then later ingest date), so "
                   "no order is counted twice.", [FACT_ORDERS_KEY]),
    _partitioned(CUSTOMER_VERSIONS_KEY, "Customer versions received in each ingest date that "
                 "passed the gate: the input of the SCD2 dimension.",
                 [staging_key("customers"), GATE_KEY]),
    _current_state(DIM_CUSTOMERS_KEY, "Customers as SCD type 2: one row per change of email, "
                   "name, country or signup, valid_from = its updated_at, valid_to = the next "
                   "version's (exclusive), is_current for the latest. Late versions slot into "
                   "history by updated_at.", [CUSTOMER_VERSIONS_KEY]),
]


def publication(gate: pd.DataFrame, partition_keys: list[str], writes: list[dict],
                run_id: str) -> tuple[list[str], dict[str, str], list[str]]:
    """(publishable partitions, refused partition -> why, refused partitions this run's gate
    has not already explained). A partition is publishable when its latest gate decision passed
    and its gated assets were not (re)written since: the marts publish only the version that
    passed the gate."""
    decided = {str(row["ingest_date"]): row for row in gate.to_dict("records")}
    marks_of = by_partition(writes)
    passed, refused, unexplained = [], {}, []
    for key in partition_keys:
        d = decided.get(key)
        if d is None:
            refused[key] = "it has no gate decision: materialize quality/partition_gate for it first"
        elif not d["gate_passed"]:
            refused[key] = f"the gate refused it ({d['error_failures']})"
            if d["run_id"] == run_id:
                continue  # this run's gate_passed check fails the run and says why
        elif pd.isna(d.get("inputs_version")) or d["inputs_version"] != inputs_version(marks_of.get(key, [])):
            refused[key] = _changed_since(d, marks_of.get(key, []))
        else:
            passed.append(key)
            continue
        unexplained.append(key)
    return passed, refused, unexplained


def _changed_since(decision: dict, writes_here: list[dict]) -> str:
    decided_at = decision.get("decided_at")
    if pd.isna(decided_at):
        return "its gate decision predates version tracking: materialize the partition again"
    newer = sorted({(w["asset_key"], w["run_id"]) for w in writes_here
                    if w["marked_at"] > pd.Timestamp(decided_at).to_pydatetime()})
    what = ", ".join(f"{asset} by run {run[:8]}" for asset, run in newer) or "its write marks"
    return (f"its data changed after the gate decision of run {str(decision['run_id'])[:8]} "
            f"({what}); materialize the partition again so the gate judges this version")


@dg.multi_asset(
    name="publish_marts",
    specs=MART_SPECS,
    ins={
        "orders": dg.AssetIn(key=staging_key("orders")),
        "customers": dg.AssetIn(key=staging_key("customers")),
        "gate": dg.AssetIn(key=GATE_KEY),
    },
    check_specs=[MATCHES_STAGING.spec(DAILY), REVENUE_MONITOR.spec(DAILY)],
    backfill_policy=BACKFILL_POLICY,
    pool=WAREHOUSE_POOL,
    can_subset=False,
)
def publish_marts(
    context: dg.AssetExecutionContext,
    quality_store: QualityStore,
    orders: PartitionReader,
    customers: PartitionReader,
    gate: pd.DataFrame,
):
    keys = run_partition_keys(context)
    passed, refused, unexplained = publication(gate, keys, quality_store.latest_writes(keys),
                                               context.run.run_id)
    for key, why in refused.items():
        context.log.warning(f"marts not published for {key}: {why}; they keep their previous contents")
    outcomes, records = [], []
    if passed:
        # Every mart of the run in one transaction: a crash leaves all of them as they were
        # or all of them published. Dagster records them once they are.
        with quality_store.publishing() as marts:
            outcomes = _publish_orders(context, marts, orders, passed, records)
            _publish_customers(context, marts, customers, passed, records)
    yield from records
    yield from report(context, quality_store, outcomes)
    for check in (MATCHES_STAGING, REVENUE_MONITOR):
        if not any(o.check == check.name for o in outcomes):
            # nothing published: the check has nothing to say, but its output is due
            yield check_output(context, check.key)
    if unexplained:
        raise dg.Failure(
            description="marts not published for " + "; ".join(f"{k}: {refused[k]}" for k in unexplained),
            allow_retries=False)


def _publish_orders(context, store: Publication, orders: PartitionReader, passed: list[str],
                    records: list) -> list:
    """fact_orders and fact_revenue_daily of the passed partitions that agree with staging,
    then revenue_by_order_date over every published day. Returns the matches_staging and
    monitor_revenue outcomes."""
    cfg = load_gate_config()
    outcomes, revenue_rows = [], {}

    def chunk_facts(chunk: list[str], rows: pa.Table) -> pa.Table:
        facts = query_tables(FACT_ORDERS_SQL, source=rows)
        revenue = query_tables(FACT_REVENUE_SQL, fact_orders=facts)
        for outcome in mart_totals_outcomes(cfg, chunk, orders=rows, revenue=revenue):
            outcomes.append(outcome)
            if outcome.passed:
                revenue_rows[outcome.partition_key] = _day(revenue, outcome.partition_key)
        return facts

    facts_of = chunk_producer(passed, orders, chunk_facts)

    def fact_orders_of(key: str) -> pa.Table | None:
        rows = facts_of(key)  # taken for every partition: a chunk hands them out in order
        return rows if key in revenue_rows else None  # a mart that disagrees is not published

    records += _write(context, store, FACT_ORDERS_KEY, PartitionBatches(passed, fact_orders_of))
    published = [k for k in passed if k in revenue_rows]
    records += _write(context, store, FACT_REVENUE_KEY, PartitionBatches(
        published, revenue_rows.get, describe=lambda k: _revenue_metadata(revenue_rows[k])))
    if published:
        everything = store.read_table(MARTS_SCHEMA, "fact_orders")
        current = query_tables(REVENUE_BY_ORDER_DATE_SQL, fact_orders=everything)
        records += _replace(context, store, REVENUE_BY_ORDER_DATE_KEY, current, published)
        outcomes += revenue_monitor_outcomes(cfg, published, store.read_table(MARTS_SCHEMA, "fact_revenue_daily"))
    return outcomes


def _revenue_metadata(revenue: pa.Table) -> dict:
    return {"order_count": int(pc.sum(revenue["order_count"]).as_py() or 0),
            "revenue": float(pc.sum(revenue["revenue"]).as_py() or 0)}


def _publish_customers(context, store: Publication, customers: PartitionReader, passed: list[str],
                       records: list) -> None:
    """customer_versions of the passed partitions, then dim_customers over every published day."""
    versions_of = chunk_producer(passed, customers, lambda chunk, rows: rows)
    records += _write(context, store, CUSTOMER_VERSIONS_KEY, PartitionBatches(passed, versions_of))
    everything = store.read_table(MARTS_SCHEMA, "customer_versions")
    dim = query_tables(DIM_CUSTOMERS_SQL, versions=everything)
    records += _replace(context, store, DIM_CUSTOMERS_KEY, dim, passed)


def _write(context, store: Publication, key: dg.AssetKey, batches: PartitionBatches) -> list:
    """Replace the partitions `batches` produces; the records of each, with its own metadata."""
    table = key.path[-1]
    store.replace_partitions(MARTS_SCHEMA, table, PARTITION_COLUMN, batches)
    published = batches.finish(lambda k: {"Query": partition_query(MARTS_SCHEMA, table, PARTITION_COLUMN, k)})
    return list(_record(context, key, published, _table_metadata(key, batches.schema, store)))


def _replace(context, store: Publication, key: dg.AssetKey, data: pa.Table, included: list[str]) -> list:
    """Replace a current-state mart as a whole, now including the days `included`."""
    table = key.path[-1]
    store.replace_table(MARTS_SCHEMA, table, data)
    meta = {"dagster/row_count": data.num_rows, "Query": f"SELECT * FROM {MARTS_SCHEMA}.{table}"}
    return list(_record(context, key, {k: meta for k in included}, _table_metadata(key, data.schema, store)))


def _table_metadata(key: dg.AssetKey, schema: pa.Schema | None, store: Publication) -> dict:
    """What every materialization of a mart says of its table: its name and the columns written."""
    return {"dagster/table_name": f"{MARTS_SCHEMA}.{key.path[-1]}",
            **published_column_schema(key, schema, store_of(store))}


def _record(context, key: dg.AssetKey, published: dict[str, dict], columns: dict) -> Iterator:
    """A materialization for each published partition, with its own metadata: when every
    partition of the run was published, as Dagster's own record of the output (so the asset's
    checks run after it); otherwise one event per published partition and none for the refused
    ones (an output would give every partition of the range one)."""
    if list(published) == list(context.partition_keys):
        for partition_key, meta in published.items():
            context.add_asset_metadata(meta, asset_key=key, partition_key=partition_key)
        yield dg.MaterializeResult(asset_key=key, metadata=columns)
        return
    for partition_key, meta in published.items():
        yield dg.AssetMaterialization(asset_key=key, partition=partition_key, metadata={**meta, **columns})


def _day(data: pa.Table, partition_key: str) -> pa.Table:
    day = date.fromisoformat(partition_key)
    return data.filter(pc.equal(data[PARTITION_COLUMN], pa.scalar(day, pa.date32())))


mart_assets = [publish_marts]
