"""The gate's configuration: severities and thresholds, from `gate.yaml` next to this module
with the entries of `DQ_GATE_CONFIG` (or a given file) on top. No Dagster.

Severities are keyed `<scope>.<check>` (or `<check>` alone, for every scope): the scope is a
table name for the checks of `raw.<table>` and `staging.<table>`, otherwise the name each check
family declares as its `SEVERITY_SCOPE` (dq_assets.checks)."""

import os
from dataclasses import dataclass, field
from pathlib import Path

from dq_assets.settings import read_yaml

GATE_CONFIG_ENV = "DQ_GATE_CONFIG"
DEFAULT_GATE_CONFIG = Path(__file__).with_name("gate.yaml")
ERROR, WARN = "ERROR", "WARN"


@dataclass(frozen=True)
class GateConfig:
    severity: dict[str, str]
    quarantine_error_above: float
    quarantine_warn_above: float
    max_empty_hours: int = 4
    volume_ratio: float = 0.5
    volume_history: int = 7
    volume_tables: tuple[str, ...] = ()
    freshness: dict = field(default_factory=dict)
    monitors: dict = field(default_factory=dict)  # the `monitors` section (dq_assets.checks.monitors)

    def severity_of(self, table: str, check: str) -> str:
        value = self.severity.get(f"{table}.{check}") or self.severity.get(check) or ERROR
        if value not in (ERROR, WARN):
            raise ValueError(f"gate config: severity of {table}.{check} must be ERROR or WARN")
        return value


def load_gate_config(path: str | None = None) -> GateConfig:
    """The default gate.yaml, with `DQ_GATE_CONFIG` (or `path`) entries on top."""
    doc = read_yaml(DEFAULT_GATE_CONFIG)
    override_path = path or os.environ.get(GATE_CONFIG_ENV)
    if override_path:
        override = read_yaml(Path(override_path)) or {}
        for section in ("severity", "quarantine_rate", "partial_load", "volume", "freshness", "monitors"):
            doc[section] = {**doc.get(section, {}), **(override.get(section) or {})}
    rate, volume = doc["quarantine_rate"], doc["volume"]
    return GateConfig(
        severity={k: str(v).upper() for k, v in doc["severity"].items()},
        quarantine_error_above=float(rate["error_above"]),
        quarantine_warn_above=float(rate["warn_above"]),
        max_empty_hours=int(doc["partial_load"]["max_empty_hours"]),
        volume_ratio=float(volume["ratio"]),
        volume_history=int(volume["history"]),
        volume_tables=tuple(volume.get("tables") or ()),
        freshness=doc.get("freshness") or {},
        monitors=doc.get("monitors") or {},
    )
