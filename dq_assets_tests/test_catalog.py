"""The catalog (dq_assets/catalog/): what each asset's page says about its table, against
the tables a real run leaves behind, in both deployments."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from dq_assets import defs
from dq_assets.catalog.apply import (
    SCHEMA_CHANGE_CHECK,
    column_schema_change_checks,
    with_catalog,
)
from dq_assets.contract.tables import ENUM, TABLES, table
from dq_assets.definitions import ALL_ASSETS
from dq_assets.keys import quarantine_key, staging_key
from dq_assets.layers.raw import raw_assets
from dq_assets.layers.staging import build_staging_asset
from dq_assets.resources import local_resources

REPO = Path(__file__).resolve().parent.parent
MARTS = ("fact_orders", "fact_revenue_daily", "revenue_by_order_date", "customer_versions", "dim_customers")


def specs_by_key(definitions: dg.Definitions) -> dict[dg.AssetKey, dg.AssetSpec]:
    return {s.key: s for s in definitions.resolve_all_asset_specs()}


def published(spec: dg.AssetSpec) -> list[tuple[str, str]]:
    return [(c.name, c.type) for c in spec.metadata["dagster/column_schema"].columns]


def column(spec: dg.AssetSpec, name: str) -> dg.TableColumn:
    return next(c for c in spec.metadata["dagster/column_schema"].columns if c.name == name)


def test_every_asset_has_kinds_owners_code_references_a_table_name_and_columns():
    specs = specs_by_key(defs)
    daily = {key for a in ALL_ASSETS for key in a.keys}  # every asset is daily
    assert len(daily) == 26 and daily <= set(specs)
    for key, spec in specs.items():
        name = key.to_user_string()
        assert spec.kinds == {"duckdb"}, name  # the local deployment (DQ_DEPLOYMENT unset)
        assert spec.owners == ["team:data-platform"], name
        assert spec.metadata["dagster/table_name"] == f"{key.path[0]}.{key.path[-1]}", name
        assert "/" not in spec.metadata["dagster/table_name"]
        assert len(spec.metadata["dagster/column_schema"].columns) >= 4, name
        refs = spec.metadata["dagster/code_references"].code_references
        code = refs[0]  # the function that computes it, on its decorator's line
        path = Path(code.file_path)
        assert path.parent == REPO / "dq_assets" / "layers", (name, code)
        assert path.read_text().splitlines()[code.line_number - 1].strip().startswith("@dg."), (name, code)
        contract = [r for r in refs[1:] if r.file_path.endswith("contract/tables.py")]
        if key.path[0] in ("raw", "staging") and key.path[-1] != "landing_files" or key.path[-1].endswith("_quarantine"):
            t = key.path[-1].removesuffix("_quarantine")
            assert len(contract) == 1 and contract[0].label == f"the {t} contract", (name, refs)
            line = Path(contract[0].file_path).read_text().splitlines()[contract[0].line_number - 1]
            assert line.strip() == f'name="{t}",', (name, line)
        else:
            assert not contract, name


def test_staging_columns_are_the_contract_with_its_rules():
    specs = specs_by_key(defs)
    types = {"id": "VARCHAR", "text": "VARCHAR", "email": "VARCHAR", "country": "VARCHAR",
             "currency": "VARCHAR", "enum": "VARCHAR", "decimal": "DECIMAL(38,6)",
             "integer": "BIGINT", "timestamp": "TIMESTAMP WITH TIME ZONE"}
    for t in TABLES:
        spec = specs[staging_key(t.name)]
        assert published(spec) == [(c.name, types[c.kind]) for c in t.columns] + [
            ("ingest_date", "DATE"), ("source_file", "VARCHAR"), ("source_line", "BIGINT")]
        key_rule = spec.metadata["dagster/column_schema"].constraints.other[0]
        assert key_rule.startswith(f"one row per ({', '.join(t.key)}) and ingest_date")
        for c in t.columns:
            published_column = column(spec, c.name)
            badges = published_column.constraints.other
            said = published_column.description
            assert published_column.constraints.nullable == c.nullable, (t.name, c.name)
            assert ("as missing_required when blank" in said) == (not c.nullable), (t.name, c.name)
            if c.kind == ENUM:
                assert f"in ({', '.join(c.values)})" in badges, (t.name, c.name, badges)
                assert f"as invalid_value when not in ({', '.join(c.values)})" in said
            if c.references:
                assert f"→ {c.references.table}.{c.references.column}" in badges
                assert "as unknown_reference" in said
            if c.min is not None:
                assert any(str(c.min) in b for b in badges) and "as out_of_range" in said, (t.name, c.name)
            assert ("not in the future" in badges) == c.not_future, (t.name, c.name)
            assert ("as future_timestamp" in said) == c.not_future, (t.name, c.name)
            assert any(b.startswith("key") for b in badges) == (c.name in t.key), (t.name, c.name)
        for rule in t.rules:
            for name in rule.columns:
                assert rule.description in column(spec, name).constraints.other
                assert f"as {rule.reason} unless {rule.description}" in column(spec, name).description
    events_customer = column(specs[staging_key("events")], "customer_id")
    assert events_customer.constraints.nullable
    assert "→ customers.customer_id" in events_customer.constraints.other
    assert events_customer.description == (
        "identifier, trimmed. Quarantined as unknown_reference when no customers.customer_id of "
        "this or an earlier partition has it.")
    # raw: every contract column as text, nullable (a file may lack it), plus lineage
    raw_orders = specs[dg.AssetKey(["raw", "orders"])]
    assert published(raw_orders) == [(c, "VARCHAR") for c in table("orders").column_names] + [
        ("extra_columns", "VARCHAR"), ("ingest_date", "DATE"), ("source_file", "VARCHAR"),
        ("source_line", "BIGINT"), ("loaded_at", "TIMESTAMP WITH TIME ZONE")]
    assert column(raw_orders, "amount").constraints.nullable
    reason = column(specs[quarantine_key("payments")], "reject_reason")
    assert not reason.constraints.nullable and "unknown_reference" in reason.constraints.other[0]
    # a mart column keeps the staged type and rules; its key is the mart's own
    amount = column(specs[dg.AssetKey(["marts", "fact_orders"])], "amount")
    assert (amount.type, amount.constraints.other) == ("DECIMAL(38,6)", [">= 0"])


def test_published_columns_are_the_columns_the_warehouse_holds(two_days, warehouse):
    """A real run of every asset; each table's columns and types, in order, from DuckDB's
    information_schema, and the columns each materialization reported writing."""
    result = warehouse.materialize("2025-01-01")
    assert result.success
    written = {m.asset_key: m.metadata for m in
               (e.event_specific_data.materialization for e in result.get_asset_materialization_events())}
    specs = specs_by_key(defs)
    assert len(specs) == 26
    for key, spec in specs.items():
        schema, name = spec.metadata["dagster/table_name"].split(".")
        held = warehouse.query(
            """SELECT column_name, data_type FROM information_schema.columns
               WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position""", [schema, name])
        assert held, f"{schema}.{name} not in the warehouse"
        assert published(spec) == held, key.to_user_string()
        reported = written[key]
        assert reported["dagster/table_name"].value == f"{schema}.{name}"  # not the DuckDB file's path
        assert [(c.name, c.type) for c in reported["dagster/column_schema"].value.columns] == held


def test_the_aws_deployment_is_s3_parquet_and_postgres():
    """The code location as `dagster dev` loads it with DQ_DEPLOYMENT=aws (a process of its
    own: the deployment is read when the code location loads)."""
    env = {**os.environ, "DQ_DEPLOYMENT": "aws", "DQ_S3_BUCKET": "dq-bucket", "DQ_S3_PREFIX": "wh/prod",
           "PYTHONPATH": str(REPO)}
    script = """
