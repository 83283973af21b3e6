"""The marts' checks, on marts.fact_revenue_daily: matches_staging, evaluated by the publishing
step on each partition before it publishes it (blocking: a partition whose mart disagrees with
staging is not published), and monitor_revenue, each published day's revenue per currency
against the same weekday's history (WARN).
"""

from datetime import date
from decimal import Decimal

import dagster as dg
import pyarrow as pa

from dq_assets.checks.model import CheckDef, Outcome, Recon, partition_filter
from dq_assets.contract.gate import GateConfig
from dq_assets.keys import FACT_REVENUE_KEY
from dq_assets.rules.monitors import evaluate_weekday
from dq_assets.rules.profiling import REVENUE_IN
from dq_assets.storage.duckdb.warehouse import query_tables

SEVERITY_SCOPE = "marts"  # the gate.yaml prefix of this check: `marts.matches_staging`

MATCHES_STAGING = CheckDef(
    "matches_staging", FACT_REVENUE_KEY,
    "Order count and revenue per currency equal staging.orders'; a partition that does not "
    "agree is not published.", blocking=True)


REVENUE_MONITOR = CheckDef(
    "monitor_revenue", FACT_REVENUE_KEY,
    "Each currency's revenue of the day within the band of the same weekday's history (median "
    "and MAD of the previous same weekdays, gate.yaml monitors.revenue).")

DAILY_REVENUE_SQL = """
    SELECT CAST(ingest_date AS VARCHAR) AS day, currency, sum(revenue) AS revenue
    FROM revenue GROUP BY ALL"""


def revenue_monitor_outcomes(cfg: GateConfig, published: list[str], revenue: pa.Table | None) -> list[Outcome]:
    """monitor_revenue of each published partition: its revenue per currency (from every day of
    marts.fact_revenue_daily, `revenue`) against the same weekday's earlier days. A currency
    without revenue on a published day has 0 there."""
    settings = cfg.monitors.get("revenue") or {}
    sensitivity = float(settings.get("sensitivity", 6))
    window, needed = int(settings.get("weekday_window", 8)), int(settings.get("min_history", 4))
    by_currency: dict[str, dict[str, float]] = {}
    days = set()
    if revenue is not None and revenue.num_rows:
        for r in query_tables(DAILY_REVENUE_SQL, revenue=revenue).to_pylist():
            days.add(r["day"])
            by_currency.setdefault(r["currency"], {})[r["day"]] = float(r["revenue"] or 0)
    for history in by_currency.values():
        history.update({d: 0.0 for d in days - set(history)})
    sev = cfg.severity_of(SEVERITY_SCOPE, REVENUE_MONITOR.name)
    out = []
    for day in published:
        findings = [f for currency, history in sorted(by_currency.items()) if day in history
                    and (f := evaluate_weekday(day, f"revenue {currency}", history[day], history,
                                               sensitivity, window, needed))]
        fired = [f for f in findings if f.fired]
        where = f"ingest_date <= DATE '{day}' AND dayofweek(ingest_date) = dayofweek(DATE '{day}')"
        out.append(Outcome(
            REVENUE_MONITOR.name, REVENUE_MONITOR.asset, day, passed=not fired, severity=sev,
            failing_rows=len(fired),
            observed=("; ".join(f.describe() for f in fired) if fired else
                      f"{len(findings)} currencies within their bands" if findings else
                      f"not evaluated: fewer than {needed} earlier {date.fromisoformat(day).strftime('%A')}s"),
            threshold=f"within median +- {sensitivity:g} x spread of the previous {window} same weekdays",
            sql=(f"SELECT ingest_date, currency, sum(revenue) AS revenue FROM marts.fact_revenue_daily "
                 f"WHERE {where} GROUP BY ALL ORDER BY 2, 1 DESC"),
        ))
    return out


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
