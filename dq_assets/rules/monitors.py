"""Statistical monitors: a partition's metrics against their own history, learned from the earlier
partitions rather than written as thresholds. No Dagster.

A partition's metrics (`partition_metrics`, from its column profile) are kept per partition in
`quality.column_metrics`. A monitored metric is compared with two trailing windows of earlier
partitions: every day (`window` days) and the same weekday (`weekday_window` of them). Each
window gives a band, median +- sensitivity x spread, where the spread is the median absolute
deviation scaled to a standard deviation (1.4826 x MAD), never below a floor for the metric: the
median and MAD ignore the odd bad day in the history (a mean and a standard deviation would be
dragged by it), and the floor keeps a metric that never moved (a share that is always 0) from
firing on a change too small to matter. A metric fires when it lies outside the every-day band
and outside the same-weekday band (when that window has enough days): a weekly rhythm is then
no anomaly, a shift seen against both is. An enumeration value present on every day of the
window and absent today, when today's rows would hold at least VANISHED_MIN_EXPECTED of it,
fires too, as does one absent on every day that appears with at least a SHARE_FLOOR share.
Nothing fires with fewer than `min_history` earlier partitions. The defaults (gate.yaml) were
calibrated on generated clean days (docs/checks-and-gate.md#statistical-monitors).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import date

from dq_assets.contract.tables import Table

# The monitors (check `monitor_<family>` on staging.<table>) and the metrics each watches.
VOLUME, NULLS, DISTRIBUTION, VALUES = "volume", "nulls", "distribution", "values"
FAMILIES = (VOLUME, NULLS, DISTRIBUTION, VALUES)
TABLE_LEVEL = "*"  # the column name of a table's own metrics (rows)
ROWS, NULL_SHARE, SHARE = "rows", "null_share", "share:"  # share:<value> of a counted column
DISTINCT = "distinct"  # approximate distinct values of a column: kept, not monitored
LOCATION_METRICS = ("mean", "p01", "p50", "p99")  # monitored; stddev, min and max only kept
KEPT_METRICS = ("mean", "stddev", "p01", "p50", "p99", "min", "max")

MAD_TO_SD = 1.4826  # MAD x this estimates the standard deviation of normal data
SHARE_FLOOR = 0.01  # a share's spread is at least one percentage point
RELATIVE_FLOOR = 0.02  # a volume's or mean's spread is at least 2% of its median
QUANTILE_FLOOR = 0.5  # a quantile's spread is at least half the column's standard deviation
# p01 and p99 of a day with fewer values are its extremes, which no band holds: not kept.
TAIL_MIN_VALUES = 500
TAILS = ("p01", "p99")
# A value vanishes when it was on every day before and today's rows would hold at least this
# many of it at its usual share: the chance of its absence by chance is then below 1 in 20,000
# (Poisson). Rarer values come and go on small days.
VANISHED_MIN_EXPECTED = 10


def family(metric: str) -> str | None:
    """The monitor that watches a metric (None: kept, not monitored)."""
    if metric == ROWS:
        return VOLUME
    if metric == NULL_SHARE:
        return NULLS
    if metric.startswith(SHARE):
        return VALUES
    return DISTRIBUTION if metric in LOCATION_METRICS else None


def partition_metrics(t: Table, profile: list[dict], landed_rows: int,
                      missing_required: dict[str, int]) -> dict[tuple[str, str], float]:
    """(column, metric) -> value of one partition, from its column profile
    (dq_assets.rules.profiling.column_profiles): the rows landed; per column the share of
    landed rows without a value (nulls kept in staging, and values missing where required,
    which were quarantined: `missing_required`, column -> rows) and its distinct values
    (approximate); the mean, standard deviation, quantiles, min and max of numbers and money;
    the share of each value of enumerations and currencies among the staged rows. A table's key columns are identifiers: only their nulls."""
    out: dict[tuple[str, str], float] = {(TABLE_LEVEL, ROWS): float(landed_rows)}
    for p in profile:
        column = p["column"]
        if landed_rows:
            out[(column, NULL_SHARE)] = (p["nulls"] + missing_required.get(column, 0)) / landed_rows
        if p["rows"]:
            out[(column, DISTINCT)] = float(p["distinct_values"])
        if column in t.key:
            continue
        if p.get("mean_value") is not None:
            stats = {**p, "mean": p["mean_value"]}
            values = p["rows"] - p["nulls"]
            out |= {(column, m): float(stats[m]) for m in KEPT_METRICS
                    if stats[m] is not None and (m not in TAILS or values >= TAIL_MIN_VALUES)}
        if p.get("values") is not None and p["rows"]:
            out |= {(column, f"{SHARE}{v}"): n / p["rows"] for v, n in p["values"].items()}
    return out


