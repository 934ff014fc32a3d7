"""Start, stop and report the pipeline's jobs as separate OS processes.

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

``python -m pipeline.supervisor status`` and ``stop-all`` do the same from a
shell. The job table is in :mod:`pipeline.supervisor.jobs`, the state files
in :mod:`pipeline.supervisor.state` and the :class:`Supervisor` in
:mod:`pipeline.supervisor.control`.
"""

from __future__ import annotations

from typing import Any

from pipeline.settings import Settings, get_settings
from pipeline.supervisor.control import (
    DEFAULT_STOP_TIMEOUT_SECONDS,
    LOG_TAIL_LINES,
    Supervisor,
    SupervisorError,
)
from pipeline.supervisor.jobs import (
    JOBS,
    LONG_RUNNING_JOBS,
    JobDefinition,
    JobOptionsError,
    campaign_args,
    producer_args,
)
from pipeline.supervisor.state import JobExit, JobStatus

__all__ = [
    "JOBS",
    "LONG_RUNNING_JOBS",
    "JobDefinition",
    "JobExit",
    "JobOptionsError",
    "JobStatus",
    "Supervisor",
    "SupervisorError",
    "campaign_args",
    "default_supervisor",
    "producer_args",
    "start",
    "status",
    "status_all",
    "stop",
]


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
