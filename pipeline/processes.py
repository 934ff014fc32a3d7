"""Process helpers read from /proc: start times, zombies, pid files and group stop.

A pid is trusted only together with the process start time (field 22 of
``/proc/PID/stat``, clock ticks since boot). A pid whose start time differs
belongs to another process that reused the number, so it is not ours to stop.

waitpid(2) returns a child's exit status once only. The functions that may
reap a zombie therefore take a ``reap`` function. The default,
:func:`reap_child`, collects the status and returns it to a caller that may
ignore it. A caller that owns a :class:`subprocess.Popen` for the pid, or
needs the exit code later, passes a function built on ``Popen.poll()``
instead, so that Popen keeps the code. Linux only.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "KILL_WAIT_SECONDS",
    "GroupStillRunningError",
    "Reaper",
    "group_members",
    "is_running",
    "process_start_ticks",
    "read_live_pid",
    "read_pid_file",
    "reap_child",
    "stop_group",
    "write_pid_file",
]

logger = logging.getLogger(__name__)

KILL_WAIT_SECONDS = 5.0
# Members left after the leader exited get this long to follow its SIGTERM.
GROUP_TERM_WAIT_SECONDS = 5.0
POLL_SECONDS = 0.1

# Indexes into /proc/PID/stat split after the command name, where the state
# (field 3 in proc(5)) is index 0, the process group 2 and the start time 19.
_STATE_INDEX = 0
_PGRP_INDEX = 2
_STARTTIME_INDEX = 19

Reaper = Callable[[int], object]
"""A function that collects the exit status of an exited child, given its pid."""


class GroupStillRunningError(RuntimeError):
    """A process group still has live members after SIGKILL."""


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


def reap_child(pid: int) -> int | None:
    """Collect the exit code of ``pid`` when it is an exited child of this process.

    Returns the code as :mod:`subprocess` does (minus the signal number when a
    signal ended it), or None when ``pid`` still runs, is not a child of this
    process, or was collected before. Do not call it for a pid that a
    ``Popen`` holds, because that ``Popen`` then reports exit code 0.
    """
    try:
        reaped_pid, wait_status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        # Another process started it, so its parent or init reaps it.
        return None
    if reaped_pid == 0:
        return None
    return os.waitstatus_to_exitcode(wait_status)


def is_running(pid: int, start_ticks: int | None = None, *, reap: Reaper = reap_child) -> bool:
    """Return True when ``pid`` exists, has not exited, and started at ``start_ticks``.

    With ``start_ticks`` None, any start time matches. An exited child that
    is not reaped yet (state Z) still accepts ``os.kill(pid, 0)``, so the
    state is read from /proc instead. Such a zombie counts as stopped and is
    passed to ``reap``.
    """
    fields = _stat_fields(pid)
    if fields is None:
        return False
    if start_ticks is not None and int(fields[_STARTTIME_INDEX]) != start_ticks:
        return False
    if fields[_STATE_INDEX] in ("Z", "X"):
        reap(pid)
        return False
    return True


def group_members(pgid: int, min_start_ticks: int) -> list[int]:
    """Return the live processes of group ``pgid`` that started with or after its leader.

    The start-time bound skips processes that cannot belong to the group the
    caller started. Zombies are skipped because a signal cannot stop them.
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


def stop_group(
    pgid: int,
    start_ticks: int,
    timeout: float,
    *,
    kill_timeout: float = KILL_WAIT_SECONDS,
    reap: Reaper = reap_child,
) -> bool:
    """Stop process group ``pgid``, whose leader started at ``start_ticks``.

    Sends SIGTERM to the leader and waits up to ``timeout`` seconds for every
    member that started with or after the leader to exit. Members still
    running then get SIGTERM for ``GROUP_TERM_WAIT_SECONDS``, and last SIGKILL
    with ``kill_timeout`` seconds to exit. The leader is passed to
    ``reap`` while the function waits, but it can still be a zombie on return,
    so a caller that needs its exit code collects it afterwards.

    Returns
    -------
    bool
        True when members of the group ran and have now exited. False when
        none ran, when the leader's pid now belongs to another process, or
        when ``pgid`` is this process's own group, which is never signalled.

    Raises
    ------
    GroupStillRunningError
        When members still run ``kill_timeout`` seconds after SIGKILL.
    """
    if pgid == os.getpgrp():
        logger.error("Not signalling process group %d: it is this process's own group", pgid)
        return False
    leader_ticks = process_start_ticks(pgid)
    if leader_ticks is not None and leader_ticks != start_ticks:
        # The kernel reused the pid, which it does only after the whole
        # process group that the pid led is gone.
        return False
    if not group_members(pgid, start_ticks):
        reap(pgid)
        return False

    # The leader alone gets the first SIGTERM, so that it can shut down its
    # children in order: a Spark driver stops its query before its JVM ends.
    steps = (
        (os.kill, "process", signal.SIGTERM, timeout),
        (os.killpg, "process group", signal.SIGTERM, GROUP_TERM_WAIT_SECONDS),
        (os.killpg, "process group", signal.SIGKILL, kill_timeout),
    )
    for send, target, sig, wait_seconds in steps:
        logger.info("Sending %s to %s %d", sig.name, target, pgid)
        try:
            send(pgid, sig)
        except ProcessLookupError:
            if send is os.kill:
                continue
            reap(pgid)
            return True
        # Once the leader is gone, no one passes its SIGTERM on, so waiting
        # longer for the rest of the group would only delay the next step.
        leader_only = send is os.kill
        if _wait_for_group_exit(pgid, start_ticks, wait_seconds, reap, leader_only):
            logger.info("Process group %d stopped after %s to the %s", pgid, sig.name, target)
            return True

    raise GroupStillRunningError(
        f"Process group {pgid} still runs {kill_timeout:g} s after SIGKILL."
    )


def _wait_for_group_exit(
    pgid: int, start_ticks: int, timeout: float, reap: Reaper, leader_only: bool = False
) -> bool:
    """Wait until every member of the group has exited.

    Returns False on timeout, or with ``leader_only`` as soon as the leader
    has exited while other members still run.
    """
    deadline = time.monotonic() + timeout
    while True:
        reap(pgid)
        if not group_members(pgid, start_ticks):
            return True
        if leader_only and not is_running(pgid, start_ticks, reap=reap):
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def write_pid_file(path: Path, pid: int) -> None:
    """Write ``pid`` and its start time to ``path`` as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "start_ticks": process_start_ticks(pid)}))


def read_pid_file(path: Path) -> tuple[int, int] | None:
    """Return the pid and start ticks stored in ``path``, or None when it is missing or invalid."""
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict):
        return None
    pid = record.get("pid")
    start_ticks = record.get("start_ticks")
    # pid 0, 1 and negative pids would make killpg signal far more than the process.
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        return None
    if not isinstance(start_ticks, int) or isinstance(start_ticks, bool):
        return None
    return pid, start_ticks


def read_live_pid(path: Path) -> int | None:
    """Return the pid recorded in ``path`` when that same process still runs."""
    record = read_pid_file(path)
    if record is None or not is_running(*record):
        return None
    return record[0]
