"""How an alert group reads: the title, the Slack message (blocks plus a fallback `text`, also
what the webhook posts), the machine-readable group document and the SNS subject."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from dq_assets.operations.alerts.model import Alert

MAX_SAMPLE_KEYS = 10          # shown per alert in chat messages
MAX_ALERTS_IN_BLOCKS = 20     # Slack allows 50 blocks per message
_SECTION_LIMIT = 2900         # Slack: section text <= 3000 characters
_TEXT_LIMIT = 3500            # fallback `text`: keep notifications readable
_SNS_SUBJECT_LIMIT = 99       # SNS: "less than 100 characters", no line breaks


def now_text() -> str:
    """The UTC time to the millisecond, `2025-01-12T06:00:00.000Z`: every sink's `sent_at`."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def group_document(run_id: str, alerts: list[Alert]) -> dict[str, Any]:
    """The machine-readable group: what SNS publishes and what the webhook adds as `alerts`."""
    return {
        "run_id": run_id,
        "run_url": alerts[0].run_url if alerts else "",
        "sent_at": now_text(),
        "alerts": [a.to_dict() for a in alerts],
    }


def _esc(text: Any) -> str:
    """Escape for Slack mrkdwn (&, <, > are control characters there)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def alert_title(run_id: str, alerts: list[Alert]) -> str:
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
        lines.append(f"_{_esc(cut(' '.join(a.description.split()), 500))}_")
    if a.sample_keys:
        shown = ", ".join(f"`{_esc(k)}`" for k in a.sample_keys[:MAX_SAMPLE_KEYS])
        more = len(a.sample_keys) - MAX_SAMPLE_KEYS
        label = "assets" if a.kind == "freshness" else "sample keys"
        lines.append(f"{label}: {shown}{f' (+{more} more)' if more > 0 else ''}")
    return lines


def slack_message(run_id: str, alerts: list[Alert]) -> dict[str, Any]:
    """`{"text": ..., "blocks": [...]}`, valid for chat.postMessage and incoming webhooks."""
    title = alert_title(run_id, alerts)
    url = alerts[0].run_url if alerts else ""
    what = "" if alerts and all(a.kind == "freshness" for a in alerts) else f"run {_esc(run_id[:8])} "
    link = f"<{url}|Open {what}in Dagster>" if url else f"run {_esc(run_id)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": cut(title, 150), "emoji": True}},
    ]
    for a in alerts[:MAX_ALERTS_IN_BLOCKS]:
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": cut("\n".join(_alert_lines(a)), _SECTION_LIMIT)}})
    if len(alerts) > MAX_ALERTS_IN_BLOCKS:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"…and {len(alerts) - MAX_ALERTS_IN_BLOCKS} more alert(s) in this run"}]})
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f":link: {link}"}})

    text_lines = [_esc(title)]
    text_lines += ["• " + " · ".join(_alert_lines(a)) for a in alerts]
    text_lines.append(link)
    text = "\n".join(text_lines)
    if len(text) > _TEXT_LIMIT:  # keep the run link at the end
        text = cut("\n".join(text_lines[:-1]), _TEXT_LIMIT - len(link) - 1) + "\n" + link
    return {"text": text, "blocks": blocks}


def sns_subject(title: str) -> str:
    ascii_only = title.encode("ascii", "replace").decode("ascii")
    clean = "".join(c if c.isprintable() else " " for c in ascii_only).strip()
    return cut(clean, _SNS_SUBJECT_LIMIT).encode("ascii", "replace").decode("ascii") or "DQ alert"


__all__ = [
    "MAX_SAMPLE_KEYS", "alert_title", "cut", "group_document", "now_text", "slack_message", "sns_subject",
]
