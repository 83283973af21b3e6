"""Marts: only data of partitions that passed the gate.

The partitioned marts run after every staging asset of their partition and its blocking
checks, so a failed gate leaves them as they were. The two current-state marts are rebuilt
from those gated partitions only, never from staging directly.
"""


from collections.abc import Callable
from datetime import date

import dagster as dg
import pandas as pd
import pyarrow as pa

from dq_assets.batches import PartitionBatches, PartitionReader, chunk_producer
from dq_assets.checks import evaluate_mart_totals, load_gate_config, report
from dq_assets.profiling import REVENUE_IN
from dq_assets.duck import query_tables, to_arrow, to_pandas
from dq_assets.layers.raw import partition_asset_args
from dq_assets.layers.quality import GATE_KEY, require_any_gated
from dq_assets.layers.staging import staging_key
from dq_assets.quality_store import QualityStore
from dq_assets.settings import DAILY

MARTS_GROUP = "marts"
PARTITIONED = {**partition_asset_args(MARTS_GROUP), "metadata": {"partition_expr": "ingest_date"}}

# The gate: a partitioned mart reads the gate decision of its partition(s) and refuses any
# that did not pass; in a run with the gate asset, its blocking check stops the marts first.
GATE_IN = dg.AssetIn(key=GATE_KEY)
# Current-state marts are rebuilt once per run, also in a run over a range of partitions.
CURRENT_STATE_POLICY = dg.BackfillPolicy.single_run()


def publish(context, gate: pd.DataFrame, source: PartitionReader, sql: str) -> PartitionBatches:
    """`sql` over the `source` rows of each partition that passed the gate (a chunk of days per
    query); the IO manager keeps the other partitions' previous contents."""
    passed = set(require_any_gated(context, gate))
    rows_of = chunk_producer(context.partition_keys, source,
                             lambda chunk, rows: query_tables(sql, source=rows))
    return PartitionBatches(context.partition_keys, only_passed(passed, rows_of))


def only_passed(passed: set[str], rows_of) -> Callable[[str], pa.Table | None]:
    """A producer of the rows of the partitions that passed; None (keep) for the others."""

    def produce(partition_key: str) -> pa.Table | None:
        rows = rows_of(partition_key)  # taken for every partition: a chunk hands them in order
        return rows if partition_key in passed else None

    return produce


def run_sql(sql: str, **frames: pd.DataFrame) -> pd.DataFrame:
    """Run DuckDB SQL over the given frames (by name) and return an Arrow-backed frame."""
    return to_pandas(query_tables(sql, **{name: to_arrow(f) for name, f in frames.items()}))


@dg.asset(
    key=["marts", "fact_orders"],
    ins={"orders": dg.AssetIn(key=staging_key("orders")), "gate": GATE_IN},
    description="Orders received in each ingest date that passed the gate (latest version "
    "within the partition), with their UTC order_date.",
    **PARTITIONED,
)
def fact_orders(
    context: dg.AssetExecutionContext, orders: PartitionReader, gate: pd.DataFrame
) -> PartitionBatches:
    return publish(context, gate, orders, """
        SELECT ingest_date, order_id, customer_id, order_ts,
               CAST(order_ts AS DATE) AS order_date, status, currency, amount, updated_at
        FROM source ORDER BY order_id""")


FACT_REVENUE_KEY = dg.AssetKey(["marts", "fact_revenue_daily"])


