"""A fault-injecting HTTP proxy for S3 tests: it sits between boto3 and a real S3-compatible
endpoint (moto's server mode), answers chosen requests with the errors S3 gives under load
(503 SlowDown, 500 InternalError, 429 throttling) and forwards everything else unchanged.

`FaultProxy(upstream, policy)`: `policy(n, method, path)` is called for the n-th request
(1-based) and returns a `Fault` to answer with, or None to forward. Every request is recorded
(`hits`) with the fault it got, so a test can prove that boto3 retried what failed.
"""

from __future__ import annotations

import http.client
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Fault:
    status: int
    code: str
    message: str
    truncate: bool = False  # forward, but drop the connection halfway through the body

    def body(self, path: str) -> bytes:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{self.message}</Message>"
            f"<Resource>{path}</Resource><RequestId>FAULTPROXY</RequestId></Error>"
        ).encode()


SLOW_DOWN = Fault(503, "SlowDown", "Please reduce your request rate.")
INTERNAL_ERROR = Fault(500, "InternalError", "We encountered an internal error. Please try again.")
THROTTLED = Fault(429, "TooManyRequests", "Too many requests, please slow down.")
TRUNCATED = Fault(200, "Truncated", "connection dropped in the middle of the body", truncate=True)
FAULTS = (SLOW_DOWN, INTERNAL_ERROR, THROTTLED)


@dataclass(frozen=True)
class Hit:
    n: int
    method: str
    path: str
    fault: Fault | None
    status: int


Policy = Callable[[int, str, str], "Fault | None"]


def first(n: int, faults=FAULTS) -> Policy:
    """The first `n` requests fail (cycling through `faults`), the rest go through."""
    return lambda i, method, path: faults[(i - 1) % len(faults)] if i <= n else None


def every(k: int, faults=FAULTS) -> Policy:
    """Every k-th request fails (cycling through `faults`)."""
    return lambda i, method, path: faults[(i // k - 1) % len(faults)] if i % k == 0 else None


def always(fault: Fault = SLOW_DOWN, method: str | None = None) -> Policy:
    """Every request (of `method`, if given) fails."""
    return lambda i, m, path: fault if method is None or m == method else None


_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te",
               "trailer", "expect", "proxy-authenticate", "proxy-authorization"}


class FaultProxy:
    def __init__(self, upstream: str, policy: Policy | None = None):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port or 80)
        self.policy: Policy = policy or (lambda i, m, p: None)
        self.hits: list[Hit] = []
        self._count = itertools.count(1)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                body = self._body()  # always consumed, so the connection stays usable
                with proxy._lock:
                    n = next(proxy._count)
                fault = proxy.policy(n, self.command, self.path)
                if fault is not None and not fault.truncate:
                    payload = fault.body(self.path.split("?")[0])
                    self.send_response(fault.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    proxy._record(Hit(n, self.command, self.path, fault, fault.status))
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status, resp.reason)
                    for k, v in resp.getheaders():
                        if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                            self.send_header(k, v)
                    length = resp.getheader("Content-Length")
                    self.send_header("Content-Length", length if self.command == "HEAD" and length else str(len(data)))
                    self.end_headers()
                    if fault is not None and self.command != "HEAD":  # a truncated body
                        self.wfile.write(data[: len(data) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        proxy._record(Hit(n, self.command, self.path, fault, resp.status))
                        return
                    if self.command != "HEAD":
                        self.wfile.write(data)
                    proxy._record(Hit(n, self.command, self.path, None, resp.status))
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _record(self, hit: Hit) -> None:
        with self._lock:
            self.hits.append(hit)

    def faults(self) -> list[Hit]:
        return [h for h in self.hits if h.fault is not None]

    def retried(self, hit: Hit) -> bool:
        """A later request repeated the failed one (same method and path)."""
        return any(h.n > hit.n and (h.method, h.path) == (hit.method, hit.path) for h in self.hits)

    def reset(self, policy: Policy | None = None) -> None:
        with self._lock:
            self.hits.clear()
            self._count = itertools.count(1)
            self.policy = policy or (lambda i, m, p: None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
