"""Fixtures that run the real local stack: a Kafka broker and a PostgreSQL server.

The stack starts once per test session on free loopback ports, with its own
state folder, and stops at the end. Tests start producers and Spark consumers
as separate processes with :attr:`LocalStack.env`, exactly as a user would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from pipeline import stack as local_stack
from pipeline.settings import Settings, get_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Variables that would point the tests at a user's own services.
EXTERNAL_VARIABLES = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "SPARK_MASTER",
    "SPARK_CHECKPOINT_DIR",
)


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for(condition: Callable[[], Any], timeout: float, message: str, interval: float = 0.5) -> Any:
    """Poll ``condition`` until it returns a true value; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {message} (last value: {last!r})")


@dataclass
class LocalStack:
    """The running stack and the environment that points a process at it."""

    settings: Settings
    env: dict[str, str]

    @property
    def bootstrap_servers(self) -> str:
        return self.settings.kafka_bootstrap_servers

    @property
    def database_url(self) -> str:
        return self.settings.database_url

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        connection = psycopg2.connect(self.database_url, connect_timeout=5)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def scalar(self, sql: str, params: tuple = ()) -> Any:
        return self.query(sql, params)[0][0]

    def env_with(self, **overrides: str) -> dict[str, str]:
        return {**self.env, **overrides}


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    # PostgreSQL runs as the unprivileged 'postgres' user, which must be able
    # to enter the state folder, so it lives in a world-readable temp folder.
    state_dir = Path(tempfile.mkdtemp(prefix="workbench-test-"))
    state_dir.chmod(0o755)
    kafka_port, controller_port, postgres_port = _free_ports(3)

    env = {key: value for key, value in os.environ.items() if key not in EXTERNAL_VARIABLES}
    env.update(
        WORKBENCH_STATE_DIR=str(state_dir),
        WORKBENCH_KAFKA_PORT=str(kafka_port),
        WORKBENCH_KAFKA_CONTROLLER_PORT=str(controller_port),
        WORKBENCH_POSTGRES_PORT=str(postgres_port),
        PYTHONPATH=str(PROJECT_ROOT),
    )
    settings = get_settings(env)
    try:
        local_stack.up(settings)
        yield LocalStack(settings=settings, env=env)
    finally:
        local_stack.down(settings)
        shutil.rmtree(state_dir, ignore_errors=True)


@dataclass
class JobProcess:
    """A pipeline command run as its own process group, with its output in a log file."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None
    _log: Any = field(default=None, repr=False)

    def start(self) -> JobProcess:
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, *self.args],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            # Like the supervisor: the main process first, the group later.
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.process.wait(10)
        # The JVM is in the same group and may outlive the Python parent.
        self.signal_group(signal.SIGKILL)
        if self._log:
            self._log.close()
        return self.process.returncode


@pytest.fixture
def job_factory(stack: LocalStack, tmp_path: Path) -> Iterator[Callable[..., JobProcess]]:
    """Start pipeline commands; every one still running at teardown is stopped."""
    started: list[JobProcess] = []

    def start(args: list[str], env: dict[str, str] | None = None, name: str = "job") -> JobProcess:
        job = JobProcess(args, env or stack.env, tmp_path / f"{name}-{len(started)}.log").start()
        started.append(job)
        return job

    yield start
    for job in started:
        job.stop()


def wait_for_query_start(job: JobProcess, timeout: float = 240) -> None:
    """Wait until a consumer logs that its streaming query started."""

    def started() -> bool:
        if not job.running():
            pytest.fail(f"consumer exited early with {job.process.returncode}:\n{job.log()[-4000:]}")
        return "started: id=" in job.log()

    wait_for(started, timeout, "the consumer's streaming query to start")


@pytest.fixture(scope="module")
def own_database(stack: LocalStack) -> Iterator[str]:
    """A new, migrated database on the stack's server, for tests that need an empty registry.

    The model registry decides what every transactions consumer scores with,
    so tests that promote models or need no model in production use their
    own database instead of the shared one. Yields its URL.
    """
    from pipeline.migrate import migrate

    name = f"test_{uuid.uuid4().hex[:12]}"
    admin_url = stack.database_url.rsplit("/", 1)[0] + "/postgres"
    _admin(admin_url, f'CREATE DATABASE "{name}"')
    database_url = stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        migrate(database_url)
        yield database_url
    finally:
        _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(admin_url: str, statement: str) -> None:
    connection = psycopg2.connect(admin_url, connect_timeout=5)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()
