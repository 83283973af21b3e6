"""The catalog: what each asset's page tells a user about its table.

`with_catalog(defs)` is applied to the code location in one place (definitions.py) and gives
every asset:
- `dagster/column_schema`: a `TableSchema` of the table's columns, their types as the store
  holds them, nullability, the contract's rules as column constraints (key, accepted values,
  shapes, ranges, references, future timestamps, row rules) and, in each column's
  description, which reject reason a row gets for which rule. Raw, staging and quarantine
  tables are derived from the contracts (`dq_assets.contract.tables`), the quality tables from the
  Arrow schemas their code writes, the marts from `mart_docs` (their columns are fixed in
  their SQL);
- `dagster/table_name`: the table's SQL name (`staging.orders`), never a file path; raw on S3
  also gets a `storage` entry with its `s3://` location;
- kinds of the store that holds it, from the IO manager the deployment (`DQ_DEPLOYMENT`,
  through `resources.build_resources`) put behind it: `duckdb`, or `s3` + `parquet` for raw
  and `postgres` for the rest in the aws deployment;
- owners (`DQ_ASSET_OWNERS`, a comma list, default `team:data-platform`);
- code references: the function that computes it (Dagster's `with_source_code_references`)
  and, for tables derived from a contract, that contract; links to the repository when
  `DQ_GIT_URL` (and `DQ_GIT_BRANCH`, default `main`) name one, local files otherwise.

It also adds Dagster's column-schema-change check (WARN) on every staging and mart asset.
That check compares the `dagster/column_schema` of an asset's two latest materializations,
so the IO managers publish, on every materialization, the columns they actually wrote
(`written_column_schema`), with the declared descriptions and constraints carried over.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

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
from dq_assets.storage.column_schema import (
    COLUMN_SCHEMA,
    S3_PARQUET,
    STORE_KINDS,
    column_type,
    columns_written,
    store_of,
)

OWNERS_ENV = "DQ_ASSET_OWNERS"
DEFAULT_OWNERS = ("team:data-platform",)
GIT_URL_ENV = "DQ_GIT_URL"
GIT_BRANCH_ENV = "DQ_GIT_BRANCH"

TABLE_NAME = "dagster/table_name"
CODE_REFERENCES = "dagster/code_references"
STORAGE = "storage"  # where a table that is no SQL table lives (an s3:// prefix)
SCHEMA_CHANGE_CHECK = "column_schema_change"  # the name Dagster's builder gives its checks
SCHEMA_CHECKED_GROUPS = ("staging", "marts")

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
    from dq_assets.keys import GATE_KEY, LANDING_FILES_KEY, RECON_KEY, quarantine_key, raw_key, staging_key
    from dq_assets.checks.gate import GATE_SCHEMA
    from dq_assets.checks.landing import LANDING_FILES_SCHEMA
    from dq_assets.checks.reconciliation import RECON_SCHEMA

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


def table_name(key: dg.AssetKey) -> str:
    """The SQL name: schema = the asset key's first part (the layer), table = its last."""
    return f"{key.path[0]}.{key.path[-1]}"


# ---------------------------------------------------------------- at materialization


def published_column_schema(key: dg.AssetKey, schema: pa.Schema | None, store: str) -> dict:
    """The same for a table a step writes itself (the marts), declared in `table_docs`."""
    doc = table_docs().get(key)
    return columns_written(schema, store, doc.table_schema(store) if doc else None)


# ---------------------------------------------------------------- owners and code


def configured_owners() -> list[str]:
    """`DQ_ASSET_OWNERS` (comma-separated emails or `team:` names), else team:data-platform."""
    value = os.environ.get(OWNERS_ENV, "")
    owners = [o.strip() for o in value.split(",") if o.strip()]
    return owners or list(DEFAULT_OWNERS)


def contract_reference(t: Table) -> dg.LocalFileCodeReference:
    """Where the table's contract is declared: the `Table(name=...)` line in contracts.py."""
    path = Path(contracts.__file__).resolve()
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("TABLES"))
    pattern = re.compile(rf"""\bname\s*=\s*["']{re.escape(t.name)}["']""")
    line = next(i for i in range(start, len(lines)) if pattern.search(lines[i]))
    return dg.LocalFileCodeReference(file_path=str(path), line_number=line + 1,
                                     label=f"the {t.name} contract")


