"""PostgreSQL (RDS) connections: errors, settings, secrets and the `PostgresConnection` resource.

Connection settings are read from the environment when a connection is opened, never at
import time:
- `DQ_PG_SECRET_ID`: an AWS Secrets Manager secret in the standard RDS JSON shape (host, port,
  username, password, dbname), read through dagster-aws (region `DQ_PG_SECRET_REGION`, else
  `AWS_REGION`/`AWS_DEFAULT_REGION`; endpoint `AWS_ENDPOINT_URL` as boto3 reads it);
- else `DQ_PG_URL`, a libpq URL (`postgresql://user:password@host:5432/db?sslmode=require`);
- else libpq's own `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE` (and PGPASSFILE).
`DQ_PG_SSLMODE` (default `prefer`, or the URL's own sslmode), `DQ_PG_CONNECT_ATTEMPTS` (3),
`DQ_PG_CONNECT_BACKOFF_SECONDS` (0.5, doubled after each failed attempt) and
`DQ_PG_CONNECT_TIMEOUT` (10 s per attempt) tune the connection. A connection that cannot be
opened ends in one line such as `PostgreSQL at db.example:5432/warehouse: password
authentication failed for user "dq"`; passwords never appear in messages or logs (`redact`).

Two kinds of connection are opened from the same settings, with the same retries and redaction:
psycopg (`connect`: statements, the tools and tests) and ADBC (`session`: an `ArrowSession`,
see session.py, which carries the tables' rows as Arrow and the transactions that write them).
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import quote as url_quote

import adbc_driver_manager
import dagster as dg
import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field

from dq_assets.redaction import redact
from dq_assets.storage.postgres.session import AdbcError, ArrowSession, adbc_one_line, adbc_uri

__all__ = [
    "PostgresConnection",
    "PostgresConnectionError",
    "PostgresError",
    "PostgresSettings",
    "resolve_settings",
]

URL_ENV = "DQ_PG_URL"
SECRET_ID_ENV = "DQ_PG_SECRET_ID"
SECRET_REGION_ENV = "DQ_PG_SECRET_REGION"
SSLMODE_ENV = "DQ_PG_SSLMODE"
ATTEMPTS_ENV = "DQ_PG_CONNECT_ATTEMPTS"
BACKOFF_ENV = "DQ_PG_CONNECT_BACKOFF_SECONDS"
TIMEOUT_ENV = "DQ_PG_CONNECT_TIMEOUT"

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DEFAULT_SSLMODE = "prefer"
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_SECONDS = 0.5
DEFAULT_CONNECT_TIMEOUT = 10

_log = dg.get_dagster_logger("dq_assets.storage.postgres")


# --------------------------------------------------------------------------------------------
# Errors and redaction
# --------------------------------------------------------------------------------------------


class PostgresError(dg.Failure):
    """A PostgreSQL operation failed; the message names the server, never a credential."""

    def __init__(self, message: str):
        super().__init__(description=message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class PostgresConnectionError(PostgresError):
    """No connection could be opened (after the configured attempts)."""


def _one_line(message: str) -> str:
    """The telling part of a libpq error: `FATAL:  password authentication failed ...` out of
    `connection failed: connection to server at "h", port 5432 failed: FATAL: ...` (or out of
    ADBC's `IO: [libpq] Failed to connect: ...`)."""
    lines = [ln.strip() for ln in adbc_one_line(str(message)).splitlines() if ln.strip()]
    if not lines:
        return "unknown error"
    failed = [ln for ln in lines if "failed: " in ln]
    line = (failed[0] if failed else lines[0]).rsplit("failed: ", 1)[-1]
    line = re.sub(r"^(FATAL|ERROR):\s+", "", line)
    return line.rstrip(".") or lines[0]


def _first_cause(exc: BaseException) -> BaseException:
    """The database error that started it: a failed ROLLBACK after a killed connection is
    raised while handling the original error (`terminating connection ...`)."""
    seen = {id(exc)}
    while isinstance(exc.__context__, (psycopg.Error, AdbcError)) and id(exc.__context__) not in seen:
        exc = exc.__context__
        seen.add(id(exc))
    return exc


_PERMANENT = re.compile(
    r"authentication failed|no pg_hba\.conf entry|does not exist|does not support SSL|"
    r"SSL was required|certificate|invalid (connection option|URI|sslmode|integer)|"
    r"missing \"=\"|unterminated quoted string",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------------------------
# Connection settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class PostgresSettings:
    """Where to connect: libpq keywords (without the password, kept apart) and retry policy."""

    params: Mapping[str, str]
    password: str | None = None
    source: str = "PG* environment"
    connect_attempts: int = DEFAULT_ATTEMPTS
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS
    extra_secrets: tuple[str, ...] = field(default=())

    # What the target is called in messages: host:port/dbname (libpq's defaults filled in).
    @property
    def host(self) -> str:
        return str(self.params.get("host") or os.environ.get("PGHOST") or "localhost")

    @property
    def port(self) -> str:
        return str(self.params.get("port") or os.environ.get("PGPORT") or "5432")

    @property
    def user(self) -> str:
        return str(self.params.get("user") or os.environ.get("PGUSER") or "")

    @property
    def dbname(self) -> str:
        return str(self.params.get("dbname") or os.environ.get("PGDATABASE") or self.user or "postgres")

    def describe(self) -> str:
        return self.redact(f"{self.host}:{self.port}/{self.dbname}")

    def secrets(self) -> list[str]:
        pw = [self.password, os.environ.get("PGPASSWORD")]
        return [s for s in pw if s] + [url_quote(s, safe="") for s in pw if s] + list(self.extra_secrets)

    def redact(self, text: object) -> str:
        return redact(text, self.secrets())

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.params.items()}
        return self.redact(f"PostgresSettings({self.describe()}, source={self.source}, params={shown})")

    def connect(self) -> psycopg.Connection:
        """An autocommit connection in UTC with ISO dates, after up to `connect_attempts`
        tries with exponential backoff; else one `PostgresConnectionError` line."""
        kwargs = {k: v for k, v in self.params.items() if v not in (None, "")}
        if self.password is not None:
            kwargs["password"] = self.password

        def open_psycopg() -> psycopg.Connection:
            conn = psycopg.connect(autocommit=True, **kwargs)
            try:
                conn.execute("SET TIME ZONE 'UTC'")
                conn.execute("SET DateStyle = 'ISO, YMD'")
                conn.execute("SET extra_float_digits = 1")  # shortest exact float text
            except BaseException:
                conn.close()
                raise
            return conn

        return self._retrying(open_psycopg)

    def connect_arrow(self) -> ArrowSession:
        """An ADBC `ArrowSession` (autocommit, UTC, ISO dates), opened like `connect`."""
        uri = adbc_uri(self.params, self.password)  # carries the password: never shown
        return self._retrying(lambda: ArrowSession.open(uri))

    def _retrying(self, open_connection):
        attempts = max(1, int(self.connect_attempts))
        delay = max(0.0, float(self.backoff_seconds))
        failure = ""
        for attempt in range(1, attempts + 1):
            try:
                return open_connection()
            except (psycopg.Error, AdbcError) as exc:  # noqa: PERF203 - retry loop
                failure = self.redact(_one_line(str(exc)))
                transient = isinstance(exc, (psycopg.OperationalError, adbc_driver_manager.OperationalError))
                permanent = not transient or bool(_PERMANENT.search(str(exc)))
            if permanent or attempt == attempts:
                break
            _log.warning(
                f"PostgreSQL at {self.describe()}: {failure} (attempt {attempt} of {attempts}, "
                f"retrying in {delay:.2f}s)"
            )
            time.sleep(delay)
            delay *= 2
        tries = f" (after {attempt} attempts)" if attempt > 1 else ""
        raise PostgresConnectionError(f"PostgreSQL at {self.describe()}: {failure}{tries}") from None


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    try:
        return int(raw) if raw not in (None, "") else default
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw not in (None, "") else default
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def _secret_params(secret_id: str, region: str | None, endpoint_url: str | None) -> tuple[dict, str | None, str]:
    """libpq keywords and the password from an RDS-style JSON secret."""
    from dagster_aws.secretsmanager import SecretsManagerResource

    error = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the resource is marked beta
            client = SecretsManagerResource(region_name=region, endpoint_url=endpoint_url).get_client()
        text = client.get_secret_value(SecretId=secret_id)["SecretString"]
    except Exception as exc:  # botocore errors name the secret (or region), never its value
        error = _one_line(str(exc))
    if error is not None:
        raise PostgresConnectionError(f"PostgreSQL secret {secret_id!r} from AWS Secrets Manager: {error}") from None
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError
    except ValueError:
        raise PostgresConnectionError(
            f"PostgreSQL secret {secret_id!r}: expected a JSON object with host, port, username, "
            "password and dbname"
        ) from None
    missing = [k for k in ("host", "username") if not doc.get(k)]
    if missing:
        raise PostgresConnectionError(f"PostgreSQL secret {secret_id!r}: missing {', '.join(missing)}") from None
    params = {
        "host": str(doc["host"]),
        "port": str(doc.get("port") or 5432),
        "user": str(doc["username"]),
        "dbname": str(doc.get("dbname") or doc.get("database") or "postgres"),
    }
    password = doc.get("password")
    return params, (str(password) if password is not None else None), f"secret {secret_id}"


def resolve_settings(
    url: str | None = None,
    secret_id: str | None = None,
    secret_region: str | None = None,
    secrets_endpoint_url: str | None = None,
    sslmode: str | None = None,
    connect_attempts: int | None = None,
    backoff_seconds: float | None = None,
    connect_timeout: int | None = None,
    application_name: str = "dq_assets",
) -> PostgresSettings:
    """Explicit arguments first, then the environment (see the module docstring)."""
    secret_id = secret_id or os.environ.get(SECRET_ID_ENV) or None
    url = url or os.environ.get(URL_ENV) or None
    extra: tuple[str, ...] = (url,) if url else ()
    password: str | None = None
    if secret_id:
        region = (
            secret_region or os.environ.get(SECRET_REGION_ENV) or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
        )
        params, password, source = _secret_params(secret_id, region, secrets_endpoint_url)
    elif url:
        error = None
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as exc:
            error = redact(_one_line(str(exc)), extra)
        if error is not None:
            raise PostgresConnectionError(f"PostgreSQL URL from {URL_ENV}: {error}") from None
        params = {k: str(v) for k, v in params.items() if v is not None}
        password = params.pop("password", None)
        source = URL_ENV
    else:
        params, source = {}, "PG* environment"  # libpq reads PGHOST, PGUSER, PGPASSWORD, ...
    mode = sslmode or os.environ.get(SSLMODE_ENV) or params.get("sslmode") or os.environ.get("PGSSLMODE") or DEFAULT_SSLMODE
    if mode not in SSLMODES:
        raise ValueError(f"{SSLMODE_ENV}={mode!r}: expected one of {', '.join(SSLMODES)}")
    params["sslmode"] = mode
    timeout = connect_timeout if connect_timeout is not None else _env_int(TIMEOUT_ENV, DEFAULT_CONNECT_TIMEOUT)
    params.setdefault("connect_timeout", str(timeout))
    params.setdefault("application_name", application_name)
    return PostgresSettings(
        params=params,
        password=password,
        source=source,
        connect_attempts=connect_attempts if connect_attempts is not None else _env_int(ATTEMPTS_ENV, DEFAULT_ATTEMPTS),
        backoff_seconds=backoff_seconds if backoff_seconds is not None else _env_float(BACKOFF_ENV, DEFAULT_BACKOFF_SECONDS),
        extra_secrets=extra,
    )


class PostgresConnection(dg.ConfigurableResource):
    """PostgreSQL connection settings, resolved from the environment each time a connection
    is opened. Every field is optional; unset fields fall back to the env vars of the module
    docstring. Pass a URL with a password only as `dg.EnvVar("...")`, never as a literal."""

    url: str | None = Field(default=None, description=f"libpq URL; default env {URL_ENV}")
    secret_id: str | None = Field(default=None, description=f"Secrets Manager secret; default env {SECRET_ID_ENV}")
    secret_region: str | None = Field(default=None, description=f"default env {SECRET_REGION_ENV}, AWS_REGION")
    secrets_endpoint_url: str | None = Field(default=None, description="default: boto3's (AWS_ENDPOINT_URL)")
    sslmode: str | None = Field(default=None, description=f"default env {SSLMODE_ENV}, else 'prefer'")
    connect_attempts: int | None = Field(default=None, description=f"default env {ATTEMPTS_ENV}, else 3")
    backoff_seconds: float | None = Field(default=None, description=f"default env {BACKOFF_ENV}, else 0.5")
    connect_timeout: int | None = Field(default=None, description=f"seconds; default env {TIMEOUT_ENV}, else 10")

    def __repr_args__(self):  # never show a URL's password
        for key, value in super().__repr_args__():
            yield key, (redact(value) if isinstance(value, str) else value)

    def settings(self) -> PostgresSettings:
        return resolve_settings(
            url=self.url,
            secret_id=self.secret_id,
            secret_region=self.secret_region,
            secrets_endpoint_url=self.secrets_endpoint_url,
            sslmode=self.sslmode,
            connect_attempts=self.connect_attempts,
            backoff_seconds=self.backoff_seconds,
            connect_timeout=self.connect_timeout,
        )

    @contextmanager
    def connect(self, action: str = "") -> Iterator[psycopg.Connection]:
        """An autocommit connection (use `conn.transaction()` for atomic work), closed after.
        A database error inside the block is re-raised as one redacted `PostgresError`."""
        settings = self.settings()
        with _redacted(settings, settings.connect(), action) as conn:
            yield conn

    @contextmanager
    def session(self, action: str = "") -> Iterator[ArrowSession]:
        """An ADBC `ArrowSession` (`session.transaction()` for atomic work), closed after; errors
        as for `connect`. What reads and writes tables (`tables`) runs on one."""
        settings = self.settings()
        with _redacted(settings, settings.connect_arrow(), action) as session:
            yield session


@contextmanager
def _redacted(settings: PostgresSettings, conn, action: str):
    """Yield `conn`, close it after; a database error becomes one redacted `PostgresError`."""
    error = None
    try:
        yield conn
    except (psycopg.Error, AdbcError) as exc:
        what = f"{action} failed: " if action else ""
        error = settings.redact(f"PostgreSQL at {settings.describe()}: {what}{_one_line(str(_first_cause(exc)))}")
    finally:
        try:
            conn.close()
        except (psycopg.Error, AdbcError):
            pass  # a dead connection: the error that killed it is the one to report
    if error is not None:
        raise PostgresError(error) from None
