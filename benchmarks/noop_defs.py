"""Dagster's own floor: a code location with the SAME graph shape as dq_assets whose assets
and checks do nothing.

The shape (asset keys, deps and partition mappings, groups, daily partitioning, single-run
backfill policies, freshness policies, the asset checks, each check-only definition as one op,
the in-process executor) is read from the JSON written by `graph_spec.py` from the real
`Definitions` (path in `DQ_BENCH_NOOP_SPEC`; without it, from dq_assets itself). No IO
managers, no resources, no data: every step only reports its materializations and passing
check results. `dagster asset materialize -m benchmarks.noop_defs --select '*' --partition D`
is then the cost of running this graph through Dagster itself.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import dagster as dg


def _load_spec() -> dict:
    path = os.environ.get("DQ_BENCH_NOOP_SPEC")
    if path:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    # No spec file (e.g. run by hand): read the shape from the real code location. This
    # imports dq_assets, so it is not the floor: the benchmark always passes a spec file.
    from benchmarks.graph_spec import graph_spec
    from dq_assets.definitions import defs as real_defs

    return graph_spec(real_defs)


SPEC = _load_spec()

_PARTITIONS: dict[tuple, dg.DailyPartitionsDefinition] = {}


def _daily(p: dict | None) -> dg.DailyPartitionsDefinition | None:
    if p is None:
        return None
    key = (p["start"], p["end_offset"], p["timezone"])
    if key not in _PARTITIONS:
        _PARTITIONS[key] = dg.DailyPartitionsDefinition(
            start_date=p["start"], end_offset=p["end_offset"], timezone=p["timezone"])
    return _PARTITIONS[key]


def _mapping(m: dict | None):
    if m is None:
        return None
    if m["type"] == "time_window":
        return dg.TimeWindowPartitionMapping(
            start_offset=m["start_offset"], end_offset=m["end_offset"],
            allow_nonexistent_upstream_partitions=m["allow_nonexistent_upstream_partitions"])
    if m["type"] == "all":
        return dg.AllPartitionMapping()
    raise ValueError(m)


def _freshness(f: dict | None):
    if f is None:
        return None
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(seconds=f["fail_s"]),
        warn_window=timedelta(seconds=f["warn_s"]) if f["warn_s"] is not None else None)


def _check_spec(c: dict, partitions) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(c["name"], asset=dg.AssetKey(c["asset"]), blocking=c["blocking"],
                             partitions_def=partitions if c["partitioned"] else None)


def _node(node: dict) -> dg.AssetsDefinition:
    partitions = _daily(node["partitions"])
    specs = [
        dg.AssetSpec(
            key=dg.AssetKey(s["key"]),
            group_name=s["group"],
            deps=[dg.AssetDep(dg.AssetKey(d["key"]), partition_mapping=_mapping(d["mapping"]))
                  for d in s["deps"]],
            freshness_policy=_freshness(s["freshness"]),
        )
        for s in node["specs"]
    ]
    check_specs = [_check_spec(c, partitions) for c in node["checks"]]

    @dg.multi_asset(
        name=node["name"],
        specs=specs,
        check_specs=check_specs,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run() if node["single_run_backfill"] else None,
    )
    def _noop(context):
        for s in specs:
            yield dg.MaterializeResult(asset_key=s.key)
        for c in check_specs:
            yield dg.AssetCheckResult(asset_key=c.asset_key, check_name=c.name, passed=True)

    return _noop


def _check_group(group: dict, partitions) -> dg.AssetChecksDefinition:
    specs = [_check_spec(c, partitions) for c in group["checks"]]

    @dg.multi_asset_check(specs=specs, name=group["name"], can_subset=True)
    def _noop_checks(context):
        for key in context.selected_asset_check_keys:
            yield dg.AssetCheckResult(asset_key=key.asset_key, check_name=key.name, passed=True)

    return _noop_checks


ASSETS = [_node(n) for n in SPEC["nodes"]]
_first_daily = next((_daily(n["partitions"]) for n in SPEC["nodes"] if n["partitions"]), None)
CHECKS = [_check_group(g, _first_daily) for g in SPEC["check_groups"]]

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    executor=dg.in_process_executor if SPEC.get("executor") == "in_process" else None,
)
