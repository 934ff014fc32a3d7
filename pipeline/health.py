"""Reachability checks of PostgreSQL and Kafka that return plain sentences.

The checks do not raise for an unreachable or misconfigured service. They
return a :class:`HealthResult` whose message states what failed, where, and
what to do. A password in DATABASE_URL is redacted from every message.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from pipeline.settings import redact_url

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "HealthResult",
    "check_kafka",
    "check_postgres",
    "database_error_message",
    "postgres_address",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 2.0
STACK_HINT = "Start the local stack with `python -m pipeline.stack up`"
REQUIRED_TABLE = "shop.fraud_transactions"


@dataclass(frozen=True)
class HealthResult:
    """Outcome of one check."""

    service: str
    """``PostgreSQL`` or ``Kafka``."""
    ok: bool
    address: str
    """``host:port`` that was checked, without credentials."""
    message: str
    """One or two sentences for the user, naming the next step when not ok."""


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def postgres_address(database_url: str) -> str:
    """Return ``host:port`` of ``database_url``, with libpq's default port filled in.

    Without a host, libpq connects through a Unix socket, which the result names.

    Raises
    ------
    sqlalchemy.exc.ArgumentError
        When ``database_url`` is not a URL.
    ValueError
        When its port is not a number.
    """
    url = make_url(database_url)
    if not url.host:
        return f"the local Unix socket, port {url.port or 5432}"
    return _host_port(url.host, url.port or 5432)


def _invalid_url_message(database_url: str) -> str:
    return (
        f"DATABASE_URL {redact_url(database_url)!r} is not a valid URL. "
        "Use the form postgresql://user:password@host:port/database."
    )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _scrub(text: str, database_url: str) -> str:
    """Redact the URL and its ``:password@`` part wherever ``text`` repeats them.

    Only these forms are replaced, because a short password such as the local
    stack's ``fraud`` also occurs in table names.
    """
    text = text.replace(database_url, redact_url(database_url))
    password = make_url(database_url).password
    return text.replace(f":{password}@", ":***@") if password else text


def database_error_message(
    exc: BaseException, database_url: str, timeout: float | None = None
) -> str:
    """Return a plain sentence for a PostgreSQL or SQLAlchemy error.

    Parameters
    ----------
    exc
        A psycopg2 error, or a SQLAlchemy ``DBAPIError`` wrapping one.
    database_url
        The URL that was used. Only its host, port, user and database name
        appear in the message, or the whole URL without its password when it
        cannot be parsed.
    timeout
        Connect timeout in seconds, named in the message when it expired.
    """
    try:
        url = make_url(database_url)
        address = postgres_address(database_url)
    except (ArgumentError, ValueError):
        return _invalid_url_message(database_url)
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    # The driver's sentence may end in "?" or ".", and the messages add their own.
    detail = _scrub(_first_line(original), database_url).rstrip(" .?!")
    lowered = str(original).lower()

    if isinstance(original, psycopg2.errors.UndefinedTable):
        return (
            f"The database {url.database} at {address} has no workbench tables ({detail}). "
            "Create them with `python -m pipeline.migrate`."
        )
    if isinstance(original, psycopg2.errors.QueryCanceled):
        return (
            f"A query to PostgreSQL at {address} took too long and was cancelled. "
            "Narrow the filters, or try again when the server is less busy."
        )
    if not isinstance(original, psycopg2.OperationalError):
        return f"The query to PostgreSQL at {address} failed: {detail}."

    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return (
            f"PostgreSQL at {address} rejected the login of user {url.username!r}. "
            "Check the user name and password in DATABASE_URL."
        )
    if "database" in lowered and "does not exist" in lowered:
        return (
            f"PostgreSQL at {address} has no database {url.database!r}. "
            "Fix the database name in DATABASE_URL, or start the local stack with "
            "`python -m pipeline.stack up`."
        )

    if "connection refused" in lowered:
        reason = "connection refused"
    elif "timeout expired" in lowered or "timed out" in lowered:
        reason = f"timed out after {timeout:g} s" if timeout else "timed out"
    elif "could not translate host name" in lowered:
        reason = "unknown host name"
    else:
        reason = detail
    return (
        f"PostgreSQL is not reachable at {address} ({reason}). "
        f"{STACK_HINT}, or set DATABASE_URL to a running server."
    )


def check_postgres(
    database_url: str, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> HealthResult:
    """Connect to ``database_url`` and check that the workbench tables exist.

    ``timeout`` is in seconds. It is rounded up to whole seconds and raised to
    2, because libpq reads a smaller ``connect_timeout`` as 2 (PostgreSQL 15
    libpq documentation). A host that does not respond fails after that time.
    """
    try:
        url = make_url(database_url)
        address = postgres_address(database_url)
    except (ArgumentError, ValueError):
        return HealthResult("PostgreSQL", False, "", _invalid_url_message(database_url))

    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    connect_timeout = max(2, math.ceil(timeout))
    try:
        connection = psycopg2.connect(
            dsn, connect_timeout=connect_timeout, application_name="fraud-workbench-health"
        )
    except psycopg2.Error as exc:
        message = database_error_message(exc, database_url, connect_timeout)
        logger.info("PostgreSQL check failed at %s: %s", address, message)
        return HealthResult("PostgreSQL", False, address, message)

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (REQUIRED_TABLE,))
            has_tables = cursor.fetchone()[0]
    except psycopg2.Error as exc:
        message = database_error_message(exc, database_url, connect_timeout)
        return HealthResult("PostgreSQL", False, address, message)
    finally:
        connection.close()

    if not has_tables:
        return HealthResult(
            "PostgreSQL",
            False,
            address,
            f"PostgreSQL is reachable at {address}, but the table {REQUIRED_TABLE} is "
            "missing. Create it with `python -m pipeline.migrate`.",
        )
    return HealthResult("PostgreSQL", True, address, f"PostgreSQL is reachable at {address}.")


def _parse_servers(bootstrap_servers: str) -> list[tuple[str, int]]:
    """Split ``host:port,host:port``, raising ValueError with the first invalid entry."""
    servers = []
    for entry in bootstrap_servers.split(","):
        entry = entry.strip()
        if not entry:
            continue
        host, separator, port_text = entry.rpartition(":")
        if not separator or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(entry)
        servers.append((host.strip("[]"), int(port_text)))
    return servers


def _socket_reason(exc: OSError, timeout: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, socket.gaierror):
        return "unknown host name"
    return exc.strerror or str(exc)


def check_kafka(
    bootstrap_servers: str,
    *,
    topic: str | None = None,
    client_config: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> HealthResult:
    """Check that a Kafka broker responds at ``bootstrap_servers``.

    First, TCP connects to the servers in order until one accepts, so a closed
    port fails fast without kafka-python's retries. When a port is open,
    kafka-python bootstraps and lists the topics, which shows that a Kafka
    broker responds and that the security settings in ``client_config`` (for
    example :meth:`pipeline.settings.Settings.kafka_client_config`) fit it.

    Parameters
    ----------
    topic
        When given and missing, the result is still ok, and the message states
        that the producer creates the topic.
    timeout
        Seconds for each TCP connect and for the kafka-python bootstrap.
    """
    try:
        servers = _parse_servers(bootstrap_servers)
    except ValueError as exc:
        return HealthResult(
            "Kafka",
            False,
            bootstrap_servers,
            f"KAFKA_BOOTSTRAP_SERVERS has an invalid entry {str(exc)!r}. "
            "Use host:port, separated by commas.",
        )
    if not servers:
        return HealthResult(
            "Kafka", False, "", "KAFKA_BOOTSTRAP_SERVERS is empty. Set it to host:port."
        )
    address = ",".join(_host_port(host, port) for host, port in servers)

    reasons = []
    for host, port in servers:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            break
        except OSError as exc:
            reasons.append(_socket_reason(exc, timeout))
    else:
        message = (
            f"Kafka is not reachable at {address} ({'; '.join(dict.fromkeys(reasons))}). "
            f"{STACK_HINT}, or set KAFKA_BOOTSTRAP_SERVERS to a running broker."
        )
        logger.info("Kafka check failed at %s: %s", address, message)
        return HealthResult("Kafka", False, address, message)

    return _check_kafka_protocol(servers, address, topic, client_config or {}, timeout)


def _check_kafka_protocol(
    servers: list[tuple[str, int]],
    address: str,
    topic: str | None,
    client_config: Mapping[str, str],
    timeout: float,
) -> HealthResult:
    # Imported here because kafka-python starts slowly and most pages never call this.
    # NOTE: the success path is unverified against a broker. Only a listener
    # that is not Kafka (handshake failure) and closed ports have been run.
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    timeout_ms = int(timeout * 1000)
    admin = None
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=[_host_port(host, port) for host, port in servers],
            client_id="fraud-workbench-health",
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=timeout_ms,
            **client_config,
        )
        topics = set(admin.list_topics())
    except (KafkaError, OSError) as exc:
        logger.info("Kafka handshake failed at %s: %s", address, exc)
        return HealthResult(
            "Kafka",
            False,
            address,
            f"A server listens at {address}, but it did not answer as a Kafka broker "
            f"({_first_line(exc)}). Check KAFKA_BOOTSTRAP_SERVERS and "
            "KAFKA_SECURITY_PROTOCOL.",
        )
    finally:
        if admin is not None:
            admin.close()

    if topic and topic not in topics:
        return HealthResult(
            "Kafka",
            True,
            address,
            f"Kafka is reachable at {address}. The topic {topic} does not exist yet. "
            "The producer creates it when it starts.",
        )
    return HealthResult("Kafka", True, address, f"Kafka is reachable at {address}.")
