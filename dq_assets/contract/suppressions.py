"""The exception workflow: known failures downgraded to WARN until their expiry date."""

import os
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

from dq_assets.settings import read_yaml

SUPPRESSIONS_ENV = "DQ_SUPPRESSIONS"
DEFAULT_SUPPRESSIONS = Path(__file__).with_name("suppressions.yaml")
REQUIRED = ("check", "ticket", "reason", "expires")


@dataclass(frozen=True)
class Suppression:
    check: str  # "<asset>:<check>" or "<check>"
    ticket: str
    reason: str
    expires: date  # first day it no longer applies
    partition: str | None = None
    keys: tuple[str, ...] = ()

    def matches(self, asset_key: str, check: str, partition_key: str) -> bool:
        target = self.check.split(":")
        if len(target) == 2 and (target[0], target[1]) != (asset_key, check):
            return False
        if len(target) == 1 and target[0] != check:
            return False
        return self.partition is None or self.partition == partition_key

    def covers(self, failing_rows: int, sample_keys: list[str]) -> bool:
        """A key-scoped entry covers a failure only when every failing key is listed (known
        exactly when the failure has no more rows than it has sample keys)."""
        if not self.keys:
            return True
        return failing_rows <= len(sample_keys) and set(sample_keys) <= set(self.keys)

    def expired(self, today: date) -> bool:
        return today >= self.expires

    @property
    def label(self) -> str:
        return f"{self.ticket} (until {self.expires.isoformat()}): {self.reason}"


def load_suppressions(path: str | None = None) -> list[Suppression]:
    source = Path(path or os.environ.get(SUPPRESSIONS_ENV) or DEFAULT_SUPPRESSIONS)
    doc = read_yaml(source) or {}
    entries = doc.get("suppressions") or []
    out = []
    for i, e in enumerate(entries):
        missing = [k for k in REQUIRED if not e.get(k)]
        if missing:
            raise ValueError(f"{source}: suppression #{i + 1} lacks {', '.join(missing)}")
        expires = e["expires"] if isinstance(e["expires"], date) else date.fromisoformat(str(e["expires"]))
        partition = e.get("partition")
        out.append(Suppression(
            check=str(e["check"]), ticket=str(e["ticket"]), reason=str(e["reason"]), expires=expires,
            partition=None if partition is None else str(partition),
            keys=tuple(str(k) for k in e.get("keys") or ()),
        ))
    return out


def today_utc() -> date:
    return datetime.now(timezone.utc).date()
