"""DQ_BACKFILL_RUN_DAYS, read when the code location loads: unset, every backfill is one run and no
order across days is declared; N, every asset's backfill policy is multi_run(N) and the days that
are checked against earlier ones are declared to follow them, so Dagster's backfill daemon never
starts a run before the days it needs. The tests' own process keeps the default; the split
code location is loaded in a fresh interpreter, as `dagster dev` loads it. A refused value names
the variable. The backfill itself, run by a daemon: test_backfill_runs.py (slow tier)."""

import json

import dagster as dg
import pytest

from dq_assets import settings
from dq_assets.definitions import defs
from dq_assets.partitions import WAREHOUSE_POOL
from dq_assets_tests.test_partitions_start import fresh_env, python

# every asset's parents and backfill policy, as the loaded code location has them
GRAPH = """
import json
import dagster as dg
from dq_assets.definitions import defs
g = defs.resolve_asset_graph()
print(json.dumps({k.to_user_string(): {
    "parents": sorted(p.to_user_string() for p in g.get(k).parent_keys),
    "policy": g.get(k).backfill_policy.max_partitions_per_run,
    "pools": sorted(g.get(k).pools or [])} for k in g.materializable_asset_keys}))
"""

# (asset, its previous day's parents) declared with runs of a few days
DECLARED = {
    "raw/customers": ["raw/customers"],
    "raw/products": ["raw/products"],
    "raw/orders": ["raw/orders"],
    "raw/landing_files": ["raw/customers", "raw/orders", "raw/products"],
    "quality/recon_row_mismatches": ["quality/recon_row_mismatches"],
}


@pytest.mark.parametrize("value, expected", [("", None), ("0", None), (" 7 ", 7), ("30", 30)])
def test_the_value_is_a_number_of_days(value, expected):
    assert settings.backfill_run_days(value) == expected


@pytest.mark.parametrize("value", ["x", "-1", "2.5", "1e3"])
def test_anything_else_is_refused_naming_the_variable(value):
    with pytest.raises(ValueError, match="DQ_BACKFILL_RUN_DAYS"):
        settings.backfill_run_days(value)


def test_by_default_a_backfill_is_one_run_with_no_order_declared_across_days():
    g = defs.resolve_asset_graph()
    for key in g.materializable_asset_keys:
        node = g.get(key)
        assert node.backfill_policy == dg.BackfillPolicy.single_run(), key
        assert key not in node.parent_keys, key  # no asset follows its own previous day
        assert node.pools == {WAREHOUSE_POOL}, key
    landing = g.get(dg.AssetKey(["raw", "landing_files"]))
    assert landing.parent_keys == set()


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> dict:
    proc = python(GRAPH, fresh_env(tmp_path_factory.mktemp("split"), DQ_BACKFILL_RUN_DAYS="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_runs_of_a_few_days_declare_the_order_across_days(split):
    assert {k: v["policy"] for k, v in split.items()} == {
        k: 3 for k in split}
    default = defs.resolve_asset_graph()
    for key, node in split.items():
        before = sorted(p.to_user_string() for p in default.get(dg.AssetKey.from_user_string(key)).parent_keys)
        added = sorted(set(node["parents"]) - set(before))
        assert added == DECLARED.get(key, []), key
        assert node["pools"] == [WAREHOUSE_POOL], key


def test_a_refused_value_stops_the_code_location_from_loading(tmp_path):
    proc = python("import dq_assets.definitions", fresh_env(tmp_path, DQ_BACKFILL_RUN_DAYS="ten"))
    assert proc.returncode != 0
    assert "DQ_BACKFILL_RUN_DAYS='ten': expected a whole number of days" in proc.stderr
