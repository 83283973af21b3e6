"""Alert delivery: failed asset checks, failed runs and freshness changes, sent to configured sinks.

The sensors build `Alert`s and call `deliver(alerts, sinks_from_env())`. `deliver` groups the
alerts per run, sends each group to every sink and returns the failures instead of raising,
so a sensor can keep those groups and retry them on its next tick.

Sinks (`DQ_ALERT_SINKS`, a comma list, default `jsonl`; `none` disables alerting):

- `jsonl`   one JSON object per alert appended to `DQ_ALERT_FILE`
            (default `data/alerts.jsonl` in the repository).
- `webhook` a Slack-compatible JSON POST (`text` + `blocks` + `alerts`) to
            `DQ_ALERT_WEBHOOK_URL` (a secret; timeout `DQ_ALERT_WEBHOOK_TIMEOUT`, default 10 s).
- `slack`   `chat.postMessage` through dagster-slack's `SlackResource`: `SLACK_BOT_TOKEN`
            (a secret), `DQ_ALERT_SLACK_CHANNEL`, optional `DQ_ALERT_SLACK_API_URL`.
- `sns`     boto3 `publish` to `DQ_ALERT_SNS_TOPIC_ARN`; region from the ARN (else
            `AWS_REGION`/`AWS_DEFAULT_REGION`), endpoint `AWS_ENDPOINT_URL_SNS`/`AWS_ENDPOINT_URL`,
            credentials from the standard AWS chain.

Everything is read from the environment when called, never at import time; the optional
libraries (dagster-slack, boto3) are imported only by the sinks that need them. Secrets (the
webhook URL, the Slack token, AWS keys) never appear in an error message or a log line.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from collections.abc import Mapping

from dq_assets.operations.alerts.model import (
    DEFAULT_SINKS,
    FILE_ENV,
    SINKS_ENV,
    SLACK_API_URL_ENV,
    SLACK_CHANNEL_ENV,
    SLACK_TOKEN_ENV,
    SNS_TOPIC_ENV,
    WEBHOOK_TIMEOUT_ENV,
    WEBHOOK_URL_ENV,
    Alert,
    AlertDeliveryError,
    Sink,
    group_by_run,
)
from dq_assets.operations.alerts.sinks import JsonlSink, SlackSink, SnsSink, WebhookSink
from dq_assets.redaction import first_line
from dq_assets.settings import repo_root

# One logger for the alerts, whichever module of them logs.
log = logging.getLogger("dq_assets.operations.alerts")


def deliver(alerts: list[Alert], sinks: list[Sink]) -> list[tuple[str, str, Exception]]:
    """Send each run group to every sink. Never raises: returns `(sink name, run_id, error)`
    for each failed delivery so the caller can keep those groups for a retry."""
    failures: list[tuple[str, str, Exception]] = []
    for run_id, group in group_by_run(alerts):
        for sink in sinks:
            name = getattr(sink, "name", type(sink).__name__)
            try:
                sink.send(run_id, group)
            except AlertDeliveryError as e:
                err: Exception = e
            except Exception as e:  # a foreign sink: keep one line, type first
                err = AlertDeliveryError(f"{name}: {type(e).__name__}: {first_line(e, 200)}")
            else:
                log.debug("alerts: run %s (%d alert(s)) delivered to %s", run_id, len(group), name)
                continue
            log.warning("alerts: run %s (%d alert(s)) not delivered to %s: %s",
                        run_id, len(group), name, err)
            failures.append((name, run_id, err))
    return failures


def sinks_from_env(environ: Mapping[str, str] = os.environ) -> list[Sink]:
    """The sinks named in `DQ_ALERT_SINKS` (default `jsonl`; `none` = no sinks).
    Raises ValueError for an unknown name or a sink missing its settings."""
    raw = environ.get(SINKS_ENV)
    if raw is None or not raw.strip():
        raw = DEFAULT_SINKS
    names: list[str] = []
    for part in raw.split(","):
        n = part.strip().lower()
        if n and n not in names:
            names.append(n)
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in _FACTORIES]
    if unknown:
        raise ValueError(f"{SINKS_ENV}: unknown sink(s) {', '.join(unknown)} "
                         f"(known: {', '.join(_FACTORIES)}, or none)")
    return [_FACTORIES[n](environ) for n in names]


# --------------------------------------------------------------------------------------------
# Factories: settings read when sinks_from_env is called


_ARN = re.compile(r"^arn:aws[a-z-]*:sns:([a-z0-9-]+):\d{12}:[A-Za-z0-9_.-]{1,256}$")


def _jsonl(environ: Mapping[str, str]) -> Sink:
    path = environ.get(FILE_ENV) or str(repo_root() / "data" / "alerts.jsonl")
    return JsonlSink(path)


def _webhook(environ: Mapping[str, str]) -> Sink:
    url = (environ.get(WEBHOOK_URL_ENV) or "").strip()
    if not url:
        raise ValueError(f"the webhook alert sink needs {WEBHOOK_URL_ENV}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{WEBHOOK_URL_ENV} must be an http(s) URL (value not shown: it is a secret)")
    timeout_raw = environ.get(WEBHOOK_TIMEOUT_ENV) or "10"
    try:
        timeout = float(timeout_raw)
        if timeout <= 0:
            raise ValueError
    except ValueError:
        raise ValueError(f"{WEBHOOK_TIMEOUT_ENV} must be a positive number of seconds, got {timeout_raw!r}") from None
    return WebhookSink(url, timeout)


def _slack(environ: Mapping[str, str]) -> Sink:
    token = (environ.get(SLACK_TOKEN_ENV) or "").strip()
    channel = (environ.get(SLACK_CHANNEL_ENV) or "").strip()
    missing = [n for n, v in ((SLACK_TOKEN_ENV, token), (SLACK_CHANNEL_ENV, channel)) if not v]
    if missing:
        raise ValueError(f"the slack alert sink needs {' and '.join(missing)}")
    api_url = (environ.get(SLACK_API_URL_ENV) or "").strip() or None
    if api_url and urllib.parse.urlsplit(api_url).scheme not in ("http", "https"):
        raise ValueError(f"{SLACK_API_URL_ENV} must be an http(s) URL, got {api_url!r}")
    try:
        import dagster_slack  # noqa: F401
    except ImportError:
        raise ValueError("the slack alert sink needs dagster-slack (pip install dagster-slack)") from None
    return SlackSink(token, channel, api_url)


def _sns(environ: Mapping[str, str]) -> Sink:
    arn = (environ.get(SNS_TOPIC_ENV) or "").strip()
    if not arn:
        raise ValueError(f"the sns alert sink needs {SNS_TOPIC_ENV}")
    m = _ARN.match(arn)
    if not m:
        raise ValueError(f"{SNS_TOPIC_ENV} is not an SNS topic ARN: {arn!r}")
    try:
        import boto3  # noqa: F401
    except ImportError:
        raise ValueError("the sns alert sink needs boto3 (pip install boto3)") from None
    region = m.group(1) or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    endpoint = environ.get("AWS_ENDPOINT_URL_SNS") or environ.get("AWS_ENDPOINT_URL") or None
    creds = {}
    if environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY"):
        creds = {"aws_access_key_id": environ["AWS_ACCESS_KEY_ID"],
                 "aws_secret_access_key": environ["AWS_SECRET_ACCESS_KEY"]}
        if environ.get("AWS_SESSION_TOKEN"):
            creds["aws_session_token"] = environ["AWS_SESSION_TOKEN"]
    elif environ.get("AWS_PROFILE"):
        creds = {"profile_name": environ["AWS_PROFILE"]}
    return SnsSink(arn, region=region, endpoint_url=endpoint, credentials=creds)


_FACTORIES = {"jsonl": _jsonl, "webhook": _webhook, "slack": _slack, "sns": _sns}

__all__ = ["deliver", "sinks_from_env"]
