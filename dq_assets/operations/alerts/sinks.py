"""The four sinks: `JsonlSink` (a local file), `WebhookSink` (a Slack-compatible JSON POST),
`SlackSink` (chat.postMessage through dagster-slack) and `SnsSink` (boto3 publish).

Each sends one run group and raises `AlertDeliveryError`, one line without a secret, when it
cannot; the optional libraries (dagster-slack, boto3) are imported only when a sink is used.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from dq_assets.operations.alerts.messages import (
    MAX_SAMPLE_KEYS,
    alert_title,
    cut,
    group_document,
    now_text,
    slack_message,
    sns_subject,
)
from dq_assets.operations.alerts.model import (
    SLACK_CHANNEL_ENV,
    SLACK_TOKEN_ENV,
    WEBHOOK_URL_ENV,
    Alert,
    AlertDeliveryError,
)
from dq_assets.redaction import first_line, redact, redact_url

_SNS_MESSAGE_LIMIT = 250_000  # SNS: 256 KiB per message


class JsonlSink:
    """Appends one JSON object per alert (all fields plus `sent_at`). A group is one write,
    flushed and fsynced, under an exclusive lock, so a crash cannot leave half a group."""

    name = "jsonl"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def send(self, run_id: str, alerts: list[Alert]) -> None:
        if not alerts:
            return
        sent_at = now_text()
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
        doc = group_document(run_id, alerts)
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
                problem += f": {cut(' '.join(detail.split()), 120)}"
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

        doc = group_document(run_id, alerts)
        message = json.dumps(doc, default=str)
        if len(message.encode("utf-8")) > _SNS_MESSAGE_LIMIT:  # keep it publishable
            doc["alerts"] = [{**a, "sample_keys": a["sample_keys"][:MAX_SAMPLE_KEYS]} for a in doc["alerts"]]
            while len(doc["alerts"]) > 1 and len(json.dumps(doc, default=str).encode("utf-8")) > _SNS_MESSAGE_LIMIT:
                doc["alerts"] = doc["alerts"][: len(doc["alerts"]) // 2]
            doc["omitted_alerts"] = len(alerts) - len(doc["alerts"])
            message = json.dumps(doc, default=str)
        subject = sns_subject(alert_title(run_id, alerts))
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


__all__ = ["JsonlSink", "SlackSink", "SnsSink", "WebhookSink"]
