"""The shape of dq_assets' asset graph, as JSON, for the no-op twin in `noop_defs.py`.

Read from the project's own `Definitions` every time the benchmark runs, so the no-op graph
keeps the same asset keys, deps (with their partition mappings), groups, partitioning,
backfill policies, freshness policies and asset checks as the real one while it changes.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import dagster as dg


def _mapping(m) -> dict | None:
    if m is None:
        return None
    if isinstance(m, dg.TimeWindowPartitionMapping):
        return {"type": "time_window", "start_offset": m.start_offset, "end_offset": m.end_offset,
                "allow_nonexistent_upstream_partitions": m.allow_nonexistent_upstream_partitions}
    if isinstance(m, dg.AllPartitionMapping):
        return {"type": "all"}
    if isinstance(m, dg.IdentityPartitionMapping):
        return None
    raise ValueError(f"no-op graph: unsupported partition mapping {m!r}")


def _partitions(p) -> dict | None:
    if p is None:
        return None
    if not isinstance(p, dg.DailyPartitionsDefinition):
        raise ValueError(f"no-op graph: unsupported partitions {p!r}")
    return {"start": p.start.strftime("%Y-%m-%d"), "end_offset": p.end_offset,
            "timezone": p.timezone}


def _freshness(policy) -> dict | None:
    if policy is None:
        return None
    return {"fail_s": policy.fail_window.to_timedelta().total_seconds(),
            "warn_s": policy.warn_window.to_timedelta().total_seconds() if policy.warn_window else None}


def graph_spec(defs: dg.Definitions) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = defs.resolve_asset_graph()
        executor = defs.resolve_job_def("__ASSET_JOB").executor_def.name
    nodes, check_groups = [], []
    for a in sorted(graph.assets_defs, key=lambda a: a.node_def.name):
        checks = [{"name": c.name, "asset": list(c.asset_key.path), "blocking": c.blocking,
                   "partitioned": getattr(c, "partitions_def", None) is not None}
                  for c in a.check_specs]
        if not a.keys:  # checks-only definitions: one op each, however many checks
            check_groups.append({"name": a.node_def.name, "checks": checks})
            continue
        specs = []
        for spec in a.specs:
            specs.append({
                "key": list(spec.key.path),
                "group": spec.group_name,
                "deps": [{"key": list(d.asset_key.path), "mapping": _mapping(d.partition_mapping)}
                         for d in spec.deps],
                "freshness": _freshness(getattr(spec, "freshness_policy", None)),
            })
        nodes.append({
            "name": a.node_def.name,
            "partitions": _partitions(a.partitions_def),
            "single_run_backfill": a.backfill_policy is not None
            and a.backfill_policy.max_partitions_per_run is None,
            "specs": specs,
            "checks": checks,
        })
    return {"executor": executor, "nodes": nodes, "check_groups": check_groups}


def write_graph_spec(path: Path) -> dict:
    from dq_assets.definitions import defs

    spec = graph_spec(defs)
    path.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    return spec


if __name__ == "__main__":
    import sys

    s = write_graph_spec(Path(sys.argv[1]))
    print(f"{len(s['nodes'])} nodes, {sum(len(n['specs']) for n in s['nodes'])} assets, "
          f"{sum(len(n['checks']) for n in s['nodes'])} checks")
