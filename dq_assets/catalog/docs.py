"""The declared tables: every table asset's columns (`Col`) and rules (`TableDoc`), by asset key.

Raw, staging and quarantine tables are derived from the contracts (`dq_assets.contract.tables`):
a column's description says which reject reason a row gets for which of its rules
(`column_rules`). The quality tables are described from the Arrow schemas their code writes,
the marts by `mart_docs` (their columns are fixed in their SQL). `dq_assets.catalog.apply` puts
these on the assets; `published_column_schema` is what a step writing a table itself reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import dagster as dg
import pyarrow as pa

from dq_assets.contract import tables as contracts
from dq_assets.contract.tables import (
    COUNTRY,
    CURRENCY,
    DECIMAL,
    EMAIL,
    ENUM,
    ID,
    INTEGER,
    MONEY_PRECISION,
    MONEY_SCALE,
    NUMBER_DIGITS,
    SAME_PARTITION,
    TABLES,
    TEXT,
    TIMESTAMP,
    TOO_LARGE,
    TOO_PRECISE,
    Column,
    Table,
)
from dq_assets.keys import (
    CUSTOMER_VERSIONS_KEY,
    DIM_CUSTOMERS_KEY,
    FACT_ORDERS_KEY,
    FACT_REVENUE_KEY,
    REVENUE_BY_ORDER_DATE_KEY,
)
from dq_assets.rules.reconcile import RECONS
from dq_assets.storage.column_schema import column_type, columns_written

# ---------------------------------------------------------------- declared tables

STRING, BIGINT, DATE = pa.string(), pa.int64(), pa.date32()
BOOL, DOUBLE = pa.bool_(), pa.float64()
UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
MONEY = pa.decimal128(MONEY_PRECISION, MONEY_SCALE)
TYPE_OF_KIND = {DECIMAL: MONEY, INTEGER: BIGINT, TIMESTAMP: UTC_TIMESTAMP}


@dataclass(frozen=True)
class Col:
    """A column as published: its Arrow type (named per store when published), what it holds,
    whether it may be NULL, and its rules."""

    name: str
    type: pa.DataType
    description: str | None = None
    nullable: bool = True
    rules: tuple[str, ...] = ()

    def published(self, store: str | None) -> dg.TableColumn:
        return dg.TableColumn(
            name=self.name,
            type=column_type(self.type, store),
            description=self.description,
            constraints=dg.TableColumnConstraints(nullable=self.nullable, other=list(self.rules)),
        )


@dataclass(frozen=True)
class TableDoc:
    columns: tuple[Col, ...]
    rules: tuple[str, ...] = ()  # table-level: keys, row rules, what every row satisfies

    def table_schema(self, store: str | None) -> dg.TableSchema:
        return dg.TableSchema(
            columns=[c.published(store) for c in self.columns],
            constraints=dg.TableConstraints(other=list(self.rules)),
        )

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([(c.name, c.type) for c in self.columns])


def _kind_text(c: Column) -> str:
    return {
        ID: "identifier, trimmed",
        TEXT: "text, trimmed",
        EMAIL: "email address, lower-case",
        COUNTRY: "ISO 3166-1 alpha-2 country code, upper-case",
        CURRENCY: "ISO 4217 currency code, upper-case",
        ENUM: "enumeration, lower-case",
        DECIMAL: (f"exact decimal (never a binary float), below 10^{NUMBER_DIGITS} in magnitude "
                  f"with at most {MONEY_SCALE} decimal places"),
        INTEGER: f"integer, below 10^{NUMBER_DIGITS} in magnitude",
        TIMESTAMP: "timestamp in UTC",
    }[c.kind]


def column_rules(t: Table, c: Column) -> list[tuple[str | None, str]]:
    """The contract's rules of a column: (a short constraint, or None where the type or the
    nullability already says it; when a row is quarantined for it, and as what)."""
    rules: list[tuple[str | None, str]] = []
    if c.name in t.key:
        rules.append(("key" if len(t.key) == 1 else f"key ({', '.join(t.key)})",
                      "as duplicate when an exact duplicate or an older version of its key"))
    if not c.nullable:
        rules.append((None, "as missing_required when blank"))
    parsed = {DECIMAL: "a decimal with '.' and an optional sign", INTEGER: "an integer",
              TIMESTAMP: "ISO 8601 (no zone = UTC) or Unix epoch seconds"}
    if c.kind in parsed:
        rules.append((None, f"as unparseable when not {parsed[c.kind]}"))
    if c.kind in (DECIMAL, INTEGER):
        beyond = TOO_LARGE + (f" or with {TOO_PRECISE}" if c.kind == DECIMAL else "")
        rules.append((None, f"as out_of_range when {beyond}"))
    shaped = {EMAIL: "shape local@domain.tld", COUNTRY: "ISO 3166-1 alpha-2",
              CURRENCY: "ISO 4217", ENUM: f"in ({', '.join(c.values)})"}
    if c.kind in shaped:
        rules.append((shaped[c.kind], f"as invalid_value when not {shaped[c.kind]}"))
    if c.min is not None and c.max is not None:
        rules.append((f"between {c.min} and {c.max}", "as out_of_range outside it"))
    elif c.min is not None:
        rules.append((f">= {c.min}", f"as out_of_range when below {c.min}"))
    elif c.max is not None:
        rules.append((f"<= {c.max}", f"as out_of_range when above {c.max}"))
    if c.not_future:
        rules.append(("not in the future",
                      "as future_timestamp when after the end of the ingest day + 1 hour"))
    if c.references is not None:
        ref = c.references
        scope = "this partition" if ref.scope == SAME_PARTITION else "this or an earlier partition"
        rules.append((f"→ {ref.table}.{ref.column}",
                      f"as unknown_reference when no {ref.table}.{ref.column} of {scope} has it"))
    for rule in t.rules:
        if c.name in rule.columns:
            rules.append((rule.description, f"as {rule.reason} unless {rule.description}"))
    return rules


def _key_rule(t: Table) -> str:
    return (f"one row per ({', '.join(t.key)}) and ingest_date: exact duplicates and older "
            "versions go to quarantine as duplicate")


LINEAGE_COLS = {
    "ingest_date": Col("ingest_date", DATE, "the partition: ingest date of the landing folder",
                       nullable=False),
    "source_file": Col("source_file", STRING, "name of the landed file", nullable=False),
    "source_line": Col("source_line", BIGINT,
                       "physical line of the landed file where the record starts (header = 1)",
                       nullable=False),
    "loaded_at": Col("loaded_at", UTC_TIMESTAMP, "when the row was read from the landing zone",
                     nullable=False),
}
EXTRA_COLUMNS = Col("extra_columns", STRING,
                    "columns of the file outside the contract, as a JSON object (schema drift); "
                    "NULL when there are none")


def staged_col(t: Table, c: Column) -> Col:
    rules = column_rules(t, c)
    description = f"{_kind_text(c)}. Quarantined " + "; ".join(when for _, when in rules) + "."
    return Col(c.name, TYPE_OF_KIND.get(c.kind, STRING), description, c.nullable,
               tuple(short for short, _ in rules if short))


def raw_doc(t: Table) -> TableDoc:
    received = tuple(
        Col(c.name, STRING, f"as received: text, untrimmed (staged as {_kind_text(c)})")
        for c in t.columns)
    lineage = tuple(LINEAGE_COLS[n] for n in ("ingest_date", "source_file", "source_line", "loaded_at"))
    return TableDoc(
        received + (EXTRA_COLUMNS,) + lineage,
        rules=(f"every data row of {t.file_name} as landed, nothing dropped: each ends in "
               f"staging.{t.name} or quality.{t.name}_quarantine",),
    )


def staging_doc(t: Table) -> TableDoc:
    from dq_assets.rules.cleaning import staging_columns

    typed = {c.name: staged_col(t, c) for c in t.columns}
    names = [n.strip('"') for n in staging_columns(t)]
    return TableDoc(
        tuple(typed.get(n) or LINEAGE_COLS[n] for n in names),
        rules=(_key_rule(t), *(f"{r.description} (else {r.reason})" for r in t.rules)),
    )


def quarantine_doc(t: Table) -> TableDoc:
    from dq_assets.rules.cleaning import quarantine_columns

    reasons = ", ".join(t.reject_reasons)
    own = {
        "reject_reason": Col("reject_reason", STRING,
                             "the row's first reject reason, in the contract's order",
                             nullable=False, rules=(f"in ({reasons})",)),
        "reject_reasons": Col("reject_reasons", STRING,
                              "every reject reason of the row, comma-separated, in the "
                              "contract's order", nullable=False),
        "reject_details": Col("reject_details", STRING, "which column failed which rule"),
        "extra_columns": EXTRA_COLUMNS,
        **{c.name: Col(c.name, STRING, "as received: text, untrimmed") for c in t.columns},
    }
    names = [n.strip('"') for n in quarantine_columns(t)]
    return TableDoc(
        tuple(own.get(n) or LINEAGE_COLS[n] for n in names),
        rules=(f"every row of raw.{t.name} that is not in staging.{t.name}, once, with its "
               "reasons",),
    )


def _from_arrow(schema: pa.Schema, descriptions: Mapping[str, str], required: Iterable[str]) -> tuple[Col, ...]:
    required = set(required)
    return tuple(Col(f.name, f.type, descriptions.get(f.name), f.name not in required)
                 for f in schema)


LANDING_FILES_COLUMNS = {
    "ingest_date": "the partition: ingest date of the landing folder",
    "file_name": "a contract table's file, a file present, or a file the manifest lists",
    "table_name": "the contract table of the file; NULL for a file that is no contract table",
    "listed": "the manifest lists the file",
    "present": "the file is in the landing folder",
    "manifest_rows": "data rows according to the manifest, as written there",
    "manifest_sha256": "sha256 according to the manifest",
    "manifest_sum_field": "the manifest's money total field for this table (amount_sum, ...)",
    "manifest_sum": "that money total, as written in the manifest",
    "landed_sha256": "sha256 of the landed file's bytes",
    "landed_bytes": "size of the landed file",
    "header": "the file's header as sent, a JSON list",
    "missing_columns": "contract columns absent from the header, comma-separated",
    "unknown_columns": "header columns outside the contract, comma-separated",
}
GATE_COLUMNS = {
    "ingest_date": "the partition",
    "gate_passed": "no ERROR-severity check of the partition failed, every gated asset has check "
                   "results, and none was rewritten after its checks",
    "checks_evaluated": "check results of the partition the gate read",
    "checks_passed": "of those, passed",
    "error_failures": "asset:check of every failed ERROR check, comma-separated",
    "warn_failures": "asset:check of every failed WARN check, comma-separated",
    "rows_landed": "raw rows of the six tables",
    "rows_staged": "staging rows of the six tables",
    "health_score": "mean of the share of landed rows that reached staging and the share of "
                    "checks that passed (0..1)",
    "revenue_at_risk": "absolute amounts of the revenue rows held back in quarantine (duplicates "
                       "left out)",
    "run_id": "the run that decided",
    "inputs_version": "fingerprint of the write marks of the gated assets this decision judged: "
                      "the marts publish the partition only while it is unchanged",
    "decided_at": "when the gate decided",
}
RECON_COLUMNS = {
    "ingest_date": "the partition",
    "recon": "the kind of mismatch: " + ", ".join(RECONS),
    "table_name": "the table of the key",
    "key": "the key that does not reconcile",
    "detail": "what does not match",
}


def checked_col(table_name: str, name: str) -> Col:
    """A contract column in a mart: as staged, its rules checked there (the key of the mart is
    the mart's own)."""
    t = contracts.table(table_name)
    c = t.column(name)
    rules = tuple(short for short, _ in column_rules(t, c) if short and not short.startswith("key"))
    return Col(name, TYPE_OF_KIND.get(c.kind, STRING),
               f"{_kind_text(c)}; as in staging.{table_name}, where its rules were checked",
               c.nullable, rules)


ORDER_DATE = Col("order_date", DATE, "UTC date of order_ts", nullable=False)
CURRENCY_COL = Col("currency", STRING, "ISO 4217 currency code, upper-case", nullable=False)
ORDER_COUNT = Col("order_count", BIGINT, "distinct orders", nullable=False)
REVENUE = Col("revenue", MONEY, "amount of the orders that are paid, shipped or delivered "
              "(0 when none)", nullable=False)


def mart_docs() -> dict[dg.AssetKey, TableDoc]:
    """The marts' columns are fixed in their SQL (dq_assets/layers/marts.py); a test compares
    these with the tables a real run leaves behind."""
    from dq_assets.rules.cleaning import staging_columns

    customers = contracts.table("customers")
    fact_orders_cols = ("order_id", "customer_id", "order_ts", "status", "currency", "amount",
                        "updated_at")
    fact = [LINEAGE_COLS["ingest_date"], *(checked_col("orders", n) for n in fact_orders_cols)]
    fact.insert(4, ORDER_DATE)
    return {
        FACT_ORDERS_KEY: TableDoc(
            tuple(fact),
            rules=("orders of each ingest date that passed the gate, the latest version "
                   "within the partition: one row per (ingest_date, order_id)",)),
        FACT_REVENUE_KEY: TableDoc(
            (LINEAGE_COLS["ingest_date"], ORDER_DATE, CURRENCY_COL,
             replace(ORDER_COUNT, description="distinct orders received in the partition"),
             REVENUE),
            rules=("one row per (ingest_date, order_date, currency)",
                   "order_count and revenue per currency equal staging.orders' (check "
                   "matches_staging)")),
        REVENUE_BY_ORDER_DATE_KEY: TableDoc(
            (ORDER_DATE, CURRENCY_COL,
             replace(ORDER_COUNT, description="distinct orders, each in its current version "
                     "(newer updated_at, then later ingest date)"),
             REVENUE),
            rules=("one row per (order_date, currency) over every gated partition: a re-sent "
                   "order counts once, in its current version",)),
        CUSTOMER_VERSIONS_KEY: TableDoc(
            tuple(LINEAGE_COLS.get(n) or checked_col("customers", n)  # staging's columns
                  for n in (c.strip('"') for c in staging_columns(customers))),
            rules=("customer versions received in each ingest date that passed the gate",)),
        DIM_CUSTOMERS_KEY: TableDoc(
            (*(checked_col("customers", n) for n in
               ("customer_id", "email", "full_name", "country_code", "signup_ts")),
             Col("valid_from", UTC_TIMESTAMP, "updated_at of this version", nullable=False),
             Col("valid_to", UTC_TIMESTAMP, "valid_from of the next version (exclusive); NULL "
                 "for the current one"),
             Col("is_current", BOOL, "the latest version of the customer", nullable=False),
             Col("received_on", DATE, "ingest date in which this version arrived", nullable=False)),
            rules=("SCD type 2: one row per (customer_id, valid_from), one change of email, "
                   "name, country or signup each",
                   "exactly one row with is_current per customer_id")),
    }


def table_docs() -> dict[dg.AssetKey, TableDoc]:
    """Every table asset's declared columns, by asset key."""
    from dq_assets.checks.gate import GATE_SCHEMA
    from dq_assets.checks.landing import LANDING_FILES_SCHEMA
    from dq_assets.checks.reconciliation import RECON_SCHEMA
    from dq_assets.keys import GATE_KEY, LANDING_FILES_KEY, RECON_KEY, quarantine_key, raw_key, staging_key

    docs: dict[dg.AssetKey, TableDoc] = {}
    for t in TABLES:
        docs[raw_key(t.name)] = raw_doc(t)
        docs[staging_key(t.name)] = staging_doc(t)
        docs[quarantine_key(t.name)] = quarantine_doc(t)
    docs[LANDING_FILES_KEY] = TableDoc(
        _from_arrow(LANDING_FILES_SCHEMA, LANDING_FILES_COLUMNS,
                    ("ingest_date", "file_name", "listed", "present")),
        rules=("one row per file and ingest date: every contract table's file, every file "
               "present, every file the manifest lists",))
    docs[GATE_KEY] = TableDoc(
        _from_arrow(GATE_SCHEMA, GATE_COLUMNS,
                    ("ingest_date", "gate_passed", "checks_evaluated", "checks_passed",
                     "rows_landed", "rows_staged", "health_score", "run_id")),
        rules=("one row per ingest_date: the latest gate decision",))
    docs[RECON_KEY] = TableDoc(
        _from_arrow(RECON_SCHEMA, RECON_COLUMNS, ("ingest_date", "recon", "table_name", "key")),
        rules=("one row per key that does not reconcile",))
    docs.update(mart_docs())
    return docs


# ---------------------------------------------------------------- at materialization


def published_column_schema(key: dg.AssetKey, schema: pa.Schema | None, store: str) -> dict:
    """The `dagster/column_schema` a step reports for a table it writes itself (the marts): the
    columns written, with the descriptions and constraints declared in `table_docs`."""
    doc = table_docs().get(key)
    return columns_written(schema, store, doc.table_schema(store) if doc else None)

