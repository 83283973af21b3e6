"""The six table contracts of docs/contract.md, declared once as data.

Raw, staging and quarantine assets, the marts' inputs and the checks are all derived from
`TABLES`; nothing else in the package spells out a table's columns or rules again.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache

import pycountry

from dq_assets.storage.sql import check_identifier

# Reject reasons in the contract's order: `reject_reason` is the first that applies.
REJECT_REASONS: tuple[str, ...] = (
    "missing_required",
    "unparseable",
    "invalid_value",
    "out_of_range",
    "future_timestamp",
    "calculation_mismatch",
    "unknown_reference",
    "duplicate",
)
DUPLICATE = "duplicate"  # the one reason of a row among others: its key, received again

# Column kinds. Text-like kinds are trimmed; codes are normalised as stored.
ID, TEXT, EMAIL, COUNTRY, CURRENCY, ENUM = "id", "text", "email", "country", "currency", "enum"
DECIMAL, INTEGER, TIMESTAMP = "decimal", "integer", "timestamp"
KINDS = (ID, TEXT, EMAIL, COUNTRY, CURRENCY, ENUM, DECIMAL, INTEGER, TIMESTAMP)
PARSED_KINDS = (DECIMAL, INTEGER, TIMESTAMP)  # can be `unparseable`
SHAPED_KINDS = (EMAIL, COUNTRY, CURRENCY, ENUM)  # can be `invalid_value`
RANGED_KINDS = (DECIMAL, INTEGER, TIMESTAMP)  # have a supported range: can be `out_of_range`

# Money and prices are exact decimals, stored as DECIMAL(38,6): 32 integer digits, 6 fractional.
MONEY_PRECISION, MONEY_SCALE = 38, 6
# The supported range of every number, money or integer: fewer than 10^18 in magnitude, money
# with at most MONEY_SCALE decimal places (leading and trailing zeros aside). A value of the
# contract's shape outside it is `out_of_range`, never `unparseable`. So far below DECIMAL(38)'s
# 10^32 that no sum of them (under 10^14 rows) overflows, and every integer fits a BIGINT.
NUMBER_DIGITS = 18
TOO_LARGE = f"10^{NUMBER_DIGITS} or more in magnitude"  # what an out_of_range detail says
TOO_PRECISE = f"more than {MONEY_SCALE} decimal places"
# Timestamps: from the first day of year 1 (UTC); an earlier one (year 0000, a large negative
# epoch) is a valid spelling of a moment no client library can hold: out_of_range.
EARLIEST_TIMESTAMP = "0001-01-01 00:00:00+00"
TOO_EARLY = "before 0001-01-01T00:00:00Z"

# Reference scopes: where a referenced key may have been received.
SAME_PARTITION = "same_partition"
UP_TO_PARTITION = "up_to_partition"  # this partition or any earlier one


@dataclass(frozen=True)
class Reference:
    table: str
    column: str
    scope: str  # SAME_PARTITION or UP_TO_PARTITION


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    nullable: bool = False
    values: tuple[str, ...] = ()  # accepted values of an ENUM (stored lower-case)
    min: Decimal | None = None  # inclusive bounds -> `out_of_range`
    max: Decimal | None = None
    not_future: bool = False  # later than the partition's day end + 1 hour -> `future_timestamp`
    references: Reference | None = None

    def __post_init__(self) -> None:
        check_identifier(self.name)
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r} for column {self.name}")
        if self.kind == ENUM and not self.values:
            raise ValueError(f"enum column {self.name} needs values")

    @property
    def reject_reasons(self) -> tuple[str, ...]:
        """The reject reasons a value of this column can get, in the contract's order
        (dq_assets.rules.cleaning turns each into its SQL condition)."""
        can = {
            "missing_required": not self.nullable,
            "unparseable": self.kind in PARSED_KINDS,
            "invalid_value": self.kind in SHAPED_KINDS,
            "out_of_range": self.kind in RANGED_KINDS or self.min is not None or self.max is not None,
            "future_timestamp": self.not_future,
            "unknown_reference": self.references is not None,
        }
        return tuple(r for r in REJECT_REASONS if can.get(r))


@dataclass(frozen=True)
class RowRule:
    """A rule across columns of one row, as a SQL predicate that is TRUE for a failing row.

    The predicate sees the typed values under the column names; it is only evaluated when
    every column it names parsed, so it never double-reports a missing or unparseable value.
    """

    name: str
    reason: str
    columns: tuple[str, ...]
    fails_when: str
    description: str

    def __post_init__(self) -> None:
        if self.reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {self.reason!r}")


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    rules: tuple[RowRule, ...] = ()
    is_change_feed: bool = False  # dimension feeds carry new and changed rows only
    # Manifest control total: the file's money column summed as sent -> manifest field name.
    manifest_sum: tuple[str, str] | None = None
    version_column: str | None = "updated_at"  # orders versions of a key; None = file order only
    # A timestamp whose hours of the ingest day must all have rows (partial-load check).
    hourly_coverage_column: str | None = None
    # Money counted as revenue when `status` is a revenue status (revenue at risk).
    revenue_column: str | None = None

    def __post_init__(self) -> None:
        check_identifier(self.name)
        names = self.column_names
        for k in self.key:
            if k not in names:
                raise ValueError(f"{self.name}: key column {k} is not a column")
        if self.version_column and self.version_column not in names:
            raise ValueError(f"{self.name}: version column {self.version_column} missing")
        for rule in self.rules:
            for c in rule.columns:
                if c not in names:
                    raise ValueError(f"{self.name}.{rule.name}: unknown column {c}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name}")

    @property
    def references(self) -> tuple[tuple[Column, Reference], ...]:
        return tuple((c, c.references) for c in self.columns if c.references)

    @property
    def row_reasons(self) -> tuple[str, ...]:
        """The reject reasons a row can get on its own (its columns' and its row rules'), in
        the contract's order."""
        can = {r for c in self.columns for r in c.reject_reasons} | {rule.reason for rule in self.rules}
        return tuple(r for r in REJECT_REASONS if r in can)

    @property
    def reject_reasons(self) -> tuple[str, ...]:
        """Every reject reason that can occur in this table, in the contract's order: its rows'
        own, and `duplicate` (an older version of a key received again in the partition)."""
        return tuple(r for r in REJECT_REASONS if r in self.row_reasons or r == DUPLICATE)


