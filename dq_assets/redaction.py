"""Keeping secrets out of what is shown: error messages, logs, alerts. No dependencies, so every
layer (storage backends, alert sinks, the landing zone) uses the same rules."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence

_URL_USERINFO = re.compile(r"(?P<pre>\b[a-z][a-z0-9+.\-]*://[^:/?#@\s]*:)[^@\s/]*@", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(?P<pre>\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", re.IGNORECASE)
_JSON_PASSWORD = re.compile(r'(?P<pre>["\']password["\']\s*:\s*)(["\'])(?:(?!\2)[^\\]|\\.)*\2', re.IGNORECASE)


def redact(text: object, secrets: Sequence[str | None] = (), shortest: int = 1) -> str:
    """`text` with every known secret (of at least `shortest` characters: a chat sink does not
    mask every "ab" of a message) and every password-looking part replaced by `***`: the
    password of a URL (`scheme://user:***@host`), `password=***` pairs and JSON fields."""
    out = str(text)
    for secret in sorted({s for s in secrets if s and len(s) >= shortest}, key=len, reverse=True):
        out = out.replace(secret, "***")
    out = _URL_USERINFO.sub(lambda m: f"{m.group('pre')}***@", out)
    out = _KV_PASSWORD.sub(lambda m: f"{m.group('pre')}***", out)
    out = _JSON_PASSWORD.sub(lambda m: f'{m.group("pre")}"***"', out)
    return out


def redact_url(url: str) -> str:
    """A secret URL as it may be shown: scheme and host only (`https://hooks.slack.com/***`);
    its user, password, port, path, query and fragment can all carry the secret."""
    try:
        parts = urllib.parse.urlsplit(str(url))
        host = parts.hostname
    except ValueError:
        host = None
    return f"{parts.scheme}://{host}/***" if host else "***"


def first_line(e: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (cut to `limit` characters), "" if it has none."""
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else "")[:limit]
