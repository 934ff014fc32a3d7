"""The :class:`Supervisor`, which starts, stops and reports jobs as separate process groups.

:mod:`pipeline.supervisor` describes the state folder that this module keeps.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from pipeline.jobmetrics import read_metrics
from pipeline.processes import (
    GROUP_TERM_WAIT_SECONDS,
    KILL_WAIT_SECONDS,
    GroupStillRunningError,
    is_running,
    process_start_ticks,
    reap_child,
    stop_group,
)
from pipeline.supervisor.jobs import JOBS, JobDefinition, JobOptionsError, is_real_number
from pipeline.supervisor.state import (
    JobExit,
    JobStatus,
    read_json,
    read_tail,
    rotate_log,
    utc_datetime,
    write_json,
)

__all__ = ["DEFAULT_STOP_TIMEOUT_SECONDS", "LOG_TAIL_LINES", "Supervisor", "SupervisorError"]

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# A Spark consumer finishes its running micro-batch before it exits.
DEFAULT_STOP_TIMEOUT_SECONDS = 20.0
# Long enough for a concurrent stop with the default timeout to send both
# SIGTERMs, wait, and send SIGKILL.
LOCK_TIMEOUT_SECONDS = (
    DEFAULT_STOP_TIMEOUT_SECONDS + GROUP_TERM_WAIT_SECONDS + KILL_WAIT_SECONDS + 5.0
)
POLL_SECONDS = 0.1
LOG_TAIL_LINES = 20


class SupervisorError(RuntimeError):
    """A job could not be started or stopped."""


# Jobs that this process started: pid -> (Popen, start ticks). Keeping the
# Popen stops subprocess from reaping a job behind our back, and its poll()
# returns the same exit code however often it is called.
_children: dict[int, tuple[subprocess.Popen, int | None]] = {}
_children_lock = threading.Lock()


def _reap(pid: int, start_ticks: int | None) -> int | None:
    """Collect the exit code of ``pid`` if it is our exited child; else return None.

    Calling it again returns the same code while the job's Popen is kept.
    """
    with _children_lock:
        child = _children.get(pid)
    if child is not None and child[1] == start_ticks:
        return child[0].poll()
    # A child missing from _children was started before this module was
    # reloaded. waitpid returns its code once only.
    return reap_child(pid)


def _is_alive(pid: int, start_ticks: int | None) -> bool:
    """Return True when ``pid`` is the process that started at ``start_ticks`` and runs.

    A zombie of ours is reaped through :func:`_reap`, so its Popen keeps the exit code.
    """
    if start_ticks is None:
        return False
    return is_running(pid, start_ticks, reap=partial(_reap, start_ticks=start_ticks))


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
            rotate_log(job_dir / "output.log")
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
            write_json(job_dir / "job.json", record)
            logger.info("Started job %s with pid %d: %s", name, process.pid, shlex.join(command))
        return self.status(name)

    def stop(self, name: str, timeout: float = DEFAULT_STOP_TIMEOUT_SECONDS) -> JobStatus:
        """Stop job ``name`` and every process in its group, and return its status.

        Sends SIGTERM to the job's main process and waits up to ``timeout``
        seconds for the group to exit, then signals the rest of the group
        (see :func:`pipeline.processes.stop_group`). Stopping a job that does
        not run only returns its status.

        Raises
        ------
        JobOptionsError
            When ``name`` is unknown or ``timeout`` is negative.
        SupervisorError
            When the lock is not free in time, or the group still runs after SIGKILL.
        """
        self._definition(name)
        if not is_real_number(timeout) or not math.isfinite(timeout) or timeout < 0:
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
            started_at=utc_datetime(started_at),
            uptime_seconds=uptime,
            command=tuple(record.get("command", ())) if record else (),
            options=dict(record.get("options", {})) if record else {},
            metrics=read_metrics(metrics_path),
            log_tail=read_tail(log_path, log_lines),
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
        record = read_json(self.jobs_dir / name / "job.json")
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
        try:
            return stop_group(
                pgid, start_ticks, timeout, reap=partial(_reap, start_ticks=start_ticks)
            )
        except GroupStillRunningError:
            logger.error("Job %s (process group %d) still runs after SIGKILL", name, pgid)
            raise SupervisorError(
                f"Job {name} (process group {pgid}) still runs {KILL_WAIT_SECONDS:g} s after "
                f"SIGKILL. Inspect it with `ps -o pid,stat,cmd -g {pgid}`."
            ) from None

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
        stored = read_json(exit_path)
        same_run = stored is not None and stored.get("run") == [pid, start_ticks]
        if same_run and not stopped_by_request:
            stored_exit = JobExit(
                returncode=stored.get("returncode"),
                ended_at=utc_datetime(stored.get("ended_at")) or datetime.now(timezone.utc),
                stopped_by_request=bool(stored.get("stopped_by_request")),
            )
            if stored_exit.returncode is not None:
                return stored_exit
            # A process that is not the job's parent, such as the command
            # line's stop-all, stored this end without the exit code, which
            # only the parent can collect.
            returncode = _reap(pid, start_ticks)
            if returncode is None:
                return stored_exit
            ended_at = stored_exit.ended_at.timestamp()
            stopped_by_request = stored_exit.stopped_by_request
        else:
            returncode = _reap(pid, start_ticks)
            if returncode is None and same_run:
                returncode = stored.get("returncode")
            ended_at = time.time()

        write_json(
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

        exit_info = JobExit(returncode, utc_datetime(ended_at), stopped_by_request)
        logger.info("Job %s (pid %d) %s", name, pid, exit_info.describe())
        return exit_info
