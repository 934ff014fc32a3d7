"""Supervisor tests with real OS processes running a small Python job script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pipeline.processes import process_start_ticks
from pipeline.settings import get_settings
from pipeline.supervisor import (
    JOBS,
    JobDefinition,
    JobOptionsError,
    Supervisor,
    SupervisorError,
    campaign_args,
    default_supervisor,
    producer_args,
)
from pipeline.supervisor.__main__ import format_uptime, main

pytestmark = pytest.mark.timeout(60)

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# The job's behaviour is its first argument. Every mode writes a metrics file
# and prints lines to stdout and stderr, which the supervisor appends to the log.
JOB_SCRIPT = textwrap.dedent(
    """
    import json, signal, subprocess, sys, time

    mode = sys.argv[1]
    metrics_file = sys.argv[sys.argv.index("--metrics-file") + 1]
    with open(metrics_file, "w") as handle:
        json.dump({"sent": 5, "mode": mode}, handle)
    print("job started", mode, flush=True)

    if mode == "exit":
        print("step 1", flush=True)
        print("fatal: boom", file=sys.stderr, flush=True)
        sys.exit(3)
    if mode in ("spawn-child", "ignore-term"):
        child_code = "import time; time.sleep(120)"
        if mode == "ignore-term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            child_code = (
                "import signal, time; "
                "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
            )
        subprocess.Popen([sys.executable, "-c", child_code])
        print("child started", flush=True)
    for line in range(1200):
        print("line", line, flush=True)
        time.sleep(0.1)
    """
)


def group_members(pgid: int) -> list[int]:
    """Return the pids of non-zombie processes whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def processes_with_argument(argument: str) -> list[int]:
    """Return the pids of non-zombie processes that have ``argument`` on their command line."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state not in ("Z", "X") and argument.encode() in arguments:
            pids.append(int(entry.name))
    return pids


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def job_script(tmp_path: Path) -> Path:
    script = tmp_path / "job.py"
    script.write_text(JOB_SCRIPT)
    return script


@pytest.fixture
def supervisor(tmp_path: Path, job_script: Path):
    jobs = {
        mode: JobDefinition(mode, (sys.executable, str(job_script), mode))
        for mode in ("sleep", "exit", "spawn-child", "ignore-term")
    }
    supervisor = Supervisor(tmp_path / "jobs", jobs)
    yield supervisor
    for name in jobs:
        supervisor.stop(name, timeout=1)


def test_start_runs_job_and_reports_it(supervisor: Supervisor) -> None:
    status = supervisor.start("sleep")

    assert status.running
    assert status.pid is not None
    assert status.started_at is not None
    assert status.uptime_seconds is not None
    assert status.command[-2] == "--metrics-file"
    assert status.exit is None
    assert wait_until(lambda: supervisor.status("sleep").metrics.get("sent") == 5)
    assert wait_until(lambda: "line 2" in supervisor.status("sleep").log_tail)


def test_start_twice_runs_one_process(supervisor: Supervisor, job_script: Path) -> None:
    first = supervisor.start("sleep")
    second = supervisor.start("sleep")

    assert second.running
    assert second.pid == first.pid
    assert processes_with_argument(str(job_script)) == [first.pid]


def test_start_from_threads_runs_one_process(supervisor: Supervisor, job_script: Path) -> None:
    barrier = threading.Barrier(6)
    pids: list[int | None] = []
    errors: list[BaseException] = []

    def start_job() -> None:
        barrier.wait()
        try:
            pids.append(supervisor.start("sleep").pid)
        except BaseException as exc:  # Reported by the asserts below.
            errors.append(exc)

    threads = [threading.Thread(target=start_job) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(set(pids)) == 1
    assert processes_with_argument(str(job_script)) == [pids[0]]


def test_start_from_processes_runs_one_process(
    supervisor: Supervisor, job_script: Path, tmp_path: Path
) -> None:
    starter = textwrap.dedent(
        f"""
        import sys, time
        from pipeline.supervisor import JobDefinition, Supervisor
        jobs = {{"sleep": JobDefinition("sleep", (sys.executable, {str(job_script)!r}, "sleep"))}}
        supervisor = Supervisor({str(tmp_path / "jobs")!r}, jobs)
        while time.time() < float(sys.argv[1]):
            time.sleep(0.001)
        print(supervisor.start("sleep").pid)
        """
    )
    start_at = str(time.time() + 1.5)
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", starter, start_at],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=30)[0].strip() for process in starters]

    assert [process.returncode for process in starters] == [0, 0, 0]
    assert len(set(outputs)) == 1
    assert processes_with_argument(str(job_script)) == [int(outputs[0])]
    assert supervisor.status("sleep").pid == int(outputs[0])


def test_stop_terminates_whole_group(supervisor: Supervisor) -> None:
    status = supervisor.start("spawn-child")
    assert wait_until(lambda: len(group_members(status.pid)) == 2)

    stopped = supervisor.stop("spawn-child", timeout=5)

    assert group_members(status.pid) == []
    assert not stopped.running
    assert stopped.pid is None
    assert stopped.exit is not None
    assert stopped.exit.stopped_by_request
    assert stopped.exit.returncode == -15


def test_stop_kills_group_ignoring_sigterm(supervisor: Supervisor) -> None:
    status = supervisor.start("ignore-term")
    assert wait_until(lambda: "child started" in supervisor.status("ignore-term").log_tail)
    assert wait_until(lambda: len(group_members(status.pid)) == 2)

    stopped = supervisor.stop("ignore-term", timeout=0.5)

    assert group_members(status.pid) == []
    assert not stopped.running
    assert stopped.exit is not None
    assert stopped.exit.returncode == -9
    assert stopped.exit.describe() == "ended by SIGKILL, on request"


def test_stop_kills_leftovers_after_leader_died(supervisor: Supervisor) -> None:
    status = supervisor.start("spawn-child")
    assert wait_until(lambda: len(group_members(status.pid)) == 2)
    os.kill(status.pid, 9)
    assert wait_until(lambda: not supervisor.status("spawn-child").running)
    assert len(group_members(status.pid)) == 1

    stopped = supervisor.stop("spawn-child", timeout=5)

    assert group_members(status.pid) == []
    assert stopped.exit is not None
    assert stopped.exit.returncode == -9
    assert not stopped.exit.stopped_by_request


def test_stop_when_not_running_returns_status(supervisor: Supervisor) -> None:
    status = supervisor.stop("sleep")

    assert not status.running
    assert status.pid is None
    assert status.exit is None
    assert status.log_tail == ()


def test_job_exiting_on_its_own_shows_stopped(supervisor: Supervisor) -> None:
    supervisor.start("exit")

    assert wait_until(lambda: not supervisor.status("exit").running)
    status = supervisor.status("exit")
    assert status.pid is None
    assert status.uptime_seconds is None
    assert status.log_tail[-2:] == ("step 1", "fatal: boom")
    assert status.exit is not None
    assert status.exit.returncode == 3
    assert not status.exit.stopped_by_request
    assert status.exit.describe() == "exited with code 3"
    assert status.metrics["mode"] == "exit"


def test_exit_code_survives_new_supervisor(supervisor: Supervisor, tmp_path: Path) -> None:
    supervisor.start("exit")
    assert wait_until(lambda: not supervisor.status("exit").running)

    status = Supervisor(tmp_path / "jobs", supervisor.jobs).status("exit")

    assert status.exit is not None
    assert status.exit.returncode == 3


def test_restart_after_exit_starts_new_run(supervisor: Supervisor) -> None:
    supervisor.start("exit")
    assert wait_until(lambda: not supervisor.status("exit").running)
    first_log_size = supervisor.status("exit").log_path.stat().st_size

    supervisor.start("exit")
    assert wait_until(lambda: not supervisor.status("exit").running)

    status = supervisor.status("exit")
    assert status.log_path.stat().st_size > first_log_size
    assert status.exit is not None
    assert status.exit.returncode == 3


def test_log_tail_returns_requested_lines(supervisor: Supervisor) -> None:
    supervisor.start("sleep")
    assert wait_until(lambda: "line 3" in supervisor.status("sleep").log_tail)

    assert len(supervisor.status("sleep", log_lines=2).log_tail) == 2
    assert supervisor.status("sleep", log_lines=0).log_tail == ()


def test_stale_pid_file_shows_stopped(supervisor: Supervisor, tmp_path: Path) -> None:
    exited = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    start_ticks = process_start_ticks(exited.pid)
    exited.wait()
    job_dir = tmp_path / "jobs" / "sleep"
    job_dir.mkdir(parents=True)
    (job_dir / "job.json").write_text(
        json.dumps({"pid": exited.pid, "start_ticks": start_ticks, "started_at": time.time()})
    )

    status = supervisor.status("sleep")

    assert not status.running
    assert status.pid is None
    assert status.exit is not None
    assert status.exit.returncode is None
    assert status.exit.describe() == "ended with an unknown exit code"


def test_reused_pid_is_not_the_job(supervisor: Supervisor, tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        job_dir = tmp_path / "jobs" / "sleep"
        job_dir.mkdir(parents=True)
        (job_dir / "job.json").write_text(
            json.dumps({"pid": other.pid, "start_ticks": process_start_ticks(other.pid) - 1})
        )

        assert not supervisor.status("sleep").running
        supervisor.stop("sleep", timeout=1)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize(
    "content",
    ["not json", json.dumps({"pid": "12"}), json.dumps({"pid": 0}), json.dumps([1, 2])],
)
def test_unreadable_pid_file_shows_stopped(
    supervisor: Supervisor, tmp_path: Path, content: str
) -> None:
    job_dir = tmp_path / "jobs" / "sleep"
    job_dir.mkdir(parents=True)
    (job_dir / "job.json").write_text(content)

    assert not supervisor.status("sleep").running
    assert not supervisor.stop("sleep", timeout=1).running


def test_start_missing_command_raises(tmp_path: Path) -> None:
    jobs = {"broken": JobDefinition("broken", (str(tmp_path / "no-such-program"),))}
    supervisor = Supervisor(tmp_path / "jobs", jobs)

    with pytest.raises(SupervisorError, match="Starting job broken failed"):
        supervisor.start("broken")
    assert not supervisor.status("broken").running


def test_unknown_job_raises(supervisor: Supervisor) -> None:
    with pytest.raises(JobOptionsError, match="Unknown job 'nope'. The jobs are sleep, exit"):
        supervisor.start("nope")
    with pytest.raises(JobOptionsError, match="Unknown job"):
        supervisor.status("nope")


def test_options_on_job_without_options_raise(supervisor: Supervisor) -> None:
    with pytest.raises(JobOptionsError, match="Job sleep takes no options, got rate"):
        supervisor.start("sleep", rate=5)


@pytest.mark.parametrize("timeout", [-1, float("inf"), "5"])
def test_stop_invalid_timeout_raises(supervisor: Supervisor, timeout) -> None:
    with pytest.raises(JobOptionsError, match="timeout must be a number of seconds >= 0"):
        supervisor.stop("sleep", timeout=timeout)


def test_producer_args_valid_options() -> None:
    args = producer_args("producer", {"rate": 50, "fraud_ratio": 0.25, "seed": 7})

    assert args == ["--rate", "50", "--fraud-ratio", "0.25", "--seed", "7"]
    assert producer_args("producer", {}) == []
    assert producer_args("producer", {"rate": 0, "seed": None}) == ["--rate", "0"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate": -1}, r"rate must be a number of messages per second >= 0, got -1\."),
        ({"rate": float("nan")}, "rate must be a number"),
        ({"rate": "10"}, "rate must be a number"),
        ({"rate": True}, "rate must be a number"),
        ({"fraud_ratio": 1.5}, r"fraud_ratio must be a number from 0 to 1, got 1\.5\."),
        ({"fraud_ratio": -0.1}, "fraud_ratio must be a number from 0 to 1"),
        ({"seed": 1.5}, r"seed must be a whole number, got 1\.5\."),
        ({"seed": "7"}, "seed must be a whole number"),
        ({"seed": False}, "seed must be a whole number"),
        ({"speed": 3}, "Job producer has no option speed. The options are rate"),
    ],
)
def test_producer_args_invalid_options_raise(options: dict, message: str) -> None:
    with pytest.raises(JobOptionsError, match=message):
        producer_args("producer", options)


def test_campaign_args_valid_options() -> None:
    args = campaign_args("campaign", {"pattern": "card_testing", "count": 50, "seed": 3})

    assert args == ["--campaign", "card_testing", "--count", "50", "--seed", "3"]
    assert campaign_args("campaign", {"pattern": "geo_jump"}) == ["--campaign", "geo_jump"]
    assert campaign_args("campaign", {"pattern": "geo_jump", "count": None, "seed": None}) == [
        "--campaign",
        "geo_jump",
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, r"pattern must be one of high_amount, geo_jump, new_device, card_testing, "
             r"account_takeover, got None\."),
        ({"pattern": "phishing"}, r"pattern must be one of .*, got 'phishing'\."),
        ({"pattern": "geo_jump", "count": 0}, r"count must be a whole number of messages from 1 "
                                              r"to 10000, got 0\."),
        ({"pattern": "geo_jump", "count": 10_001}, "count must be a whole number of messages"),
        ({"pattern": "geo_jump", "count": 2.5}, "count must be a whole number of messages"),
        ({"pattern": "geo_jump", "count": True}, "count must be a whole number of messages"),
        ({"pattern": "geo_jump", "seed": "7"}, "seed must be a whole number, got '7'"),
        ({"pattern": "geo_jump", "rate": 5}, "Job campaign has no option rate. The options are "
                                             "pattern, count and seed."),
    ],
)
def test_campaign_args_invalid_options_raise(options: dict, message: str) -> None:
    with pytest.raises(JobOptionsError, match=message):
        campaign_args("campaign", options)


def test_default_jobs_run_pipeline_modules() -> None:
    assert list(JOBS) == ["producer", "consumer-transactions", "consumer-frauds", "campaign"]
    assert JOBS["producer"].command == (sys.executable, "-m", "pipeline.producer")
    assert JOBS["consumer-frauds"].command[-2:] == ("pipeline.consumers", "frauds")
    assert JOBS["consumer-transactions"].command[-1] == "transactions"
    assert JOBS["campaign"].command == (sys.executable, "-m", "pipeline.producer")
    assert JOBS["campaign"].options_to_args is campaign_args


def test_default_supervisor_uses_settings_jobs_dir(tmp_path: Path) -> None:
    settings = get_settings({"WORKBENCH_STATE_DIR": str(tmp_path)})

    supervisor = default_supervisor(settings)

    assert supervisor.jobs_dir == tmp_path / "jobs"
    assert supervisor.status("producer").log_path == tmp_path / "jobs" / "producer" / "output.log"


# Command line: python -m pipeline.supervisor status | stop-all


def run_cli(state_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run the supervisor's command line in a new process, as ``make stop`` does."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.supervisor", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "WORKBENCH_STATE_DIR": str(state_dir), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def workbench_supervisor(tmp_path: Path, job_script: Path):
    """A supervisor under the state folder that ``run_cli`` uses, running the test
    job under the real job names, as the workbench page would start the real jobs."""
    jobs = {name: JobDefinition(name, (sys.executable, str(job_script), "spawn-child")) for name in JOBS}
    supervisor = Supervisor(tmp_path / "state" / "jobs", jobs)
    yield supervisor
    for name in jobs:
        supervisor.stop(name, timeout=1)


def test_cli_status_prints_line_per_job(
    supervisor: Supervisor, capsys: pytest.CaptureFixture[str]
) -> None:
    started = supervisor.start("sleep")

    assert main(["status"], supervisor=supervisor) == 0

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(supervisor.jobs)
    assert lines[0].split()[:4] == ["sleep", "running", "pid", str(started.pid)]
    assert lines[0].split()[4] == "uptime"
    assert lines[0].split()[5].startswith("0:00:")
    for line in lines[1:]:
        assert line.split()[1:] == ["stopped", "pid", "-", "uptime", "-"]


def test_cli_stop_all_stops_every_job(
    supervisor: Supervisor, capsys: pytest.CaptureFixture[str]
) -> None:
    sleeping = supervisor.start("sleep")
    spawning = supervisor.start("spawn-child")
    assert wait_until(lambda: len(group_members(spawning.pid)) == 2)

    assert main(["stop-all", "--timeout", "5"], supervisor=supervisor) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"sleep: stopped (pid {sleeping.pid})",
        "exit: not running",
        f"spawn-child: stopped (pid {spawning.pid})",
        "ignore-term: not running",
    ]
    assert group_members(sleeping.pid) == []
    assert group_members(spawning.pid) == []
    for name in ("sleep", "spawn-child"):
        status = supervisor.status(name)
        assert not status.running
        assert status.exit is not None
        assert status.exit.describe() == "ended by SIGTERM, on request"


def test_cli_stop_all_in_other_process_stops_jobs(
    workbench_supervisor: Supervisor, tmp_path: Path
) -> None:
    started = workbench_supervisor.start("producer")
    assert wait_until(lambda: len(group_members(started.pid)) == 2)

    result = run_cli(tmp_path / "state", "stop-all")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"producer: stopped (pid {started.pid})",
        "consumer-transactions: not running",
        "consumer-frauds: not running",
        "campaign: not running",
    ]
    assert result.stderr == ""
    assert group_members(started.pid) == []


def test_cli_stop_in_other_process_keeps_exit_code(
    workbench_supervisor: Supervisor, tmp_path: Path
) -> None:
    started = workbench_supervisor.start("producer")
    assert wait_until(lambda: len(group_members(started.pid)) == 2)

    assert run_cli(tmp_path / "state", "stop-all").returncode == 0

    # Only this process, the job's parent, can collect the exit code that the
    # command line process stored as unknown.
    status = workbench_supervisor.status("producer")
    assert not status.running
    assert status.exit is not None
    assert status.exit.returncode == -15
    assert status.exit.stopped_by_request
    stored = json.loads((status.log_path.parent / "exit.json").read_text())
    assert stored["returncode"] == -15
    assert stored["stopped_by_request"] is True


def test_cli_status_in_other_process_shows_job(
    workbench_supervisor: Supervisor, tmp_path: Path
) -> None:
    started = workbench_supervisor.start("producer")

    result = run_cli(tmp_path / "state", "status")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(JOBS)
    assert lines[0].split()[1:4] == ["running", "pid", str(started.pid)]
    assert lines[1].split()[1:] == ["stopped", "pid", "-", "uptime", "-"]
    assert workbench_supervisor.status("producer").running


def test_cli_nothing_running_exits_0(tmp_path: Path) -> None:
    stop_result = run_cli(tmp_path / "state", "stop-all")
    status_result = run_cli(tmp_path / "state", "status")

    assert stop_result.returncode == 0, stop_result.stderr
    assert stop_result.stdout.splitlines() == [f"{name}: not running" for name in JOBS]
    assert status_result.returncode == 0, status_result.stderr
    assert len(status_result.stdout.splitlines()) == len(JOBS)


def test_cli_unusable_jobs_dir_exits_1(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "jobs").write_text("a file where the jobs folder should be")

    stop_result = run_cli(state_dir, "stop-all")
    status_result = run_cli(state_dir, "status")

    assert stop_result.returncode == 1
    assert stop_result.stdout == ""
    failures = stop_result.stderr.splitlines()
    assert [line.split(":")[0] for line in failures] == list(JOBS)
    assert all("stop failed: [Errno 20] Not a directory" in line for line in failures)
    assert status_result.returncode == 1
    assert status_result.stderr.startswith("supervisor status failed: [Errno 20] Not a directory")
    assert "Traceback" not in stop_result.stderr + status_result.stderr


def test_cli_invalid_settings_exits_1(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "state", "status", WORKBENCH_KAFKA_PORT="ninety")

    assert result.returncode == 1
    assert result.stderr.startswith("supervisor status failed: ")
    assert "WORKBENCH_KAFKA_PORT" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("timeout", ["-1", "soon", "inf"])
def test_cli_invalid_timeout_exits_2(tmp_path: Path, timeout: str) -> None:
    result = run_cli(tmp_path / "state", "stop-all", "--timeout", timeout)

    assert result.returncode == 2
    assert "argument --timeout: expected a number of seconds" in result.stderr


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (0.4, "0:00:00"), (3725.9, "1:02:05"), (90061, "1 day, 1:01:01")],
)
def test_format_uptime(seconds: float | None, text: str) -> None:
    assert format_uptime(seconds) == text


def test_failure_line_prefers_last_error() -> None:
    from pipeline.supervisor.state import failure_line

    lines = [
        "2026-12-04 10:00:00,000 INFO pipeline.consumers.job: batch_id=3 sink=transactions rows=10",
        "2026-12-04 10:00:01,000 ERROR pipeline.consumers.job: query failed: id=1 run_id=2",
        "Traceback (most recent call last):",
        '  File "job.py", line 9, in run',
        "",
    ]
    assert failure_line(lines) == lines[1]
    assert failure_line(["starting", "Kafka is not reachable at 127.0.0.1:1"]) == "Kafka is not reachable at 127.0.0.1:1"
    assert failure_line(["", "  "]) is None


def test_failure_line_skips_spark_plan_and_wrappers() -> None:
    from pipeline.supervisor.state import failure_line

    lines = [
        "2026-12-04 10:00:01,000 ERROR pipeline.consumers.job: query failed: id=1 run_id=2",
        "OverflowError: Overflow occurred in npy_datetimestruct_to_datetime",
        "pyspark.errors.exceptions.captured.StreamingQueryException: [STREAM_FAILED] Query terminated",
        "=== Streaming Query ===",
        "+- ~StreamingDataSourceV2ScanRelation[key#7, value#8] KafkaTable",
        "\tat org.apache.spark.sql.execution.streaming.StreamExecution.run(StreamExecution.scala:1)",
    ]
    assert failure_line(lines) == lines[1]
    assert failure_line(lines[2:]) == lines[2]
    assert failure_line(lines[3:]) is None
    assert len(failure_line(["ValueError: " + "x" * 1000])) == 300
