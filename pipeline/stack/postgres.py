"""A PostgreSQL server for the local stack, run as an unprivileged user.

The server comes from the machine's PostgreSQL packages (Debian's
``postgresql``). It listens on 127.0.0.1 only, with Unix sockets off, and
keeps its data under ``STATE_DIR/postgres``. PostgreSQL will not run as root,
so when this runs as root the server runs as the ``postgres`` system user
that Debian's package creates.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2

from pipeline.processes import read_live_pid, write_pid_file
from pipeline.settings import (
    LOCAL_DATABASE,
    LOCAL_DATABASE_PASSWORD,
    LOCAL_DATABASE_USER,
    Settings,
)
from pipeline.stack.kafka import StackError, port_open

__all__ = ["find_postgres_bin", "start_postgres", "stop_postgres", "postgres_pid"]

logger = logging.getLogger(__name__)

SERVICE_USER = "postgres"


def find_postgres_bin() -> Path:
    """Return the folder with ``initdb`` and ``pg_ctl`` of the newest PostgreSQL installed."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise StackError(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found. Run `make setup` or "
        "`apt-get install postgresql`, or set DATABASE_URL to an existing server."
    )


def _service_user() -> pwd.struct_passwd | None:
    """Return the user the server runs as, or None to run as the current user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise StackError(
            f"PostgreSQL does not run as root, and there is no '{SERVICE_USER}' user to run "
            "it as. Run `make setup` (it installs Debian's postgresql package, which creates "
            "that user) or run the stack as a normal user."
        ) from None


def _run(command: list[str], user: pwd.struct_passwd | None, timeout: float) -> subprocess.CompletedProcess:
    kwargs = {}
    if user is not None:
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd="/", **kwargs
    )


def _data_dir(settings: Settings) -> Path:
    return settings.state_dir / "postgres" / "data"


def _pid_file(settings: Settings) -> Path:
    return settings.state_dir / "postgres" / "postgres.pid"


def postgres_pid(settings: Settings) -> int | None:
    """Return the pid of the server this stack started, when it runs."""
    return read_live_pid(_pid_file(settings))


def _check_reachable(path: Path, user: pwd.struct_passwd | None) -> None:
    if user is None:
        return
    result = _run(["test", "-x", str(path)], user, timeout=10)
    if result.returncode != 0:
        raise StackError(
            f"The '{user.pw_name}' user cannot enter {path}, so PostgreSQL cannot keep its data "
            "there. Clone the repository under a folder other users can enter (for example "
            "/srv or /opt), or point WORKBENCH_STATE_DIR at one."
        )


def _init_cluster(settings: Settings, bin_dir: Path, user: pwd.struct_passwd | None) -> None:
    data = _data_dir(settings)
    if (data / "PG_VERSION").exists():
        return
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)
    if user is not None:
        os.chown(data.parent, user.pw_uid, user.pw_gid)
        os.chown(data, user.pw_uid, user.pw_gid)
    _check_reachable(data.parent, user)

    with tempfile.NamedTemporaryFile("w", delete=False, prefix="pgpass-") as password_file:
        password_file.write(LOCAL_DATABASE_PASSWORD + "\n")
    try:
        os.chmod(password_file.name, 0o644)
        result = _run(
            [
                str(bin_dir / "initdb"),
                "-D", str(data),
                "-U", LOCAL_DATABASE_USER,
                f"--pwfile={password_file.name}",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            user,
            timeout=180,
        )
    finally:
        os.unlink(password_file.name)
    if result.returncode != 0:
        raise StackError("initdb failed:\n" + (result.stdout + result.stderr)[-2000:])


def _wait_for_database(settings: Settings, timeout: float) -> None:
    admin_url = settings.database_url.rsplit("/", 1)[0] + "/postgres"
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            connection = psycopg2.connect(admin_url, connect_timeout=3)
        except psycopg2.OperationalError as exc:
            last_error = exc
            time.sleep(0.3)
            continue
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (LOCAL_DATABASE,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{LOCAL_DATABASE}"')
        finally:
            connection.close()
        return
    raise StackError(f"PostgreSQL did not accept connections within {timeout:.0f} s: {last_error}")


def start_postgres(settings: Settings, timeout: float = 60.0) -> int:
    """Start the server unless it runs, create the database; return the server pid."""
    pid = postgres_pid(settings)
    if pid is not None:
        _wait_for_database(settings, timeout)
        return pid
    if port_open("127.0.0.1", settings.postgres_port):
        raise StackError(
            f"Port {settings.postgres_port} on 127.0.0.1 is taken by another program. Stop it, "
            "choose a free port with WORKBENCH_POSTGRES_PORT, or set DATABASE_URL to use that "
            "server."
        )

    bin_dir = find_postgres_bin()
    user = _service_user()
    _init_cluster(settings, bin_dir, user)

    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.logs_dir / "postgres.log"
    log_path.touch()
    if user is not None:
        os.chown(log_path, user.pw_uid, user.pw_gid)
    options = f"-c listen_addresses=127.0.0.1 -p {settings.postgres_port} -c unix_socket_directories=''"
    result = _run(
        [
            str(bin_dir / "pg_ctl"), "start",
            "-D", str(_data_dir(settings)),
            "-l", str(log_path),
            "-o", options,
            "-w", "-t", str(int(timeout)),
        ],
        user,
        timeout=timeout + 10,
    )
    if result.returncode != 0:
        raise StackError(
            f"PostgreSQL did not start (pg_ctl exit {result.returncode}). Its log is {log_path}:\n"
            + (result.stdout + result.stderr)[-1000:]
        )
    postmaster = _data_dir(settings) / "postmaster.pid"
    pid = int(postmaster.read_text().split()[0])
    write_pid_file(_pid_file(settings), pid)
    logger.info("started PostgreSQL (pid %d) on 127.0.0.1:%d", pid, settings.postgres_port)
    _wait_for_database(settings, timeout)
    return pid


def stop_postgres(settings: Settings) -> bool:
    """Stop the server this stack started; return False when none ran."""
    pid = postgres_pid(settings)
    if pid is None:
        _pid_file(settings).unlink(missing_ok=True)
        return False
    result = _run(
        [str(find_postgres_bin() / "pg_ctl"), "stop", "-D", str(_data_dir(settings)), "-m", "fast", "-w"],
        _service_user(),
        timeout=60,
    )
    if result.returncode != 0:
        raise StackError("pg_ctl stop failed:\n" + (result.stdout + result.stderr)[-1000:])
    _pid_file(settings).unlink(missing_ok=True)
    logger.info("stopped PostgreSQL (pid %d)", pid)
    return True
