"""The gate: one decision per partition from the latest check results, and its two checks on
quality.partition_gate.

A partition passes unless an ERROR-severity check failed, a gated asset has no check results, or
a gated asset was rewritten without its checks (dq_assets.storage.quality_store: write marks).
The decision records the write marks it judged (`inputs_version`); the marts publish a
partition only while those marks are unchanged.

- gate_passed: no ERROR check of the partition failed (always ERROR; blocks nothing: the marts
  read the decision themselves);
- no_expired_suppressions: every entry of the suppressions file is still in force.
"""

import hashlib
import json
from datetime import date, datetime, timezone

import pandas as pd
import pyarrow as pa

from dq_assets.checks.model import SAMPLE_KEYS, CheckDef, Outcome
from dq_assets.contract.gate import ERROR, GateConfig
from dq_assets.contract.suppressions import load_suppressions, today_utc
from dq_assets.contract.tables import TABLE_NAMES
from dq_assets.keys import GATE_KEY, LANDING_FILES_KEY, RECON_KEY, quarantine_key, raw_key, staging_key

SEVERITY_SCOPE = "gate"  # the gate.yaml prefix of these checks: `gate.<check>`

GATE_CHECK = "gate_passed"
GATE_PASSED = CheckDef(
    GATE_CHECK, GATE_KEY,
    "No ERROR-severity check of the partition failed. One result per partition; a failure fails "
    "the run after the marts published the partitions that passed (they read the decision "
    "themselves, so this check needs to block nothing).")
NO_EXPIRED_SUPPRESSIONS = CheckDef(
    "no_expired_suppressions", GATE_KEY, "Every entry of the suppressions file is still in force.")

# The gated assets that carry checks: each must have results of the run that last wrote it.
CHECKED_ASSETS = (
    [raw_key(t) for t in TABLE_NAMES]
    + [LANDING_FILES_KEY]
    + [staging_key(t) for t in TABLE_NAMES]
    + [RECON_KEY]
)
GATED_ASSETS = CHECKED_ASSETS + [quarantine_key(t) for t in TABLE_NAMES]
_CHECKED = {k.to_user_string() for k in CHECKED_ASSETS}
_GATED = {k.to_user_string() for k in GATED_ASSETS}

GATE_SCHEMA = pa.schema(
    [
        ("ingest_date", pa.date32()),
        ("gate_passed", pa.bool_()),
        ("checks_evaluated", pa.int64()),
        ("checks_passed", pa.int64()),
        ("error_failures", pa.string()),  # asset:check of every failed ERROR check
        ("warn_failures", pa.string()),
        ("rows_landed", pa.int64()),
        ("rows_staged", pa.int64()),
        # mean of the share of landed rows that reached staging and the share of checks passed
        ("health_score", pa.float64()),
        # absolute amounts of the revenue rows held back in quarantine (dq_assets.rules.profiling)
        ("revenue_at_risk", pa.decimal128(38, 6)),
        ("run_id", pa.string()),
        # the write marks of the gated assets this decision judged (see inputs_version)
        ("inputs_version", pa.string()),
        ("decided_at", pa.timestamp("us", tz="UTC")),
    ]
)


def by_partition(records: list[dict]) -> dict[str, list[dict]]:
    """Records (write marks, profiles) grouped by their partition_key, once for a whole range."""
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(r["partition_key"], []).append(r)
    return out


def inputs_version(marks: list[dict]) -> str:
    """A fingerprint of the latest write mark of every gated asset of a partition (`marks`,
    that partition's): it changes whenever a step starts to rewrite any of them."""
    judged = sorted((w["asset_key"], w["run_id"], w["marked_at"].isoformat()) for w in marks
                    if w["asset_key"] in _GATED)
    return hashlib.sha256(json.dumps(judged).encode()).hexdigest()[:20]


def _unchecked_writes(results_here: list[dict], writes_here: list[dict]) -> list[str]:
    """Gated assets whose latest write mark is of another run than their latest check results:
    rewritten (or being rewritten) since they were checked."""
    checked_by = {}
    for r in sorted(results_here, key=lambda r: r["evaluated_at"]):
        checked_by[r["asset_key"]] = r["run_id"]
    return sorted(f"{w['asset_key']}:rewritten_after_its_checks" for w in writes_here
                  if w["asset_key"] in checked_by and w["run_id"] != checked_by[w["asset_key"]])