import json
from dq_assets import defs
print(json.dumps({s.key.to_user_string(): {
    "kinds": sorted(s.kinds), "table_name": s.metadata["dagster/table_name"],
    "storage": s.metadata.get("storage"),
    "columns": dict((c.name, c.type) for c in s.metadata["dagster/column_schema"].columns)}
    for s in defs.resolve_all_asset_specs()}))
"""
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assets = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(assets) == 26
    for name, a in assets.items():
        layer, table_name = name.split("/")
        assert a["table_name"] == f"{layer}.{table_name}", name
        if layer == "raw":
            assert a["kinds"] == ["parquet", "s3"], name
            assert a["storage"] == f"s3://dq-bucket/wh/prod/raw/{table_name}/", name
        else:
            assert a["kinds"] == ["postgres"], name
            assert a["storage"] is None, name
    assert assets["raw/orders"]["columns"]["amount"] == "string"
    assert assets["raw/orders"]["columns"]["loaded_at"] == "timestamp[us, tz=UTC]"
    assert assets["staging/orders"]["columns"]["amount"] == "numeric(38,6)"
    assert assets["staging/orders"]["columns"]["order_ts"] == "timestamp with time zone"
    assert assets["marts/fact_revenue_daily"]["columns"]["order_count"] == "bigint"


def test_owners_and_repository_links_are_configurable(monkeypatch):
    monkeypatch.setenv("DQ_ASSET_OWNERS", "team:finance, ann@example.com")
    monkeypatch.setenv("DQ_GIT_URL", "https://github.com/acme/dq_assets/")
    monkeypatch.setenv("DQ_GIT_BRANCH", "release")
    catalog = with_catalog(dg.Definitions(assets=ALL_ASSETS, resources=local_resources()))
    spec = specs_by_key(catalog)[staging_key("orders")]
    assert spec.owners == ["team:finance", "ann@example.com"]
    staging_py = (REPO / "dq_assets" / "layers" / "staging.py").read_text().splitlines()
    line = next(i for i, text in enumerate(staging_py, 1) if text.strip().startswith("@dg.multi_asset("))
    urls = [r.url for r in spec.metadata["dagster/code_references"].code_references]
    assert urls[0] == f"https://github.com/acme/dq_assets/tree/release/dq_assets/layers/staging.py#L{line}"
    assert urls[1].startswith("https://github.com/acme/dq_assets/tree/release/dq_assets/contract/tables.py#L")

    monkeypatch.setenv("DQ_ASSET_OWNERS", "finance")  # neither an email nor team:
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="Invalid owner 'finance'"):
        with_catalog(dg.Definitions(assets=ALL_ASSETS, resources=local_resources()))


def test_column_schema_change_checks_are_on_staging_and_marts():
    checked = {k.asset_key for k in defs.resolve_asset_graph().asset_check_keys
               if k.name == SCHEMA_CHANGE_CHECK}
    assert checked == {staging_key(t.name) for t in TABLES} | {
        dg.AssetKey(["marts", m]) for m in MARTS}
    spec = next(s for c in defs.asset_checks for s in c.check_specs
                if s.asset_key == staging_key("orders") and s.name == SCHEMA_CHANGE_CHECK)
    assert not spec.blocking


def _schema_checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()
            if e.check_name == SCHEMA_CHANGE_CHECK}


def test_the_schema_change_check_passes_on_a_rerun_and_fails_when_a_table_changes(two_days, warehouse):
    assets = list(defs.assets)  # with the catalog's metadata, as the code location has them
    checks = [c for c in defs.asset_checks
              if any(s.name == SCHEMA_CHANGE_CHECK for s in c.check_specs)]

    def run(partition: str, assets=assets, checks=checks, selection=None):
        result = dg.materialize([*assets, *checks], partition_key=partition, selection=selection,
                                resources=warehouse.resources, instance=warehouse.instance,
                                raise_on_error=False)
        assert result.success
        return _schema_checks(result)

    first = run("2025-01-01")
    # (the session's instance may already hold earlier tests' materializations of these keys)
    assert set(first) == {f"staging/{t.name}" for t in TABLES} | {f"marts/{m}" for m in MARTS}
    rerun = run("2025-01-01")  # compared with the first materialization
    for name, evaluation in rerun.items():
        assert evaluation.passed, (name, evaluation.description)
        assert evaluation.description == \
            "No changes to column schema between previous and latest materialization", name
    # A materialization carries the columns it wrote with the contract's rules
    latest = warehouse.instance.fetch_materializations(staging_key("orders"), limit=1).records[0]
    status = column_of(latest.asset_materialization.metadata["dagster/column_schema"].value, "status")
    assert status.type == "VARCHAR" and not status.constraints.nullable
    assert "in (placed, paid, shipped, delivered, cancelled, refunded)" in status.constraints.other
    assert "as invalid_value when not in (placed" in status.description

    # The orders contract changes between two materializations: `currency` is dropped.
    orders = table("orders")
    without_currency = dataclasses.replace(
        orders, columns=tuple(c for c in orders.columns if c.name != "currency"))
    changed = build_staging_asset(without_currency)
    own_check = column_schema_change_checks([staging_key("orders")])
    staged = dg.AssetSelection.assets(staging_key("orders"), quarantine_key("orders"))
    dropped = run("2025-01-02", assets=[*raw_assets, changed], checks=own_check,
                  selection=staged)["staging/orders"]
    assert not dropped.passed and dropped.severity == dg.AssetCheckSeverity.WARN
    assert "Removed columns: currency" in dropped.description
    again = run("2025-01-02", assets=[*raw_assets, changed], checks=own_check,
                selection=staged)["staging/orders"]
    assert again.passed, again.description
    back = run("2025-01-02", selection=staged)["staging/orders"]  # the contract as it is
    assert not back.passed and "Added columns: currency" in back.description


def column_of(schema: dg.TableSchema, name: str) -> dg.TableColumn:
    return next(c for c in schema.columns if c.name == name)
