"""Quality layer: the gate of each partition.

`quality.partition_gate` runs after every raw and staging step of its partition and reads the
latest result of every check of that partition from `quality.check_results`. Its blocking
check `gate_passed` fails with ERROR when any ERROR-severity check failed, which stops the
marts downstream and makes the run (and `dagster asset materialize`) fail.
"""

from datetime import date

import dagster as dg
import pandas as pd
import pyarrow as pa

from dq_assets.contracts import TABLE_NAMES
from dq_assets.batches import PartitionReader, chunked
from dq_assets.checks import (
    SAMPLE_KEYS, Outcome, Recon, load_gate_config, partition_results, per_partition_events, report,
)
from dq_assets.duck import to_pandas
from dq_assets.layers.raw import LANDING_FILES_KEY, partition_asset_args, raw_key
from dq_assets.layers.staging import quarantine_key, staging_key
from dq_assets.reconcile import amount_totals, first_captured, row_mismatches
from dq_assets.suppressions import load_suppressions, today_utc
from dq_assets.quality_store import QualityStore
from dq_assets.settings import DAILY

GATE_KEY = dg.AssetKey(["quality", "partition_gate"])
RECON_KEY = dg.AssetKey(["quality", "recon_row_mismatches"])
GATE_CHECK = "gate_passed"
GATED_ASSETS = (
    [raw_key(t) for t in TABLE_NAMES]
    + [LANDING_FILES_KEY]
    + [staging_key(t) for t in TABLE_NAMES]
    + [quarantine_key(t) for t in TABLE_NAMES]
    + [RECON_KEY]
)

GATE_SCHEMA = pa.schema(
    [
        ("ingest_date", pa.date32()),
        ("gate_passed", pa.bool_()),
        ("checks_evaluated", pa.int64()),
        ("checks_passed", pa.int64()),
        ("error_failures", pa.string()),  # asset:check of every failed ERROR check
        ("warn_failures", pa.string()),
        ("rows_landed", pa.int64()),
        ("rows_staged", pa.int64()),
        # mean of the share of landed rows that reached staging and the share of checks passed
        ("health_score", pa.float64()),
        # revenue of the orders as landed minus the revenue that reached staging
        ("revenue_at_risk", pa.decimal128(38, 6)),
        ("run_id", pa.string()),
    ]
)


def gate_rows(
    results: pa.Table, partition_keys: list[str], run_id: str, profiles: list[dict] = ()
) -> pa.Table:
    """One gate decision per partition from the latest check results and table profiles."""
    rows = []
    by_partition: dict[str, list[dict]] = {k: [] for k in partition_keys}
    gated = {k.to_user_string() for k in GATED_ASSETS}
    for r in results.to_pylist():
        if r["asset_key"] in gated:  # the marts' own checks come after the gate
            by_partition.setdefault(r["partition_key"], []).append(r)
    for key in partition_keys:
        results_here = by_partition[key]
        failed = [r for r in results_here if not r["passed"]]
        errors = [f"{r['asset_key']}:{r['check_name']}" for r in failed if r["severity"] == "ERROR"]
        warns = [f"{r['asset_key']}:{r['check_name']}" for r in failed if r["severity"] != "ERROR"]
        mine = [p for p in profiles if p["partition_key"] == key]
        landed = sum(p["raw_rows"] for p in mine)
        staged = sum(p["staging_rows"] for p in mine)
        row_share = staged / landed if landed else 1.0
        check_share = (len(results_here) - len(failed)) / len(results_here) if results_here else 0.0
        at_risk = [p["revenue_raw"] - p["revenue_clean"] for p in mine if p["revenue_raw"] is not None]
        rows.append(
            {
                "ingest_date": pd.Timestamp(key).date(),
                "rows_landed": landed,
                "rows_staged": staged,
                "health_score": round((row_share + check_share) / 2, 4),
                "revenue_at_risk": sum(at_risk) if at_risk else None,
                # a partition whose checks never ran has not passed anything
                "gate_passed": bool(results_here) and not errors,
                "checks_evaluated": len(results_here),
                "checks_passed": len(results_here) - len(failed),
                "error_failures": ", ".join(errors) or None,
                "warn_failures": ", ".join(warns) or None,
                "run_id": run_id,
            }
        )
    return pa.Table.from_pylist(rows, schema=GATE_SCHEMA)


