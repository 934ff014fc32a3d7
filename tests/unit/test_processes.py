"""Tests of pipeline.processes with real child and grandchild processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.processes import (
    group_members,
    is_running,
    process_start_ticks,
    read_live_pid,
    read_pid_file,
    reap_child,
    stop_group,
    write_pid_file,
)

pytestmark = pytest.mark.timeout(60)

# Starts a grandchild in the same process group, prints its pid, then sleeps.
# With "ignore-term" both ignore SIGTERM, so only SIGKILL stops them.
GROUP_LEADER_SCRIPT = textwrap.dedent(
    """
    import signal, subprocess, sys, time

    child_code = "import time; time.sleep(120)"
    if sys.argv[1] == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child_code = (
            "import signal, time; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
        )
    grandchild = subprocess.Popen([sys.executable, "-c", child_code])
    print(grandchild.pid, flush=True)
    time.sleep(120)
    """
)


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def process_state(pid: int) -> str | None:
    """Return the state letter of ``pid`` from /proc, such as R, S or Z, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return raw[raw.rindex(")") + 2 :].split()[0]


def spawn_without_popen(code: str) -> int:
    """Start ``python -c code`` as a child that no subprocess.Popen tracks, and return its pid.

    Popen would reap the child on its own, so the tests that check reaping use
    a bare posix_spawn child.
    """
    return os.posix_spawn(sys.executable, [sys.executable, "-c", code], dict(os.environ))


def ignore_reap(pid: int) -> None:
    """A reap function that leaves a zombie alone."""


@pytest.fixture
def sleeper():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


@pytest.fixture
def group_leader(tmp_path: Path):
    """Start a group leader with a grandchild; yield (Popen, grandchild pid) for a mode."""
    script = tmp_path / "leader.py"
    script.write_text(GROUP_LEADER_SCRIPT)
    started: list[subprocess.Popen] = []

    def start(mode: str = "plain") -> tuple[subprocess.Popen, int]:
        process = subprocess.Popen(
            [sys.executable, str(script), mode],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(process)
        grandchild_pid = int(process.stdout.readline())
        return process, grandchild_pid

    yield start
    for process in started:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
        process.stdout.close()


def test_process_start_ticks_of_child(sleeper: subprocess.Popen) -> None:
    ticks = process_start_ticks(sleeper.pid)

    assert isinstance(ticks, int)
    assert ticks >= process_start_ticks(os.getpid())
    assert process_start_ticks(sleeper.pid) == ticks


def test_process_start_ticks_gone_is_none() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()

    assert process_start_ticks(process.pid) is None


def test_is_running_checks_start_ticks(sleeper: subprocess.Popen) -> None:
    ticks = process_start_ticks(sleeper.pid)

    assert is_running(sleeper.pid)
    assert is_running(sleeper.pid, ticks)
    # Another start time means the kernel gave the pid to another process.
    assert not is_running(sleeper.pid, ticks - 1)
    assert not is_running(sleeper.pid, ticks + 1)
    assert sleeper.poll() is None


def test_is_running_reaps_zombie_as_stopped() -> None:
    pid = spawn_without_popen("raise SystemExit(7)")
    assert wait_until(lambda: process_state(pid) == "Z")

    assert not is_running(pid)

    assert process_state(pid) is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_is_running_passes_zombie_to_reap() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(7)"])
    assert wait_until(lambda: process_state(process.pid) == "Z")
    reaped: list[int] = []

    def reap_with_popen(pid: int) -> int | None:
        reaped.append(pid)
        return process.poll()

    assert not is_running(process.pid, reap=reap_with_popen)

    assert reaped == [process.pid]
    assert process.returncode == 7
    assert process_state(process.pid) is None


def test_is_running_ignore_reap_keeps_zombie() -> None:
    pid = spawn_without_popen("raise SystemExit(4)")
    assert wait_until(lambda: process_state(pid) == "Z")

    assert not is_running(pid, reap=ignore_reap)

    assert process_state(pid) == "Z"
    assert reap_child(pid) == 4


@pytest.mark.parametrize(
    ("code", "returncode"),
    [("raise SystemExit(7)", 7), ("pass", 0), ("import os; os.kill(os.getpid(), 9)", -9)],
)
def test_reap_child_returns_exit_code_once(code: str, returncode: int) -> None:
    pid = spawn_without_popen(code)
    assert wait_until(lambda: process_state(pid) == "Z")

    assert reap_child(pid) == returncode
    assert reap_child(pid) is None


def test_reap_child_running_or_not_ours_is_none() -> None:
    pid = spawn_without_popen("import time; time.sleep(60)")
    try:
        assert reap_child(pid) is None
        assert is_running(pid)
        assert reap_child(os.getppid()) is None
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_stop_group_kills_grandchild(group_leader) -> None:
    leader, grandchild = group_leader()
    leader_ticks = process_start_ticks(leader.pid)
    grandchild_ticks = process_start_ticks(grandchild)
    assert sorted(group_members(leader.pid, leader_ticks)) == sorted([leader.pid, grandchild])

    stopped = stop_group(leader.pid, leader_ticks, timeout=5, reap=lambda pid: leader.poll())

    assert stopped
    assert group_members(leader.pid, leader_ticks) == []
    assert not is_running(grandchild, grandchild_ticks, reap=ignore_reap)
    assert leader.wait(timeout=5) == -signal.SIGTERM


def test_stop_group_sends_sigkill_after_timeout(group_leader) -> None:
    leader, grandchild = group_leader("ignore-term")
    leader_ticks = process_start_ticks(leader.pid)
    grandchild_ticks = process_start_ticks(grandchild)

    started = time.monotonic()
    stopped = stop_group(leader.pid, leader_ticks, timeout=0.5, reap=lambda pid: leader.poll())

    assert stopped
    assert time.monotonic() - started >= 0.5
    assert group_members(leader.pid, leader_ticks) == []
    assert not is_running(grandchild, grandchild_ticks, reap=ignore_reap)
    assert leader.wait(timeout=5) == -signal.SIGKILL


def test_stop_group_reused_pid_is_left_running(group_leader) -> None:
    leader, grandchild = group_leader()
    leader_ticks = process_start_ticks(leader.pid)

    assert not stop_group(leader.pid, leader_ticks - 1, timeout=1)

    assert leader.poll() is None
    assert is_running(grandchild)


def test_stop_group_already_exited_returns_false() -> None:
    pid = spawn_without_popen("import os; os.setsid()")
    assert wait_until(lambda: process_state(pid) == "Z")
    # A zombie keeps its start time in /proc until it is reaped.
    ticks = process_start_ticks(pid)

    assert not stop_group(pid, ticks, timeout=1)

    assert process_state(pid) is None


def test_stop_group_never_signals_own_group() -> None:
    own_group = os.getpgrp()

    assert not stop_group(own_group, process_start_ticks(own_group) or 0, timeout=0)


def test_pid_file_round_trip(tmp_path: Path, sleeper: subprocess.Popen) -> None:
    path = tmp_path / "run" / "service.pid"

    write_pid_file(path, sleeper.pid)

    assert read_pid_file(path) == (sleeper.pid, process_start_ticks(sleeper.pid))
    assert read_live_pid(path) == sleeper.pid
    sleeper.kill()
    sleeper.wait()
    assert read_live_pid(path) is None


def test_read_live_pid_reused_pid_is_none(tmp_path: Path, sleeper: subprocess.Popen) -> None:
    path = tmp_path / "service.pid"
    ticks = process_start_ticks(sleeper.pid)
    path.write_text(json.dumps({"pid": sleeper.pid, "start_ticks": ticks - 1}))

    assert read_live_pid(path) is None
    assert sleeper.poll() is None


def test_read_live_pid_reaps_exited_child(tmp_path: Path) -> None:
    pid = spawn_without_popen("import time; time.sleep(0.3)")
    path = tmp_path / "service.pid"
    write_pid_file(path, pid)
    assert read_live_pid(path) == pid
    assert wait_until(lambda: process_state(pid) == "Z")

    assert read_live_pid(path) is None

    assert process_state(pid) is None


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps([1, 2]),
        json.dumps({"pid": "12", "start_ticks": 5}),
        json.dumps({"pid": 1, "start_ticks": 5}),
        json.dumps({"pid": True, "start_ticks": 5}),
        json.dumps({"pid": 4242}),
        json.dumps({"pid": 4242, "start_ticks": None}),
    ],
)
def test_read_pid_file_invalid_is_none(tmp_path: Path, content: str) -> None:
    path = tmp_path / "service.pid"
    path.write_text(content)

    assert read_pid_file(path) is None
    assert read_live_pid(path) is None


