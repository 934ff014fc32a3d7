"""Start, stop and report the pipeline's long-running jobs as separate OS processes.

Each job runs in its own process group (``start_new_session=True``), so one
signal reaches the job and every process it started, such as a Spark JVM. The
job's state lives on disk, not in memory, so Streamlit reruns, page reloads, a
second browser tab and a restarted Streamlit server all see the same job and
never start a second copy. ``JOBS_DIR/<name>/`` contains:

``lock``
    flock(2) lock held around start and stop.
``job.json``
    pid, process start time, command, options and ``started_at`` of the last run.
``exit.json``
    How the last run ended, once the supervisor has seen it end.
``output.log``
    stdout and stderr of every run, appended.
``metrics.json``
    Progress that the job writes itself, given ``--metrics-file``.

A pid is trusted only together with the process start time (field 22 of
``/proc/PID/stat``, clock ticks since boot), so a pid that the kernel reused
for another process is not mistaken for the job. Linux only.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import numbers
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pipeline.jobmetrics import read_metrics
from pipeline.settings import Settings, get_settings

__all__ = [
    "JOBS",
    "JobDefinition",
    "JobExit",
    "JobOptionsError",
    "JobStatus",
    "Supervisor",
    "SupervisorError",
    "default_supervisor",
    "process_start_ticks",
    "producer_args",
    "start",
    "status",
    "status_all",
    "stop",
]

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_STOP_TIMEOUT_SECONDS = 10.0
KILL_WAIT_SECONDS = 5.0
# Long enough for a concurrent stop with the default timeout to send SIGTERM,
# wait, and send SIGKILL.
LOCK_TIMEOUT_SECONDS = DEFAULT_STOP_TIMEOUT_SECONDS + KILL_WAIT_SECONDS + 5.0
POLL_SECONDS = 0.1
LOG_TAIL_LINES = 20
TAIL_READ_BYTES = 64 * 1024
# The log is rotated to output.log.1 at start once it is larger than this.
MAX_LOG_BYTES = 5 * 1024 * 1024

# Indexes into /proc/PID/stat split after the command name, where the state
# (field 3 in proc(5)) is index 0, the process group 2 and the start time 19.
_STATE_INDEX = 0
_PGRP_INDEX = 2
_STARTTIME_INDEX = 19


class SupervisorError(RuntimeError):
    """A job could not be started or stopped."""


class JobOptionsError(ValueError):
    """An unknown job name or an invalid job option."""


OptionsToArgs = Callable[[str, Mapping[str, Any]], list[str]]


def no_options(name: str, options: Mapping[str, Any]) -> list[str]:
    """Reject every option, for jobs whose command takes none."""
    if options:
        raise JobOptionsError(
            f"Job {name} takes no options, got {', '.join(sorted(options))}."
        )
    return []


def producer_args(name: str, options: Mapping[str, Any]) -> list[str]:
    """Validate the producer's options and turn them into command-line arguments.

    ``rate`` is messages per second (>= 0), ``fraud_ratio`` the share of
    fraudulent messages (0 to 1) and ``seed`` an integer for a repeatable
    stream. An option that is missing or None is left to the producer's default.
    """
    unknown = sorted(set(options) - {"rate", "fraud_ratio", "seed"})
    if unknown:
        raise JobOptionsError(
            f"Job {name} has no option {', '.join(unknown)}. "
            "The options are rate, fraud_ratio and seed."
        )

    args: list[str] = []
    rate = options.get("rate")
    if rate is not None:
        if not _is_real(rate) or not math.isfinite(rate) or rate < 0:
            raise JobOptionsError(
                f"rate must be a number of messages per second >= 0, got {rate!r}."
            )
        args += ["--rate", str(rate)]

    fraud_ratio = options.get("fraud_ratio")
    if fraud_ratio is not None:
        if not _is_real(fraud_ratio) or not 0 <= fraud_ratio <= 1:
            raise JobOptionsError(
                f"fraud_ratio must be a number from 0 to 1, got {fraud_ratio!r}."
            )
        args += ["--fraud-ratio", str(fraud_ratio)]

    seed = options.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise JobOptionsError(f"seed must be a whole number, got {seed!r}.")
        args += ["--seed", str(int(seed))]
    return args


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class JobDefinition:
    """A job's base command and the check that turns its options into arguments.

    The supervisor appends the option arguments and then
    ``--metrics-file PATH`` to ``command``.
    """

    command: tuple[str, ...]
    options_to_args: OptionsToArgs = no_options


JOBS: Mapping[str, JobDefinition] = MappingProxyType(
    {
        "producer": JobDefinition(
            (sys.executable, "-m", "pipeline.producer"), producer_args
        ),
        "consumer-transactions": JobDefinition(
            (sys.executable, "-m", "pipeline.consumers", "transactions")
        ),
        "consumer-frauds": JobDefinition(
            (sys.executable, "-m", "pipeline.consumers", "frauds")
        ),
    }
)


@dataclass(frozen=True)
class JobExit:
    """End of a job's last run: exit code, time, and whether a stop request caused it."""

    returncode: int | None
    """Exit code, or minus the signal number as in :mod:`subprocess`. None when
    another process started the job, so this one could not collect the code."""
    ended_at: datetime
    """When the supervisor saw the end, which can be later than the end itself."""
    stopped_by_request: bool

    def describe(self) -> str:
        """Return a short sentence such as ``exited with code 1``."""
        if self.returncode is None:
            outcome = "stopped (exit code unknown)"
        elif self.returncode < 0:
            try:
                outcome = f"ended by {signal.Signals(-self.returncode).name}"
            except ValueError:
                outcome = f"ended by signal {-self.returncode}"
        else:
            outcome = f"exited with code {self.returncode}"
        return f"{outcome}, on request" if self.stopped_by_request else outcome


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of one job, running or not."""

    name: str
    running: bool
    pid: int | None
    """The job's pid, which is also its process group id, while it runs, else None."""
    started_at: datetime | None
    """Start of the last run (UTC), also after it ended."""
    uptime_seconds: float | None
    command: tuple[str, ...]
    options: dict[str, Any]
    metrics: dict[str, Any]
    """Contents of the job's metrics file, which keeps the last run's numbers after it stops."""
    log_tail: tuple[str, ...]
    exit: JobExit | None
    """End of the last run, or None while it runs or when it never ran."""
    log_path: Path
    metrics_path: Path


