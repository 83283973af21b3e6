"""Deterministic landing-zone generator with chaos (defect injection).

Writes `<out>/ingest_date=YYYY-MM-DD/{customers,products,orders,order_items,payments,events}.csv`
plus `_manifest.json` per day, exactly as docs/contract.md section 1 describes, and
`<out>/_generator_log.json` (at the landing root) listing per day and table exactly what was
injected, so tests can assert exact counts.

Clean days are 100% valid per the contract but deliberately messy (every accepted timestamp
spelling, surrounding whitespace, mixed case codes, shuffled columns, header names in varying
case, quoted fields, BOM, CRLF, late-arriving rows). Defects are injected on request
(`--defect` every day, `--on` one day); each injected row carries exactly one defect.

Table and column names, enum values and manifest sum fields come from `dq_assets.contract.tables`.
Everything is derived from (seed, ingest date): no wall clock, so the same arguments give
byte-identical output (`--end yesterday` reads the clock for the dates only). Generation is vectorised (numpy + pyarrow) so that a day of 1,000,000
orders (2.5M items, 10M events) takes well under two minutes.

This module must not import dagster: `dq-generate` has to start fast.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dq_assets.contract import tables as C

# ----------------------------------------------------------------------------- constants

DAY = 86_400
UTC = timezone.utc
LOG_FILE = "_generator_log.json"
PARTITION_PREFIX = "ingest_date="

CUSTOMERS, PRODUCTS, ORDERS, ORDER_ITEMS, PAYMENTS, EVENTS = (
    "customers", "products", "orders", "order_items", "payments", "events",
)
DIMENSIONS = (CUSTOMERS, PRODUCTS)

CURRENCIES = ("EUR", "USD", "GBP")
CURRENCY_P = (0.55, 0.30, 0.15)
COUNTRIES = ("DE", "FR", "GB", "US", "NL", "ES", "IT", "PL", "SE", "AT",
             "BE", "CH", "IE", "DK", "PT", "CA", "AU", "JP", "BR", "IN")
FIRST_NAMES = (("Anna", "anna"), ("Zoë", "zoe"), ("José", "jose"), ("Liam", "liam"),
               ("Sofía", "sofia"), ("Noah", "noah"), ("Mia", "mia"), ("Lukas", "lukas"),
               ("Chloé", "chloe"), ("Mateo", "mateo"), ("Emma", "emma"), ("Olivier", "olivier"),
               ("Björn", "bjorn"), ("Aoife", "aoife"), ("Jan", "jan"), ("Fatima", "fatima"),
               ("Yuki", "yuki"), ("Priya", "priya"), ("Ben", "ben"), ("Léa", "lea"))
LAST_NAMES = (("Müller", "mueller"), ("O'Brien", "obrien"), ("García", "garcia"),
              ("Smith", "smith"), ("Rossi", "rossi"), ("Nowak", "nowak"), ("Dubois", "dubois"),
              ("Jansen", "jansen"), ("Silva", "silva"), ("Tanaka", "tanaka"),
              ("Kowalski", "kowalski"), ("Andersson", "andersson"), ("Byrne", "byrne"),
              ("Novák", "novak"), ("Schmidt", "schmidt"), ("Martin", "martin"),
              ("de Vries", "devries"), ("López", "lopez"), ("Patel", "patel"), ("Brown", "brown"))
NICKNAMES = ("Sunny", "Ace", "Bee", "Doc")
DOMAINS = ("example.com", "mail.example.org", "shop.example.net", "example.co.uk", "post.example.de")
CATEGORIES = ("electronics", "home", "garden", "toys", "books", "fashion", "sports", "beauty")
ADJECTIVES = ("Classic", "Compact", "Deluxe", "Eco", "Smart", "Vintage", "Ultra", "Mini", "Pro", "Cozy")
NOUNS = ("Lamp", "Chair", "Kettle", "Backpack", "Headphones", "Puzzle", "Novel", "Sneakers",
         "Blender", "Plant Pot", "Yoga Mat", "Desk")
EXTRA_VALUES = ("", "WINTER10", "FREESHIP", "VIP", "10% off, today only")

# Weights by enum value; a value the contract adds later gets a small default weight.
ORDER_STATUS_W = {"placed": .15, "paid": .35, "shipped": .25, "delivered": .15,
                  "cancelled": .07, "refunded": .03}
PAYMENT_METHOD_W = {"card": .6, "paypal": .2, "bank_transfer": .12, "gift_card": .08}
EVENT_TYPE_W = {"page_view": .62, "add_to_cart": .2, "checkout": .1, "purchase": .08}
PLATFORM_W = {"web": .55, "ios": .25, "android": .2}

# Clean-data rates.
LATE_RATE = {ORDERS: 0.01, EVENTS: 0.005}
FAILED_ATTEMPT_RATE = 0.08
ANONYMOUS_RATE = 0.25
WHITESPACE_RATE = 0.01
ID_WHITESPACE_RATE = 0.003
CASE_RATE = 0.05
MONEY_SHORT_RATE = 0.02  # "12.5" / "12" instead of "12.50" / "12.00"
MONEY_PLUS_RATE = 0.003  # "+12.50"
WS_PADS = ((" ", ""), ("", " "), ("  ", "  "), (" ", " "))
FILE_SHUFFLE_P, FILE_HEADER_P, FILE_BOM_P, FILE_CRLF_P = 0.25, 0.25, 0.08, 0.10

# Timestamp spellings: (separator, fraction digits, zone) with zone "Z", "off", "" or "epoch".
TS_STYLES = (("T", 0, "Z"), (" ", 0, ""), ("T", 3, "Z"), ("T", 0, "off"), (" ", 0, "off"),
             ("T", 6, ""), ("", 0, "epoch"), ("T", 0, ""), (" ", 3, "off"))
_TS_ZONE = np.array([{"": 0, "Z": 1, "off": 2, "epoch": 3}[s[2]] for s in TS_STYLES])
TS_STYLE_P = (0.60, 0.10, 0.06, 0.06, 0.04, 0.04, 0.04, 0.04, 0.02)
TZ_OFFSETS_MIN = (60, 120, -300, 330, -180, 540, 0, -480, 345)

# Values that are really invalid (checked against the contract at generation time).
BAD_EMAILS = ("anna.mueller.example.com", "anna@@example.com", "anna mueller@example.com",
              "anna.mueller@example")
BAD_COUNTRIES = ("U5", "Germany", "D")
BAD_CURRENCIES = ("EURO", "US$", "E")
BAD_ENUMS = {"status": ("pending", "on_hold"), "method": ("cash", "crypto"),
             "event_type": ("scroll", "click"), "platform": ("windows", "smart_tv")}
BAD_TIMESTAMPS = ("%d/%m/%Y", "%d/%m/%Y %H:%M", "%b %d %Y %H:%M")
BAD_INTEGERS = ("two", "3x", "#2")
BAD_DURATIONS = ("1,500", "12s", "n/a")
FUTURE_DAYS = 3

# ----------------------------------------------------------------------------- defect kinds

ROW_KINDS = C.REJECT_REASONS
VALID_KINDS = ("late_arriving", "resent_orders", "no_changes")  # valid data, still logged
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
}
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
    r"(?:@(?P<option>[A-Za-z0-9_]+))?(?:=(?P<value>[0-9.]+))?$"
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
    return opt


# ----------------------------------------------------------------------------- helpers


def _rng(seed: int, d: date, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, d.toordinal(), *stream]))


def day_start(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def _weights(values: Sequence[str], w: dict[str, float]) -> np.ndarray:
    p = np.array([w.get(v, 0.02) for v in values], dtype=float)
    return p / p.sum()


def _ndigits(x: int) -> int:
    return len(str(max(int(x), 1)))


def _arr(values: Iterable[str]) -> pa.Array:
    return pa.array(list(values), type=pa.string())


def _from_matrix(m: np.ndarray, lengths: np.ndarray | None = None) -> pa.Array:
    """uint8 matrix (n, w) of characters, row i using its first lengths[i] -> string array."""
    n, w = m.shape
    if lengths is None:
        data = np.ascontiguousarray(m).reshape(-1)
        offsets = np.arange(0, (n + 1) * w, w, dtype=np.int64)
    else:
        data = m[np.arange(w)[None, :] < lengths[:, None]]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 2**31 - 1:
        return pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)])


def _put_digits(m: np.ndarray, col: int, values: np.ndarray, width: int) -> None:
    small = len(values) and int(values.max()) < 2**31 and int(values.min()) >= 0
    v = values.astype(np.int32 if small else np.int64, copy=True)
    for k in range(width - 1, -1, -1):
        m[:, col + k] = 48 + v % 10
        v //= 10


def fixed_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """prefix + zero-padded numbers, e.g. fixed_ids('C', [1], 7) -> 'C0000001'."""
    numbers = np.asarray(numbers, dtype=np.int64)
    if len(numbers):
        width = max(width, _ndigits(numbers.max()))
    p = prefix.encode()
    m = np.empty((len(numbers), len(p) + width), dtype=np.uint8)
    m[:, : len(p)] = np.frombuffer(p, dtype=np.uint8)
    _put_digits(m, len(p), numbers, width)
    return _from_matrix(m)


_FRAC = None


def money(cents: np.ndarray) -> pa.Array:
    """Non-negative integer cents -> '12.34'."""
    global _FRAC
    if _FRAC is None:
        _FRAC = _arr(f"{i:02d}" for i in range(100))
    cents = np.asarray(cents, dtype=np.int64)
    neg = cents < 0
    a = np.abs(cents)
    s = pc.binary_join_element_wise(pc.cast(pa.array(a // 100), pa.string()), pc.take(_FRAC, pa.array(a % 100)), ".")
    if neg.any():
        s = pc.if_else(pa.array(neg), pc.binary_join_element_wise(pa.scalar("-"), s, ""), s)
    return s


def money_str(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    a = abs(int(cents))
    return f"{sign}{a // 100}.{a % 100:02d}"


def integers(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())


def timestamps(sec: np.ndarray, style: np.ndarray | int, rng: np.random.Generator | None = None) -> pa.Array:
    """UTC epoch seconds -> strings in the accepted spellings of TS_STYLES (style per row)."""
    sec = np.asarray(sec, dtype=np.int64)
    n = len(sec)
    style = np.full(n, style, dtype=np.int64) if np.isscalar(style) else np.asarray(style, dtype=np.int64)
    if n == 0:
        return pa.array([], type=pa.string())
    rng = rng or np.random.default_rng(0)
    chunk = 2_000_000
    if n > chunk:  # bounded temporary memory
        return pa.concat_arrays([timestamps(sec[i:i + chunk], style[i:i + chunk], rng) for i in range(0, n, chunk)])
    kinds = _TS_ZONE[style]
    use_off = kinds == 2
    off = np.zeros(n, dtype=np.int64)
    if use_off.any():
        off[use_off] = np.array(TZ_OFFSETS_MIN)[rng.integers(0, len(TZ_OFFSETS_MIN), use_off.sum())]
    local = sec + off * 60
    days = local // DAY
    sod = local - days * DAY
    d0, d1 = int(days.min()), int(days.max())
    epoch = date(1970, 1, 1).toordinal()
    table = np.frombuffer("".join(date.fromordinal(epoch + d).isoformat() for d in range(d0, d1 + 1)).encode(),
                        dtype=np.uint8).reshape(-1, 10)
    w = 29
    m = np.zeros((n, w), dtype=np.uint8)
    m[:, :10] = table[days - d0]
    seps = np.array([ord(s[0]) if s[0] else 84 for s in TS_STYLES], dtype=np.uint8)
    m[:, 10] = seps[style]
    hh, mm, ss = sod // 3600, sod // 60 % 60, sod % 60
    for col, v in ((11, hh), (14, mm), (17, ss)):
        m[:, col] = 48 + v // 10
        m[:, col + 1] = 48 + v % 10
    m[:, 13] = m[:, 16] = 58
    lengths = np.full(n, 19, dtype=np.int64)
    frac = np.array([s[1] for s in TS_STYLES])[style]
    for digits in (3, 6):
        idx = np.flatnonzero(frac == digits)
        if len(idx):
            sub = np.zeros((len(idx), digits + 1), dtype=np.uint8)
            sub[:, 0] = 46
            _put_digits(sub, 1, rng.integers(0, 10**digits, len(idx)), digits)
            m[idx, 19 : 20 + digits] = sub
            lengths[idx] += digits + 1
    zi = np.flatnonzero(kinds == 1)
    m[zi, lengths[zi]] = 90
    lengths[zi] += 1
    oi = np.flatnonzero(use_off)
    if len(oi):
        o = off[oi]
        a = np.abs(o)
        sub = np.empty((len(oi), 6), dtype=np.uint8)
        sub[:, 0] = np.where(o < 0, 45, 43)
        sub[:, 1], sub[:, 2] = 48 + a // 600, 48 + a // 60 % 10
        sub[:, 3] = 58
        sub[:, 4], sub[:, 5] = 48 + a % 60 // 10, 48 + a % 10
        for j in range(6):
            m[oi, lengths[oi] + j] = sub[:, j]
        lengths[oi] += 6
    ei = np.flatnonzero(kinds == 3)
    if len(ei):
        ew = _ndigits(int(sec[ei].max()))
        sub = np.zeros((len(ei), ew), dtype=np.uint8)
        _put_digits(sub, 0, sec[ei], ew)
        m[ei, :ew] = sub
        m[ei, ew:] = 0
        lengths[ei] = ew
    return _from_matrix(m, lengths)


def ts_str(sec: int, style: int = 0) -> str:
    return timestamps(np.array([sec]), style)[0].as_py()


def _trim_list(a: pa.Array) -> list[str]:
    return pc.utf8_trim(a, characters=" ").to_pylist()


_NUM_RE = re.compile(r"^([+-]?)(\d+)(?:\.(\d+))?$")


def decimal_sum(values: pa.Array) -> Decimal:
    """Exact sum of decimal strings as written; blank or unparseable values count as 0."""
    total = Decimal(0)
    if len(values) == 0:
        return total
    vc = pc.value_counts(pc.utf8_trim(values, characters=" \t"))
    for v, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
        if v and _NUM_RE.match(v):
            total += Decimal(v) * n
    return total


def fmt_sum(d: Decimal) -> str:
    return str(d.quantize(Decimal("0.01")))


# ----------------------------------------------------------------------------- frames


class Frame:
    """One landing file being built: string columns (pyarrow) plus aligned numpy metadata.

    Row positions stay stable until `finalize`; added rows are appended and placed at their
    requested position by a single permutation at the end. `uid` identifies rows for the log.
    """

    def __init__(self, name: str, cols: dict[str, pa.Array], meta: dict[str, np.ndarray]):
        self.name = name
        self.cols = dict(cols)
        self.n = len(next(iter(cols.values())))
        self.meta = {k: np.asarray(v) for k, v in meta.items()}
        self.meta["uid"] = np.arange(self.n, dtype=np.int64)
        self.meta.setdefault("used", np.zeros(self.n, dtype=bool))
        self.meta.setdefault("protected", np.zeros(self.n, dtype=bool))
        self.base_n = self.n
        self.next_uid = self.n
        self.may_quote: set[str] = set()
        self.ws: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # column -> (uids, pad index)
        self._inv: np.ndarray | None = None  # uid -> position cache (after finalize)
        self._inv_n = -1
        self.order = list(cols)  # column order as written

    def get(self, col: str, rows: np.ndarray) -> pa.Array:
        return pc.take(self.cols[col], pa.array(np.asarray(rows, dtype=np.int64)))

    def set(self, col: str, rows: np.ndarray, values: Sequence[str] | pa.Array) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return
        vals = values if isinstance(values, pa.Array) else _arr(values)
        order = np.argsort(rows, kind="stable")
        mask = np.zeros(self.n, dtype=bool)
        mask[rows] = True
        self.cols[col] = pc.replace_with_mask(self.cols[col], pa.array(mask), pc.take(vals, pa.array(order)))
        self.may_quote.add(col)

    def add_rows(self, cols: dict[str, pa.Array], meta: dict[str, np.ndarray], positions: np.ndarray) -> np.ndarray:
        """Append rows; positions[i] = index of the base row they go before (n = at the end)."""
        k = len(next(iter(cols.values())))
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        if "pos" not in self.meta:  # sort key of the final order: base row i -> 2i+1
            self.meta["pos"] = np.arange(self.n, dtype=np.int64) * 2 + 1
        for c in self.cols:
            self.cols[c] = pa.concat_arrays([self.cols[c], cols[c].cast(self.cols[c].type)])
        uids = np.arange(self.next_uid, self.next_uid + k, dtype=np.int64)
        self.next_uid += k
        extra = {"uid": uids, "pos": np.asarray(positions, dtype=np.int64) * 2,
                 "used": np.ones(k, dtype=bool), "protected": np.zeros(k, dtype=bool)}
        for key, arr in self.meta.items():
            add = extra.get(key, meta.get(key))
            if add is None:
                add = np.zeros(k, dtype=arr.dtype)
            self.meta[key] = np.concatenate([arr, np.asarray(add, dtype=arr.dtype)])
        self.n += k
        return uids

    def row_dict(self, rows: np.ndarray) -> dict[str, pa.Array]:
        return {c: self.get(c, rows) for c in self.cols}

    def add_column(self, name: str, values: pa.Array, position: int) -> None:
        self.cols[name] = values
        self.order.insert(position, name)
        self.may_quote.add(name)

    def drop_column(self, name: str) -> None:
        del self.cols[name]
        self.ws.pop(name, None)
        self.order.remove(name)

    def shrink(self) -> None:
        """After writing: keep only what the log needs (key columns and row identities)."""
        key = C.table(self.name).key
        self.cols = {c: a for c, a in self.cols.items() if c in key}
        keep = ("uid", "order", "pos")
        self.meta = {k: v for k, v in self.meta.items() if k in keep}

    def finalize(self) -> None:
        pos = self.meta.get("pos")
        if pos is not None and len(pos) > 1 and np.any(np.diff(pos) < 0):
            perm = np.argsort(pos, kind="stable")
            idx = pa.array(perm)
            for c in list(self.cols):  # one column at a time: bounded extra memory
                self.cols[c] = pc.take(self.cols[c], idx)
            for k in list(self.meta):
                self.meta[k] = self.meta[k][perm]
            self._inv = None
        self._line_of = {}

    def lines(self, uids: Iterable[int]) -> list[int]:
        """1-based physical line numbers (header = line 1) of rows, after finalize."""
        uids = np.asarray(list(uids), dtype=np.int64)
        if len(uids) == 0:
            return []
        u = self.meta["uid"]
        if self._inv is None or len(self._inv) != self.next_uid or self._inv_n != len(u):
            if np.array_equal(u, np.arange(len(u))):
                self._inv = None
                self._inv_n = -1
                return (uids + 2).tolist()
            self._inv = np.full(self.next_uid, -1, dtype=np.int64)
            self._inv[u] = np.arange(len(u))
            self._inv_n = len(u)
        return (self._inv[uids] + 2).tolist()

    def keys(self, uids: Iterable[int]) -> list[dict[str, str]]:
        uids = list(uids)
        lines = self.lines(uids)
        rows = np.array(lines, dtype=np.int64) - 2
        key = C.table(self.name).key
        vals = {k: (_trim_list(self.get(k, rows)) if k in self.cols else [""] * len(rows)) for k in key}
        return [{k: vals[k][i] for k in key} for i in range(len(rows))]


# ----------------------------------------------------------------------------- state


@dataclass
class Pool:
    """Dimension rows ever sent (all versions' latest attributes), as numpy columns."""

    cols: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(next(iter(self.cols.values()))) if self.cols else 0

    def extend(self, new: dict[str, np.ndarray]) -> None:
        if not self.cols:
            self.cols = {k: np.asarray(v) for k, v in new.items()}
        else:
            self.cols = {k: np.concatenate([self.cols[k], np.asarray(new[k], dtype=self.cols[k].dtype)])
                         for k in self.cols}


@dataclass
class Config:
    start: date
    days: int
    orders_per_day: int
    seed: int
    defects: list[DefectSpec]
    clean_dims_after_day_one: bool = False

    @property
    def n_customers0(self) -> int:
        return max(50, self.orders_per_day)

    @property
    def n_products0(self) -> int:
        return int(np.clip(30 + self.orders_per_day // 100, 30, 200))

    @property
    def order_width(self) -> int:
        return max(6, _ndigits(int(self.orders_per_day * 1.2)))

    @property
    def payment_width(self) -> int:
        return max(6, _ndigits(int(self.orders_per_day * 1.5)))

    @property
    def event_width(self) -> int:
        return max(8, _ndigits(int(self.orders_per_day * 13)))

    @property
    def session_width(self) -> int:
        return max(7, _ndigits(int(self.orders_per_day * 3)))


@dataclass
class State:
    customers: Pool = field(default_factory=Pool)
    products: Pool = field(default_factory=Pool)
    recent_orders: list[dict[str, np.ndarray]] = field(default_factory=list)  # last days' orders


# ----------------------------------------------------------------------------- log


@dataclass
class GenerationLog:
    params: dict[str, Any]
    days: list[dict[str, Any]] = field(default_factory=list)

    def day(self, d: date | str) -> dict[str, Any]:
        key = d if isinstance(d, str) else d.isoformat()
        for entry in self.days:
            if entry["ingest_date"] == key:
                return entry
        raise KeyError(key)

    def injections(self, d: date | str, kind: str | None = None, table: str | None = None) -> list[dict]:
        return [i for i in self.day(d)["injected"]
                if (kind is None or i["kind"] == kind) and (table is None or i["table"] == table)]

    def to_dict(self) -> dict[str, Any]:
        return {"generator": "dq_assets.generator", "format_version": 1, "params": self.params, "days": self.days}

    @classmethod
    def load(cls, path: str | Path) -> "GenerationLog":
        p = Path(path)
        if p.is_dir():
            p = p / LOG_FILE
        data = json.loads(p.read_text(encoding="utf-8"))
        return cls(params=data["params"], days=data["days"])


# ----------------------------------------------------------------------------- the generator


def generate(
    out_dir: str | Path,
    start: date,
    days: int,
    orders_per_day: int = 1000,
    seed: int = 0,
    defects: Sequence[DefectSpec | str] = (),
    clean_dims_after_day_one: bool = False,
    clean: bool = False,
) -> GenerationLog:
    """Generate `days` daily partitions from `start` into out_dir; return (and write) the log.

    Each generated partition folder is replaced; `clean=True` also removes every other
    `ingest_date=*` folder of out_dir.
    """
    if days < 1 or orders_per_day < 1:
        raise ValueError("days and orders_per_day must be >= 1")
    specs = [parse_defect(s) if isinstance(s, str) else s for s in defects]
    end = start + timedelta(days=days - 1)
    for s in specs:
        if s.day is not None and not (start <= s.day <= end):
            raise DefectError(f"{s}: day outside {start}..{end}")
        _spec_tables(s)
    _check_constants()
    cfg = Config(start, days, orders_per_day, seed, specs, clean_dims_after_day_one)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if clean:
        for p in out.glob(PARTITION_PREFIX + "*"):
            if p.is_dir():
                shutil.rmtree(p)
    log = GenerationLog(params={
        "start": start.isoformat(), "days": days, "orders_per_day": orders_per_day, "seed": seed,
        "clean_dims_after_day_one": clean_dims_after_day_one, "defects": [str(s) for s in specs],
    })
    state = State()
    for i in range(days):
        d = start + timedelta(days=i)
        log.days.append(_Day(cfg, state, i, d).run(out))
    (out / LOG_FILE).write_text(json.dumps(log.to_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return log


def _check_constants() -> None:
    cc, cur = C.country_codes(), C.currency_codes()
    assert set(COUNTRIES) <= cc and set(CURRENCIES) <= cur
    assert not set(BAD_COUNTRIES) & cc and not {b.upper() for b in BAD_CURRENCIES} & cur
    enums = {"status": C.ORDER_STATUSES + C.PAYMENT_STATUSES, "method": C.PAYMENT_METHODS,
             "event_type": C.EVENT_TYPES, "platform": C.PLATFORMS}
    for k, bad in BAD_ENUMS.items():
        assert not set(bad) & set(enums[k]), k


@dataclass
class _Task:
    kind: str
    table: str
    option: str
    count: int = 0
    param: float | None = None
    spec: str = ""
    rid: int = -1  # row-level task id (reserved payment carriers)


class _Day:
    """Everything for one ingest date."""

    def __init__(self, cfg: Config, state: State, index: int, d: date):
        self.cfg, self.state, self.i, self.d = cfg, state, index, d
        self.ds = day_start(d)
        self.de = self.ds + DAY - 1
        self.tag = d.strftime("%Y%m%d")
        self.rng_base = _rng(cfg.seed, d, 0)
        self.rng_def = _rng(cfg.seed, d, 2)
        self.injected: list[dict[str, Any]] = []
        self.pending_log: list[tuple[dict, str, list[int], dict]] = []  # (entry, table, uids, extra per row)
        self.frames: dict[str, Frame] = {}

    def mess_rng(self, table: str, purpose: int) -> np.random.Generator:
        return _rng(self.cfg.seed, self.d, 1, C.TABLE_NAMES.index(table), purpose)

    # ------------------------------------------------------------------ plan

    def plan(self) -> list[_Task]:
        """Resolve today's specs into tasks; row-level counts are resolved once sizes are known."""
        tasks = []
        for s in self.cfg.defects:
            if s.day is not None and s.day != self.d:
                continue
            for t in _spec_tables(s):
                if (s.day is None and self.cfg.clean_dims_after_day_one and self.i > 0
                        and t in DIMENSIONS):
                    continue
                task = _Task(s.kind, t, _check_option(s, t), param=s.value, spec=str(s))
                if s.kind == "no_changes" and self.i == 0:
                    raise DefectError(f"{s}: the first day carries the full initial set")
                if s.day is None and s.kind in PROBABILITY_KINDS:
                    if self.rng_def.random() >= (1.0 if s.value is None else s.value):
                        continue
                    task.param = None
                elif s.kind in ROW_KINDS or s.kind in BATCH_KINDS:
                    task.count = -2 if s.value is None else -1 if s.is_rate else int(s.value)
                tasks.append(task)
        return tasks

    def _count(self, task: _Task, n_rows: int, default_rate: float | None = None) -> int:
        if task.count >= 0:
            return task.count
        if task.count == -2:  # no value given
            if default_rate is None:
                return 1
            return max(1, int(round(default_rate * n_rows)))
        rate = float(task.param)
        x = rate * n_rows
        return int(np.floor(x + self.rng_def.random()))

    # ------------------------------------------------------------------ run

    def run(self, out: Path) -> dict[str, Any]:
        tasks = self.plan()
        by_kind = lambda k: [t for t in tasks if t.kind == k]  # noqa: E731
        factor = 1.0
        for t in by_kind("volume_drop"):
            factor = float(t.param) if t.param is not None else 0.3
        no_changes = {t.table for t in by_kind("no_changes")}

        cust_rows = self.customers_delta(CUSTOMERS in no_changes)
        prod_rows = self.products_delta(PRODUCTS in no_changes)
        o, it, pay = self.gen_orders(factor)
        ev = self.gen_events(factor)

        for t in by_kind("volume_drop"):
            normal = self.cfg.orders_per_day
            self.injected.append({"kind": "volume_drop", "table": "*", "factor": factor,
                                  "normal_orders_per_day": normal, "orders": int(len(o["seq"])),
                                  "events": int(len(ev["ts"])), "count": int(len(o["seq"])), "spec": t.spec})
        for t in by_kind("no_changes"):
            self.injected.append({"kind": "no_changes", "table": t.table, "count": 0, "spec": t.spec})

        # numeric-stage injections (they change amounts, timestamps or add consistent rows)
        n_base_orders = len(o["seq"])
        used_orders = np.zeros(n_base_orders, dtype=bool)
        for t in by_kind("partial_load"):
            ev = self.partial_load(t, ev)
        for t in by_kind("resent_orders"):
            o, it, pay, used_orders = self.resent_orders(t, o, it, pay, used_orders, n_base_orders)
        for t in by_kind("late_arriving"):
            if t.table == ORDERS:
                self.late_orders(t, o, pay, used_orders, n_base_orders)
            else:
                self.late_events(t, ev)
        row_tasks = [t for t in tasks if t.kind in ROW_KINDS]
        sizes = {ORDERS: n_base_orders, ORDER_ITEMS: len(it["order"]), PAYMENTS: len(pay["order"]),
                 EVENTS: len(ev["ts"]), CUSTOMERS: len(cust_rows["cust"]), PRODUCTS: len(prod_rows["prod"])}
        for i, t in enumerate(row_tasks):
            t.count = self._count(t, sizes[t.table])
            t.rid = i
        for t in row_tasks:
            if t.table == ORDER_ITEMS and t.kind in ("calculation_mismatch", "out_of_range"):
                self.item_amount_defect(t, o, it, pay, used_orders)
        pay_tasks = [t for t in row_tasks if t.table == PAYMENTS and t.kind not in ("unknown_reference", "duplicate")]
        pay = self.reserve_payment_carriers(pay_tasks, o, pay, used_orders, n_base_orders)
        pay = self.sort_payments(pay, o)

        self.used_orders = used_orders
        mess_log: dict[str, Any] = {
            "late_rows": {ORDERS: int((o["order_ts"] < self.ds).sum()), PAYMENTS: int((pay["ts"] < self.ds).sum()),
                          EVENTS: int((ev["ts"] < self.ds).sum())},
            "bom": [], "crlf": [], "shuffled_columns": [], "header_variants": []}
        dims_ref = (np.unique(np.concatenate([o["cust"], ev["cust"][ev["cust"] >= 0]])), np.unique(it["prod"]))
        pdir = out / f"{PARTITION_PREFIX}{self.d.isoformat()}"
        if pdir.exists():
            shutil.rmtree(pdir)
        pdir.mkdir(parents=True)
        missing = {t.table for t in by_kind("missing_file")}
        unlisted = {t.table for t in by_kind("unlisted_file")}
        manifest_files: dict[str, dict[str, Any]] = {}
        files_log: dict[str, dict[str, Any]] = {}
        # table by table: format, inject (duplicates last so they copy clean rows), write, shrink
        kind_order = [k for k in ROW_KINDS if k != "duplicate"] + ["duplicate"]
        for tname in C.TABLE_NAMES:
            if tname == CUSTOMERS:
                f = self.format_customers(cust_rows)
                f.meta["depended"] = f.meta["is_new"] & np.isin(f.meta["cust"], dims_ref[0])
            elif tname == PRODUCTS:
                f = self.format_products(prod_rows)
                f.meta["depended"] = f.meta["is_new"] & np.isin(f.meta["prod"], dims_ref[1])
            elif tname == ORDERS:
                f = self.format_orders(o, used_orders)
            elif tname == ORDER_ITEMS:
                f = self.format_items(it, o)
            elif tname == PAYMENTS:
                f = self.format_payments(pay, o)
            else:
                f = self.format_events(ev)
                ev = None  # free the numeric events early
            self.frames[tname] = f
            for k in kind_order:
                for t in row_tasks:
                    if t.table == tname and t.kind == k and not (
                            tname == ORDER_ITEMS and k in ("calculation_mismatch", "out_of_range")):
                        self.row_defect(t)
            for t in by_kind("missing_column"):
                if t.table == tname:
                    f.drop_column(t.option)
                    self.injected.append({"kind": "missing_column", "table": tname, "column": t.option,
                                          "count": 1, "spec": t.spec})
            for t in by_kind("extra_column"):
                if t.table == tname:
                    r = self.mess_rng(tname, 9)
                    vals = pc.take(_arr(EXTRA_VALUES), pa.array(r.choice(len(EXTRA_VALUES), f.n, p=[.5, .2, .15, .1, .05])))
                    f.add_column(t.option, vals, int(r.integers(0, len(f.order) + 1)))
                    self.injected.append({"kind": "extra_column", "table": tname, "column": t.option,
                                          "count": 1, "spec": t.spec})
            tab = C.table(tname)
            if f.n == 0 and tname in DIMENSIONS:
                files_log[tab.file_name] = {"rows": 0, "present": False, "listed": False}
                continue
            f.finalize()
            present = tname not in missing
            info = self.write_frame(f, pdir / tab.file_name, present, mess_log)
            f.shrink()
            pa.default_memory_pool().release_unused()
            listed = tname not in unlisted
            files_log[tab.file_name] = {"rows": info["rows"], "present": present, "listed": listed}
            if listed:
                manifest_files[tab.file_name] = info
        for tname in sorted(missing):
            self.injected.append({"kind": "missing_file", "table": tname, "file": C.table(tname).file_name,
                                  "count": 1, "spec": _spec_of(tasks, "missing_file", tname)})
        for tname in sorted(unlisted):
            self.injected.append({"kind": "unlisted_file", "table": tname, "file": C.table(tname).file_name,
                                  "count": 1, "spec": _spec_of(tasks, "unlisted_file", tname)})
        for t in by_kind("manifest_drift"):
            self.manifest_drift(t, manifest_files)
        manifest = {"ingest_date": self.d.isoformat(), "files": manifest_files}
        (pdir / C.MANIFEST_FILE).write_bytes((json.dumps(manifest, indent=2) + "\n").encode("utf-8"))

        # resolve row uids into lines and keys
        for entry, tname, uids, extras in self.pending_log:
            f = self.frames[tname]
            rows = []
            refs = [v for u in uids for k, v in extras.get(u, {}).items() if k.endswith("_line")]
            ref_line = dict(zip(refs, f.lines(refs)))
            for u, line, key in zip(uids, f.lines(uids), f.keys(uids)):
                r = {"line": line, "key": key}
                r.update({k: (ref_line[v] if k.endswith("_line") else v) for k, v in extras.get(u, {}).items()})
                rows.append(r)
            entry.setdefault("rows", []).extend(rows)

        self.update_state(o)
        expected: dict[str, dict[str, int]] = {}
        for e in self.injected:
            if e["kind"] in ROW_KINDS and e["count"]:
                expected.setdefault(e["table"], {}).setdefault(e["kind"], 0)
                expected[e["table"]][e["kind"]] += e["count"]
        return {"ingest_date": self.d.isoformat(),
                "valid": all(e["kind"] in VALID_KINDS for e in self.injected),
                "files": files_log, "injected": self.injected,
                "expected_quarantine": expected, "mess": mess_log}

    def log_rows(self, entry: dict, table: str, uids: np.ndarray, extras: dict | None = None) -> None:
        self.pending_log.append((entry, table, [int(u) for u in uids], extras or {}))

    # ------------------------------------------------------------------ dimensions

    def customers_delta(self, none: bool) -> dict[str, np.ndarray]:
        r, pool = self.rng_base, self.state.customers
        ds, de = self.ds, self.de
        if self.i == 0:
            n = self.cfg.n_customers0
            signup = ds - r.integers(DAY, 730 * DAY, n)
            new = self._new_customers(r, n, signup)
            pool.extend(new)
            return {**{k: v.copy() for k, v in new.items()}, "cust": np.arange(n), "is_new": np.ones(n, bool)}
        if none:
            return self._empty_cust()
        n0 = self.cfg.n_customers0
        n_new = max(1, int(round(max(2, 0.02 * n0) * r.uniform(0.9, 1.1))))
        n_chg = min(pool.n, max(1, int(round(max(2, 0.01 * pool.n) * r.uniform(0.9, 1.1)))))
        chg = np.sort(r.choice(pool.n, n_chg, replace=False))
        what = r.random(n_chg)
        c = pool.cols
        c["domain"][chg[what < .5]] = (c["domain"][chg[what < .5]] + 1) % len(DOMAINS)
        sel = chg[(what >= .5) & (what < .8)]
        c["country"][sel] = (c["country"][sel] + 1 + r.integers(0, len(COUNTRIES) - 1, len(sel))) % len(COUNTRIES)
        sel = chg[what >= .8]
        c["name_style"][sel] = (c["name_style"][sel] + 1) % 3
        c["updated"][chg] = ds + r.integers(0, DAY, n_chg)
        signup = ds + r.integers(0, DAY - 10, n_new)
        new = self._new_customers(r, n_new, signup)
        first = pool.n
        pool.extend(new)
        ids = np.concatenate([chg, np.arange(first, first + n_new)])
        rows = {k: v[ids].copy() for k, v in pool.cols.items()}
        rows["cust"] = ids
        rows["is_new"] = ids >= first
        o = np.argsort(rows["updated"], kind="stable")
        return {k: v[o] for k, v in rows.items()}

    def _new_customers(self, r, n, signup):
        upd = signup + 1 + (r.random(n) * (self.de - signup - 1)).astype(np.int64)
        return {
            "first": r.integers(0, len(FIRST_NAMES), n), "last": r.integers(0, len(LAST_NAMES), n),
            "domain": r.integers(0, len(DOMAINS), n), "country": r.integers(0, len(COUNTRIES), n),
            "name_style": r.choice(3, n, p=[.9, .08, .02]), "signup": signup.astype(np.int64),
            "updated": upd,
        }

    def _empty_cust(self):
        z = np.zeros(0, dtype=np.int64)
        return {k: z for k in ("first", "last", "domain", "country", "name_style", "signup", "updated", "cust")} | {
            "is_new": np.zeros(0, bool)}

    def products_delta(self, none: bool) -> dict[str, np.ndarray]:
        r, pool = self.rng_base, self.state.products
        if self.i == 0:
            n = self.cfg.n_products0
            new = self._new_products(r, n, self.ds - r.integers(DAY, 365 * DAY, n))
            new["currency"][: len(CURRENCIES)] = np.arange(len(CURRENCIES))
            pool.extend(new)
            return {**{k: v.copy() for k, v in new.items()}, "prod": np.arange(n), "is_new": np.ones(n, bool)}
        if none:
            z = np.zeros(0, dtype=np.int64)
            return {k: z for k in pool.cols} | {"prod": z, "is_new": np.zeros(0, bool)}
        n_chg = min(pool.n, max(2, int(round(0.03 * pool.n * r.uniform(0.9, 1.1)))))
        n_new = 1 if r.random() < 0.5 else 0
        chg = np.sort(r.choice(pool.n, n_chg, replace=False))
        c = pool.cols
        c["price"][chg] = np.maximum(50, np.round(c["price"][chg] * r.uniform(0.85, 1.15, n_chg))).astype(np.int64)
        c["updated"][chg] = self.ds + r.integers(0, DAY, n_chg)
        first = pool.n
        if n_new:
            pool.extend(self._new_products(r, n_new, self.ds + r.integers(0, DAY, n_new)))
        ids = np.concatenate([chg, np.arange(first, first + n_new)])
        rows = {k: v[ids].copy() for k, v in pool.cols.items()}
        rows["prod"] = ids
        rows["is_new"] = ids >= first
        o = np.argsort(rows["updated"], kind="stable")
        return {k: v[o] for k, v in rows.items()}

    def _new_products(self, r, n, updated):
        return {
            "adj": r.integers(0, len(ADJECTIVES), n), "noun": r.integers(0, len(NOUNS), n),
            "category": r.integers(0, len(CATEGORIES), n), "name_style": r.choice(2, n, p=[.9, .1]),
            "price": np.maximum(50, np.round(np.exp(r.normal(3.2, 0.8, n)) * 100)).astype(np.int64),
            "currency": r.choice(len(CURRENCIES), n, p=CURRENCY_P), "updated": updated.astype(np.int64),
        }

    # ------------------------------------------------------------------ facts (numeric)

    def gen_orders(self, factor: float):
        r, cfg = self.rng_base, self.cfg
        ds, de = self.ds, self.de
        n = max(1, int(round(cfg.orders_per_day * r.uniform(0.92, 1.08) * factor)))
        ts = ds + r.integers(0, DAY - 120, n)
        late = r.random(n) < LATE_RATE[ORDERS]
        ts[late] = ds - r.integers(60, 2 * DAY, int(late.sum()))
        ts = np.sort(ts)
        lo = np.maximum(ts + 60, ds)
        upd = lo + (r.random(n) * (de - lo + 1)).astype(np.int64)
        cust = r.integers(0, self.state.customers.n, n)
        status = r.choice(len(C.ORDER_STATUSES), n, p=_weights(C.ORDER_STATUSES, ORDER_STATUS_W))
        cur = r.choice(len(CURRENCIES), n, p=CURRENCY_P)
        o = {"seq": np.arange(1, n + 1), "day": np.full(n, self.d.toordinal()), "cust": cust,
             "order_ts": ts, "updated": upd, "status": status, "cur": cur,
             "resent": np.zeros(n, bool)}
        it = self._items_for(r, np.arange(n), cur)
        o["amount"] = self._amounts(it, n)
        pay = self._payments_for(r, o, np.arange(n))
        return o, it, pay

    def _items_for(self, r, orders: np.ndarray, cur: np.ndarray) -> dict[str, np.ndarray]:
        k = 1 + np.minimum(r.poisson(1.5, len(orders)), 9)
        io = np.repeat(np.arange(len(orders)), k)
        starts = np.cumsum(k) - k
        line_no = np.arange(len(io)) - starts[io] + 1
        pc_ = self.state.products.cols
        prod = np.empty(len(io), dtype=np.int64)
        icur = cur[io]
        for c in range(len(CURRENCIES)):
            group = np.flatnonzero(pc_["currency"] == c)
            sel = np.flatnonzero(icur == c)
            prod[sel] = group[r.integers(0, len(group), len(sel))]
        qty = r.choice(np.arange(1, 6), len(io), p=[.7, .17, .07, .04, .02])
        price = pc_["price"][prod]
        return {"order": orders[io], "line_no": line_no, "prod": prod, "qty": qty, "price": price,
                "line": qty * price}

    @staticmethod
    def _amounts(it, n_orders) -> np.ndarray:
        amt = np.zeros(n_orders, dtype=np.int64)
        np.add.at(amt, it["order"], it["line"])
        return amt

    def _payments_for(self, r, o, orders: np.ndarray, force_capture: np.ndarray | None = None) -> dict[str, np.ndarray]:
        ps = C.PAYMENT_STATUSES
        cap, fail, ref = ps.index("captured"), ps.index("failed"), ps.index("refunded")
        st = C.ORDER_STATUSES
        status = o["status"][orders]
        names = np.array(st)[status]
        captured = np.isin(names, C.REVENUE_STATUSES + ("refunded",))
        if force_capture is not None:
            captured = force_capture
        refunded = names == "refunded"
        failed = r.random(len(orders)) < FAILED_ATTEMPT_RATE
        parts = []
        for mask, pstat, third in ((failed, fail, 0), (captured, cap, 1), (refunded, ref, 2)):
            sel = orders[mask]
            if len(sel) == 0:
                continue
            ots = o["order_ts"][sel]
            lo = np.maximum(ots + 1, self.ds - 3 * DAY)
            span = np.maximum(o["updated"][sel] - lo, 3)
            ts = lo + third * span // 3 + (r.random(len(sel)) * (span // 3)).astype(np.int64)
            amount = o["amount"][sel].copy()
            if pstat == fail:
                amount[r.random(len(sel)) < 0.3] = 0
            parts.append({"order": sel, "status": np.full(len(sel), pstat), "ts": ts, "amount": amount,
                          "method": r.choice(len(C.PAYMENT_METHODS), len(sel),
                                             p=_weights(C.PAYMENT_METHODS, PAYMENT_METHOD_W))})
        if not parts:
            z = np.zeros(0, dtype=np.int64)
            return {k: z for k in ("order", "status", "ts", "amount", "method")}
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def gen_events(self, factor: float) -> dict[str, np.ndarray]:
        r, ds = self.rng_base, self.ds
        n = max(48, int(round(10 * self.cfg.orders_per_day * factor * r.uniform(0.95, 1.05))))
        n_sess = max(1, n // 6)
        pool_n = self.state.customers.n
        s_cust = np.where(r.random(n_sess) < ANONYMOUS_RATE, -1, r.integers(0, pool_n, n_sess))
        s_plat = r.choice(len(C.PLATFORMS), n_sess, p=_weights(C.PLATFORMS, PLATFORM_W)).astype(np.int8)
        ts = ds + r.integers(0, DAY, n)
        late = np.flatnonzero(r.random(n) < LATE_RATE[EVENTS])
        ts[late] = ds - r.integers(1, 2 * DAY, len(late))
        ts[:24] = ds + np.arange(24) * 3600 + r.integers(0, 3600, 24)  # every hour has events
        o = np.argsort(ts, kind="stable")
        ts = ts[o]
        prot = o < 24
        del o
        # the rows are independent draws, so they are drawn directly in the sorted order
        sess = r.integers(0, n_sess, n, dtype=np.int32)
        etype = r.choice(len(C.EVENT_TYPES), n, p=_weights(C.EVENT_TYPES, EVENT_TYPE_W)).astype(np.int8)
        dur = r.normal(8.5, 1.5, n)
        np.exp(dur, out=dur)
        np.clip(dur, 0, 3_600_000, out=dur)
        dur = dur.astype(np.int32)
        dur[r.random(n) < 0.02] = 0
        return {"ts": ts, "protected": prot, "sess": sess, "cust": s_cust[sess].astype(np.int32),
                "platform": s_plat[sess], "type": etype, "dur": dur}

    # ------------------------------------------------------------------ numeric injections

    def partial_load(self, t: _Task, ev):
        hours_n = int(t.param) if t.param is not None else 6
        hours = np.sort(self.rng_def.choice(24, hours_n, replace=False))
        hod = (ev["ts"] % DAY) // 3600
        drop = np.isin(hod, hours)
        self.injected.append({"kind": "partial_load", "table": EVENTS, "hours": hours.tolist(),
                              "count": int(drop.sum()), "spec": t.spec})
        return {k: v[~drop] for k, v in ev.items()}

    def resent_orders(self, t: _Task, o, it, pay, used, n_base):
        r = self.rng_def
        prev = self.state.recent_orders
        entry = {"kind": "resent_orders", "table": ORDERS, "count": 0, "changed": 0, "unchanged": 0,
                 "spec": t.spec}
        self.injected.append(entry)
        if not prev:
            return o, it, pay, used
        hist = {k: np.concatenate([p[k] for p in prev]) for k in prev[0]}
        k = self._count(t, n_base, default_rate=0.05)
        k = min(k, len(hist["seq"]))
        st = list(C.ORDER_STATUSES)
        # about 30% placed orders (they may change amount and items), the first one always does
        placed = np.flatnonzero(hist["status"] == st.index("placed"))
        n_pl = min(len(placed), max(1, round(0.3 * k))) if k else 0
        first = np.sort(r.choice(placed, n_pl, replace=False)) if n_pl else np.zeros(0, np.int64)
        rest = np.setdiff1d(np.arange(len(hist["seq"])), first)
        pick = np.concatenate([first, np.sort(r.choice(rest, k - n_pl, replace=False))]).astype(np.int64)
        new = {key: hist[key][pick].copy() for key in ("seq", "day", "cust", "order_ts", "updated",
                                                          "status", "cur", "amount")}
        names = np.array(st)[new["status"]]
        unchanged = r.random(k) < 0.25
        force_items = n_pl > 0
        if force_items:
            unchanged[0] = False
        change = np.array(["unchanged"] * k, dtype=object)
        nxt = {"paid": "shipped", "shipped": "delivered", "delivered": "refunded"}
        new_items_for: list[int] = []
        capture = np.zeros(k, bool)
        refund = np.zeros(k, bool)
        for j in range(k):
            if unchanged[j] or names[j] in ("cancelled", "refunded"):
                unchanged[j] = True
                continue
            old = names[j]
            if old == "placed":
                u = r.random()
                if u < 0.4 or (j == 0 and force_items):
                    new_items_for.append(j)
                    new["status"][j] = st.index("paid")
                    capture[j] = True
                    change[j] = "placed->paid, amount"
                elif u < 0.7:
                    new["status"][j] = st.index("paid")
                    capture[j] = True
                    change[j] = "placed->paid"
                else:
                    new["status"][j] = st.index("cancelled")
                    change[j] = "placed->cancelled"
            else:
                new["status"][j] = st.index(nxt[old])
                refund[j] = nxt[old] == "refunded"
                change[j] = f"{old}->{nxt[old]}"
            new["updated"][j] = self.ds + int(r.integers(0, DAY))
        idx = np.arange(len(o["seq"]), len(o["seq"]) + k)
        # new items (and amounts) for orders whose content changed
        sel = np.array(new_items_for, dtype=np.int64)
        if len(sel):
            items = self._items_for(r, idx[sel], new["cur"][sel])
            amt = np.zeros(len(o["seq"]) + k, dtype=np.int64)
            np.add.at(amt, items["order"], items["line"])
            new["amount"][sel] = amt[idx[sel]]
            it = {key: np.concatenate([it[key], items[key]]) for key in it}
        o2 = {key: np.concatenate([o[key], new[key] if key != "resent" else np.ones(k, bool)]) for key in o}
        # payments: capture for placed->paid, refund for delivered->refunded
        parts = []
        ps = C.PAYMENT_STATUSES
        for mask, pstat in ((capture, ps.index("captured")), (refund, ps.index("refunded"))):
            rows = idx[mask]
            if len(rows):
                lo = np.maximum(o2["order_ts"][rows] + 1, self.ds)
                ts = lo + (r.random(len(rows)) * np.maximum(o2["updated"][rows] - lo, 1)).astype(np.int64)
                parts.append({"order": rows, "status": np.full(len(rows), pstat), "ts": ts,
                              "amount": o2["amount"][rows],
                              "method": r.choice(len(C.PAYMENT_METHODS), len(rows),
                                                 p=_weights(C.PAYMENT_METHODS, PAYMENT_METHOD_W))})
        for p in parts:
            pay = {key: np.concatenate([pay[key], p[key]]) for key in pay}
        used = np.concatenate([used, np.ones(k, bool)])
        entry.update(count=int(k), changed=int((~unchanged).sum()), unchanged=int(unchanged.sum()))
        entry["_resent"] = (idx, new["day"], change)
        return o2, it, pay, used

    def late_orders(self, t: _Task, o, pay, used, n_base):
        r = self.rng_def
        cand = np.flatnonzero(~used[:n_base] & (o["order_ts"][:n_base] >= self.ds))
        k = min(self._count(t, n_base, default_rate=0.05), len(cand))
        sel = np.sort(r.choice(cand, k, replace=False))
        shift = r.integers(1, 4, k) * DAY
        o["order_ts"][sel] -= shift
        pm = np.isin(pay["order"], sel)
        ps = np.searchsorted(sel, pay["order"][pm])
        pay["ts"][pm] -= shift[ps]
        used[sel] = True
        self.injected.append({"kind": "late_arriving", "table": ORDERS, "count": int(k), "spec": t.spec,
                              "_orders": sel, "_days_earlier": (shift // DAY).tolist(),
                              "payments_shifted": int(pm.sum())})

    def late_events(self, t: _Task, ev):
        r = self.rng_def
        cand = np.flatnonzero(~ev["protected"] & (ev["ts"] >= self.ds))
        k = min(self._count(t, len(ev["ts"]), default_rate=0.05), len(cand))
        sel = np.sort(r.choice(cand, k, replace=False))
        ev["ts"][sel] -= r.integers(1, 4, k) * DAY
        ev["protected"][sel] = True  # keep them clean
        self.injected.append({"kind": "late_arriving", "table": EVENTS, "count": int(k), "spec": t.spec,
                              "_events": sel})

    def item_amount_defect(self, t: _Task, o, it, pay, used):
        """calculation_mismatch / out_of_range (quantity 0) in order_items, order amount following."""
        r = self.rng_def
        n_base = len(used)
        n_items = np.bincount(it["order"], minlength=len(o["seq"]))
        ok_order = ~used & (np.arange(len(used)) < n_base) & ~o["resent"][:len(used)]
        if t.kind == "out_of_range":
            ok_order &= n_items[: len(used)] >= 2
        cand_orders = np.flatnonzero(ok_order)
        if len(cand_orders) < t.count:
            raise DefectError(f"{self.d} {t.spec}: only {len(cand_orders)} orders can carry it")
        orders = np.sort(r.choice(cand_orders, t.count, replace=False))
        used[orders] = True
        by_order = np.argsort(it["order"], kind="stable")
        first = np.searchsorted(it["order"][by_order], orders)
        rows = by_order[first + (r.random(len(orders)) * n_items[orders]).astype(np.int64)]
        old = it["line"][rows].copy()
        if t.kind == "calculation_mismatch":
            delta = r.integers(100, 1000, len(rows)) * np.where(r.random(len(rows)) < 0.5, 1, -1)
            delta = np.where(old + delta < 0, np.abs(delta), delta)
            it["line"][rows] = old + delta
        else:
            it["qty"][rows] = 0
            it["line"][rows] = 0
            delta = -old
        o["amount"][orders] += delta
        pm = np.isin(pay["order"], orders) & (pay["status"] != C.PAYMENT_STATUSES.index("failed"))
        pay["amount"][pm] += delta[np.searchsorted(orders, pay["order"][pm])]
        self.item_defects = getattr(self, "item_defects", [])
        self.item_defects.append((t, rows, old, it["line"][rows].copy()))

    def reserve_payment_carriers(self, tasks: list[_Task], o, pay, used, n_base):
        """Payments defects that modify a row go into failed attempts (so no paid order loses
        its captured payment); reserve them now, adding failed attempts where too few exist."""
        failed = C.PAYMENT_STATUSES.index("failed")
        r = self.rng_def
        pay["reserve"] = np.full(len(pay["order"]), -1, dtype=np.int64)
        for t in tasks:
            cand = np.flatnonzero((pay["status"] == failed) & ~used[pay["order"]] & (pay["reserve"] < 0))
            perm = r.permutation(cand)
            _, first = np.unique(pay["order"][perm], return_index=True)
            cand = np.sort(perm[first])
            if len(cand) < t.count:
                k = t.count - len(cand)
                free = np.flatnonzero(~used[:n_base])
                free = free[~np.isin(free, pay["order"][pay["status"] == failed])]
                if len(free) < k:
                    raise DefectError(f"{self.d} {t.spec}: not enough orders to carry it")
                sel = np.sort(r.choice(free, k, replace=False))
                span = np.maximum(o["updated"][sel] - o["order_ts"][sel] - 1, 3)
                add = {"order": sel, "status": np.full(k, failed),
                       "ts": o["order_ts"][sel] + 1 + (r.random(k) * (span // 3)).astype(np.int64),
                       "amount": o["amount"][sel].copy(),
                       "method": r.choice(len(C.PAYMENT_METHODS), k, p=_weights(C.PAYMENT_METHODS, PAYMENT_METHOD_W)),
                       "reserve": np.full(k, -1, dtype=np.int64)}
                pay = {key: np.concatenate([pay[key], add[key]]) for key in pay}
                cand = np.concatenate([cand, np.arange(len(pay["order"]) - k, len(pay["order"]))])
            rows = np.sort(r.choice(cand, t.count, replace=False)) if t.count else cand[:0]
            pay["reserve"][rows] = t.rid
            used[pay["order"][rows]] = True
        return pay

    @staticmethod
    def sort_payments(pay, o):
        order = np.lexsort((pay["status"], pay["order"], pay["ts"]))
        return {k: v[order] for k, v in pay.items()}

    # ------------------------------------------------------------------ formatting

    def _ts(self, table: str, sec: np.ndarray, purpose: int) -> pa.Array:
        r = self.mess_rng(table, purpose)
        style = r.choice(len(TS_STYLES), len(sec), p=TS_STYLE_P)
        return timestamps(sec, style, r)

    def _enum(self, table: str, values: Sequence[str], idx: np.ndarray, purpose: int) -> pa.Array:
        r = self.mess_rng(table, purpose)
        base = list(values)
        variants = base + [v.upper() for v in base] + [v.capitalize() for v in base]
        v = np.asarray(idx, dtype=np.int64).copy()
        m = r.random(len(v)) < CASE_RATE
        v[m] += len(base) * r.integers(1, 3, int(m.sum()))
        return pc.take(_arr(variants), pa.array(v))

    def _money(self, table: str, cents: np.ndarray, purpose: int) -> pa.Array:
        s = money(cents)
        r = self.mess_rng(table, purpose)
        n = len(cents)
        short = np.flatnonzero(r.random(n) < MONEY_SHORT_RATE)
        plus = np.flatnonzero(r.random(n) < MONEY_PLUS_RATE)
        plus = plus[~np.isin(plus, short)]
        if len(short) or len(plus):
            rows = np.concatenate([short, plus])
            vals = [_short_money(int(c)) for c in cents[short]] + ["+" + money_str(int(c)) for c in cents[plus]]
            order = np.argsort(rows)
            mask = np.zeros(n, bool)
            mask[rows] = True
            s = pc.replace_with_mask(s, pa.array(mask), _arr(np.array(vals, dtype=object)[order]))
        return s

    def _whitespace(self, f: Frame, purpose: int) -> None:
        """Choose the values that get surrounding whitespace; applied while writing, to rows
        that carry no defect (so logged values and exact duplicates stay as they are)."""
        tab = C.table(f.name)
        r = self.mess_rng(f.name, purpose)
        for col in tab.columns:
            rate = ID_WHITESPACE_RATE if col.kind == C.ID else WHITESPACE_RATE
            rows = np.unique(r.integers(0, max(f.n, 1), r.binomial(f.n, rate))) if f.n else np.zeros(0, np.int64)
            if len(rows):
                f.ws[col.name] = (rows, r.integers(0, len(WS_PADS), len(rows)))

    def format_customers(self, c) -> Frame:
        n = len(c["cust"])
        first = _arr(x[0] for x in FIRST_NAMES)
        last = _arr(x[0] for x in LAST_NAMES)
        fa = pc.take(first, pa.array(c["first"]))
        la = pc.take(last, pa.array(c["last"]))
        plain = pc.binary_join_element_wise(fa, la, " ")
        if n:
            rev = pc.binary_join_element_wise(la, fa, ", ")
            nick = pc.binary_join_element_wise(
                fa, pc.take(_arr(f'"{x}"' for x in NICKNAMES), pa.array(c["cust"] % len(NICKNAMES))), la, " ")
            ns = pa.array(c["name_style"])
            full = pc.if_else(pc.equal(ns, 1), rev, pc.if_else(pc.equal(ns, 2), nick, plain))
        else:
            full = plain
        cid = c["cust"] + 1
        local = pc.binary_join_element_wise(
            pc.take(_arr(x[1] for x in FIRST_NAMES), pa.array(c["first"])),
            pc.binary_join_element_wise(pc.take(_arr(x[1] for x in LAST_NAMES), pa.array(c["last"])),
                                        integers(cid), ""), ".")
        email = pc.binary_join_element_wise(local, pc.take(_arr(DOMAINS), pa.array(c["domain"])), "@")
        r = self.mess_rng(CUSTOMERS, 1)
        em = np.flatnonzero(r.random(n) < 0.08)
        if len(em):
            sub = self._case_mess(pc.take(email, pa.array(em)), r)
            mask = np.zeros(n, bool)
            mask[em] = True
            email = pc.replace_with_mask(email, pa.array(mask), sub)
        country = self._code(CUSTOMERS, COUNTRIES, c["country"], 2)
        cols = {"customer_id": fixed_ids("C", cid, 7), "email": email, "full_name": full,
                "country_code": country, "signup_ts": self._ts(CUSTOMERS, c["signup"], 3),
                "updated_at": self._ts(CUSTOMERS, c["updated"], 4)}
        f = Frame(CUSTOMERS, cols, {"cust": c["cust"], "signup": c["signup"], "updated": c["updated"],
                                    "is_new": c["is_new"]})
        f.may_quote.add("full_name")
        self._whitespace(f, 5)
        return f

    @staticmethod
    def _case_mess(a: pa.Array, r) -> pa.Array:
        up = pc.utf8_upper(a)
        cap = pc.utf8_capitalize(a)
        pick = pa.array(r.random(len(a)) < 0.5)
        return pc.if_else(pick, up, cap)

    def _code(self, table: str, codes: Sequence[str], idx: np.ndarray, purpose: int) -> pa.Array:
        r = self.mess_rng(table, purpose)
        variants = list(codes) + [x.lower() for x in codes] + [x.capitalize() for x in codes]
        v = np.asarray(idx, dtype=np.int64).copy()
        m = r.random(len(v)) < CASE_RATE
        v[m] += len(codes) * r.integers(1, 3, int(m.sum()))
        return pc.take(_arr(variants), pa.array(v))

    def format_products(self, p) -> Frame:
        pid = p["prod"] + 1
        cat = pc.take(_arr(CATEGORIES), pa.array(p["category"]))
        adj = pc.take(_arr(ADJECTIVES), pa.array(p["adj"]))
        noun = pc.take(_arr(NOUNS), pa.array(p["noun"]))
        name = pc.binary_join_element_wise(adj, noun, " ")
        if len(pid):
            name = pc.if_else(pa.array(p["name_style"] == 1), pc.binary_join_element_wise(noun, adj, ", "), name)
        sku = pc.binary_join_element_wise(
            pc.utf8_upper(pc.utf8_slice_codeunits(cat, 0, 3)), fixed_ids("", pid, 5), "-")
        sku = pc.binary_join_element_wise(pa.scalar("SKU-"), sku, "")
        cols = {"product_id": fixed_ids("P", pid, 5), "sku": sku, "product_name": name, "category": cat,
                "unit_price": self._money(PRODUCTS, p["price"], 1),
                "currency": self._code(PRODUCTS, CURRENCIES, p["currency"], 2),
                "updated_at": self._ts(PRODUCTS, p["updated"], 3)}
        f = Frame(PRODUCTS, cols, {"prod": p["prod"], "updated": p["updated"], "price": p["price"],
                                   "is_new": p["is_new"]})
        f.may_quote.add("product_name")
        self._whitespace(f, 5)
        return f

    def _order_ids(self, seq: np.ndarray, day: np.ndarray) -> pa.Array:
        w = self.cfg.order_width
        if len(day) == 0 or np.all(day == self.d.toordinal()):
            return fixed_ids("O" + self.tag + "-", seq, w)
        tags = _arr(date.fromordinal(int(x)).strftime("O%Y%m%d-") for x in np.unique(day))
        ti = np.searchsorted(np.unique(day), day)
        return pc.binary_join_element_wise(pc.take(tags, pa.array(ti)), fixed_ids("", seq, w), "")

    def format_orders(self, o, used) -> Frame:
        cols = {"order_id": self._order_ids(o["seq"], o["day"]),
                "customer_id": fixed_ids("C", o["cust"] + 1, 7),
                "order_ts": self._ts(ORDERS, o["order_ts"], 1),
                "status": self._enum(ORDERS, C.ORDER_STATUSES, o["status"], 2),
                "currency": self._code(ORDERS, CURRENCIES, o["cur"], 3),
                "amount": self._money(ORDERS, o["amount"], 4),
                "updated_at": self._ts(ORDERS, o["updated"], 5)}
        n = len(o["seq"])
        f = Frame(ORDERS, cols, {"order": np.arange(n), "order_ts": o["order_ts"], "updated": o["updated"],
                                 "amount": o["amount"], "status": o["status"], "resent": o["resent"],
                                 "cust": o["cust"]})
        self._whitespace(f, 6)
        return f

    def format_items(self, it, o) -> Frame:
        oid = self._order_ids(o["seq"], o["day"])
        cols = {"order_id": pc.take(oid, pa.array(it["order"])), "line_no": integers(it["line_no"]),
                "product_id": fixed_ids("P", it["prod"] + 1, 5), "quantity": integers(it["qty"]),
                "unit_price": self._money(ORDER_ITEMS, it["price"], 1),
                "line_amount": self._money(ORDER_ITEMS, it["line"], 2)}
        f = Frame(ORDER_ITEMS, cols, {"order": it["order"], "qty": it["qty"], "price": it["price"],
                                      "line": it["line"], "prod": it["prod"]})
        self._whitespace(f, 3)
        return f

    def format_payments(self, pay, o) -> Frame:
        n = len(pay["order"])
        oid = self._order_ids(o["seq"], o["day"])
        cols = {"payment_id": fixed_ids("PAY" + self.tag + "-", np.arange(1, n + 1), self.cfg.payment_width),
                "order_id": pc.take(oid, pa.array(pay["order"])),
                "payment_ts": self._ts(PAYMENTS, pay["ts"], 1),
                "method": self._enum(PAYMENTS, C.PAYMENT_METHODS, pay["method"], 2),
                "status": self._enum(PAYMENTS, C.PAYMENT_STATUSES, pay["status"], 3),
                "amount": self._money(PAYMENTS, pay["amount"], 4),
                "currency": self._code(PAYMENTS, CURRENCIES, o["cur"][pay["order"]], 5)}
        f = Frame(PAYMENTS, cols, {"order": pay["order"], "status": pay["status"], "ts": pay["ts"],
                                   "amount": pay["amount"], "order_amount": o["amount"][pay["order"]],
                                   "reserve": pay["reserve"]})
        self._whitespace(f, 6)
        return f

    def format_events(self, ev) -> Frame:
        """Consumes ev (numeric columns are dropped as soon as they are formatted)."""
        n = len(ev["ts"])
        cust_n = ev.pop("cust")
        cw = max(7, _ndigits(int(cust_n.max()) + 1 if n else 1))
        cust = fixed_ids("C", np.maximum(cust_n, 0) + 1, cw)
        anon = cust_n < 0
        del cust_n
        if anon.any():
            r = self.mess_rng(EVENTS, 7)
            idx = np.zeros(n, dtype=np.int8)
            idx[anon] = np.where(r.random(int(anon.sum())) < 0.25, 1, 0)
            blank = pc.take(_arr(["", " "]), pa.array(idx))
            cust = pc.if_else(pa.array(anon), blank, cust)
            del blank, idx
        cols = {"event_id": fixed_ids("E" + self.tag + "-", np.arange(1, n + 1), self.cfg.event_width),
                "customer_id": cust}
        cols["session_id"] = fixed_ids("S" + self.tag + "-", ev.pop("sess") + 1, self.cfg.session_width)
        cols["event_type"] = self._enum(EVENTS, C.EVENT_TYPES, ev.pop("type"), 1)
        cols["event_ts"] = self._ts(EVENTS, ev["ts"], 2)
        cols["platform"] = self._enum(EVENTS, C.PLATFORMS, ev.pop("platform"), 3)
        cols["duration_ms"] = integers(ev.pop("dur"))
        f = Frame(EVENTS, cols, {"ts": ev["ts"], "protected": ev["protected"]})
        self._whitespace(f, 4)
        return f

    # ------------------------------------------------------------------ row-level injections

    def _candidates(self, t: _Task) -> np.ndarray:
        f = self.frames[t.table]
        base = np.arange(f.n) < f.base_n
        ok = base & ~f.meta["used"] & ~f.meta["protected"]
        if t.table in (ORDERS, ORDER_ITEMS, PAYMENTS):
            ords = f.meta["order"]
            ok &= ~self.used_orders[ords]
        if t.table == PAYMENTS and t.kind not in ("duplicate",):
            ok &= f.meta["status"] == C.PAYMENT_STATUSES.index("failed")
        if t.table in DIMENSIONS:
            pref = ok & ~f.meta["depended"]
            if pref.sum() >= max(t.count, 1):
                ok = pref
        return np.flatnonzero(ok)

    def _pick(self, t: _Task) -> np.ndarray:
        f = self.frames[t.table]
        r = self.rng_def
        if t.table == PAYMENTS and t.kind != "duplicate":
            rows = np.flatnonzero((f.meta["reserve"] == t.rid) & (np.arange(f.n) < f.base_n))
            assert len(rows) == t.count, (t, len(rows))
            f.meta["used"][rows] = True
            return rows
        cand = self._candidates(t)
        if t.table in (ORDERS, ORDER_ITEMS, PAYMENTS):
            perm = r.permutation(cand)
            _, first = np.unique(f.meta["order"][perm], return_index=True)
            cand = perm[np.sort(first)]
            if len(cand) < t.count:
                raise DefectError(f"{self.d} {t.spec}: only {len(cand)} {t.table} rows can carry it")
            rows = np.sort(cand[: t.count])
            self.used_orders[f.meta["order"][rows]] = True
        else:
            if len(cand) < t.count:
                raise DefectError(f"{self.d} {t.spec}: only {len(cand)} {t.table} rows can carry it")
            rows = np.sort(r.choice(cand, t.count, replace=False))
        f.meta["used"][rows] = True
        return rows

    def row_defect(self, t: _Task) -> None:
        f = self.frames[t.table]
        entry = {"kind": t.kind, "table": t.table, "column": t.option, "count": 0, "spec": t.spec}
        if t.kind == "duplicate":
            entry.pop("column")
            entry["variant"] = t.option
        self.injected.append(entry)
        if t.count == 0:
            entry["rows"] = []
            return
        r = self.rng_def
        if t.kind == "unknown_reference" and (t.table, t.option) in ((PAYMENTS, "order_id"), (ORDER_ITEMS, "order_id")):
            uids = self._ghost_rows(t, f)
            entry["count"] = len(uids)
            vals = pc.utf8_trim(self._value_of(f, t.option, uids), characters=" ").to_pylist()
            self.log_rows(entry, t.table, uids, {u: {"value": v} for u, v in zip(uids, vals)})
            return
        if t.kind == "duplicate":
            self._duplicates(t, f, entry)
            return
        rows = self._pick(t)
        col = C.table(t.table).column(t.option)
        values = self._bad_values(t, f, col, rows, r)
        f.set(t.option, rows, values)
        entry["count"] = len(rows)
        uids = f.meta["uid"][rows]
        self.log_rows(entry, t.table, uids, {int(u): {"value": v} for u, v in zip(uids, values)})

    def _value_of(self, f: Frame, col: str, uids) -> pa.Array:
        pos = np.searchsorted(f.meta["uid"], uids)  # uids sorted ascending before finalize
        return f.get(col, pos)

    def _bad_values(self, t: _Task, f: Frame, col: C.Column, rows: np.ndarray, r) -> list[str]:
        k, n = t.kind, len(rows)
        cyc = lambda opts: [opts[i % len(opts)] for i in range(n)]  # noqa: E731
        meta_ts = {"signup_ts": "signup", "updated_at": "updated", "order_ts": "order_ts",
                   "payment_ts": "ts", "event_ts": "ts"}
        if k == "missing_required":
            return cyc(["", "", "  "])
        if k == "unparseable":
            if col.kind == C.TIMESTAMP:
                secs = f.meta[meta_ts[col.name]][rows]
                return [datetime.fromtimestamp(int(s), UTC).strftime(BAD_TIMESTAMPS[i % 3]) for i, s in enumerate(secs)]
            if col.kind == C.DECIMAL:
                cur = _trim_list(f.get(col.name, rows))
                out = []
                for i, v in enumerate(cur):
                    m = _NUM_RE.match(v.lstrip("+"))
                    ip, fp = (m.group(2), (m.group(3) or "00")) if m else ("12", "50")
                    out.append([f"{ip},{fp}", f"€{ip}.{fp}", f"{ip}.{fp} EUR"][i % 3])
                return out
            return cyc(BAD_DURATIONS if col.name == "duration_ms" else BAD_INTEGERS)
        if k == "invalid_value":
            if col.kind == C.EMAIL:
                return cyc(BAD_EMAILS)
            if col.kind == C.COUNTRY:
                return cyc(BAD_COUNTRIES)
            if col.kind == C.CURRENCY:
                return cyc(BAD_CURRENCIES)
            return cyc(BAD_ENUMS[col.name])
        if k == "out_of_range":
            if col.name == "duration_ms":
                return cyc(["90000000", "-1", "86400001"])
            cents = {"unit_price": "price", "amount": "order_amount" if t.table == PAYMENTS else "amount"}
            c = f.meta[cents[col.name]][rows]
            return [money_str(-max(int(x), 1)) for x in c]
        if k == "future_timestamp":
            secs = self.ds + FUTURE_DAYS * DAY + r.integers(0, DAY, n)
            return [ts_str(int(s), 0) for s in secs]
        if k == "unknown_reference":
            g = r.integers(1, 10**6, n)
            if t.option == "customer_id":
                return [f"CZ{x:06d}" for x in g]
            if t.option == "product_id":
                return [f"PZ{x % 10**4:04d}" for x in g]
        raise DefectError(f"{t.spec}: cannot inject {k} into {t.table}.{col.name}")

    def _ghost_rows(self, t: _Task, f: Frame) -> np.ndarray:
        """New rows referencing orders that never existed (payments / order_items)."""
        r = self.rng_def
        k = t.count
        ghosts = _arr(f"OZ{self.tag}-{x:06d}" for x in r.integers(1, 10**6, k))
        if t.table == PAYMENTS:
            cents = r.integers(500, 20000, k)
            base = f.base_n
            ids = fixed_ids("PAY" + self.tag + "-", np.arange(base + 1, base + k + 1) + 10**self.cfg.payment_width // 2,
                            self.cfg.payment_width)
            cols = {"payment_id": ids, "order_id": ghosts,
                    "payment_ts": timestamps(self.ds + r.integers(0, DAY, k), 0),
                    "method": _arr(C.PAYMENT_METHODS[0] for _ in range(k)),
                    "status": _arr(C.PAYMENT_STATUSES[C.PAYMENT_STATUSES.index("captured")] for _ in range(k)),
                    "amount": money(cents), "currency": _arr(CURRENCIES[0] for _ in range(k))}
        else:
            prod = r.integers(0, self.state.products.n, k)
            price = self.state.products.cols["price"][prod]
            cols = {"order_id": ghosts, "line_no": _arr("1" for _ in range(k)),
                    "product_id": fixed_ids("P", prod + 1, 5), "quantity": _arr("1" for _ in range(k)),
                    "unit_price": money(price), "line_amount": money(price)}
        return f.add_rows(cols, {}, r.integers(0, f.base_n + 1, k))

    def _duplicates(self, t: _Task, f: Frame, entry: dict) -> None:
        r = self.rng_def
        rows = self._pick(t)
        tab = C.table(t.table)
        k = len(rows)
        if t.option == "mixed" and tab.version_column:
            older = np.arange(k) % 2 == 1
        else:
            older = np.full(k, t.option == "older")
        cols = f.row_dict(rows)
        if older.any():
            oi = np.flatnonzero(older)
            src = rows[oi]
            if t.table == ORDERS:
                ots, upd = f.meta["order_ts"][src], f.meta["updated"][src]
                old_upd = ots + (upd - ots) // 2
                st = pc.replace_with_mask(cols["status"], pa.array(older),
                                          _arr(C.ORDER_STATUSES[0] for _ in oi))
                cols["status"] = st
            elif t.table == CUSTOMERS:
                sg, upd = f.meta["signup"][src], f.meta["updated"][src]
                old_upd = sg + (upd - sg) // 2
            else:
                old_upd = f.meta["updated"][src] - r.integers(3600, 30 * DAY, len(src))
                cols["unit_price"] = pc.replace_with_mask(
                    cols["unit_price"], pa.array(older),
                    _arr(money_str(max(50, int(p * 0.9))) for p in f.meta["price"][src]))
            cols["updated_at"] = pc.replace_with_mask(cols["updated_at"], pa.array(older), timestamps(old_upd, 0))
        # exact duplicates right after or anywhere after the original; older versions anywhere
        pos = np.where(older, r.integers(0, f.base_n + 1, k), np.minimum(rows + 1 + r.integers(0, 5, k), f.base_n))
        meta = {key: f.meta[key][rows] for key in f.meta if key not in ("uid", "pos", "used", "protected")}
        uids = f.add_rows(cols, meta, pos)
        entry["count"] = k
        src_uids = f.meta["uid"][rows]
        extras = {int(u): {"variant": "older_version" if o else "exact", "duplicate_of_line": int(s)}
                  for u, o, s in zip(uids, older, src_uids)}
        self.log_rows(entry, t.table, uids, extras)

    # ------------------------------------------------------------------ writing

    def write_frame(self, f: Frame, path: Path, write: bool, mess_log: dict) -> dict[str, Any]:
        tab = C.table(f.name)
        r = self.mess_rng(f.name, 20)
        order = list(f.order)
        if r.random() < FILE_SHUFFLE_P:
            order = [order[i] for i in r.permutation(len(order))]
            mess_log["shuffled_columns"].append(f.name)
        header = list(order)
        if r.random() < FILE_HEADER_P:
            styles = r.integers(0, 5, len(header))
            header = [[h, h.upper(), h.title(), f" {h}", f"{h.capitalize()} "][s] for h, s in zip(header, styles)]
            mess_log["header_variants"].append(f.name)
        bom = r.random() < FILE_BOM_P
        eol = "\r\n" if r.random() < FILE_CRLF_P else "\n"
        if bom:
            mess_log["bom"].append(f.name)
        if eol == "\r\n":
            mess_log["crlf"].append(f.name)
        h = hashlib.sha256()
        fh = open(path, "wb") if write else None
        try:
            def emit(b) -> None:
                h.update(b)
                if fh:
                    fh.write(b)
            emit((b"\xef\xbb\xbf" if bom else b"") + (",".join(_quote(x) for x in header) + eol).encode("utf-8"))
            chunk = 1_000_000
            ws = {}
            if f.ws:
                if "pos" in f.meta:
                    inv = np.empty(f.next_uid, dtype=np.int64)
                    inv[f.meta["uid"]] = np.arange(f.n)
                for c, (uids, which) in f.ws.items():
                    pos = inv[uids] if "pos" in f.meta else uids
                    keep = ~(f.meta["used"][pos] | f.meta["protected"][pos])
                    o = np.argsort(pos[keep], kind="stable")
                    ws[c] = (pos[keep][o], which[keep][o])
            lefts, rights = _arr(p[0] for p in WS_PADS), _arr(p[1] for p in WS_PADS)
            for s in range(0, f.n, chunk):
                cols = []
                for c in order:
                    a = f.cols[c].slice(s, chunk)
                    if c in ws:
                        pos, which = ws[c]
                        lo, hi = np.searchsorted(pos, [s, s + len(a)])
                        if hi > lo:
                            rel, w = pos[lo:hi] - s, pa.array(which[lo:hi])
                            new = pc.binary_join_element_wise(pc.take(lefts, w), pc.take(a, pa.array(rel)),
                                                              pc.take(rights, w), "")
                            mask = np.zeros(len(a), dtype=bool)
                            mask[rel] = True
                            a = pc.replace_with_mask(a, pa.array(mask), new)
                    if c in f.may_quote:
                        need = pc.match_substring_regex(a, '[",\r\n]')
                        if pc.any(need).as_py():
                            q = pc.binary_join_element_wise(
                                pa.scalar('"'), pc.replace_substring(a, '"', '""'), pa.scalar('"'), "")
                            a = pc.if_else(need, q, a)
                    cols.append(a)
                line = pc.binary_join_element_wise(*cols, ",") if len(cols) > 1 else cols[0]
                line = pc.binary_join_element_wise(line, pa.scalar(""), eol)
                emit(_bytes_of(line))
        finally:
            if fh:
                fh.close()
        info: dict[str, Any] = {"rows": f.n, "sha256": h.hexdigest()}
        if tab.manifest_sum:
            col, fld = tab.manifest_sum
            info[fld] = fmt_sum(decimal_sum(f.cols[col])) if col in f.cols else "0.00"
        return info

    def manifest_drift(self, t: _Task, files: dict[str, dict[str, Any]]) -> None:
        tab = C.table(t.table)
        info = files.get(tab.file_name)
        entry = {"kind": "manifest_drift", "table": t.table, "file": tab.file_name, "count": 1, "spec": t.spec}
        if info is None:
            raise DefectError(f"{self.d} {t.spec}: {tab.file_name} is not in the manifest")
        if t.option == "rows":
            fld, actual = "rows", info["rows"]
            info["rows"] = actual + 1
        elif t.option == "sha256":
            fld, actual = "sha256", info["sha256"]
            info["sha256"] = hashlib.sha256(b"drift:" + actual.encode()).hexdigest()
        else:
            fld = tab.manifest_sum[1]
            actual = info[fld]
            info[fld] = fmt_sum(Decimal(actual) + Decimal("10.00"))
        entry.update(field=fld, manifest=info[fld], actual=actual)
        self.injected.append(entry)

    # ------------------------------------------------------------------ state / log finish

    def update_state(self, o) -> None:
        n = len(o["seq"])
        keep = {k: o[k].copy() for k in ("seq", "day", "cust", "order_ts", "updated", "status", "cur", "amount")}
        resent = o["resent"]
        # resent orders update their earlier versions in the history
        if resent.any() and self.state.recent_orders:
            for h in self.state.recent_orders:
                key_h = h["day"] * 10**9 + h["seq"]
                key_r = keep["day"][resent] * 10**9 + keep["seq"][resent]
                pos = np.searchsorted(key_h, key_r)
                pos = np.minimum(pos, len(key_h) - 1)
                hit = key_h[pos] == key_r
                for k in ("status", "updated", "amount"):
                    h[k][pos[hit]] = keep[k][resent][hit]
        new = {k: v[~resent] for k, v in keep.items()}
        # orders of a partition with a file-level error are not re-sent later: the gate may have
        # rejected that whole partition, so its captured payments might never reach staging
        if not any(e["kind"] in FILE_ERROR_KINDS for e in self.injected):
            self.state.recent_orders = (self.state.recent_orders + [new])[-3:]
        # finish the log entries that refer to numeric rows
        of = self.frames[ORDERS]
        pf = self.frames[PAYMENTS]
        itf = self.frames[ORDER_ITEMS]
        for e in self.injected:
            if "_resent" in e:
                idx, days, change = e.pop("_resent")
                uids = self._uids_for_orders(of, idx)
                rows = []
                for u, ln, key, dd, ch in zip(uids, of.lines(uids), of.keys(uids), days, change):
                    rows.append({"line": ln, "key": key, "from_ingest_date": date.fromordinal(int(dd)).isoformat(),
                                 "change": ch})
                e["rows"] = rows
                e["order_items_lines"] = itf.lines(itf.meta["uid"][np.isin(itf.meta["order"], idx)])
                e["payments_lines"] = pf.lines(pf.meta["uid"][np.isin(pf.meta["order"], idx)])
            if "_orders" in e:
                sel = e.pop("_orders")
                days_earlier = e.pop("_days_earlier")
                uids = self._uids_for_orders(of, sel)
                e["rows"] = [{"line": ln, "key": key, "days_earlier": de}
                             for ln, key, de in zip(of.lines(uids), of.keys(uids), days_earlier)]
                e["payments_lines"] = pf.lines(pf.meta["uid"][np.isin(pf.meta["order"], sel) & (pf.meta["uid"] < pf.base_n)])
            if "_events" in e:
                sel = e.pop("_events")
                ef = self.frames[EVENTS]
                uids = sel  # events were not re-ordered before formatting
                e["rows"] = [{"line": ln, "key": key} for ln, key in zip(ef.lines(uids), ef.keys(uids))]
        for t, rows, old, new in getattr(self, "item_defects", []):
            uids = rows  # items uid = numeric row index
            lines = itf.lines(uids)
            keys = itf.keys(uids)
            vals = [money_str(int(x)) for x in new]
            if t.kind == "calculation_mismatch":
                entry = {"kind": t.kind, "table": ORDER_ITEMS, "column": "line_amount", "count": len(rows), "spec": t.spec,
                         "rows": [{"line": ln, "key": k, "value": v, "expected": money_str(int(x))}
                                  for ln, k, v, x in zip(lines, keys, vals, old)]}
            else:
                entry = {"kind": t.kind, "table": ORDER_ITEMS, "column": "quantity", "count": len(rows), "spec": t.spec,
                         "rows": [{"line": ln, "key": k, "value": "0", "original_line_amount": money_str(int(x))}
                                  for ln, k, x in zip(lines, keys, old)]}
            self.injected.append(entry)

    @staticmethod
    def _uids_for_orders(of: Frame, idx) -> np.ndarray:
        """uids of the orders frame rows that hold numeric orders idx (uid = numeric index)."""
        return np.asarray(idx, dtype=np.int64)


def _spec_of(tasks: list[_Task], kind: str, table: str) -> str:
    for t in tasks:
        if t.kind == kind and t.table == table:
            return t.spec
    return ""


def _short_money(c: int) -> str:
    s = money_str(c)
    if s.endswith(".00"):
        return s[:-3]
    if s.endswith("0"):
        return s[:-1]
    return s


def _quote(s: str) -> str:
    return '"' + s.replace('"', '""') + '"' if any(ch in s for ch in ',"\r\n') else s


def _bytes_of(a: pa.Array) -> memoryview:
    bufs = a.buffers()
    if len(a) == 0:
        return memoryview(b"")
    width = 8 if pa.types.is_large_string(a.type) else 4
    offs = np.frombuffer(bufs[1], dtype=np.int64 if width == 8 else np.int32, count=len(a) + 1, offset=a.offset * width)
    return memoryview(bufs[2])[int(offs[0]): int(offs[-1])]


# ----------------------------------------------------------------------------- CLI


def _build_parser() -> argparse.ArgumentParser:
    kinds = "\n".join(f"  {k:<21} {KIND_HELP[k]}" for k in KINDS)
    def _opts(k: str) -> str:
        o = DEFAULT_OPTION[k]
        if any(o.values()):
            return " ".join(f"{t}@{v}" if v else t for t, v in o.items())
        return ", ".join(o)
    defaults = "\n".join(f"  {k:<21} [{DEFAULT_TABLE[k]}] {_opts(k)}" for k in KINDS)
    p = argparse.ArgumentParser(
        prog="dq-generate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate a deterministic landing zone (contract section 1) with optional defects.",
        epilog=f"""\
defect syntax: [TABLE.]KIND[@OPTION][=VALUE]
  TABLE   one of {', '.join(C.TABLE_NAMES)}, or * for every table where KIND applies
          (default: the kind's default table, below)
  OPTION  row-level kinds: the column; duplicate: exact|older|mixed; manifest_drift:
          rows|sha256|sum; missing_column: the column; extra_column: the new column's name
  VALUE   row-level, late_arriving, resent_orders: a count (integer >= 1) or a rate of the
          table's rows (< 1 or with a decimal point, e.g. 0.02); partial_load: hours removed
          (default 6); volume_drop: factor of normal volume (default 0.3). With --defect, the
          VALUE of manifest_drift, missing_file, unlisted_file, missing_column and
          extra_column is the probability per day (default 1).

kinds:
{kinds}

[default table] then the tables it applies to, with the default OPTION:
{defaults}

examples:
  dq-generate --out data/landing --start 2025-01-01 --days 10 --orders-per-day 40
  dq-generate --out /tmp/demo --end yesterday --days 14 --orders-per-day 40   # a live-looking demo
  dq-generate --out /tmp/l --start 2025-01-01 --days 30 --defect '*.invalid_value=0.01' \\
      --defect duplicate=0.005 --on 2025-01-12:orders.invalid_value@currency=3 \\
      --on 2025-01-13:payments.missing_file --on 2025-01-20:volume_drop=0.3 --clean-dims-after-day-one

The log {LOG_FILE} (landing root) lists per day exactly what was injected.""",
    )
    p.add_argument("--out", required=True, help="landing root to write (e.g. data/landing)")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--start", type=_iso_date, help="first ingest date YYYY-MM-DD")
    when.add_argument("--end", type=_end_date, metavar="yesterday|YYYY-MM-DD",
                      help="last ingest date instead: `yesterday` (UTC, the last complete day, so "
                           "that a demo's freshness checks pass) or a date; the days end there")
    p.add_argument("--days", required=True, type=int, help="number of daily partitions")
    p.add_argument("--orders-per-day", type=int, default=1000, help="orders per day (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--defect", action="append", default=[], metavar="[TABLE.]KIND[@OPT]=RATE",
                   help="inject KIND on every day (repeatable)")
    p.add_argument("--on", action="append", default=[], metavar="YYYY-MM-DD:[TABLE.]KIND[@OPT][=N]",
                   help="inject KIND on one day (repeatable)")
    p.add_argument("--clean-dims-after-day-one", action="store_true",
                   help="apply --defect specs to customers/products on the first day only")
    p.add_argument("--clean", action="store_true",
                   help="first remove every ingest_date=* folder under --out")
    return p


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def utc_today() -> date:
    """The generator's one use of the clock, for `--end yesterday` only."""
    return datetime.now(UTC).date()


def _end_date(text: str) -> date:
    """`yesterday` is the last complete UTC day (the partitions are UTC days); the output stays
    a function of (seed, dates)."""
    if text.strip().lower() == "yesterday":
        return utc_today() - timedelta(days=1)
    return _iso_date(text)


def first_day(start: date | None, end: date | None, days: int) -> date:
    """--start, or the first of `days` days that end on --end."""
    return start if start is not None else end - timedelta(days=max(days, 1) - 1)


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    start = first_day(args.start, args.end, args.days)
    try:
        specs = [parse_defect(s) for s in args.defect]
        for s in specs:
            if s.day is not None:
                raise DefectError(f"--defect {s}: use --on for a single day")
        for s in args.on:
            spec = parse_defect(s)
            if spec.day is None:
                raise DefectError(f"--on {s}: expected YYYY-MM-DD:KIND")
            specs.append(spec)
        log = generate(args.out, start, args.days, args.orders_per_day, args.seed, specs,
                       args.clean_dims_after_day_one, clean=args.clean)
    except DefectError as e:
        print(f"dq-generate: {e}", file=sys.stderr)
        return 2
    n_inj = sum(len(d["injected"]) for d in log.days)
    first, last = log.days[0]["ingest_date"], log.days[-1]["ingest_date"]
    print(f"wrote {len(log.days)} partitions {first}..{last} to {args.out} "
          f"({n_inj} injections, log {LOG_FILE})")
    print("to load them, in daily partitions that start on the first day (docs/demo.md):")
    print(f"  export DQ_LANDING={shlex.quote(str(Path(args.out).resolve()))} DQ_PARTITIONS_START={first}")
    print(f"  dagster asset materialize -m dq_assets --select '*' --partition-range {first}...{last} "
          "-c dq_assets/console.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