@dg.asset(
    key=GATE_KEY,
    deps=GATED_ASSETS,
    metadata={"partition_expr": "ingest_date"},
    description="The gate decision of each partition: passed unless an ERROR check failed.",
    check_specs=[
        dg.AssetCheckSpec(
            GATE_CHECK, asset=GATE_KEY, blocking=True, partitions_def=DAILY,
            description="No ERROR-severity check of the partition failed.",
        ),
        dg.AssetCheckSpec(
            "no_expired_suppressions", asset=GATE_KEY, partitions_def=DAILY,
            description="Every entry of the suppressions file is still in force.",
        ),
    ],
    **partition_asset_args("quality"),
)
def partition_gate(context: dg.AssetExecutionContext, quality_store: QualityStore):
    keys = list(context.partition_keys)
    gate = gate_rows(quality_store.latest_check_results(keys), keys, context.run.run_id,
                     quality_store.latest_profiles(keys))
    decisions = gate.to_pylist()
    failed = [d for d in decisions if not d["gate_passed"]]
    at_risk = [d["revenue_at_risk"] for d in decisions if d["revenue_at_risk"] is not None]
    yield dg.Output(
        to_pandas(gate),
        metadata={  # numeric, so the UI plots them across partitions
            "failed_partitions": len(failed),
            "health_score": min(d["health_score"] for d in decisions),
            "revenue_at_risk": float(sum(at_risk)) if at_risk else 0.0,
        },
    )
    for d in failed:
        context.log.error(
            f"gate FAILED for {d['ingest_date']}: {d['error_failures'] or 'no check results'}"
        )
    expired = [x for x in load_suppressions() if x.expired(today_utc())]
    yield from report(context, quality_store, [
        Outcome("no_expired_suppressions", GATE_KEY, key, passed=not expired,
                severity=load_gate_config().severity_of("gate", "no_expired_suppressions"),
                failing_rows=len(expired), observed=", ".join(x.label for x in expired) or "none",
                threshold="none expired", sample_keys=[x.ticket for x in expired][:SAMPLE_KEYS],
                detail="remove or renew these entries of the suppressions file" if expired else "")
        for key in keys
    ])
    # ERROR holds the marts back when no partition of the run passed; when some did, the marts
    # publish those and `every_partition_passed` fails the run afterwards.
    severity = dg.AssetCheckSeverity.ERROR if len(failed) == len(decisions) else dg.AssetCheckSeverity.WARN
    if per_partition_events(context):  # a range: one result per partition (see checks)
        yield from partition_results(
            context, [(str(d["ingest_date"]), gate_result([d], severity)) for d in decisions])
    else:
        yield gate_result(decisions, severity)


