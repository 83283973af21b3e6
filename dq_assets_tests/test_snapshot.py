"""What the code location names, as a snapshot: every asset key, asset check (blocking or not, partitioned or not), job, sensor,
schedule and resource key. A rename or a lost definition (in a re-layout, say) fails here; a
deliberate change is recorded with `DQ_TEST_UPDATE_SNAPSHOT=1 python -m pytest
dq_assets_tests/test_snapshot.py` and reviewed in the diff."""

import os
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("snapshots") / "definitions.txt"


def names_of(defs) -> list[str]:
    """One line per definition, sorted within each kind."""
    repo = defs.get_repository_def()
    graph = defs.resolve_asset_graph()
    lines = [f"asset {k.to_user_string()}" for k in graph.get_all_asset_keys()]
    for c in graph.asset_check_keys:
        spec = graph.get_check_spec(c)
        flags = " blocking" * spec.blocking + " partitioned" * (spec.partitions_def is not None)
        lines.append(f"check {c.asset_key.to_user_string()}:{c.name}{flags}")
    lines += [f"job {j.name}" for j in repo.get_all_jobs() if not j.name.startswith("__")]
    lines += [f"sensor {s.name}" for s in repo.sensor_defs]
    lines += [f"schedule {s.name}" for s in repo.schedule_defs]
    lines += [f"resource {r}" for r in (defs.resources or {})]
    return sorted(lines)


def test_the_definitions_match_the_snapshot():
    from dq_assets import defs

    now = "\n".join(names_of(defs)) + "\n"
    if os.environ.get("DQ_TEST_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(now)
    recorded = SNAPSHOT.read_text()
    missing = sorted(set(recorded.splitlines()) - set(now.splitlines()))
    added = sorted(set(now.splitlines()) - set(recorded.splitlines()))
    assert not missing and not added, f"gone: {missing}\nnew: {added}"
    assert now == recorded
