"""The crash matrix: the CLI SIGKILLed right after each output boundary of every multi-output
step (between a table's raw step and its staging step, between staging and quarantine of each
table, and the marts of `publish_marts`), on DuckDB and on the aws deployment (raw on S3, the
rest on PostgreSQL; test_crash_matrix_aws.py).

The scenario is the one that broke (issue 14.1): a day is loaded in a first version that has a
quarantined row in every table (and fails the gate, so no mart has it), then a clean re-sent
version lands and is loaded by runs that die one after the other, each at the next boundary
(every run starts from scratch, so each reaches its boundary). After each death:
- raw rows = staging rows + quarantined rows, for every table of the partition (the raw that a
  reader sees: `raw.<table>` on DuckDB, the current object on S3), whether its staging step ran
  or not;
- each table's staging and quarantine are both of the same version, never one old and one new;
- the marts are all of one publication: none of them, or all of the new version's.
The run after the last death succeeds and leaves exactly what a clean run of the new version
leaves (tables and latest check results).

A process dies here by `crash_hook/sitecustomize.py` (on the CLI's PYTHONPATH), which kills it
with SIGKILL right after Dagster logged the boundary's event.
"""

from __future__ import annotations

import csv
import io
import shutil
import signal
from pathlib import Path

import pytest

from dq_assets.contract.tables import TABLES
from dq_assets.layers.marts import MART_SPECS
from dq_assets.storage.quality_store import APPEND_ONLY_TABLES
from dq_assets_tests.conftest import Warehouse
from dq_assets_tests.test_faults import (
    DAY,
    SAMPLE_DAY,
    CliRun,
    contents,
    duck_env,
    duck_latest_rows,
    duck_snapshot,
)

pytestmark = pytest.mark.slow  # the end-to-end tier: a CLI run killed at every output boundary
# (on DuckDB here; on the aws deployment in test_crash_matrix_aws.py)

HOOK = Path(__file__).resolve().parent / "crash_hook"
MARTS = [spec.key.path[-1] for spec in MART_SPECS]
# After every raw step wrote its table (its staging step not run yet); between the two outputs
# of every staging step; after the last output of one (the checks not yet recorded: the same
# code for every table); after the first and after the last mart recorded (the marts are
# committed together before Dagster records any of them).
BOUNDARIES = (
    [f'raw__{t.name}|HANDLED_OUTPUT|"result"' for t in TABLES]
    + [f'stage_{t.name}|HANDLED_OUTPUT|"staging"' for t in TABLES]
    + ['stage_orders|HANDLED_OUTPUT|"quarantine"']
    + [f"publish_marts|ASSET_MATERIALIZATION|Materialized value marts {m}." for m in (MARTS[0], MARTS[-1])]
)


def first_version(root: Path) -> None:
    """The sample day with its last record sent twice in every file (an exact duplicate:
    quarantined), the manifest left as it was (so the gate refuses this version)."""
    folder = root / SAMPLE_DAY.name
    for t in TABLES:
        path = folder / t.file_name
        *_, last = csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig")))
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(last)
        text = path.read_text(encoding="utf-8")
        path.write_text(text + ("" if text.endswith("\n") else "\n") + out.getvalue(), encoding="utf-8")


def landing_at(tmp: Path, version: int) -> Path:
    root = tmp / "landing"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(SAMPLE_DAY, root / SAMPLE_DAY.name)
    if version == 1:
        first_version(root)
    return root


def tables_of(snap: dict, raw: dict[str, int] | None = None) -> dict:
    """table -> (raw rows, staging rows, quarantine rows) of DAY, and the marts' contents."""
    def rows(name: str) -> list:
        return snap.get(name, {"by_partition": {}})["by_partition"].get(DAY, [])

    per_table = {t.name: ((raw or {}).get(t.name, len(rows(f"raw.{t.name}"))),
                          rows(f"staging.{t.name}"), rows(f"quality.{t.name}_quarantine"))
                 for t in TABLES}
    marts = tuple(tuple(snap.get(f"marts.{m}", {"rows": []})["rows"]) for m in MARTS)
    return {"tables": per_table, "marts": marts}


def assert_consistent(boundary: str, staged: set[str], now: dict, before: dict, new: dict) -> None:
    """Every table: raw = staging + quarantine. Every table the killed run staged (the killed
    step's own included): staging and quarantine both of the new version. Every other table (its
    raw step may have run, its staging step did not): raw, staging and quarantine as they were
    before the run. The marts all as before or all of the new version."""
    for t in TABLES:
        raw, staging, quarantine = now["tables"][t.name]
        assert raw == len(staging) + len(quarantine), (
            f"after {boundary}: {t.name}: raw {raw} != staging {len(staging)} + quarantine {len(quarantine)}")
        if t.name in staged:
            assert (staging, quarantine) == new["tables"][t.name][1:], (
                f"after {boundary}: {t.name}: staging and quarantine are not both of the new version")
        else:
            assert now["tables"][t.name] == before["tables"][t.name], (
                f"after {boundary}: {t.name} changed, but its staging step did not run")
    assert now["marts"] in (before["marts"], new["marts"]), f"after {boundary}: the marts are half published"


def kept(snap: dict) -> dict:
    """What a rerun must leave as a clean run does: every table but the history records."""
    return {k: v for k, v in contents(snap).items() if k.split(".")[1] not in APPEND_ONLY_TABLES}


def crash_chain(tmp: Path, env: dict, state):
    """Loads the first version, then the second by runs killed one at each boundary: yields
    (boundary, the tables the killed run staged, the state before that run) after each death."""
    landing_at(tmp, 1)
    assert CliRun(env, DAY).wait() == 1  # the first version: loaded, refused by the gate
    before = state()
    assert all(len(q) == 1 for _, _, q in before["tables"].values())  # one duplicate each
    assert not any(before["marts"])
    landing_at(tmp, 2)
    for boundary in BOUNDARIES:
        killed = CliRun({**env, "DQ_CRASH_AFTER": boundary}, DAY)
        assert killed.wait() == -signal.SIGKILL, killed.output()[-3000:]
        step, _, text = boundary.split("|", 2)
        last = [ln for ln in killed.lines if f" - {step} - " in ln][-1]
        assert text in last, f"{boundary}: the run died elsewhere: {last}"
        staged = {t.name for t in TABLES
                  if f'Finished execution of step "stage_{t.name}"' in killed.output()
                  or step == f"stage_{t.name}"}
        yield boundary, staged, before
        before = state()


def test_crash_matrix_on_duckdb(tmp_path, instance):
    clean = tmp_path / "clean"
    clean.mkdir()
    ref = Warehouse(landing_at(clean, 2), clean / "warehouse.duckdb", instance)
    assert ref.materialize(DAY).success
    from dq_assets.storage.duckdb.warehouse import release_warehouse

    release_warehouse(str(ref.database))
    new_snap = duck_snapshot(ref.database)
    new = tables_of(new_snap)

    work = tmp_path / "work"
    work.mkdir()
    env = {**duck_env(work, work / "landing"), "PYTHONPATH": str(HOOK)}
    warehouse = Path(env["DQ_WAREHOUSE"])
    for boundary, staged, before in crash_chain(work, env, lambda: tables_of(duck_snapshot(warehouse))):
        assert_consistent(boundary, staged, tables_of(duck_snapshot(warehouse)), before, new)
    rerun = CliRun(env, DAY)
    assert rerun.wait() == 0, rerun.output()[-3000:]
    assert kept(duck_snapshot(warehouse)) == kept(new_snap)
    assert duck_latest_rows(warehouse) == duck_latest_rows(ref.database)