def test_read_pid_file_missing_is_none(tmp_path: Path) -> None:
    assert read_pid_file(tmp_path / "missing.pid") is None
    assert read_live_pid(tmp_path / "missing.pid") is None


LEADER_FIRST_SCRIPT = textwrap.dedent(
    """
    import signal, subprocess, sys, time

    # The child records a SIGTERM that reaches it directly; its leader stops
    # it with SIGUSR1 instead, as a graceful parent would shut a child down.
    child_code = (
        "import signal, sys, time\\n"
        "def on_term(signum, frame):\\n"
        f"    open({sys.argv[1]!r}, 'w').write('child got SIGTERM')\\n"
        "    sys.exit(1)\\n"
        "signal.signal(signal.SIGTERM, on_term)\\n"
        "signal.signal(signal.SIGUSR1, lambda signum, frame: sys.exit(0))\\n"
        "time.sleep(120)\\n"
    )
    child = subprocess.Popen([sys.executable, "-c", child_code])

    def on_term(signum, frame):
        child.send_signal(signal.SIGUSR1)
        child.wait()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    time.sleep(0.5)
    print("ready", flush=True)
    time.sleep(120)
    """
)


def test_stop_group_signals_leader_before_group(tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    leader = subprocess.Popen(
        [sys.executable, "-c", LEADER_FIRST_SCRIPT, str(report)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert leader.stdout.readline().strip() == "ready"
        leader_ticks = process_start_ticks(leader.pid)
        assert wait_until(lambda: len(group_members(leader.pid, leader_ticks)) == 2)

        stopped = stop_group(leader.pid, leader_ticks, timeout=10, reap=lambda pid: leader.poll())

        assert stopped
        assert not report.exists(), report.read_text()
        assert leader.wait(timeout=5) == 0
        assert group_members(leader.pid, leader_ticks) == []
    finally:
        if leader.poll() is None:
            os.killpg(leader.pid, signal.SIGKILL)
            leader.wait()