def contract_of(key: dg.AssetKey) -> Table | None:
    """The contract a raw, staging or quarantine table is derived from."""
    name = key.path[-1].removesuffix("_quarantine")
    if key.path[0] in ("raw", "staging") or key.path[-1].endswith("_quarantine"):
        return contracts.TABLES_BY_NAME.get(name)
    return None


def code_references(assets: Iterable) -> dict[dg.AssetKey, dg.CodeReferencesMetadataValue]:
    """Per asset key: Dagster's reference to the function that computes it, its contract's
    declaration where it has one, as repository links when DQ_GIT_URL is set."""
    assets_defs = [a for a in assets if isinstance(a, dg.AssetsDefinition)]
    referenced = dg.with_source_code_references(assets_defs)

    def add_contract(spec: dg.AssetSpec) -> dg.AssetSpec:
        t = contract_of(spec.key)
        if t is None:
            return spec
        existing = spec.metadata[CODE_REFERENCES].code_references
        return spec.merge_attributes(metadata={CODE_REFERENCES: dg.CodeReferencesMetadataValue(
            code_references=[*existing, contract_reference(t)])})

    referenced = [a.map_asset_specs(add_contract) for a in referenced]
    git_url = os.environ.get(GIT_URL_ENV, "").strip().rstrip("/")
    if git_url:
        package = Path(contracts.__file__).resolve().parent.parent  # dq_assets/
        referenced = dg.link_code_references_to_git(
            referenced, git_url=git_url,
            git_branch=os.environ.get(GIT_BRANCH_ENV, "").strip() or "main",
            file_path_mapping=dg.AnchorBasedFilePathMapping(
                local_file_anchor=package / "__init__.py",
                file_anchor_path_in_repository=f"{package.name}/__init__.py"),
        )
    return {spec.key: spec.metadata[CODE_REFERENCES] for a in referenced for spec in a.specs}


# ---------------------------------------------------------------- checks and the whole


def column_schema_change_checks(keys: Iterable[dg.AssetKey]) -> list[dg.AssetChecksDefinition]:
    """Dagster's column-schema-change check (WARN), one step per asset: a mart that the gate
    held back does not keep the check of another asset from running."""
    return [check for key in sorted(keys, key=lambda k: k.path)
            for check in dg.build_column_schema_change_checks(
                assets=[key], severity=dg.AssetCheckSeverity.WARN)]


def _storage(io_manager, key: dg.AssetKey) -> str | None:
    """The s3:// prefix of a table on S3, as the S3 IO manager reports it when it writes (None
    for a prefix it would refuse: the run says why)."""
    try:
        return io_manager.table_location(key)
    except ValueError:
        return None


def with_catalog(defs: dg.Definitions) -> dg.Definitions:
    """Column schemas, table names, kinds, owners and code references on every asset, and the
    column-schema-change checks on staging and marts (see the module docstring)."""
    # Code references and the schema-change check builder are beta in Dagster 1.13: used on
    # purpose, so their warnings are not repeated on every load of the code location.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _with_catalog(defs)


def _with_catalog(defs: dg.Definitions) -> dg.Definitions:
    resources = dict(defs.resources or {})
    assets_defs = [a for a in defs.assets or () if isinstance(a, dg.AssetsDefinition)]
    io_manager_keys = {key: a.get_io_manager_key_for_asset_key(key)
                       for a in assets_defs for key in a.keys}
    docs = table_docs()
    refs = code_references(assets_defs)
    owners = configured_owners()

    def describe(spec: dg.AssetSpec) -> dg.AssetSpec:
        io_manager = resources.get(io_manager_keys.get(spec.key, "io_manager"))
        store = store_of(io_manager)
        metadata: dict = {TABLE_NAME: table_name(spec.key)}
        if store == S3_PARQUET and (where := _storage(io_manager, spec.key)):
            metadata[STORAGE] = where
        if spec.key in docs:
            metadata[COLUMN_SCHEMA] = docs[spec.key].table_schema(store)
        if spec.key in refs:
            metadata[CODE_REFERENCES] = refs[spec.key]
        return spec.merge_attributes(
            metadata=metadata, kinds=STORE_KINDS.get(store, set()),
            owners=[o for o in owners if o not in spec.owners])

    described = defs.map_asset_specs(func=describe)
    checked = [spec.key for spec in described.resolve_all_asset_specs()
               if spec.group_name in SCHEMA_CHECKED_GROUPS]
    return dg.Definitions.merge(
        described, dg.Definitions(asset_checks=column_schema_change_checks(checked)))
