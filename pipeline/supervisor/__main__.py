"""Command line: ``python -m pipeline.supervisor status | stop-all``.

``status`` prints one line per job: name, running or stopped, pid and uptime.
``stop-all`` stops every job in the job table whose state is under the
settings' state folder, which is what ``make stop`` runs before it stops the
local services. Both exit with 0 on success and 1 on an error.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from datetime import timedelta

from pipeline.settings import SettingsError
from pipeline.supervisor import (
    JobOptionsError,
    JobStatus,
    Supervisor,
    SupervisorError,
    default_supervisor,
)
from pipeline.supervisor.control import DEFAULT_STOP_TIMEOUT_SECONDS


def format_uptime(seconds: float | None) -> str:
    """Format an uptime in seconds as ``H:MM:SS``, with days in front when there are any.

    None, the uptime of a stopped job, becomes ``-``.
    """
    if seconds is None:
        return "-"
    return str(timedelta(seconds=int(seconds)))


def format_status_line(job: JobStatus, name_width: int) -> str:
    """Return one ``status`` line: name, running or stopped, pid and uptime."""
    state = "running" if job.running else "stopped"
    pid = "-" if job.pid is None else str(job.pid)
    return f"{job.name:<{name_width}}  {state:<7}  pid {pid:<7}  uptime {format_uptime(job.uptime_seconds)}"


def print_status(supervisor: Supervisor) -> int:
    """Print one line per job and return the exit code."""
    name_width = max((len(name) for name in supervisor.jobs), default=0)
    for job in supervisor.status_all(log_lines=0).values():
        print(format_status_line(job, name_width))
    return 0


def stop_all(supervisor: Supervisor, timeout: float) -> int:
    """Stop every job, print what happened to each, and return the exit code.

    The loop goes on past a job that fails to stop, and the exit code is then 1.
    """
    failures = 0
    for name in supervisor.jobs:
        try:
            before = supervisor.status(name, log_lines=0)
            supervisor.stop(name, timeout=timeout)
        except (SupervisorError, OSError) as exc:
            print(f"{name}: stop failed: {exc}", file=sys.stderr)
            failures += 1
            continue
        if before.running:
            print(f"{name}: stopped (pid {before.pid})")
        else:
            print(f"{name}: not running")
    return 1 if failures else 0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.supervisor",
        description="Report or stop the producer and consumer jobs that the workbench started.",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log each signal and job exit to stderr"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("status", help="print one line per job: name, state, pid, uptime")
    stop_parser = commands.add_parser("stop-all", help="stop every job and the processes it started")
    stop_parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_STOP_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=(
            "seconds to wait after SIGTERM before sending SIGKILL to a job "
            f"(default {DEFAULT_STOP_TIMEOUT_SECONDS:g})"
        ),
    )
    return parser


def main(argv: list[str] | None = None, supervisor: Supervisor | None = None) -> int:
    """Run the command line and return its exit code.

    ``supervisor`` replaces the settings' supervisor, for tests with their own job table.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    try:
        supervisor = supervisor or default_supervisor()
        if args.command == "status":
            return print_status(supervisor)
        return stop_all(supervisor, args.timeout)
    except (SettingsError, JobOptionsError, SupervisorError, OSError) as exc:
        print(f"supervisor {args.command} failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
