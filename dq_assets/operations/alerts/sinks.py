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

import dataclasses
import json
import logging
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from dq_assets.redaction import first_line, redact, redact_url
from dq_assets.settings import repo_root

log = logging.getLogger(__name__)

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

MAX_SAMPLE_KEYS = 10          # shown per alert in chat messages
MAX_ALERTS_IN_BLOCKS = 20     # Slack allows 50 blocks per message
_SECTION_LIMIT = 2900         # Slack: section text <= 3000 characters
_TEXT_LIMIT = 3500            # fallback `text`: keep notifications readable
_SNS_SUBJECT_LIMIT = 99       # SNS: "less than 100 characters", no line breaks
_SNS_MESSAGE_LIMIT = 250_000  # SNS: 256 KiB per message


# --------------------------------------------------------------------------------------------
# The alert


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


# --------------------------------------------------------------------------------------------
# Delivery


def group_by_run(alerts: list[Alert]) -> list[tuple[str, list[Alert]]]:
    """Groups in the order each run first appears; alerts keep their order within a group."""
    groups: dict[str, list[Alert]] = {}
    for a in alerts:
        groups.setdefault(a.run_id, []).append(a)
    return list(groups.items())


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
# Formatting shared by the sinks


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _group_document(run_id: str, alerts: list[Alert]) -> dict[str, Any]:
    """The machine-readable group: what SNS publishes and what the webhook adds as `alerts`."""
    return {
        "run_id": run_id,
        "run_url": alerts[0].run_url if alerts else "",
        "sent_at": _now(),
        "alerts": [a.to_dict() for a in alerts],
    }