ZERO = Decimal(0)

ORDER_STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled", "refunded")
REVENUE_STATUSES = ("paid", "shipped", "delivered")  # counted as revenue; need a captured payment
PAYMENT_METHODS = ("card", "paypal", "bank_transfer", "gift_card")
PAYMENT_STATUSES = ("captured", "failed", "refunded")
EVENT_TYPES = ("page_view", "add_to_cart", "checkout", "purchase")
PLATFORMS = ("web", "ios", "android")


def _ref(table: str, column: str, scope: str = UP_TO_PARTITION) -> Reference:
    return Reference(table=table, column=column, scope=scope)


TABLES: tuple[Table, ...] = (
    Table(
        name="customers",
        is_change_feed=True,
        key=("customer_id",),
        columns=(
            Column("customer_id", ID),
            Column("email", EMAIL),
            Column("full_name", TEXT),
            Column("country_code", COUNTRY),
            Column("signup_ts", TIMESTAMP, not_future=True),
            Column("updated_at", TIMESTAMP, not_future=True),
        ),
    ),
    Table(
        name="products",
        is_change_feed=True,
        key=("product_id",),
        columns=(
            Column("product_id", ID),
            Column("sku", TEXT),
            Column("product_name", TEXT),
            Column("category", TEXT),
            Column("unit_price", DECIMAL, min=ZERO),
            Column("currency", CURRENCY),
            Column("updated_at", TIMESTAMP, not_future=True),
        ),
    ),
    Table(
        name="orders",
        key=("order_id",),
        manifest_sum=("amount", "amount_sum"),
        revenue_column="amount",
        columns=(
            Column("order_id", ID),
            Column("customer_id", ID, references=_ref("customers", "customer_id")),
            Column("order_ts", TIMESTAMP, not_future=True),
            Column("status", ENUM, values=ORDER_STATUSES),
            Column("currency", CURRENCY),
            Column("amount", DECIMAL, min=ZERO),
            Column("updated_at", TIMESTAMP, not_future=True),
        ),
    ),
    Table(
        name="order_items",
        key=("order_id", "line_no"),
        manifest_sum=("line_amount", "line_amount_sum"),
        version_column=None,
        columns=(
            Column("order_id", ID, references=_ref("orders", "order_id", SAME_PARTITION)),
            Column("line_no", INTEGER),
            Column("product_id", ID, references=_ref("products", "product_id")),
            Column("quantity", INTEGER, min=Decimal(1)),
            Column("unit_price", DECIMAL, min=ZERO),
            Column("line_amount", DECIMAL),
        ),
        rules=(
            RowRule(
                name="line_amount_is_quantity_times_price",
                reason="calculation_mismatch",
                columns=("quantity", "unit_price", "line_amount"),
                # A product of 10^20 or more is far from any line_amount (below 10^18), and
                # exactly it could overflow DECIMAL(38): decided on doubles, never multiplied.
                fails_when=("CASE WHEN abs(quantity * CAST(unit_price AS DOUBLE)) >= 1e20 THEN true "
                            "ELSE abs(line_amount - quantity * unit_price) > 0.01 END"),
                description="line_amount = quantity x unit_price within 0.01",
            ),
        ),
    ),
    Table(
        name="payments",
        key=("payment_id",),
        manifest_sum=("amount", "amount_sum"),
        version_column=None,
        columns=(
            Column("payment_id", ID),
            Column("order_id", ID, references=_ref("orders", "order_id")),
            Column("payment_ts", TIMESTAMP, not_future=True),
            Column("method", ENUM, values=PAYMENT_METHODS),
            Column("status", ENUM, values=PAYMENT_STATUSES),
            Column("amount", DECIMAL, min=ZERO),
            Column("currency", CURRENCY),
        ),
        rules=(
            RowRule(
                name="settled_payment_amount_positive",
                reason="out_of_range",
                columns=("status", "amount"),
                fails_when="status IN ('captured', 'refunded') AND amount <= 0",
                description="amount > 0 when captured or refunded",
            ),
        ),
    ),
    Table(
        name="events",
        key=("event_id",),
        version_column=None,
        hourly_coverage_column="event_ts",
        columns=(
            Column("event_id", ID),
            Column(
                "customer_id", ID, nullable=True, references=_ref("customers", "customer_id")
            ),
            Column("session_id", ID),
            Column("event_type", ENUM, values=EVENT_TYPES),
            Column("event_ts", TIMESTAMP, not_future=True),
            Column("platform", ENUM, values=PLATFORMS),
            Column("duration_ms", INTEGER, min=ZERO, max=Decimal(86_400_000)),
        ),
    ),
)

TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}
TABLE_NAMES: tuple[str, ...] = tuple(TABLES_BY_NAME)
MANIFEST_FILE = "_manifest.json"


def table(name: str) -> Table:
    try:
        return TABLES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; tables are {', '.join(TABLE_NAMES)}") from None


@cache
def country_codes() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes, upper-case."""
    return frozenset(c.alpha_2 for c in pycountry.countries)


@cache
def currency_codes() -> frozenset[str]:
    """ISO 4217 alphabetic codes, upper-case."""
    return frozenset(c.alpha_3 for c in pycountry.currencies)


def _validate_references() -> None:
    for t in TABLES:
        for col, ref in t.references:
            target = table(ref.table)
            if target.key != (ref.column,):
                raise ValueError(f"{t.name}.{col.name} must reference the key of {ref.table}")


_validate_references()
