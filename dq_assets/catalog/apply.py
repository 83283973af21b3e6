"""The catalog applied: what each asset's page tells a user about its table.

`with_catalog(defs)` is applied to the code location in one place (definitions.py) and gives
every asset:
- `dagster/column_schema`: a `TableSchema` of the table's columns, their types as the store
  holds them, nullability, the contract's rules as column constraints (key, accepted values,
  shapes, ranges, references, future timestamps, row rules) and, in each column's
  description, which reject reason a row gets for which rule, as declared in
  `dq_assets.catalog.docs`. Raw, staging and quarantine tables are derived from the contracts
  (`dq_assets.contract.tables`), the quality tables from the Arrow schemas their code writes,
  the marts from `mart_docs` (their columns are fixed in their SQL);
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
from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from dq_assets.catalog.docs import table_docs
from dq_assets.contract import tables as contracts
from dq_assets.contract.tables import Table
from dq_assets.storage.column_schema import COLUMN_SCHEMA, S3_PARQUET, STORE_KINDS, store_of

OWNERS_ENV = "DQ_ASSET_OWNERS"
DEFAULT_OWNERS = ("team:data-platform",)
GIT_URL_ENV = "DQ_GIT_URL"
GIT_BRANCH_ENV = "DQ_GIT_BRANCH"

TABLE_NAME = "dagster/table_name"
CODE_REFERENCES = "dagster/code_references"
STORAGE = "storage"  # where a table that is no SQL table lives (an s3:// prefix)
SCHEMA_CHANGE_CHECK = "column_schema_change"  # the name Dagster's builder gives its checks
SCHEMA_CHECKED_GROUPS = ("staging", "marts")


def table_name(key: dg.AssetKey) -> str:
    """The SQL name: schema = the asset key's first part (the layer), table = its last."""
    return f"{key.path[0]}.{key.path[-1]}"


# ---------------------------------------------------------------- owners and code


def configured_owners() -> list[str]:
    """`DQ_ASSET_OWNERS` (comma-separated emails or `team:` names), else team:data-platform."""
    value = os.environ.get(OWNERS_ENV, "")
    owners = [o.strip() for o in value.split(",") if o.strip()]
    return owners or list(DEFAULT_OWNERS)


def contract_reference(t: Table) -> dg.LocalFileCodeReference:
    """Where the table's contract is declared: the `Table(name=...)` line in contract/tables.py."""
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