def _esc(text: Any) -> str:
    """Escape for Slack mrkdwn (&, <, > are control characters there)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _title(run_id: str, alerts: list[Alert]) -> str:
    if alerts and all(a.kind == "freshness" for a in alerts):
        level = "OK" if all(a.observed == "recovered" for a in alerts) else "WARN"
        news = "; ".join(f"{a.check_name} {a.observed} on {len(a.sample_keys)} asset"
                         f"{'s' if len(a.sample_keys) != 1 else ''}" for a in alerts)
        return f"[DQ {level}] freshness: {news}"
    checks = [a for a in alerts if a.kind == "check_failed"]
    runs = [a for a in alerts if a.kind == "run_failed"]
    parts = []
    if checks:
        parts.append(f"{len(checks)} failed check{'s' if len(checks) != 1 else ''}")
    if runs:
        parts.append("run failed")
    severity = "ERROR" if runs or any((a.severity or "").upper() == "ERROR" for a in checks) else "WARN"
    assets = sorted({a.asset_key for a in alerts if a.asset_key})
    where = f" ({assets[0]}{f' +{len(assets) - 1}' if len(assets) > 1 else ''})" if assets else ""
    return f"[DQ {severity}] {' and '.join(parts) or 'alert'} in run {run_id[:8]}{where}"


def _alert_lines(a: Alert) -> list[str]:
    """mrkdwn lines for one alert."""
    if a.kind == "run_failed":
        head = ":x: *Run failed*"
        if a.asset_key:
            head += f" `{_esc(a.asset_key)}`"
    elif a.kind == "freshness":
        icon = ":white_check_mark:" if a.observed == "recovered" else ":hourglass:"
        head = f"{icon} *freshness {_esc(a.observed)}* › *{_esc(a.check_name or '?')}*"
    else:
        sev = (a.severity or "ERROR").upper()
        icon = ":red_circle:" if sev == "ERROR" else ":warning:"
        head = f"{icon} *{_esc(sev)}* `{_esc(a.asset_key or '?')}` › *{_esc(a.check_name or '?')}*"
    if a.partition:
        head += f" · partition `{_esc(a.partition)}`"
    lines = [head]
    facts = []
    if a.failing_rows is not None:
        facts.append(f"failing rows: *{a.failing_rows:,}*")
    if a.observed and a.kind != "freshness":  # a freshness state is in the head already
        facts.append(f"observed: {_esc(a.observed)}")
    if facts:
        lines.append(" · ".join(facts))
    if a.description:
        lines.append(f"_{_esc(_cut(' '.join(a.description.split()), 500))}_")
    if a.sample_keys:
        shown = ", ".join(f"`{_esc(k)}`" for k in a.sample_keys[:MAX_SAMPLE_KEYS])
        more = len(a.sample_keys) - MAX_SAMPLE_KEYS
        label = "assets" if a.kind == "freshness" else "sample keys"
        lines.append(f"{label}: {shown}{f' (+{more} more)' if more > 0 else ''}")
    return lines


def slack_message(run_id: str, alerts: list[Alert]) -> dict[str, Any]:
    """`{"text": ..., "blocks": [...]}`, valid for chat.postMessage and incoming webhooks."""
    title = _title(run_id, alerts)
    url = alerts[0].run_url if alerts else ""
    what = "" if alerts and all(a.kind == "freshness" for a in alerts) else f"run {_esc(run_id[:8])} "
    link = f"<{url}|Open {what}in Dagster>" if url else f"run {_esc(run_id)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, 150), "emoji": True}},
    ]
    for a in alerts[:MAX_ALERTS_IN_BLOCKS]:
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": _cut("\n".join(_alert_lines(a)), _SECTION_LIMIT)}})
    if len(alerts) > MAX_ALERTS_IN_BLOCKS:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"…and {len(alerts) - MAX_ALERTS_IN_BLOCKS} more alert(s) in this run"}]})
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f":link: {link}"}})

    text_lines = [_esc(title)]
    text_lines += ["• " + " · ".join(_alert_lines(a)) for a in alerts]
    text_lines.append(link)
    text = "\n".join(text_lines)
    if len(text) > _TEXT_LIMIT:  # keep the run link at the end
        text = _cut("\n".join(text_lines[:-1]), _TEXT_LIMIT - len(link) - 1) + "\n" + link
    return {"text": text, "blocks": blocks}


# --------------------------------------------------------------------------------------------
# Sinks




class JsonlSink:
    """Appends one JSON object per alert (all fields plus `sent_at`). A group is one write,
    flushed and fsynced, under an exclusive lock, so a crash cannot leave half a group."""

    name = "jsonl"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def send(self, run_id: str, alerts: list[Alert]) -> None:
        if not alerts:
            return
        sent_at = _now()
        data = "".join(json.dumps({**a.to_dict(), "sent_at": sent_at}, ensure_ascii=False,
                                  default=str) + "\n" for a in alerts).encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                _lock(fd)
                # A torn last line from an earlier crash must not swallow our first line.
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise AlertDeliveryError(
                f"jsonl ({self.path}): {e.strerror or type(e).__name__}") from None


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: O_APPEND alone
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a redirect is a failure (urllib would turn the POST into a GET)


class WebhookSink:
    """A JSON POST of `slack_message(...)` plus `run_id`, `run_url` and `alerts`."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 10.0):
        self._url = url  # secret: never in a message
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __repr__(self) -> str:
        return f"WebhookSink(url={redact_url(self._url)}, timeout={self.timeout})"

    def send(self, run_id: str, alerts: list[Alert]) -> None:
        doc = _group_document(run_id, alerts)
        body = json.dumps({**slack_message(run_id, alerts), "run_id": run_id,
                           "run_url": doc["run_url"], "alerts": doc["alerts"]},
                          default=str).encode("utf-8")
        req = urllib.request.Request(self._url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "User-Agent": "dq_assets-alerts/1"})
        where = f"webhook ({WEBHOOK_URL_ENV})"
        problem = None
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                status = resp.status
                resp.read(65536)
            if not 200 <= status < 300:
                problem = f"HTTP {status}"
        except urllib.error.HTTPError as e:
            problem = f"HTTP {e.code}"
            try:
                detail = e.read(200).decode("utf-8", "replace").strip()
            except Exception:
                detail = ""
            if detail:
                problem += f": {_cut(' '.join(detail.split()), 120)}"
        except (TimeoutError, socket.timeout):
            problem = f"timed out after {self.timeout:g} s"
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                problem = f"timed out after {self.timeout:g} s"
            elif isinstance(reason, ConnectionRefusedError):
                problem = "connection refused"
            else:
                problem = f"cannot connect: {reason.strerror if isinstance(reason, OSError) and reason.strerror else reason}"
        except OSError as e:
            problem = f"{type(e).__name__}: {e.strerror or ''}".strip(": ")
        if problem:
            raise AlertDeliveryError(f"{where}: {redact(problem, self._secrets(), shortest=4)}") from None

    def _secrets(self) -> list[str]:
        parts = urllib.parse.urlsplit(self._url)
        return [self._url, parts.path, parts.query, parts.password or ""]


