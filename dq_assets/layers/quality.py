"""Quality layer: the gate of each partition.

`quality.partition_gate` runs after every raw and staging step of its partition and reads the
latest result of every check of that partition from `quality.check_results`. A partition passes
unless an ERROR-severity check failed, a gated asset has no check results, or a gated asset was
rewritten without its checks (dq_assets.storage.quality_store: write marks). The decision records the
write marks it judged (`inputs_version`); the marts publish a partition only while those marks
are unchanged, so what changed after the gate is never published ungated.

`gate_passed` (a check on the gate, one result per partition, ERROR when the partition failed)
fails the run after recording its results, but blocks nothing: in a range, the marts publish
the partitions that passed and keep their contents for the others, so a range and day-by-day
runs leave the same tables, and every partition's record in Dagster is its own.
"""

import hashlib
import json
from datetime import date, datetime, timezone

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dq_assets.contract.tables import TABLE_NAMES
from dq_assets.rules.history import day_ranges
from dq_assets.storage.batches import PartitionBatches, PartitionReader, chunked, run_partition_keys
from dq_assets.checks.core import (
    ERROR, SAMPLE_KEYS, Outcome, Recon, load_gate_config, report,
)
from dq_assets.keys import GATE_KEY, LANDING_FILES_KEY, QUALITY_GROUP, RECON_KEY, quarantine_key, raw_key, staging_key
from dq_assets.layers.raw import mark_writes, partition_asset_args
from dq_assets.rules.reconcile import amount_totals, first_captured, row_mismatches
from dq_assets.contract.suppressions import load_suppressions, today_utc
from dq_assets.storage.quality_store import QualityStore
from dq_assets.partitions import DAILY

GATE_CHECK = "gate_passed"
# The gated assets that carry checks: each must have results of the run that last wrote it.
CHECKED_ASSETS = (
    [raw_key(t) for t in TABLE_NAMES]
    + [LANDING_FILES_KEY]
    + [staging_key(t) for t in TABLE_NAMES]
    + [RECON_KEY]
)
GATED_ASSETS = CHECKED_ASSETS + [quarantine_key(t) for t in TABLE_NAMES]
_CHECKED = {k.to_user_string() for k in CHECKED_ASSETS}
_GATED = {k.to_user_string() for k in GATED_ASSETS}

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
        # absolute amounts of the revenue rows held back in quarantine (dq_assets.rules.profiling)
        ("revenue_at_risk", pa.decimal128(38, 6)),
        ("run_id", pa.string()),
        # the write marks of the gated assets this decision judged (see inputs_version)
        ("inputs_version", pa.string()),
        ("decided_at", pa.timestamp("us", tz="UTC")),
    ]
)


def by_partition(records: list[dict]) -> dict[str, list[dict]]:
    """Records (write marks, profiles) grouped by their partition_key, once for a whole range."""
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(r["partition_key"], []).append(r)
    return out


def inputs_version(marks: list[dict]) -> str:
    """A fingerprint of the latest write mark of every gated asset of a partition (`marks`,
    that partition's): it changes whenever a step starts to rewrite any of them."""
    judged = sorted((w["asset_key"], w["run_id"], w["marked_at"].isoformat()) for w in marks
                    if w["asset_key"] in _GATED)
    return hashlib.sha256(json.dumps(judged).encode()).hexdigest()[:20]


def _unchecked_writes(results_here: list[dict], writes_here: list[dict]) -> list[str]:
    """Gated assets whose latest write mark is of another run than their latest check results:
    rewritten (or being rewritten) since they were checked."""
    checked_by = {}
    for r in sorted(results_here, key=lambda r: r["evaluated_at"]):
        checked_by[r["asset_key"]] = r["run_id"]
    return sorted(f"{w['asset_key']}:rewritten_after_its_checks" for w in writes_here
                  if w["asset_key"] in checked_by and w["run_id"] != checked_by[w["asset_key"]])


