"""A job's state folder: JSON records, the output log, and the snapshots built from them."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "JobExit",
    "JobStatus",
    "failure_line",
    "read_json",
    "read_tail",
    "rotate_log",
    "utc_datetime",
    "write_json",
]

logger = logging.getLogger(__name__)

TAIL_READ_BYTES = 64 * 1024
# The log is rotated to output.log.1 at start once it is larger than this.
MAX_LOG_BYTES = 5 * 1024 * 1024


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
            outcome = "ended with an unknown exit code"
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

    @property
    def failed(self) -> bool:
        """True when the last run ended by itself with an error, not on request."""
        return (
            self.exit is not None
            and not self.exit.stopped_by_request
            and self.exit.returncode not in (0, None)
        )

    def failure_cause(self) -> str | None:
        """Return the line of a failed run's log that most likely names the cause, or None."""
        if not self.failed:
            return None
        return failure_line(read_tail(self.log_path, FAILURE_SCAN_LINES, FAILURE_SCAN_BYTES))


# How many of a failed job's last log lines are searched for the cause.
# Spark prints a query plan of many lines after the error itself.
FAILURE_SCAN_LINES = 2000
FAILURE_SCAN_BYTES = 1024 * 1024
MAX_CAUSE_CHARS = 300
# "OverflowError: ...", "pyspark.errors...StreamingQueryException: ...".
_EXCEPTION_LINE = re.compile(r"\b[A-Za-z_][\w.]*(Error|Exception)\b: \S")
# Exceptions that only wrap the one raised in the Python code of a job.
_WRAPPER_EXCEPTIONS = ("StreamingQueryException", "Py4JJavaError", "PythonException", "SparkException")
_LOG_ERROR = re.compile(r" (ERROR|CRITICAL) ")
# Lines of a Spark query plan or a Java stack trace.
_PLAN_PREFIXES = ("+-", ":-", ":", "|", "at ", "...", "===")


def failure_line(lines: tuple[str, ...] | list[str]) -> str | None:
    """Return the line that most likely names why a job failed.

    The last exception that is not a Spark or Py4J wrapper comes first, then
    the last wrapper, then the last ERROR log line, then the last line that
    is not part of a query plan or stack trace. Long lines are cut.
    """
    text = [line.strip() for line in lines if line.strip()]
    exceptions = [line for line in text if _EXCEPTION_LINE.search(line)]
    specific = [line for line in exceptions if not any(name in line for name in _WRAPPER_EXCEPTIONS)]
    errors = [line for line in text if _LOG_ERROR.search(line)]
    plain = [line for line in text if not line.startswith(_PLAN_PREFIXES)]
    for candidates in (specific, exceptions, errors, plain):
        if candidates:
            line = candidates[-1]
            return line if len(line) <= MAX_CAUSE_CHARS else line[: MAX_CAUSE_CHARS - 3] + "..."
    return None


def write_json(path: Path, body: dict[str, Any]) -> None:
    """Write ``body`` to ``path`` through a renamed temporary file, so readers never see half of it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(json.dumps(body))
    os.replace(temporary, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """Return the JSON object in ``path``, or None when it is missing, unreadable or not an object."""
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        logger.warning("Ignoring unreadable job state file %s: %s", path, exc)
        return None
    return body if isinstance(body, dict) else None


def read_tail(path: Path, lines: int, max_bytes: int = TAIL_READ_BYTES) -> tuple[str, ...]:
    """Return the last ``lines`` lines of ``path`` that fit in its last ``max_bytes`` bytes."""
    if lines <= 0:
        return ()
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            offset = max(0, size - max_bytes)
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return ()
    text_lines = data.decode("utf-8", errors="replace").splitlines()
    if offset > 0 and text_lines:
        text_lines = text_lines[1:]  # The first line is cut at the read offset.
    return tuple(text_lines[-lines:])


def utc_datetime(timestamp: float | None) -> datetime | None:
    """Convert a Unix timestamp to an aware UTC datetime, keeping None as None."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


def rotate_log(log_path: Path) -> None:
    """Rename ``log_path`` to ``<name>.1`` when it is larger than 5 MiB."""
    try:
        if log_path.stat().st_size > MAX_LOG_BYTES:
            os.replace(log_path, log_path.with_name(log_path.name + ".1"))
    except FileNotFoundError:
        pass
