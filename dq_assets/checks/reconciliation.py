"""Reconciliation checks, on quality.recon_row_mismatches: order_amount_matches_items,
orders_have_captured_payment. The rows that fail them are found by dq_assets.rules.reconcile
(one row per mismatching key, `RECON_SCHEMA`); each check counts the rows of its kind.
"""

from datetime import date

import pyarrow as pa

from dq_assets.checks.model import SAMPLE_KEYS, CheckDef, Outcome, Recon
from dq_assets.contract.gate import GateConfig
from dq_assets.keys import RECON_KEY

SEVERITY_SCOPE = "recon"  # the gate.yaml prefix of these checks: `recon.<check>`

# quality.recon_row_mismatches: one row per mismatching key (dq_assets.rules.reconcile.RECONS)
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

RECON_CHECK_DEFS = [CheckDef(name, RECON_KEY, text) for name, (_, text) in RECON_CHECKS.items()]


def recon_outcomes(cfg: GateConfig, partition_key: str, rows: list[dict], totals: dict) -> list[Outcome]:
    """The checks of one partition: `rows`, its mismatch rows; `totals`, the amount totals by
    ingest date (dq_assets.rules.reconcile.amount_totals)."""
    n, items_total, orders_total = totals.get(date.fromisoformat(partition_key), (0, 0, 0))
    metric = {"order_amount_matches_items": [
        Recon("amount", f"{n} orders vs their order_items", items_total, orders_total)]}
    outcomes = []
    for check, (recon, _) in RECON_CHECKS.items():
        keys = [r["key"] for r in rows if r["recon"] == recon]
        outcomes.append(Outcome(
            check, RECON_KEY, partition_key, passed=not keys,
            severity=cfg.severity_of(SEVERITY_SCOPE, check), failing_rows=len(keys),
            observed=f"{len(keys)} {recon.replace('_', ' ')}", threshold="0",
            sample_keys=keys[:SAMPLE_KEYS],
            detail=next((r["detail"] for r in rows if r["recon"] == recon), ""),
            sql=(f"SELECT * FROM quality.recon_row_mismatches WHERE ingest_date = "
                 f"DATE '{partition_key}' AND recon = '{recon}'"),
            recons=metric.get(check, []),
        ))
    return outcomes
