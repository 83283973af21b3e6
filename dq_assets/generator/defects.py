"""Defect kinds and their specifications: `[DATE:][TABLE.]KIND[@OPTION][=VALUE]`, parsed and
checked against the contract (`parse_defect`), the help text of every kind, and `_Task`, one
specification resolved for one day and table."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from dq_assets.contract import tables as C
from dq_assets.generator.constants import (
    CUSTOMERS,
    EVENTS,
    FUTURE_DAYS,
    ORDER_ITEMS,
    ORDERS,
    PAYMENTS,
    PRODUCTS,
)

ROW_KINDS = C.REJECT_REASONS
# valid-looking drift: every row stays valid, the distribution of a column changes that day
DRIFT_KINDS = ("null_share", "unit_change", "vanished_value")
VALID_KINDS = ("late_arriving", "resent_orders", "no_changes") + DRIFT_KINDS  # valid data, still logged
FILE_KINDS = ("manifest_drift", "missing_file", "unlisted_file", "missing_column",
              "extra_column", "partial_load", "volume_drop")
BATCH_KINDS = ("late_arriving", "resent_orders")  # value = count or rate of orders
# with --defect (every day), the value of these is a probability per day
PROBABILITY_KINDS = ("manifest_drift", "missing_file", "unlisted_file", "missing_column", "extra_column")
KINDS = ROW_KINDS + FILE_KINDS + VALID_KINDS
FILE_ERROR_KINDS = ("manifest_drift", "missing_file", "unlisted_file", "missing_column")

DEFAULT_TABLE = {
    "missing_required": ORDERS, "unparseable": ORDERS, "invalid_value": ORDERS,
    "out_of_range": ORDERS, "future_timestamp": ORDERS, "calculation_mismatch": ORDER_ITEMS,
    "unknown_reference": ORDERS, "duplicate": ORDERS,
    "manifest_drift": ORDERS, "missing_file": EVENTS, "unlisted_file": EVENTS,
    "missing_column": ORDERS, "extra_column": ORDERS, "partial_load": EVENTS,
    "volume_drop": "*", "late_arriving": ORDERS, "resent_orders": ORDERS, "no_changes": PRODUCTS,
    "null_share": EVENTS, "unit_change": "*", "vanished_value": EVENTS,
}
# Default column (or option) per (kind, table). A missing entry = not applicable.
DEFAULT_OPTION: dict[str, dict[str, str]] = {
    "missing_required": {CUSTOMERS: "email", PRODUCTS: "product_name", ORDERS: "status",
                         ORDER_ITEMS: "quantity", PAYMENTS: "method", EVENTS: "session_id"},
    "unparseable": {CUSTOMERS: "signup_ts", PRODUCTS: "unit_price", ORDERS: "order_ts",
                    ORDER_ITEMS: "quantity", PAYMENTS: "payment_ts", EVENTS: "event_ts"},
    "invalid_value": {CUSTOMERS: "email", PRODUCTS: "currency", ORDERS: "status",
                      PAYMENTS: "method", EVENTS: "event_type"},
    "out_of_range": {PRODUCTS: "unit_price", ORDERS: "amount", ORDER_ITEMS: "quantity",
                     PAYMENTS: "amount", EVENTS: "duration_ms"},
    "future_timestamp": {ORDERS: "order_ts", PAYMENTS: "payment_ts"},
    "calculation_mismatch": {ORDER_ITEMS: "line_amount"},
    "unknown_reference": {ORDERS: "customer_id", ORDER_ITEMS: "product_id",
                          PAYMENTS: "order_id", EVENTS: "customer_id"},
    "duplicate": {t: "mixed" for t in C.TABLE_NAMES},
    "manifest_drift": {t: "rows" for t in C.TABLE_NAMES},
    "missing_file": {t: "" for t in C.TABLE_NAMES},
    "unlisted_file": {t: "" for t in C.TABLE_NAMES},
    "missing_column": {CUSTOMERS: "country_code", PRODUCTS: "category", ORDERS: "currency",
                       ORDER_ITEMS: "unit_price", PAYMENTS: "method", EVENTS: "platform"},
    "extra_column": {t: ("coupon_code" if t == ORDERS else "note") for t in C.TABLE_NAMES},
    "partial_load": {EVENTS: ""},
    "volume_drop": {"*": ""},
    "late_arriving": {ORDERS: "", EVENTS: ""},
    "resent_orders": {ORDERS: ""},
    "no_changes": {CUSTOMERS: "", PRODUCTS: ""},
    # the first nullable column of each table that has one (today events.customer_id)
    "null_share": {t.name: next(c.name for c in t.columns if c.nullable)
                   for t in C.TABLES if any(c.nullable for c in t.columns)},
    "unit_change": {"*": ""},
    # COLUMN.VALUE: an ENUM column and one of its accepted values
    "vanished_value": {ORDERS: "status.cancelled", PAYMENTS: "method.paypal", EVENTS: "platform.android"},
}
DEFAULT_RATE = {"null_share": 0.3}
DEFAULT_FACTOR = {"unit_change": 100}
# money columns scaled by unit_change (products, a dimension, keep their prices)
MONEY_COLUMNS = {ORDERS: ("amount",), ORDER_ITEMS: ("unit_price", "line_amount"), PAYMENTS: ("amount",)}
KIND_HELP = {
    "missing_required": "blank a required value (@column; default orders.status)",
    "unparseable": "value not readable as its type, e.g. 12,50 / 07/01/2025 / two (@column)",
    "invalid_value": "not in the accepted set / shape: status pending, email, country U5, currency EURO",
    "out_of_range": "negative amount/unit_price, quantity 0, duration_ms 90000000",
    "future_timestamp": f"order_ts / payment_ts {FUTURE_DAYS} days after the ingest day",
    "calculation_mismatch": "order_items.line_amount off by >= 1.00 (order amount follows)",
    "unknown_reference": "orders.customer_id, order_items.product_id|order_id, payments.order_id, "
                         "events.customer_id that never existed",
    "duplicate": "exact duplicate row or an older version (@exact | @older | @mixed)",
    "manifest_drift": "manifest disagrees with the file (@rows | @sha256 | @sum)",
    "missing_file": "file listed in the manifest but absent",
    "unlisted_file": "file present but not listed in the manifest",
    "missing_column": "a required column dropped from the file (@column)",
    "extra_column": "an unknown column added (@name)",
    "partial_load": "events: remove every event of N of the 24 hours (value N, default 6)",
    "volume_drop": "fact tables at FACTOR of normal volume (value FACTOR, default 0.3)",
    "late_arriving": "VALID: a batch of orders (with payments) or events timestamped 1-3 days earlier",
    "resent_orders": "VALID: earlier orders re-sent, changed (status/amount, items and payments "
                     "consistent) or unchanged",
    "no_changes": "VALID: a change feed (products/customers) has no rows; file absent and unlisted",
    "null_share": "VALID drift: blank a nullable column (@column, default events.customer_id) in a "
                  "further share RATE of the rows (value RATE, default 0.3)",
    "unit_change": "VALID drift: every money amount of orders, order_items, payments x FACTOR "
                   "(value FACTOR, integer >= 2, default 100: euros to cents); totals consistent",
    "vanished_value": "VALID drift: an ENUM value absent that day (@COLUMN.VALUE, default "
                      "events.vanished_value@platform.android), its rows get the column's other "
                      "values by their usual weights (status columns: other tables not adjusted)",
}


class DefectError(ValueError):
    """A defect specification that cannot be applied."""


@dataclass(frozen=True)
class DefectSpec:
    """One injection request: `[DATE:][TABLE.]KIND[@OPTION][=VALUE]`.

    table: None = the kind's default table, "*" = every table where the kind applies.
    value: for row-level and batch kinds a count (integer >= 1) or a rate (< 1 or with a
    decimal point); for partial_load the number of hours, for volume_drop the factor. In
    `--defect` (day None), the value of the other file-level kinds is a per-day probability.
    """

    kind: str
    table: str | None = None
    option: str | None = None
    value: float | None = None
    day: date | None = None
    is_rate: bool = False

    def __str__(self) -> str:
        s = (f"{self.table}." if self.table else "") + self.kind
        s += f"@{self.option}" if self.option else ""
        if self.value is not None:
            v = self.value
            s += f"={v:g}" if self.is_rate or not float(v).is_integer() else f"={int(v)}"
        return (f"{self.day.isoformat()}:" if self.day else "") + s


_SPEC_RE = re.compile(
    r"^(?:(?P<day>\d{4}-\d{2}-\d{2}):)?(?:(?P<table>\*|[a-z_]+)\.)?(?P<kind>[a-z_]+)"
    r"(?:@(?P<option>[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?))?(?:=(?P<value>[0-9.]+))?$"
)


def parse_defect(text: str, day: date | None = None) -> DefectSpec:
    """Parse `[YYYY-MM-DD:][TABLE.]KIND[@OPTION][=VALUE]` (see DefectSpec)."""
    m = _SPEC_RE.match(text.strip())
    if not m:
        raise DefectError(f"cannot parse defect {text!r}; expected [DATE:][TABLE.]KIND[@OPTION][=VALUE]")
    kind = m["kind"]
    if kind not in KINDS:
        raise DefectError(f"unknown defect kind {kind!r}; kinds are {', '.join(KINDS)}")
    tbl = m["table"]
    if tbl and tbl != "*" and tbl not in C.TABLE_NAMES:
        raise DefectError(f"unknown table {tbl!r} in {text!r}")
    if m["day"]:
        day = date.fromisoformat(m["day"])
    value = None
    is_rate = False
    if m["value"] is not None:
        raw = m["value"]
        value = float(raw)
        is_rate = "." in raw or value < 1
    spec = DefectSpec(kind=kind, table=tbl, option=m["option"], value=value, day=day, is_rate=is_rate)
    for t in _spec_tables(spec):
        _check_option(spec, t)
    return spec


def _spec_tables(spec: DefectSpec) -> list[str]:
    applicable = list(DEFAULT_OPTION[spec.kind])
    if spec.kind == "volume_drop":
        return ["*"]
    if spec.kind == "unit_change":
        if spec.table not in (None, "*"):
            raise DefectError(f"{spec}: unit_change scales every fact table's money at once; give no table")
        return ["*"]
    if spec.table == "*":
        return [t for t in C.TABLE_NAMES if t in applicable]
    t = spec.table or DEFAULT_TABLE[spec.kind]
    if t not in applicable:
        raise DefectError(f"{spec.kind} does not apply to table {t}; it applies to {', '.join(applicable)}")
    return [t]


def _check_option(spec: DefectSpec, t: str) -> str:
    """The effective option of spec for table t, validated."""
    opt = spec.option or DEFAULT_OPTION[spec.kind][t]
    k = spec.kind
    tab = C.table(t) if t != "*" else None
    if "." in (spec.option or "") and k != "vanished_value":
        raise DefectError(f"{spec}: only vanished_value takes an option COLUMN.VALUE with a dot")
    if k in ("missing_required", "unparseable", "invalid_value", "out_of_range",
             "future_timestamp", "unknown_reference", "missing_column", "calculation_mismatch"):
        if spec.table == "*" and spec.option:
            raise DefectError(f"{spec}: a column option needs one table")
        try:
            col = tab.column(opt)
        except KeyError:
            raise DefectError(f"{spec}: {t} has no column {opt!r}") from None
        ok = {
            "missing_required": not col.nullable,
            "unparseable": col.kind in C.PARSED_KINDS,
            "invalid_value": col.kind in C.SHAPED_KINDS,
            "out_of_range": (t, opt) in {(PRODUCTS, "unit_price"), (ORDERS, "amount"),
                                         (ORDER_ITEMS, "quantity"), (PAYMENTS, "amount"),
                                         (EVENTS, "duration_ms")},
            "future_timestamp": col.not_future,
            "unknown_reference": col.references is not None,
            "missing_column": not col.nullable,
            "calculation_mismatch": opt == "line_amount",
        }[k]
        if not ok:
            raise DefectError(f"{spec}: {k} cannot be injected into {t}.{opt}")
    elif k == "duplicate":
        if opt not in ("exact", "older", "mixed"):
            raise DefectError(f"{spec}: duplicate option must be exact, older or mixed")
        if opt == "older" and not tab.version_column:
            raise DefectError(f"{spec}: {t} has no version column, only exact duplicates")
    elif k == "manifest_drift":
        if opt not in ("rows", "sha256", "sum"):
            raise DefectError(f"{spec}: manifest_drift option must be rows, sha256 or sum")
        if opt == "sum" and not tab.manifest_sum:
            raise DefectError(f"{spec}: {t} has no money total in the manifest")
    elif k == "extra_column":
        if opt.lower() in tab.column_names:
            raise DefectError(f"{spec}: {opt} is a contract column")
    elif k == "partial_load" and spec.value is not None and not (1 <= spec.value <= 24):
        raise DefectError(f"{spec}: partial_load hours must be 1..24")
    elif k == "volume_drop" and spec.value is not None and not (0 < spec.value < 1):
        raise DefectError(f"{spec}: volume_drop factor must be in (0, 1)")
    elif k in DRIFT_KINDS:
        _check_drift(spec, t, tab, opt)
    return opt


def _check_drift(spec: DefectSpec, t: str, tab, opt: str) -> None:
    k = spec.kind
    if k == "unit_change":
        v = spec.value
        if v is not None and not (v >= 2 and float(v).is_integer() and not spec.is_rate):
            raise DefectError(f"{spec}: unit_change FACTOR must be an integer >= 2 (e.g. 100, euros to cents)")
        return
    if spec.table == "*" and spec.option:
        raise DefectError(f"{spec}: a column option needs one table")
    if k == "null_share":
        if spec.value is not None and not (0 < spec.value < 1):
            raise DefectError(f"{spec}: null_share RATE must be in (0, 1), e.g. 0.3")
        try:
            col = tab.column(opt)
        except KeyError:
            raise DefectError(f"{spec}: {t} has no column {opt!r}") from None
        if not col.nullable:
            raise DefectError(f"{spec}: null_share needs a nullable column; {t}.{opt} is required "
                              f"(nullable columns: {', '.join(_nullable_columns()) or 'none'})")
        return
    # vanished_value
    if spec.value is not None:
        raise DefectError(f"{spec}: vanished_value takes no value; spell it @COLUMN.VALUE")
    name, dot, value = opt.partition(".")
    if not dot:
        raise DefectError(f"{spec}: vanished_value option must be COLUMN.VALUE, e.g. @platform.android")
    try:
        col = tab.column(name)
    except KeyError:
        raise DefectError(f"{spec}: {t} has no column {name!r}") from None
    if col.kind != C.ENUM:
        raise DefectError(f"{spec}: vanished_value needs an ENUM column; {t}.{name} is {col.kind}")
    if value not in col.values:
        raise DefectError(f"{spec}: {value!r} is not an accepted value of {t}.{name} "
                          f"({', '.join(col.values)})")


def _nullable_columns() -> list[str]:
    return [f"{t.name}.{c.name}" for t in C.TABLES for c in t.columns if c.nullable]


@dataclass
class _Task:
    kind: str
    table: str
    option: str
    count: int = 0
    param: float | None = None
    spec: str = ""
    rid: int = -1  # row-level task id (reserved payment carriers)
