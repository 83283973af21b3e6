"""The marts' check, on marts.fact_revenue_daily: matches_staging. Evaluated by the publishing
step on each partition before it publishes it (blocking: a partition whose mart disagrees with
staging is not published).
"""

from datetime import date
from decimal import Decimal

import dagster as dg
import pyarrow as pa

from dq_assets.checks.model import CheckDef, Outcome, Recon, partition_filter
from dq_assets.contract.gate import GateConfig
from dq_assets.keys import FACT_REVENUE_KEY
from dq_assets.rules.profiling import REVENUE_IN
from dq_assets.storage.duckdb.warehouse import query_tables

SEVERITY_SCOPE = "marts"  # the gate.yaml prefix of this check: `marts.matches_staging`

MATCHES_STAGING = CheckDef(
    "matches_staging", FACT_REVENUE_KEY,
    "Order count and revenue per currency equal staging.orders'; a partition that does not "
    "agree is not published.", blocking=True)


STAGED_TOTALS_SQL = f"""
    SELECT ingest_date, currency, count(DISTINCT order_id) AS order_count,
           sum(amount) FILTER (WHERE status IN {REVENUE_IN}) AS revenue
    FROM orders GROUP BY ALL"""

MART_TOTALS_SQL = """
    SELECT ingest_date, currency, sum(order_count) AS order_count, sum(revenue) AS revenue
    FROM facts GROUP BY ALL"""


def mart_totals_outcomes(cfg: GateConfig, partition_keys: list[str], orders: pa.Table,
                         revenue: pa.Table) -> list[Outcome]:
    """matches_staging of each partition of a chunk: its staging `orders` against the
    fact_revenue_daily rows made of them (`revenue`)."""
    staged = query_tables(STAGED_TOTALS_SQL, orders=orders)
    in_mart = query_tables(MART_TOTALS_SQL, facts=revenue)
    return [evaluate_mart_totals(MATCHES_STAGING.asset, key, cfg, _by_currency(staged, key),
                                 _by_currency(in_mart, key)) for key in partition_keys]


def evaluate_mart_totals(
    asset: dg.AssetKey, partition_key: str, cfg: GateConfig,
    staged: dict[str, tuple[int, Decimal]], in_mart: dict[str, tuple[int, Decimal]],
) -> Outcome:
    """Staging vs mart: order count and revenue per currency (currency -> (count, revenue))."""
    recons = []
    for currency in sorted(set(staged) | set(in_mart)):
        s_count, s_rev = staged.get(currency, (0, Decimal(0)))
        m_count, m_rev = in_mart.get(currency, (0, Decimal(0)))
        recons.append(Recon("order_count", f"orders/{currency} mart vs staging", s_count, m_count))
        recons.append(Recon("revenue", f"orders/{currency} mart vs staging", s_rev, m_rev))
    off = [r for r in recons if not r.agrees]
    return Outcome(
        MATCHES_STAGING.name, asset, partition_key, passed=not off,
        severity=cfg.severity_of(SEVERITY_SCOPE, MATCHES_STAGING.name), failing_rows=len(off),
        observed="; ".join(f"{r.scope} {r.metric}: {r.observed} vs {r.expected}" for r in off) or "equal",
        threshold="mart = staging per currency", recons=recons,
        sql=(f"SELECT currency, count(DISTINCT order_id), sum(amount) FILTER (WHERE status IN "
             f"{REVENUE_IN}) FROM staging.orders WHERE {partition_filter(partition_key)} "
             f"GROUP BY 1 -- vs marts.fact_revenue_daily"),
    )


def _by_currency(totals: pa.Table, partition_key: str) -> dict:
    day = date.fromisoformat(partition_key)
    return {r["currency"]: (int(r["order_count"]), r["revenue"] if r["revenue"] is not None else 0)
            for r in totals.to_pylist() if r["ingest_date"] == day}