def gate_rows(
    results: pa.Table, partition_keys: list[str], run_id: str, profiles: list[dict] = (),
    writes: list[dict] = (),
) -> pa.Table:
    """One gate decision per partition from the latest check results, table profiles and write
    marks."""
    rows = []
    now = datetime.now(timezone.utc)
    # the marts' own checks come after the gate
    results_of = by_partition([r for r in results.to_pylist() if r["asset_key"] in _CHECKED])
    marks_of, profiles_of = by_partition(list(writes)), by_partition(list(profiles))
    for key in partition_keys:
        results_here = results_of.get(key, [])
        failed = [r for r in results_here if not r["passed"]]
        errors = [f"{r['asset_key']}:{r['check_name']}" for r in failed if r["severity"] == ERROR]
        warns = [f"{r['asset_key']}:{r['check_name']}" for r in failed if r["severity"] != ERROR]
        # a gated asset never checked has not passed anything
        checked = {r["asset_key"] for r in results_here}
        errors += [f"{a}:no_check_results" for a in sorted(_CHECKED - checked)]
        errors += _unchecked_writes(results_here, marks_of.get(key, []))
        mine = profiles_of.get(key, [])
        landed = sum(p["raw_rows"] for p in mine)
        staged = sum(p["staging_rows"] for p in mine)
        row_share = staged / landed if landed else 1.0
        check_share = (len(results_here) - len(failed)) / len(results_here) if results_here else 0.0
        at_risk = [_at_risk(p) for p in mine if p["revenue_raw"] is not None]
        rows.append(
            {
                "ingest_date": date.fromisoformat(key),
                "rows_landed": landed,
                "rows_staged": staged,
                "health_score": round((row_share + check_share) / 2, 4),
                "revenue_at_risk": sum(at_risk) if at_risk else None,
                "gate_passed": not errors,
                "checks_evaluated": len(results_here),
                "checks_passed": len(results_here) - len(failed),
                "error_failures": ", ".join(errors) or None,
                "warn_failures": ", ".join(warns) or None,
                "run_id": run_id,
                "inputs_version": inputs_version(marks_of.get(key, [])),
                "decided_at": now,
            }
        )
    return pa.Table.from_pylist(rows, schema=GATE_SCHEMA)


def _at_risk(profile: dict):
    # profiles written before revenue_at_risk was recorded: what they had
    risk = profile.get("revenue_at_risk")
    return risk if risk is not None else profile["revenue_raw"] - profile["revenue_clean"]


@dg.asset(
    key=GATE_KEY,
    deps=GATED_ASSETS,
    metadata={"partition_expr": "ingest_date"},
    description="The gate decision of each partition: passed unless an ERROR check failed, "
    "with the write marks it judged (the marts publish only that version).",
    check_specs=[
        dg.AssetCheckSpec(
            "no_expired_suppressions", asset=GATE_KEY, partitions_def=DAILY,
            description="Every entry of the suppressions file is still in force.",
        ),
    ],
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
    expired = [x for x in load_suppressions() if x.expired(today_utc())]
    yield from report(context, quality_store, [
        Outcome("no_expired_suppressions", GATE_KEY, key, passed=not expired,
                severity=load_gate_config().severity_of("gate", "no_expired_suppressions"),
                failing_rows=len(expired), observed=", ".join(x.label for x in expired) or "none",
                threshold="none expired", sample_keys=[x.ticket for x in expired][:SAMPLE_KEYS],
                detail="remove or renew these entries of the suppressions file" if expired else "")
        for key in keys
    ])


def decision_metadata(d: dict) -> dict:
    """A partition's decision as numbers the UI plots across partitions, and the reasons."""
    return {
        "gate_passed": d["gate_passed"],
        "health_score": d["health_score"],
        "revenue_at_risk": float(d["revenue_at_risk"] or 0),
        "checks_evaluated": d["checks_evaluated"],
        "checks_failed": d["checks_evaluated"] - d["checks_passed"],
        "error_failures": d["error_failures"] or "none",
        "warn_failures": d["warn_failures"] or "none",
    }


@dg.multi_asset_check(
    name="gate_passed",
    specs=[dg.AssetCheckSpec(
        GATE_CHECK, asset=GATE_KEY, partitions_def=DAILY, blocking=False,
        description="No ERROR-severity check of the partition failed. One result per partition; "
        "a failure fails the run after the marts published the partitions that passed (they "
        "read the decision themselves, so this check needs to block nothing).",
    )],
    ins={"partition_gate": dg.AssetIn(key=GATE_KEY)},
)
def gate_passed(context, quality_store: QualityStore, partition_gate: pd.DataFrame):
    rows = {str(d): (ok, errors, checks) for d, ok, errors, checks in zip(
        partition_gate["ingest_date"], partition_gate["gate_passed"],
        partition_gate["error_failures"], partition_gate["checks_evaluated"])}
    outcomes = []
    for key in context.partition_keys:
        ok, errors, checks = rows.get(key, (False, f"no gate decision for {key}", 0))
        errors = None if pd.isna(errors) else errors
        outcomes.append(Outcome(
            GATE_CHECK, GATE_KEY, key, passed=bool(ok), severity=ERROR,
            failing_rows=0 if ok else len(str(errors).split(", ")),
            observed="passed" if ok else f"refused: {errors}", threshold="no ERROR check failed",
            detail="" if ok else "the marts keep their previous contents for this partition",
            sql=f"SELECT * FROM quality.partition_gate WHERE ingest_date = DATE '{key}'",
        ))
    yield from report(context, quality_store, outcomes, log_failures=False)
    refused = [o.partition_key for o in outcomes if not o.passed]
    if refused:  # recorded above; now the run fails (its [ERROR] lines say why)
        raise dg.Failure(description=f"{len(refused)} of {len(outcomes)} partition(s) refused "
                         f"by the gate: {', '.join(refused)}", allow_retries=False)


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


quality_assets = [recon_row_mismatches, partition_gate, gate_passed]