def gate_rows(
    results: pa.Table, partition_keys: list[str], run_id: str, profiles: list[dict] = (),
    writes: list[dict] = (),
) -> pa.Table:
    """One gate decision per partition from the latest check results, table profiles and write
    marks."""
    rows = []
    now = datetime.now(timezone.utc)
    # the marts' own checks come after the gate
    results_of = by_partition([r for r in results.to_pylist() if r["asset_key"] in _CHECKED])
    marks_of, profiles_of = by_partition(list(writes)), by_partition(list(profiles))
    for key in partition_keys:
        results_here = results_of.get(key, [])
        failed = [r for r in results_here if not r["passed"]]
        errors = [f"{r['asset_key']}:{r['check_name']}" for r in failed if r["severity"] == ERROR]
        warns = [f"{r['asset_key']}:{r['check_name']}" for r in failed if r["severity"] != ERROR]
        # a gated asset never checked has not passed anything
        checked = {r["asset_key"] for r in results_here}
        errors += [f"{a}:no_check_results" for a in sorted(_CHECKED - checked)]
        errors += _unchecked_writes(results_here, marks_of.get(key, []))
        mine = profiles_of.get(key, [])
        landed = sum(p["raw_rows"] for p in mine)
        staged = sum(p["staging_rows"] for p in mine)
        row_share = staged / landed if landed else 1.0
        check_share = (len(results_here) - len(failed)) / len(results_here) if results_here else 0.0
        at_risk = [_at_risk(p) for p in mine if p["revenue_raw"] is not None]
        rows.append(
            {
                "ingest_date": date.fromisoformat(key),
                "rows_landed": landed,
                "rows_staged": staged,
                "health_score": round((row_share + check_share) / 2, 4),
                "revenue_at_risk": sum(at_risk) if at_risk else None,
                "gate_passed": not errors,
                "checks_evaluated": len(results_here),
                "checks_passed": len(results_here) - len(failed),
                "error_failures": ", ".join(errors) or None,
                "warn_failures": ", ".join(warns) or None,
                "run_id": run_id,
                "inputs_version": inputs_version(marks_of.get(key, [])),
                "decided_at": now,
            }
        )
    return pa.Table.from_pylist(rows, schema=GATE_SCHEMA)


def _at_risk(profile: dict):
    # profiles written before revenue_at_risk was recorded: what they had
    risk = profile.get("revenue_at_risk")
    return risk if risk is not None else profile["revenue_raw"] - profile["revenue_clean"]


def decision_metadata(d: dict) -> dict:
    """A partition's decision as numbers the UI plots across partitions, and the reasons."""
    return {
        "gate_passed": d["gate_passed"],
        "health_score": d["health_score"],
        "revenue_at_risk": float(d["revenue_at_risk"] or 0),
        "checks_evaluated": d["checks_evaluated"],
        "checks_failed": d["checks_evaluated"] - d["checks_passed"],
        "error_failures": d["error_failures"] or "none",
        "warn_failures": d["warn_failures"] or "none",
    }


def expired_suppression_outcomes(cfg: GateConfig, partition_keys: list[str]) -> list[Outcome]:
    """no_expired_suppressions, the same for every partition of the run."""
    expired = [x for x in load_suppressions() if x.expired(today_utc())]
    check = NO_EXPIRED_SUPPRESSIONS.name
    return [
        Outcome(check, GATE_KEY, key, passed=not expired,
                severity=cfg.severity_of(SEVERITY_SCOPE, check),
                failing_rows=len(expired), observed=", ".join(x.label for x in expired) or "none",
                threshold="none expired", sample_keys=[x.ticket for x in expired][:SAMPLE_KEYS],
                detail="remove or renew these entries of the suppressions file" if expired else "")
        for key in partition_keys
    ]


def gate_passed_outcomes(partition_gate: pd.DataFrame, partition_keys: list[str]) -> list[Outcome]:
    """gate_passed of each partition, from its decision (a partition without one fails)."""
    rows = {str(d): (ok, errors, checks) for d, ok, errors, checks in zip(
        partition_gate["ingest_date"], partition_gate["gate_passed"],
        partition_gate["error_failures"], partition_gate["checks_evaluated"])}
    outcomes = []
    for key in partition_keys:
        ok, errors, checks = rows.get(key, (False, f"no gate decision for {key}", 0))
        errors = None if pd.isna(errors) else errors
        outcomes.append(Outcome(
            GATE_CHECK, GATE_KEY, key, passed=bool(ok), severity=ERROR,
            failing_rows=0 if ok else len(str(errors).split(", ")),
            observed="passed" if ok else f"refused: {errors}", threshold="no ERROR check failed",
            detail="" if ok else "the marts keep their previous contents for this partition",
            sql=f"SELECT * FROM quality.partition_gate WHERE ingest_date = DATE '{key}'",
        ))
    return outcomes
