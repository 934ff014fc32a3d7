"""Pid files that survive a reused pid, and process-group shutdown.

A pid file stores the pid and the process's start time (field 22 of
``/proc/PID/stat``, in clock ticks since boot). A pid whose start time differs
belongs to another process that reused the number, so it is not ours to stop.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

__all__ = ["process_start_ticks", "is_running", "write_pid_file", "read_live_pid", "stop_group"]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name in field 2 may contain spaces and parentheses, so split
    # after its closing parenthesis. Fields from 3 on follow.
    return raw[raw.rindex(")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    """Return the start time of ``pid`` in clock ticks since boot, or None."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_running(pid: int) -> bool:
    """Return True when ``pid`` exists and has not exited.

    An exited child that its parent has not reaped yet (state ``Z``) still
    answers signals, so it is reaped here when it is our child and counted as
    stopped either way.
    """
    fields = _stat_fields(pid)
    if fields is None:
        return False
    if fields[0] in ("Z", "X"):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def write_pid_file(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "start_ticks": process_start_ticks(pid)}))


def read_live_pid(path: Path) -> int | None:
    """Return the pid recorded in ``path`` when that same process still runs."""
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    pid = record.get("pid")
    if not isinstance(pid, int) or not is_running(pid):
        return None
    if record.get("start_ticks") != process_start_ticks(pid):
        return None
    return pid


def stop_group(pid: int, timeout: float = 20.0) -> None:
    """Send SIGTERM to the process group led by ``pid``, then SIGKILL after ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            if not is_running(pid):
                return
            time.sleep(0.1)
