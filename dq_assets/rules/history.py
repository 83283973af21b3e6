"""Reference history: what earlier partitions a partition's checks rely on, and which are missing.

Dimension change feeds (customers, products) and payments of earlier orders resolve against
every earlier partition, so a day checked before the days it follows are loaded would report
their absence as data defects (unknown references, a high quarantine rate). The gate therefore
knows what it does not know: a landed day before the run's first partition whose referenced
raw tables were never loaded makes the history incomplete, which is reported as exactly that,
once, and holds the partition back until its history is there (the check itself:
dq_assets.checks.history).
"""

from __future__ import annotations

from datetime import date, timedelta

from dq_assets.contract.tables import SAME_PARTITION, TABLES


def history_tables() -> list[str]:
    """The tables that references resolve against across partitions (their raw layer)."""
    return sorted({ref.table for t in TABLES for _, ref in t.references if ref.scope != SAME_PARTITION})


def missing_days(landed: list[str], loaded: dict[str, set[str]], before: str) -> list[str]:
    """Landed days before `before` whose referenced raw tables are not all loaded."""
    return sorted(d for d in landed if d < before and not all(d in days for days in loaded.values()))


def day_ranges(days: list[str]) -> str:
    """'2025-01-02..2025-01-11, 2025-01-14': consecutive days as one range."""
    spans: list[list[date]] = []
    for d in sorted(date.fromisoformat(x) for x in days):
        if spans and d - spans[-1][1] == timedelta(days=1):
            spans[-1][1] = d
        else:
            spans.append([d, d])
    return ", ".join(a.isoformat() if a == b else f"{a.isoformat()}..{b.isoformat()}" for a, b in spans)
