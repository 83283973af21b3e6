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
    "previous_day": sorted(p.to_user_string() for p in g.get(k).parent_keys
                           if getattr(g.get_partition_mapping(k, p), "start_offset", 0) == -1),
    "policy": g.get(k).backfill_policy.max_partitions_per_run,
    "pools": sorted(g.get(k).pools or [])} for k in g.materializable_asset_keys}))
"""

# (asset, the parents declared with runs of a few days): every asset that follows a previous day
# follows its own (a chain of days); the landing audit follows the same day of those chains
DECLARED = {
    "raw/customers": ["raw/customers"],
    "raw/products": ["raw/products"],
    "raw/orders": ["raw/orders"],
    "raw/landing_files": ["raw/customers", "raw/orders", "raw/products"],
    "quality/recon_row_mismatches": ["quality/recon_row_mismatches"],
}
PREVIOUS_DAY = {k: v for k, v in DECLARED.items() if v == [k]}

# What Dagster's backfill daemon targets for a backfill launched as the UI's Materialize dialog
# launches it (the days and every asset): {day: number of assets}. Read with Dagster's private
# AssetBackfillData, the class the launch mutation builds.
TARGET = """
import json, time
import dagster as dg
from dagster._core.execution.asset_backfill import AssetBackfillData
from dq_assets.definitions import defs
g = defs.resolve_asset_graph()
data = AssetBackfillData.from_asset_partitions(
    g, ["2025-01-02", "2025-01-03", "2025-01-04"], list(g.materializable_asset_keys),
    dg.DagsterInstance.ephemeral(), time.time(), all_partitions=False)
days = {}
for p in data.target_subset.iterate_asset_partitions():
    days.setdefault(p.partition_key, []).append(p.asset_key.to_user_string())
print(json.dumps(days))
"""


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
        assert node["previous_day"] == PREVIOUS_DAY.get(key, []), key
        assert node["pools"] == [WAREHOUSE_POOL], key


def test_a_backfill_launched_for_a_range_targets_exactly_those_days_of_every_asset(tmp_path):
    """With runs of a few days, as without: a previous-day dependency between two assets would
    make Dagster skip the dependent asset's first day and add the day after the range (which
    fails when that day has not landed)."""
    proc = python(TARGET, fresh_env(tmp_path, DQ_BACKFILL_RUN_DAYS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    days = json.loads(proc.stdout.strip().splitlines()[-1])
    every = sorted(k.to_user_string() for k in defs.resolve_asset_graph().materializable_asset_keys)
    assert {d: sorted(keys) for d, keys in days.items()} == {
        d: every for d in ("2025-01-02", "2025-01-03", "2025-01-04")}


def test_a_refused_value_stops_the_code_location_from_loading(tmp_path):
    proc = python("import dq_assets.definitions", fresh_env(tmp_path, DQ_BACKFILL_RUN_DAYS="ten"))
    assert proc.returncode != 0
    assert "DQ_BACKFILL_RUN_DAYS='ten': expected a whole number of days" in proc.stderr


def test_the_backfill_command_says_when_no_webserver_answers(capsys):
    from dq_assets.operations.backfills import main
    from dq_assets_tests.pg_fixtures import free_port

    url = f"http://127.0.0.1:{free_port()}"
    assert main(["--url", url, "--from", "2025-01-01", "--to", "2025-01-03"]) == 2
    assert f"error: no Dagster webserver answers at {url}" in capsys.readouterr().err


def test_the_backfill_command_refuses_a_reversed_range(capsys):
    from dq_assets.operations.backfills import main

    assert main(["--from", "2025-01-03", "--to", "2025-01-01"]) == 2
    assert "error: the range 2025-01-03..2025-01-01 ends before it starts" in capsys.readouterr().err