# Jobs that this process started: pid -> (Popen, start ticks). Keeping the
# Popen stops subprocess from reaping a job behind our back, and its poll()
# returns the same exit code however often it is called.
_children: dict[int, tuple[subprocess.Popen, int | None]] = {}
_children_lock = threading.Lock()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses, so split
    # after its last closing parenthesis.
    return raw[raw.rindex(")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    """Return the start time of ``pid`` in clock ticks since boot, or None if it is gone."""
    fields = _stat_fields(pid)
    return int(fields[_STARTTIME_INDEX]) if fields else None


def _reap(pid: int, start_ticks: int | None) -> int | None:
    """Collect the exit code of ``pid`` if it is our exited child; else return None."""
    with _children_lock:
        child = _children.get(pid)
    if child is not None and child[1] == start_ticks:
        return child[0].poll()
    # A child missing from _children was started before this module was
    # reloaded. waitpid returns its code once only.
    try:
        reaped_pid, wait_status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        # Another process started the job, so its parent or init reaps it.
        return None
    if reaped_pid == 0:
        return None
    return os.waitstatus_to_exitcode(wait_status)


def _is_alive(pid: int, start_ticks: int | None) -> bool:
    """Return True when ``pid`` is the process that started at ``start_ticks`` and runs.

    An exited child that is not reaped yet (state Z) still accepts
    ``os.kill(pid, 0)``, so the state is read from /proc instead, and such a
    child is reaped here when it is ours.
    """
    fields = _stat_fields(pid)
    if fields is None or int(fields[_STARTTIME_INDEX]) != start_ticks:
        return False
    if fields[_STATE_INDEX] in ("Z", "X"):
        _reap(pid, start_ticks)
        return False
    return True


def _group_members(pgid: int, min_start_ticks: int) -> list[int]:
    """Return the live processes of group ``pgid`` that started with or after the job.

    The start-time bound skips processes that cannot belong to the job.
    Zombies are skipped because a signal cannot stop them.
    """
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if (
            fields is not None
            and fields[_STATE_INDEX] not in ("Z", "X")
            and int(fields[_PGRP_INDEX]) == pgid
            and int(fields[_STARTTIME_INDEX]) >= min_start_ticks
        ):
            members.append(int(entry.name))
    return members


def _write_json(path: Path, body: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(json.dumps(body))
    os.replace(temporary, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        logger.warning("Ignoring unreadable job state file %s: %s", path, exc)
        return None
    return body if isinstance(body, dict) else None


def _tail(path: Path, lines: int) -> tuple[str, ...]:
    """Return the last ``lines`` lines of ``path`` that fit in its last 64 KiB."""
    if lines <= 0:
        return ()
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            offset = max(0, size - TAIL_READ_BYTES)
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return ()
    text_lines = data.decode("utf-8", errors="replace").splitlines()
    if offset > 0 and text_lines:
        text_lines = text_lines[1:]  # The first line is cut at the read offset.
    return tuple(text_lines[-lines:])


def _utc(timestamp: float | None) -> datetime | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


class Supervisor:
    """Start, stop and report jobs whose state is kept under ``jobs_dir``.

    Parameters
    ----------
    jobs_dir
        Folder for each job's state folder.
    jobs
        Job names and their definitions; :data:`JOBS` by default.
    env
        Variables set for the jobs on top of this process's environment.
    cwd
        Working folder of the jobs; the project root by default, so that
        ``python -m pipeline...`` finds the package.
    """

    def __init__(
        self,
        jobs_dir: str | os.PathLike[str],
        jobs: Mapping[str, JobDefinition] = JOBS,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] = PROJECT_ROOT,
    ) -> None:
        self.jobs_dir = Path(jobs_dir)
        self.jobs = jobs
        self._env = dict(env or {})
        self._cwd = Path(cwd)

    # Public API

    def start(self, name: str, **options: Any) -> JobStatus:
        """Start job ``name`` unless it already runs, and return its status.

        When the job already runs, nothing is started and ``options`` are
        ignored, so stop it first to change them. Leftover processes of an earlier
        run whose leader has died are stopped before the new run starts.

        Raises
        ------
        JobOptionsError
            When ``name`` is unknown or an option is invalid.
        SupervisorError
            When the lock is not free in time or the command cannot be run.
        """
        definition = self._definition(name)
        extra_args = definition.options_to_args(name, options)

        with self._locked(name):
            record = self._read_record(name)
            if record is not None:
                if _is_alive(record["pid"], record["start_ticks"]):
                    logger.info("Job %s already runs with pid %d", name, record["pid"])
                    return self.status(name)
                self._stop_group(name, record, DEFAULT_STOP_TIMEOUT_SECONDS)
                self._record_exit(name, record, stopped_by_request=False)

            job_dir = self._job_dir(name)
            self._rotate_log(job_dir / "output.log")
            metrics_path = job_dir / "metrics.json"
            metrics_path.unlink(missing_ok=True)
            command = [
                *definition.command,
                *extra_args,
                "--metrics-file",
                str(metrics_path),
            ]
            process = self._spawn(name, command, job_dir / "output.log")
            # Only this process can reap the child, and it has not yet, so
            # /proc/PID/stat exists even if the child has already exited.
            start_ticks = process_start_ticks(process.pid)
            with _children_lock:
                _children[process.pid] = (process, start_ticks)

            record = {
                "pid": process.pid,
                "start_ticks": start_ticks,
                "command": command,
                "options": dict(options),
                "started_at": time.time(),
            }
            _write_json(job_dir / "job.json", record)
            logger.info("Started job %s with pid %d: %s", name, process.pid, shlex.join(command))
        return self.status(name)

    def stop(self, name: str, timeout: float = DEFAULT_STOP_TIMEOUT_SECONDS) -> JobStatus:
        """Stop job ``name`` and every process in its group, and return its status.

        Sends SIGTERM to the process group, waits up to ``timeout`` seconds,
        then sends SIGKILL and waits up to 5 more seconds. Stopping a job that
        does not run only returns its status.

        Raises
        ------
        JobOptionsError
            When ``name`` is unknown or ``timeout`` is negative.
        SupervisorError
            When the lock is not free in time, or the group still runs after SIGKILL.
        """
        self._definition(name)
        if not _is_real(timeout) or not math.isfinite(timeout) or timeout < 0:
            raise JobOptionsError(f"timeout must be a number of seconds >= 0, got {timeout!r}.")

        with self._locked(name):
            record = self._read_record(name)
            if record is not None:
                leader_was_running = _is_alive(record["pid"], record["start_ticks"])
                stopped = self._stop_group(name, record, timeout)
                # Only leftovers of a run that had already ended are not
                # counted as a stop on request.
                if stopped and leader_was_running:
                    self._record_exit(name, record, stopped_by_request=True)
        return self.status(name)

    def status(self, name: str, log_lines: int = LOG_TAIL_LINES) -> JobStatus:
        """Return the status of job ``name`` with the last ``log_lines`` lines of its log."""
        self._definition(name)
        job_dir = self.jobs_dir / name
        log_path = job_dir / "output.log"
        metrics_path = job_dir / "metrics.json"
        record = self._read_record(name)

        running = False
        exit_info = None
        if record is not None:
            running = _is_alive(record["pid"], record["start_ticks"])
            if not running:
                exit_info = self._record_exit(name, record, stopped_by_request=False)

        started_at = record.get("started_at") if record else None
        uptime = None
        if running and started_at is not None:
            uptime = max(0.0, time.time() - started_at)

        return JobStatus(
            name=name,
            running=running,
            pid=record["pid"] if running else None,
            started_at=_utc(started_at),
            uptime_seconds=uptime,
            command=tuple(record.get("command", ())) if record else (),
            options=dict(record.get("options", {})) if record else {},
            metrics=read_metrics(metrics_path),
            log_tail=_tail(log_path, log_lines),
            exit=exit_info,
            log_path=log_path,
            metrics_path=metrics_path,
        )

    def status_all(self, log_lines: int = LOG_TAIL_LINES) -> dict[str, JobStatus]:
        """Return the status of every job, in the order of the job table."""
        return {name: self.status(name, log_lines) for name in self.jobs}

    # Helpers

    def _definition(self, name: str) -> JobDefinition:
        try:
            return self.jobs[name]
        except KeyError:
            raise JobOptionsError(
                f"Unknown job {name!r}. The jobs are {', '.join(self.jobs)}."
            ) from None

    def _job_dir(self, name: str) -> Path:
        job_dir = self.jobs_dir / name
        job_dir.mkdir(parents=True, exist_ok=True)
        return job_dir

    @contextmanager
    def _locked(self, name: str, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
        """Hold the job's flock, which also excludes other threads of this process.

        flock(2) locks belong to an open file description, and each call opens
        the file anew, so two threads exclude each other as two processes do.
        """
        lock_path = self._job_dir(name) / "lock"
        deadline = time.monotonic() + timeout
        with lock_path.open("a") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise SupervisorError(
                            f"Another start or stop of job {name} is still in progress "
                            f"after {timeout:g} s. Try again in a few seconds."
                        ) from None
                    time.sleep(POLL_SECONDS)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read_record(self, name: str) -> dict[str, Any] | None:
        record = _read_json(self.jobs_dir / name / "job.json")
        # pid 0, 1 and negative pids would make killpg signal far more than the job.
        pid = record.get("pid") if record else None
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
            return None
        if not isinstance(record.get("start_ticks"), int):
            record["start_ticks"] = None
        return record

    def _spawn(self, name: str, command: list[str], log_path: Path) -> subprocess.Popen:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self._env}
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with log_path.open("ab") as log:
            log.write(f"--- {started} supervisor: starting {shlex.join(command)}\n".encode())
            log.flush()
            try:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self._cwd,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                logger.error("Starting job %s failed: %s", name, exc)
                raise SupervisorError(
                    f"Starting job {name} failed: {exc}. Check that {command[0]} exists "
                    "and can be run."
                ) from exc
        return process

    def _stop_group(self, name: str, record: dict[str, Any], timeout: float) -> bool:
        """Stop the job's process group; return False when nothing of it ran.

        The group id is the job's pid because the job leads its own session.
        """
        pgid = record["pid"]
        start_ticks = record["start_ticks"]
        if start_ticks is None:
            return False
        if pgid == os.getpgrp():
            logger.error("Not signalling job %s: its pid %d is this process's group", name, pgid)
            return False
        leader_ticks = process_start_ticks(pgid)
        if leader_ticks is not None and leader_ticks != start_ticks:
            # The kernel reused the pid, which it does only after the job's
            # whole process group is gone.
            return False
        if not _group_members(pgid, start_ticks):
            _reap(pgid, start_ticks)
            return False

        for sig, wait_seconds in ((signal.SIGTERM, timeout), (signal.SIGKILL, KILL_WAIT_SECONDS)):
            logger.info("Sending %s to job %s (process group %d)", sig.name, name, pgid)
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                _reap(pgid, start_ticks)
                return True
            if self._wait_for_group_exit(pgid, start_ticks, wait_seconds):
                logger.info("Job %s (process group %d) stopped after %s", name, pgid, sig.name)
                return True

        logger.error("Job %s (process group %d) still runs after SIGKILL", name, pgid)
        raise SupervisorError(
            f"Job {name} (process group {pgid}) still runs {KILL_WAIT_SECONDS:g} s after "
            f"SIGKILL. Inspect it with `ps -o pid,stat,cmd -g {pgid}`."
        )

    @staticmethod
    def _wait_for_group_exit(pgid: int, start_ticks: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            _reap(pgid, start_ticks)
            if not _group_members(pgid, start_ticks):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)

    def _record_exit(
        self, name: str, record: dict[str, Any], *, stopped_by_request: bool
    ) -> JobExit:
        """Return how the run in ``record`` ended, writing exit.json on first sight.

        exit.json names the run's pid and start time, so the end of an earlier
        run is never shown for a newer one. A stop request overwrites an end
        that a concurrent status call stored a moment before.
        """
        exit_path = self.jobs_dir / name / "exit.json"
        pid, start_ticks = record["pid"], record["start_ticks"]
        stored = _read_json(exit_path)
        same_run = stored is not None and stored.get("run") == [pid, start_ticks]
        if same_run and not stopped_by_request:
            return JobExit(
                returncode=stored.get("returncode"),
                ended_at=_utc(stored.get("ended_at")) or datetime.now(timezone.utc),
                stopped_by_request=bool(stored.get("stopped_by_request")),
            )

        returncode = _reap(pid, start_ticks)
        if returncode is None and same_run:
            returncode = stored.get("returncode")
        ended_at = time.time()
        _write_json(
            exit_path,
            {
                "run": [pid, start_ticks],
                "returncode": returncode,
                "ended_at": ended_at,
                "stopped_by_request": stopped_by_request,
            },
        )
        with _children_lock:
            if returncode is not None and _children.get(pid, (None, None))[1] == start_ticks:
                del _children[pid]

        exit_info = JobExit(returncode, _utc(ended_at), stopped_by_request)
        logger.info("Job %s (pid %d) %s", name, pid, exit_info.describe())
        return exit_info

    @staticmethod
    def _rotate_log(log_path: Path) -> None:
        try:
            if log_path.stat().st_size > MAX_LOG_BYTES:
                os.replace(log_path, log_path.with_name(log_path.name + ".1"))
        except FileNotFoundError:
            pass


def default_supervisor(settings: Settings | None = None) -> Supervisor:
    """Return a supervisor for :data:`JOBS` under ``settings.jobs_dir``.

    The jobs get ``WORKBENCH_STATE_DIR`` as an absolute path, so they use the
    same state folder whatever their working folder is.
    """
    settings = settings or get_settings()
    return Supervisor(
        settings.jobs_dir, env={"WORKBENCH_STATE_DIR": str(settings.state_dir)}
    )


def start(name: str, **options: Any) -> JobStatus:
    """Start job ``name`` with the settings' supervisor; see :meth:`Supervisor.start`."""
    return default_supervisor().start(name, **options)


def stop(name: str, timeout: float = DEFAULT_STOP_TIMEOUT_SECONDS) -> JobStatus:
    """Stop job ``name`` with the settings' supervisor; see :meth:`Supervisor.stop`."""
    return default_supervisor().stop(name, timeout=timeout)


def status(name: str, log_lines: int = LOG_TAIL_LINES) -> JobStatus:
    """Return the status of job ``name``; see :meth:`Supervisor.status`."""
    return default_supervisor().status(name, log_lines)


def status_all(log_lines: int = LOG_TAIL_LINES) -> dict[str, JobStatus]:
    """Return the status of every job in :data:`JOBS`."""
    return default_supervisor().status_all(log_lines)