class SlackSink:
    """`chat.postMessage` through dagster-slack's SlackResource (a slack_sdk WebClient)."""

    name = "slack"

    def __init__(self, token: str, channel: str, api_url: str | None = None, timeout: int = 10):
        self._token = token  # secret
        self.channel = channel
        self.api_url = api_url
        self.timeout = timeout
        self._client = None

    def __repr__(self) -> str:
        return f"SlackSink(channel={self.channel!r}, api_url={self.api_url!r})"

    def _get_client(self):
        if self._client is None:
            from dagster_slack import SlackResource

            client = SlackResource(token=self._token).get_client()
            if self.api_url:
                client.base_url = self.api_url if self.api_url.endswith("/") else self.api_url + "/"
            client.timeout = self.timeout
            self._client = client
        return self._client

    def send(self, run_id: str, alerts: list[Alert]) -> None:
        from slack_sdk.errors import SlackApiError

        msg = slack_message(run_id, alerts)
        where = f"slack (channel {self.channel})"
        try:
            resp = self._get_client().chat_postMessage(
                channel=self.channel, text=msg["text"], blocks=msg["blocks"], unfurl_links=False)
            ok = bool(resp.get("ok"))
            error = resp.get("error")
        except SlackApiError as e:
            data = e.response.data if isinstance(getattr(e.response, "data", None), dict) else {}
            ok, error = False, data.get("error") or f"HTTP {getattr(e.response, 'status_code', '?')}"
        except urllib.error.URLError as e:
            reason = e.reason
            text = "connection refused" if isinstance(reason, ConnectionRefusedError) else str(
                getattr(reason, "strerror", None) or reason)
            raise AlertDeliveryError(f"{where}: cannot reach the Slack API: "
                                     f"{redact(text, [self._token], shortest=4)}") from None
        except (TimeoutError, socket.timeout):
            raise AlertDeliveryError(f"{where}: timed out after {self.timeout} s") from None
        except Exception as e:
            raise AlertDeliveryError(
                f"{where}: {type(e).__name__}: {redact(first_line(e, 200), [self._token], shortest=4)}") from None
        if not ok:
            hint = {
                "not_authed": f" (set {SLACK_TOKEN_ENV})",
                "invalid_auth": f" (check {SLACK_TOKEN_ENV})",
                "token_revoked": f" (check {SLACK_TOKEN_ENV})",
                "account_inactive": f" (check {SLACK_TOKEN_ENV})",
                "channel_not_found": f" (check {SLACK_CHANNEL_ENV}; is the bot invited?)",
                "not_in_channel": " (invite the bot to the channel)",
            }.get(str(error), "")
            raise AlertDeliveryError(f"{where}: {redact(str(error), [self._token], shortest=4)}{hint}")


_ARN = re.compile(r"^arn:aws[a-z-]*:sns:([a-z0-9-]+):\d{12}:[A-Za-z0-9_.-]{1,256}$")


class SnsSink:
    """boto3 `sns.publish(TopicArn, Subject, Message=<the JSON group>)`."""

    name = "sns"

    def __init__(self, topic_arn: str, region: str | None = None, endpoint_url: str | None = None,
                 credentials: dict[str, str] | None = None):
        self.topic_arn = topic_arn
        self.region = region
        self.endpoint_url = endpoint_url
        self._credentials = credentials or {}
        self._client = None

    def __repr__(self) -> str:
        return f"SnsSink(topic_arn={self.topic_arn!r}, region={self.region!r})"

    def _get_client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.session.Session(**self._credentials).client(
                "sns", region_name=self.region, endpoint_url=self.endpoint_url,
                config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2}))
        return self._client

    def send(self, run_id: str, alerts: list[Alert]) -> None:
        import botocore.exceptions as bx

        doc = _group_document(run_id, alerts)
        message = json.dumps(doc, default=str)
        if len(message.encode("utf-8")) > _SNS_MESSAGE_LIMIT:  # keep it publishable
            doc["alerts"] = [{**a, "sample_keys": a["sample_keys"][:MAX_SAMPLE_KEYS]} for a in doc["alerts"]]
            while len(doc["alerts"]) > 1 and len(json.dumps(doc, default=str).encode("utf-8")) > _SNS_MESSAGE_LIMIT:
                doc["alerts"] = doc["alerts"][: len(doc["alerts"]) // 2]
            doc["omitted_alerts"] = len(alerts) - len(doc["alerts"])
            message = json.dumps(doc, default=str)
        subject = _sns_subject(_title(run_id, alerts))
        where = f"sns ({self.topic_arn})"
        try:
            self._get_client().publish(TopicArn=self.topic_arn, Subject=subject, Message=message)
        except bx.ClientError as e:
            err = e.response.get("Error", {})
            detail = (str(err.get("Message") or "").strip().splitlines() or [""])[0][:200]
            raise AlertDeliveryError(f"{where}: {err.get('Code', 'ClientError')}: {detail}".rstrip(": ")) from None
        except bx.EndpointConnectionError as e:
            raise AlertDeliveryError(
                f"{where}: cannot reach the SNS endpoint ({e.kwargs.get('endpoint_url', '')})") from None
        except bx.NoCredentialsError:
            raise AlertDeliveryError(f"{where}: no AWS credentials found") from None
        except bx.NoRegionError:
            raise AlertDeliveryError(f"{where}: no AWS region (set AWS_REGION)") from None
        except Exception as e:
            raise AlertDeliveryError(f"{where}: {type(e).__name__}: {first_line(e, 200)}") from None


def _sns_subject(title: str) -> str:
    ascii_only = title.encode("ascii", "replace").decode("ascii")
    clean = "".join(c if c.isprintable() else " " for c in ascii_only).strip()
    return _cut(clean, _SNS_SUBJECT_LIMIT).encode("ascii", "replace").decode("ascii") or "DQ alert"


# --------------------------------------------------------------------------------------------
# Factories: settings read when sinks_from_env is called


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

__all__ = [
    "Alert", "AlertDeliveryError", "Sink", "JsonlSink", "WebhookSink", "SlackSink", "SnsSink",
    "deliver", "group_by_run", "redact_url", "sinks_from_env", "slack_message", "ui_base_url",
    "run_url",
]