@dataclass(frozen=True)
class Settings:
    sensitivity: float = 5.0
    min_history: int = 14
    window: int = 28
    weekday_window: int = 8
    weekday_min_history: int = 4


@dataclass(frozen=True)
class Band:
    """What a window of history expects of a metric (of its log1p, for a `log` band)."""

    label: str  # "28 days" or "4 Mondays"
    days: list[str]  # the history's partitions, oldest first
    median: float
    spread: float
    sensitivity: float
    log: bool = False  # median and spread are of log(1 + value): a band for money, x or / a factor

    def _shown(self, x: float) -> float:
        return math.expm1(x) if self.log else x

    @property
    def low(self) -> float:
        return self._shown(self.median - self.sensitivity * self.spread)

    @property
    def high(self) -> float:
        return self._shown(self.median + self.sensitivity * self.spread)

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high

    def describe(self) -> str:
        return (f"{_num(self.low)}..{_num(self.high)} (median {_num(self._shown(self.median))} of "
                f"{self.label}, {self.days[0]}..{self.days[-1]})")


@dataclass(frozen=True)
class Finding:
    """One monitored metric of one partition against its history."""

    column: str
    metric: str
    value: float
    bands: list[Band]
    fired: bool
    why: str = ""  # besides the bands: a value that vanished or appeared

    @property
    def name(self) -> str:
        return self.metric if self.column == TABLE_LEVEL else f"{self.column}.{self.metric}"

    def describe(self) -> str:
        text = f"{self.name} {_num(self.value)}"
        if self.why:
            return f"{text}: {self.why}"
        return f"{text} outside " + " and ".join(b.describe() for b in self.bands)


def evaluate(day: str, column: str, metric: str, value: float, history: dict[str, float],
             settings: Settings, column_sd: float | None = None, rows: float | None = None) -> Finding | None:
    """`value` of `day` against `history` (earlier partitions -> value; absent partitions are
    skipped, a share's absence is a share of 0 and should be given as such). `column_sd`: the
    column's typical standard deviation (for the floor of its quantiles); `rows`: the day's
    rows (for a share that vanished). None while the history is shorter than
    `settings.min_history`."""
    earlier, recent, same_day = _windows(day, history, settings.window, settings.weekday_window)
    if len(earlier) < settings.min_history:
        return None
    bands = [_band(recent, history, metric, settings, f"{len(recent)} days", column_sd, rows)]
    if len(same_day) >= settings.weekday_min_history:
        bands.append(_band(same_day, history, metric, settings, _weekdays(day, same_day), column_sd, rows))
    fired = all(not b.holds(value) for b in bands)
    why = ""
    if metric.startswith(SHARE):
        shares = [history[k] for k in recent]
        expected = (rows or 0) * statistics.median(shares)
        if value == 0 and all(s > 0 for s in shares) and expected >= VANISHED_MIN_EXPECTED:
            fired, why = True, (f"absent (about {expected:.0f} rows expected), present on each of the "
                                f"{len(recent)} days before ({recent[0]}..{recent[-1]})")
        elif value >= SHARE_FLOOR and all(s == 0 for s in shares):
            fired, why = True, f"appeared, absent on each of the {len(recent)} days before ({recent[0]}..{recent[-1]})"
    return Finding(column, metric, value, bands, fired, why)


