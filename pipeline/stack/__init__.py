"""The local stack: a Kafka broker and a PostgreSQL server on 127.0.0.1.

``up`` starts what is not running, applies the schema and returns when both
services respond. ``down`` stops what ``up`` started, and ``status`` reports both.
A service whose address is set (``KAFKA_BOOTSTRAP_SERVERS``,
``DATABASE_URL``) is external: the stack neither starts nor stops it.
"""

from __future__ import annotations

import fcntl
import logging
from contextlib import contextmanager
from typing import Any, Iterator

from pipeline.migrate import migrate
from pipeline.settings import Settings, redact_url
from pipeline.stack.kafka import StackError, kafka_pid, port_open, start_kafka, stop_kafka
from pipeline.stack.postgres import postgres_pid, start_postgres, stop_postgres

__all__ = ["StackError", "up", "down", "status"]

logger = logging.getLogger(__name__)


@contextmanager
def _stack_lock(settings: Settings) -> Iterator[None]:
    """Hold an exclusive lock so that two ``up`` calls cannot start two brokers."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.state_dir / "stack.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def up(settings: Settings) -> dict[str, Any]:
    """Start the local services that are not external, migrate, and return :func:`status`."""
    with _stack_lock(settings):
        if not settings.database_external:
            start_postgres(settings)
        migrate(settings.database_url)
        if not settings.kafka_external:
            start_kafka(settings)
    return status(settings)


def down(settings: Settings) -> dict[str, bool]:
    """Stop the services this stack started; return which ones were running."""
    with _stack_lock(settings):
        stopped = {"kafka": False, "postgres": False}
        if not settings.kafka_external:
            stopped["kafka"] = stop_kafka(settings)
        if not settings.database_external:
            stopped["postgres"] = stop_postgres(settings)
    return stopped


def _first_server(bootstrap_servers: str) -> tuple[str, int] | None:
    host, _, port = bootstrap_servers.split(",")[0].strip().rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return None


def status(settings: Settings) -> dict[str, Any]:
    """Report each service: its address, whether it responds, and its pid when the stack owns it."""
    if settings.kafka_external:
        server = _first_server(settings.kafka_bootstrap_servers)
        kafka_running = server is not None and port_open(*server)
        kafka_owner = None
    else:
        kafka_owner = kafka_pid(settings)
        kafka_running = kafka_owner is not None and port_open("127.0.0.1", settings.kafka_port)

    if settings.database_external:
        import psycopg2

        try:
            psycopg2.connect(settings.database_url, connect_timeout=3).close()
            postgres_running = True
        except psycopg2.OperationalError:
            postgres_running = False
        postgres_owner = None
    else:
        postgres_owner = postgres_pid(settings)
        postgres_running = postgres_owner is not None and port_open(
            "127.0.0.1", settings.postgres_port
        )

    return {
        "kafka": {
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "running": kafka_running,
            "external": settings.kafka_external,
            "pid": kafka_owner,
        },
        "postgres": {
            "url": redact_url(settings.database_url),
            "running": postgres_running,
            "external": settings.database_external,
            "pid": postgres_owner,
        },
        "state_dir": str(settings.state_dir),
    }
