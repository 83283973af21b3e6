"""The alert: what a sensor reports (`Alert`), what a sink promises (`Sink`), the error a
failed delivery raises, the names of the alert settings and the links into the Dagster UI."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

SINKS_ENV = "DQ_ALERT_SINKS"
FILE_ENV = "DQ_ALERT_FILE"
WEBHOOK_URL_ENV = "DQ_ALERT_WEBHOOK_URL"
WEBHOOK_TIMEOUT_ENV = "DQ_ALERT_WEBHOOK_TIMEOUT"
SLACK_TOKEN_ENV = "SLACK_BOT_TOKEN"
SLACK_CHANNEL_ENV = "DQ_ALERT_SLACK_CHANNEL"
SLACK_API_URL_ENV = "DQ_ALERT_SLACK_API_URL"
SNS_TOPIC_ENV = "DQ_ALERT_SNS_TOPIC_ARN"
UI_URL_ENV = "DQ_UI_URL"

DEFAULT_SINKS = "jsonl"
DEFAULT_UI_URL = "http://localhost:3000"
KINDS = ("check_failed", "run_failed", "freshness")


@dataclass(frozen=True)
class Alert:
    kind: str                  # "check_failed" | "run_failed" | "freshness"
    run_id: str                # freshness: the sensor tick ("freshness_alerts@<UTC time>")
    run_url: str               # link to the run in the Dagster UI (freshness: to the asset's checks)
    asset_key: str | None      # "staging/payments"
    check_name: str | None     # "no_unknown_reference"
    partition: str | None      # "2025-01-12"
    severity: str | None       # "ERROR" | "WARN"
    failing_rows: int | None
    observed: str | None       # freshness: the new state, "WARN", "FAIL" or "recovered"
    sample_keys: tuple[str, ...] = ()  # freshness: every asset that changed together
    description: str | None = None   # one line: the check's description or the run's error
    event_id: int | None = None      # event-log storage id (exactly-once bookkeeping)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Alert.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        # Callers often hold lists; keep the dataclass hashable and JSON-friendly.
        object.__setattr__(self, "sample_keys", tuple(str(k) for k in (self.sample_keys or ())))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sample_keys"] = list(self.sample_keys)
        return d


class AlertDeliveryError(Exception):
    """One clear line about a failed delivery; never contains a secret."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


@runtime_checkable
class Sink(Protocol):
    name: str

    def send(self, run_id: str, alerts: list[Alert]) -> None:
        """Deliver one run group; raise AlertDeliveryError on failure."""
        ...


def ui_base_url(environ: Mapping[str, str] = os.environ) -> str:
    """`DQ_UI_URL` (the Dagster UI), default http://localhost:3000, without a trailing slash."""
    return (environ.get(UI_URL_ENV) or DEFAULT_UI_URL).strip().rstrip("/")


def run_url(run_id: str, environ: Mapping[str, str] = os.environ) -> str:
    return f"{ui_base_url(environ)}/runs/{run_id}"


def group_by_run(alerts: list[Alert]) -> list[tuple[str, list[Alert]]]:
    """Groups in the order each run first appears; alerts keep their order within a group."""
    groups: dict[str, list[Alert]] = {}
    for a in alerts:
        groups.setdefault(a.run_id, []).append(a)
    return list(groups.items())


__all__ = ["Alert", "AlertDeliveryError", "KINDS", "Sink", "group_by_run", "run_url", "ui_base_url"]