def gate_result(decisions: list[dict], severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    failed = [d for d in decisions if not d["gate_passed"]]
    return dg.AssetCheckResult(
        check_name=GATE_CHECK,
        passed=not failed,
        severity=severity,
        metadata={
            "failed_partitions": ", ".join(str(d["ingest_date"]) for d in failed) or "none",
            "error_failures": "; ".join(
                f"{d['ingest_date']}: {d['error_failures']}" for d in failed
            ) or "none",
            "checks_evaluated": sum(d["checks_evaluated"] for d in decisions),
        },
    )


RECON_SCHEMA = pa.schema(
    [("ingest_date", pa.date32()), ("recon", pa.string()), ("table_name", pa.string()),
     ("key", pa.string()), ("detail", pa.string())]
)
# check name -> (recon kind it counts, what it means)
RECON_CHECKS = {
    "order_amount_matches_items": (
        "order_amount_mismatch", "Every order's amount equals the sum of its items within 0.01."),
    "orders_have_captured_payment": (
        "order_without_captured_payment",
        "Paid, shipped and delivered orders have a captured payment in this or an earlier partition."),
}


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
    metadata={"partition_expr": "ingest_date"},
    description="Row-level reconciliation: orders whose amount differs from their items, "
    "payments of unknown orders (missing keys), paid/shipped/delivered orders with no "
    "captured payment yet (extra keys). One row per key.",
    check_specs=[
        dg.AssetCheckSpec(name, asset=RECON_KEY, description=text, partitions_def=DAILY)
        for name, (_, text) in RECON_CHECKS.items()
    ],
    **partition_asset_args("quality"),
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
    captured = first_captured(payments.read_through(context.partition_keys[-1]))
    cfg = load_gate_config()
    parts, outcomes = [], []
    for chunk, here_orders in chunked(context.partition_keys, orders):  # a few days at a time
        here_items, here_items_q = items.read_many(chunk), items_quarantine.read_many(chunk)
        mismatches = row_mismatches(here_orders, here_items, here_items_q, captured,
                                    payments_quarantine.read_many(chunk)).cast(RECON_SCHEMA)
        totals = amount_totals(here_orders, here_items, here_items_q)
        parts.append(mismatches)
        rows = mismatches.to_pylist()
        for partition_key in chunk:
            mine = [r for r in rows if r["ingest_date"].isoformat() == partition_key]
            outcomes += recon_outcomes(cfg, partition_key, mine, totals)
    table = pa.concat_tables(parts)
    yield dg.Output(to_pandas(table), metadata={"rows": table.num_rows})
    yield from report(context, quality_store, outcomes)


def recon_outcomes(cfg, partition_key: str, rows: list[dict], totals: dict) -> list[Outcome]:
    n, items_total, orders_total = totals.get(date.fromisoformat(partition_key), (0, 0, 0))
    metric = {"order_amount_matches_items": [
        Recon("amount", f"{n} orders vs their order_items", items_total, orders_total)]}
    outcomes = []
    for check, (recon, _) in RECON_CHECKS.items():
        keys = [r["key"] for r in rows if r["recon"] == recon]
        outcomes.append(Outcome(
            check, RECON_KEY, partition_key, passed=not keys,
            severity=cfg.severity_of("recon", check), failing_rows=len(keys),
            observed=f"{len(keys)} {recon.replace('_', ' ')}", threshold="0",
            sample_keys=keys[:SAMPLE_KEYS],
            detail=next((r["detail"] for r in rows if r["recon"] == recon), ""),
            sql=(f"SELECT * FROM quality.recon_row_mismatches WHERE ingest_date = "
                 f"DATE '{partition_key}' AND recon = '{recon}'"),
            recons=metric.get(check, []),
        ))
    return outcomes


def gated_partitions(gate: pd.DataFrame, partition_keys: list[str]) -> tuple[list[str], list[str]]:
    """(passed, refused) partitions by their latest gate decision. The marts publish the
    passed ones and keep their previous contents for the refused ones."""
    passed = {str(d) for d, ok in zip(gate["ingest_date"], gate["gate_passed"]) if ok}
    return ([k for k in partition_keys if k in passed], [k for k in partition_keys if k not in passed])


def require_any_gated(context, gate: pd.DataFrame) -> list[str]:
    """The partitions a mart may publish; a mart asked only for refused partitions fails."""
    passed, refused = gated_partitions(gate, list(context.partition_keys))
    if refused:
        context.log.warning(f"partition(s) {', '.join(refused)} did not pass the gate: "
                            "their mart contents stay as they were")
    if not passed:
        raise dg.Failure(
            description=f"partition(s) {', '.join(refused)} did not pass the gate; "
            "the marts keep their previous contents"
        )
    return passed


@dg.asset_check(
    asset=GATE_KEY,
    name="every_partition_passed",
    partitions_def=DAILY,
    blocking=False,
    description="Fails the run when any partition of it failed its gate, after the marts have "
    "published the partitions that passed (so a range and day-by-day runs agree).",
)
def every_partition_passed(partition_gate: pd.DataFrame) -> dg.AssetCheckResult:
    failed = sorted(str(d) for d, ok in zip(partition_gate["ingest_date"], partition_gate["gate_passed"]) if not ok)
    if failed:
        raise dg.Failure(description=f"gate FAILED for {', '.join(failed)}: the run fails and the "
                         "marts keep their previous contents for these partitions")
    return dg.AssetCheckResult(passed=True, metadata={"partitions": len(partition_gate)})


quality_assets = [recon_row_mismatches, partition_gate, every_partition_passed]
