"""What a check is (`CheckDef`), what one evaluation of it says (`Outcome`, with the `Recon`s
behind it), and how an outcome reads in Dagster (`check_result`, `readable_sql`)."""

from dataclasses import dataclass, field
from decimal import Context, Decimal, InvalidOperation

import dagster as dg

from dq_assets.contract.gate import ERROR, WARN

SAMPLE_KEYS = 10  # sample keys kept per outcome


def partition_filter(partition_key: str) -> str:
    """The SQL condition selecting one partition's rows (in the reproducing SQL)."""
    return f"ingest_date = DATE '{partition_key}'"


@dataclass(frozen=True)
class CheckDef:
    name: str
    asset: dg.AssetKey
    description: str
    blocking: bool = False  # a failure holds back the asset's downstream steps

    @property
    def key(self) -> dg.AssetCheckKey:
        return dg.AssetCheckKey(self.asset, self.name)

    def spec(self, partitions_def) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(
            self.name, asset=self.asset, description=self.description, partitions_def=partitions_def,
            blocking=self.blocking,
        )


@dataclass
class Outcome:
    """One check evaluated on one partition."""

    check: str
    asset_key: dg.AssetKey
    partition_key: str
    passed: bool
    severity: str
    failing_rows: int = 0
    observed: str = ""
    threshold: str = ""
    detail: str = ""
    sample_keys: list[str] = field(default_factory=list)
    sql: str = ""
    # Metric-level reconciliations behind the outcome, also kept in quality.recon_summary:
    recons: list["Recon"] = field(default_factory=list)
    suppressed_by: str | None = None  # ticket of the suppression that downgraded it to WARN


@dataclass(frozen=True)
class Recon:
    """Two totals that must agree, e.g. landed rows vs the manifest's."""

    metric: str  # rows | sha256 | amount_sum | ... | order_count | revenue
    scope: str  # a table, or table/currency
    expected: object  # the reference side (manifest, raw, staging)
    observed: object

    @property
    def agrees(self) -> bool:
        diff = self._exact_difference()
        return self.expected == self.observed if diff is None else diff == 0

    @property
    def difference(self) -> Decimal | None:
        """observed - expected as stored (DECIMAL(38,6)); None when either side is not a
        number, or the difference (a huge total in a manifest, say) does not fit the column."""
        diff = self._exact_difference()
        if diff is None or not diff.is_finite():
            return None
        if diff.as_tuple().exponent < -6:
            diff = diff.quantize(Decimal("0.000001"), context=_EXACT)
        return diff if abs(diff) < Decimal(10) ** 32 else None

    def _exact_difference(self) -> Decimal | None:
        try:
            return _EXACT.subtract(Decimal(str(self.observed)), Decimal(str(self.expected)))
        except (InvalidOperation, TypeError, ValueError):
            return None


_EXACT = Context(prec=200)  # totals as sent can be any length: subtract them without rounding


def worst(outcomes: list[Outcome]) -> str:
    return ERROR if any(o.severity == ERROR for o in outcomes if not o.passed) else WARN


def check_result(outcomes: list[Outcome]) -> dg.AssetCheckResult:
    """One Dagster check result for a check over the partition(s) of this run."""
    first = outcomes[0]
    failed = [o for o in outcomes if not o.passed]
    shown = failed or outcomes
    meta: dict = {
        "failing_rows": dg.MetadataValue.int(sum(o.failing_rows for o in outcomes)),
        "observed": "; ".join(f"{o.partition_key}: {o.observed}" for o in shown[:10]),
        "threshold": first.threshold,
        "severity": first.severity if not failed else worst(failed),
    }
    if failed:
        meta["failed_partitions"] = ", ".join(o.partition_key for o in failed[:20])
        tickets = sorted({o.suppressed_by for o in failed if o.suppressed_by})
        if tickets:
            meta["suppressed_by"] = ", ".join(tickets)
        detail = failed[0]
        if detail.detail:
            meta["detail"] = detail.detail
        if detail.sample_keys:
            meta["sample_key_list"] = ", ".join(detail.sample_keys)
            meta["sample_keys"] = dg.MetadataValue.md(
                "| key |\n|---|\n" + "\n".join(f"| {k} |" for k in detail.sample_keys)
            )
        if detail.sql:
            meta["reproduce_sql"] = dg.MetadataValue.md(f"```sql\n{readable_sql(detail.sql)}\n```")
    return dg.AssetCheckResult(
        asset_key=first.asset_key,
        check_name=first.check,
        passed=not failed,
        severity=dg.AssetCheckSeverity(worst(failed)) if failed else dg.AssetCheckSeverity(first.severity),
        metadata=meta,
        description=summary(failed[0]) if failed else None,
    )


# Clauses that start a line of their own in `readable_sql` (AND and ON indented).
_SQL_CLAUSES = ("LEFT JOIN", "GROUP BY", "ORDER BY", "FROM", "WHERE", "HAVING", "LIMIT", "JOIN",
                "ON", "AND", "--")
_SELECT_ITEM_WRAP = 30  # a SELECT item longer than this ends its line (subqueries)


def readable_sql(sql: str) -> str:
    """The one-line reproducing SQL over a few lines for the check's page: the UI shows a code
    block no wider than its dialog, and a long line has to be scrolled sideways. Each clause
    of the outer query on a line of its own, long SELECT items one per line; nothing inside
    parentheses or string literals moves, and the words are unchanged."""
    out: list[str] = []
    depth, quoted, in_select, item_start, i = 0, False, True, 0, 0
    while i < len(sql):
        ch = sql[i]
        if quoted:
            quoted = ch != "'"  # a doubled '' closes and reopens: same result
        elif ch == "'":
            quoted = True
        elif ch in "()":
            depth += 1 if ch == "(" else -1
        elif depth == 0 and ch == " ":
            rest = sql[i + 1:]
            clause = next((c for c in _SQL_CLAUSES if rest.upper().startswith(c) and (
                len(rest) == len(c) or not (rest[len(c)].isalnum() or rest[len(c)] == "_"))), None)
            if clause == "--":  # a trailing comment, on its own line
                out.append("\n" + rest)
                break
            if clause:
                out.append(("\n  " if clause in ("AND", "ON") else "\n") + rest[:len(clause)])
                in_select = False
                i += 1 + len(clause)
                continue
        elif depth == 0 and ch == "," and in_select:
            if len("".join(out[item_start:])) > _SELECT_ITEM_WRAP:
                out.append(",\n       ")
                item_start = len(out)
                i += 2 if sql[i + 1:i + 2] == " " else 1
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def summary(o: Outcome) -> str:
    text = f"{o.partition_key}: {o.check} failed ({o.severity}): observed {o.observed}"
    if o.suppressed_by:
        text += f" [suppressed by {o.suppressed_by}]"
    if o.threshold:
        text += f", expected {o.threshold}"
    return text