def evaluate_weekday(day: str, name: str, value: float, history: dict[str, float], sensitivity: float,
                     weekday_window: int, min_history: int, window: int = 28) -> Finding | None:
    """Money of `day` (revenue) against the same weekday's previous `weekday_window`
    partitions of `history`, on a log scale (money grows and falls by factors; a day of no
    revenue is far below any usual one): the same weekdays' median says what to expect of the
    weekday, and the spread of every previous day (the last `window`) how far a day strays. A
    handful of same weekdays gives a median but no usable spread (two of four deviations
    alike make a MAD of almost 0); the spread of every day is the wider, if anything, by the
    weekly rhythm. None with fewer than `min_history` same weekdays."""
    _, recent_days, same_day = _windows(day, history, window, weekday_window)
    if len(same_day) < min_history:
        return None
    logs = {k: math.log1p(max(v, 0.0)) for k, v in history.items()}
    recent = [logs[k] for k in recent_days]
    median = statistics.median(logs[k] for k in same_day)
    mad = statistics.median(abs(v - statistics.median(recent)) for v in recent)
    band = Band(_weekdays(day, same_day), same_day, median,
                max(MAD_TO_SD * mad, math.log1p(RELATIVE_FLOOR)), sensitivity, log=True)
    return Finding(TABLE_LEVEL, name, value, [band], fired=not band.holds(value))


def _windows(day: str, history: dict[str, float], window: int, weekday_window: int):
    """The partitions of `history` before `day` (oldest first), the last `window` of them, and
    the last `weekday_window` of them on the day's weekday."""
    earlier = sorted(k for k in history if k < day)
    weekday = date.fromisoformat(day).weekday()
    same_day = [k for k in earlier if date.fromisoformat(k).weekday() == weekday][-weekday_window:]
    return earlier, earlier[-window:], same_day


def _weekdays(day: str, same_day: list[str]) -> str:
    return f"{len(same_day)} {date.fromisoformat(day).strftime('%A')}s"


def _band(days: list[str], history: dict[str, float], metric: str, settings: Settings, label: str,
          column_sd: float | None, rows: float | None) -> Band:
    values = [history[k] for k in days]
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    return Band(label, days, median, max(MAD_TO_SD * mad, floor(metric, median, column_sd, rows)),
                settings.sensitivity)


def floor(metric: str, median: float, column_sd: float | None = None, rows: float | None = None) -> float:
    """The least spread of a metric. Its sampling error on the day's `rows` (a few weeks of
    days estimate a MAD poorly, and a small day strays further than the history's typical
    day): a count's Poisson error sqrt(median), a share's binomial error sqrt(p(1-p)/rows), a
    mean's standard error sd/sqrt(rows). And at least: a share one percentage point, rows and
    a mean 2% of their median, a quantile half the column's standard deviation (quantiles of
    prices from a catalogue or of small counts jump between a few values from day to day)."""
    n = rows if rows and rows > 0 else None
    if metric == NULL_SHARE or metric.startswith(SHARE):
        p = min(max(median, 0.0), 1.0)
        return max(SHARE_FLOOR, math.sqrt(p * (1 - p) / n) if n else 0.0)
    least = RELATIVE_FLOOR * abs(median)
    if metric == ROWS:
        least = max(least, math.sqrt(abs(median)))
    elif metric == "mean" and column_sd and n:
        least = max(least, abs(column_sd) / math.sqrt(n))
    elif metric in LOCATION_METRICS and column_sd:
        least = max(least, QUANTILE_FLOOR * abs(column_sd))
    return max(least, 1e-9)


def _num(x: float) -> str:
    """1,616,137 / 37.27 / 0.1912: four significant digits, thousands grouped."""
    if abs(x) >= 999.5:
        return f"{x:,.0f}"
    return f"{x:g}" if x == int(x) else f"{x:.4g}"