@dg.asset(
    key=FACT_REVENUE_KEY,
    ins={
        "fact_orders": dg.AssetIn(key=["marts", "fact_orders"]),
        "orders": dg.AssetIn(key=staging_key("orders")),
        "gate": GATE_IN,
    },
    description="Per ingest_date, order_date (UTC) and currency: distinct orders received in "
    "that partition and the revenue of those paid, shipped or delivered.",
    check_specs=[
        dg.AssetCheckSpec(
            "matches_staging", asset=FACT_REVENUE_KEY, blocking=True, partitions_def=DAILY,
            description="Order count and revenue per currency equal staging.orders'.",
        )
    ],
    **PARTITIONED,
)
def fact_revenue_daily(
    context: dg.AssetExecutionContext,
    quality_store: QualityStore,
    fact_orders: PartitionReader,
    orders: PartitionReader,
    gate: pd.DataFrame,
):
    passed = set(require_any_gated(context, gate))
    cfg = load_gate_config()
    outcomes = []

    def revenue_of_chunk(chunk: list[str], facts_rows: pa.Table) -> pa.Table:
        facts = query_tables(f"""
            SELECT ingest_date, order_date, currency,
                   count(DISTINCT order_id) AS order_count,
                   coalesce(sum(amount) FILTER (WHERE status IN {REVENUE_IN}), 0) AS revenue
            FROM fact_orders GROUP BY ALL ORDER BY ALL""", fact_orders=facts_rows)
        staged = query_tables(f"""SELECT ingest_date, currency, count(DISTINCT order_id) AS order_count,
                                  sum(amount) FILTER (WHERE status IN {REVENUE_IN}) AS revenue
                           FROM orders GROUP BY ALL""", orders=orders.read_many(chunk))
        in_mart = query_tables("""SELECT ingest_date, currency, sum(order_count) AS order_count,
                                         sum(revenue) AS revenue
                           FROM facts GROUP BY ALL""", facts=facts)
        for partition_key in chunk:
            if partition_key in passed:
                outcomes.append(evaluate_mart_totals(
                    FACT_REVENUE_KEY, partition_key, cfg,
                    _by_currency(staged, partition_key), _by_currency(in_mart, partition_key)))
        return facts

    facts_of = chunk_producer(context.partition_keys, fact_orders, revenue_of_chunk)
    yield dg.Output(PartitionBatches(context.partition_keys, only_passed(passed, facts_of)))
    yield from report(context, quality_store, outcomes)


def _by_currency(totals: pa.Table, partition_key: str) -> dict:
    day = date.fromisoformat(partition_key)
    return {r["currency"]: (int(r["order_count"]), r["revenue"] if r["revenue"] is not None else 0)
            for r in totals.to_pylist() if r["ingest_date"] == day}


@dg.asset(
    key=["marts", "revenue_by_order_date"],
    ins={"fact_orders": dg.AssetIn(key=["marts", "fact_orders"])},
    group_name=MARTS_GROUP,
    backfill_policy=CURRENT_STATE_POLICY,
    description="Revenue by order_date and currency over the current state of every order in "
    "all gated partitions: a re-sent order replaces its earlier version (newer updated_at, "
    "then later ingest date), so no order is counted twice.",
)
def revenue_by_order_date(fact_orders: pd.DataFrame) -> pd.DataFrame:
    return run_sql(
        f"""WITH current_orders AS (
                SELECT * FROM fact_orders
                QUALIFY row_number() OVER (PARTITION BY order_id
                                           ORDER BY updated_at DESC, ingest_date DESC) = 1)
            SELECT order_date, currency,
                   count(*) AS order_count,
                   coalesce(sum(amount) FILTER (WHERE status IN {REVENUE_IN}), 0) AS revenue
            FROM current_orders GROUP BY ALL ORDER BY ALL""",
        fact_orders=fact_orders,
    )


@dg.asset(
    key=["marts", "customer_versions"],
    ins={"customers": dg.AssetIn(key=staging_key("customers")), "gate": GATE_IN},
    description="Customer versions received in each ingest date that passed the gate: the "
    "input of the SCD2 dimension.",
    **PARTITIONED,
)
def customer_versions(
    context: dg.AssetExecutionContext, customers: PartitionReader, gate: pd.DataFrame
) -> PartitionBatches:
    return publish(context, gate, customers, "SELECT * FROM source")


@dg.asset(
    key=["marts", "dim_customers"],
    ins={"versions": dg.AssetIn(key=["marts", "customer_versions"])},
    group_name=MARTS_GROUP,
    backfill_policy=CURRENT_STATE_POLICY,
    description="Customers as SCD type 2: one row per change of email, name, country or "
    "signup, valid_from = its updated_at, valid_to = the next version's (exclusive), "
    "is_current for the latest. Late versions slot into history by updated_at.",
)
def dim_customers(versions: pd.DataFrame) -> pd.DataFrame:
    return run_sql(
        """WITH one_per_instant AS (  -- the same version re-sent: keep the latest received
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
           FROM changes ORDER BY customer_id, valid_from""",
        versions=versions,
    )


mart_assets = [fact_orders, fact_revenue_daily, revenue_by_order_date, customer_versions, dim_customers]
