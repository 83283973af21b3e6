"""The history check, on raw.landing_files: history_complete (blocking). A partition's
references resolve against every earlier day, so every landed day before the run's first
partition must be loaded before its staging runs; which days are missing is day arithmetic
(dq_assets.rules.history), which days were loaded is what the quality store recorded.
"""

import dagster as dg

from dq_assets.checks import landing
from dq_assets.checks.model import SAMPLE_KEYS, CheckDef, Outcome
from dq_assets.contract.gate import GateConfig
from dq_assets.keys import LANDING_FILES_KEY, raw_key
from dq_assets.partitions import PARTITIONS_START
from dq_assets.rules.history import day_ranges, history_tables, missing_days
from dq_assets.settings import PARTITIONS_START_ENV

HISTORY_CHECK = "history_complete"
# A check of raw.landing_files: configured as `landing_files.history_complete` in gate.yaml.
SEVERITY_SCOPE = landing.SEVERITY_SCOPE

HISTORY = CheckDef(
    HISTORY_CHECK, LANDING_FILES_KEY,
    "Every landed day before the partition is loaded: references to the change feeds resolve "
    "against all of them. Blocking: staging waits for its history.", blocking=True)


def loaded_history(store, before: str) -> dict[str, set[str]]:
    """Per referenced raw table, the partitions before `before` it was loaded for: its raw
    step ran to its checks, which it reports after writing the partition."""
    return store.partitions_with_results([raw_key(t).to_user_string() for t in history_tables()], before)


def history_advice(missing: list[str], start: str, key: str) -> tuple[str, str]:
    """(what to add to `observed`, the detail) for missing history days. A landed day before the
    first partition (`start`) can never be loaded: only a different partitions start helps."""
    early, later = [d for d in missing if d < start], [d for d in missing if d >= start]
    note, advice = "", []
    if early:
        note = f" ({day_ranges(early)} before the first daily partition, {start})"
        advice.append(f"{day_ranges(early)} landed before the first daily partition ({start}) and "
                      f"cannot be loaded: set {PARTITIONS_START_ENV}={early[0]} (or earlier) when the "
                      f"code location loads")
    if later:
        advice.append(f"load {day_ranges(later)} first (the landing sensor runs landed days in "
                      f"order), or run them in one range with {key}")
    return note, "references resolve against every earlier day: " + "; ".join(advice)


def evaluate_history(asset: dg.AssetKey, partition_keys: list[str], cfg: GateConfig, landed: list[str],
                     loaded: dict[str, set[str]], start: str = PARTITIONS_START) -> list[Outcome]:
    """The reference history of the run's partitions: every landed day before the first one
    loaded (the later ones are in the run). One outcome per partition, the same for all. A
    landed day before the first partition (`start`) counts too: its keys are still referenced."""
    first = partition_keys[0]
    missing = missing_days(landed, loaded, first)
    tables = ", ".join(sorted(loaded))
    outcomes = []
    for key in partition_keys:
        note, detail = history_advice(missing, start, key) if missing else ("", "")
        outcomes.append(Outcome(
            HISTORY_CHECK, asset, key, passed=not missing,
            severity=cfg.severity_of(SEVERITY_SCOPE, HISTORY_CHECK), failing_rows=len(missing),
            observed=(f"reference history incomplete: {day_ranges(missing)} not loaded{note}" if missing
                      else f"every landed day before {key} loaded"),
            threshold=f"every landed day before {key} loaded ({tables})",
            sample_keys=missing[:SAMPLE_KEYS],
            detail=detail,
            sql=("SELECT DISTINCT asset_key, partition_key FROM quality.check_results WHERE asset_key "
                 f"IN ({', '.join(repr(t) for t in sorted(loaded))}) AND partition_key < '{first}' "
                 "ORDER BY 2"),
        ))
    return outcomes
