"""Quality layer: the reconciliation of each partition and its gate.

`quality.recon_row_mismatches` reconciles orders, items and payments (dq_assets.rules.reconcile;
its checks: dq_assets.checks.reconciliation). `quality.partition_gate` runs after every raw and
staging step of its partition and reads the latest result of every check of that partition from
`quality.check_results`; the decision is dq_assets.checks.gate's: a partition passes unless an
ERROR-severity check failed, a gated asset has no check results, or a gated asset was rewritten
without its checks. The marts publish a partition only while the write marks the decision judged
are unchanged, so what changed after the gate is never published ungated.

`gate_passed` (a check on the gate, one result per partition, ERROR when the partition failed)
fails the run after recording its results, but blocks nothing: in a range, the marts publish
the partitions that passed and keep their contents for the others, so a range and day-by-day
runs leave the same tables, and every partition's record in Dagster is its own.
"""

from datetime import date

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dq_assets.checks.gate import (
    GATE_PASSED,
    GATED_ASSETS,
    NO_EXPIRED_SUPPRESSIONS,
    decision_metadata,
    expired_suppression_outcomes,
    gate_passed_outcomes,
    gate_rows,
)
from dq_assets.checks.reconciliation import RECON_CHECK_DEFS, RECON_SCHEMA, recon_outcomes
from dq_assets.checks.reporting import report
from dq_assets.contract.gate import load_gate_config
from dq_assets.keys import GATE_KEY, QUALITY_GROUP, RECON_KEY, quarantine_key, staging_key
from dq_assets.layers.common import mark_writes, partition_asset_args
from dq_assets.partitions import DAILY, WAREHOUSE_POOL, previous_days
from dq_assets.rules.history import day_ranges
from dq_assets.rules.reconcile import amount_totals, first_captured, row_mismatches
from dq_assets.storage.batches import PartitionBatches, PartitionReader, chunked, run_partition_keys
from dq_assets.storage.quality_store import QualityStore


@dg.asset(
    key=GATE_KEY,
    deps=GATED_ASSETS,
    description="The gate decision of each partition: passed unless an ERROR check failed, "
    "with the write marks it judged (the marts publish only that version).",
    check_specs=[NO_EXPIRED_SUPPRESSIONS.spec(DAILY)],
    **partition_asset_args(QUALITY_GROUP),
)
def partition_gate(context: dg.AssetExecutionContext, quality_store: QualityStore):
    keys = run_partition_keys(context)
    gate = gate_rows(quality_store.latest_check_results(keys), keys, context.run.run_id,
                     quality_store.latest_profiles(keys), quality_store.latest_writes(keys))
    decisions = {str(d["ingest_date"]): d for d in gate.to_pylist()}
    for key, d in decisions.items():
        if not d["gate_passed"]:
            context.log.error(f"gate FAILED for {key}: {d['error_failures']}")
    passed = [k for k, d in decisions.items() if d["gate_passed"]]
    if passed:
        context.log.info(f"gate passed for {day_ranges(passed)}")
    yield dg.Output(PartitionBatches.for_asset(
        context, GATE_KEY, lambda k: gate.filter(pc.equal(gate["ingest_date"], date.fromisoformat(k))),
        describe=lambda k: decision_metadata(decisions[k])))
    yield from report(context, quality_store, expired_suppression_outcomes(load_gate_config(), keys))


@dg.multi_asset_check(
    name="gate_passed",
    specs=[GATE_PASSED.spec(DAILY)],
    ins={"partition_gate": dg.AssetIn(key=GATE_KEY)},
    pool=WAREHOUSE_POOL,
)
def gate_passed(context, quality_store: QualityStore, partition_gate: pd.DataFrame):
    outcomes = gate_passed_outcomes(partition_gate, context.partition_keys)
    yield from report(context, quality_store, outcomes, log_failures=False)
    refused = [o.partition_key for o in outcomes if not o.passed]
    if refused:  # recorded above; now the run fails (its [ERROR] lines say why)
        raise dg.Failure(description=f"{len(refused)} of {len(outcomes)} partition(s) refused "
                         f"by the gate: {', '.join(refused)}", allow_retries=False)


@dg.asset(
    key=RECON_KEY,
    ins={
        "orders": dg.AssetIn(key=staging_key("orders")),
        "items": dg.AssetIn(key=staging_key("order_items")),
        "items_quarantine": dg.AssetIn(
            key=quarantine_key("order_items"),
            metadata={"columns": ["ingest_date", "order_id", "reject_reason"]}),
        # this and every earlier partition's payments, read by the step (see staging's refs)
        "payments": dg.AssetIn(
            key=staging_key("payments"), metadata={"columns": ["ingest_date", "order_id", "status"]}),
        "payments_quarantine": dg.AssetIn(key=quarantine_key("payments")),
    },
    description="Row-level reconciliation: orders whose amount differs from their items, "
    "payments of unknown orders (missing keys), paid/shipped/delivered orders with no "
    "captured payment yet (extra keys). One row per key.",
    check_specs=[d.spec(DAILY) for d in RECON_CHECK_DEFS],
    # Captured payments of every earlier day count (order_without_captured_payment): in a
    # backfill of several runs day D follows day D-1, which followed D-1's payments, so no day is
    # reconciled while an earlier day's payments are still being staged in another run.
    deps=previous_days(RECON_KEY),
    **partition_asset_args(QUALITY_GROUP),
)
def recon_row_mismatches(
    context: dg.AssetExecutionContext,
    quality_store: QualityStore,
    orders: PartitionReader,
    items: PartitionReader,
    items_quarantine: PartitionReader,
    payments: PartitionReader,
    payments_quarantine: PartitionReader,
):
    keys = run_partition_keys(context)
    captured = first_captured(payments.read_through(keys[-1]))
    cfg = load_gate_config()
    parts, outcomes = {}, []
    for chunk, here_orders in chunked(keys, orders):  # a few days at a time
        here_items, here_items_q = items.read_many(chunk), items_quarantine.read_many(chunk)
        mismatches = row_mismatches(here_orders, here_items, here_items_q, captured,
                                    payments_quarantine.read_many(chunk)).cast(RECON_SCHEMA)
        totals = amount_totals(here_orders, here_items, here_items_q)
        rows = mismatches.to_pylist()
        for partition_key in chunk:
            mine = [r for r in rows if r["ingest_date"].isoformat() == partition_key]
            parts[partition_key] = pa.Table.from_pylist(mine, schema=RECON_SCHEMA)
            outcomes += recon_outcomes(cfg, partition_key, mine, totals)
    mark_writes(context, quality_store, [RECON_KEY])
    yield dg.Output(PartitionBatches.for_asset(context, RECON_KEY, parts.pop))
    yield from report(context, quality_store, outcomes)


quality_assets = [recon_row_mismatches, partition_gate, gate_passed]
