"""Measure how many transactions per second the simulator makes in ``--stdout`` mode on one core.

Usage::

    python bench/generator_throughput.py [--count N] [--repeats R] [--cpu C]

Two measurements, each repeated ``--repeats`` times on CPU ``--cpu``:

``cli``
    ``python -m pipeline.producer --stdout --count N --seed 1 --start-time ...``
    as a subprocess pinned with ``taskset -c C`` (unpinned when taskset is
    missing), its stdout sent to ``/dev/null``. The figure is the
    ``rate_per_s`` of its summary line, which times generation and writing
    and leaves out start-up (building the population).
``in_process``
    The same path in this process, pinned with ``os.sched_setaffinity``:
    :class:`~pipeline.simulator.TransactionGenerator` into
    :class:`~pipeline.producer.StdoutSink` on ``/dev/null``. Besides wall
    time, it reports messages per CPU second (``time.process_time``), which
    other load on a shared machine slows less.

The baseline is the serialisation alone: one fixed message encoded and
written the same way, N times, in this process. ``ratio`` is the in-process
generator's rate over the baseline's, so a slower or busier machine moves
both figures and the ratio much less.

The last line of output is one JSON object with the figures (median and
best of the repeats), the command, the date and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    # Lets `python bench/generator_throughput.py` import the project from any folder.
    sys.path.insert(0, str(PROJECT_ROOT))

from pipeline.producer import (  # noqa: E402
    COMPACT_JSON,
    UNPACED_MEAN_INTERVAL_S,
    StdoutSink,
    parse_summary,
    produce,
)
from pipeline.simulator import TransactionGenerator  # noqa: E402

DEFAULT_COUNT = 200_000
DEFAULT_REPEATS = 3
SEED = 1
START_TIME = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)
TARGET_PER_S = 50_000
CLI_TIMEOUT_S = 600

FIXED_MESSAGE = {
    "user_id": "2f1c9a56-7a2b-4c1e-9a4b-3c9d2e8f7a10",
    "transaction_id": "9b8e7d6c-5a4b-4c3d-8e2f-1a0b9c8d7e6f",
    "timestamp": "2026-01-05T10:00:00.000000+00:00",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "location": "GB",
    "transaction_location": "GB",
    "amount": 42.5,
    "device": "iPhone 15",
    "is_fraud": 0,
    "fraud_reasons": [],
    "fraud_pattern": None,
}


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--count",
        type=int,
        default=DEFAULT_COUNT,
        help=f"messages per run (default: {DEFAULT_COUNT})",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=DEFAULT_REPEATS,
        help=f"runs of each measurement (default: {DEFAULT_REPEATS})",
    )
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin the runs to (default: 0)")
    args = parser.parse_args()
    if args.count < 1 or args.repeats < 1:
        parser.error(
            f"--count and --repeats must be at least 1, got {args.count} and {args.repeats}"
        )
    allowed_cpus = sorted(os.sched_getaffinity(0))
    if args.cpu not in allowed_cpus:
        parser.error(f"--cpu must be one of the CPUs this process may use, {allowed_cpus}")
    return args


def measure_cli(count: int, cpu: int) -> float:
    """Run the producer command with ``--stdout`` and return its ``rate_per_s``."""
    command = [
        sys.executable, "-m", "pipeline.producer", "--stdout", "--count", str(count),
        "--seed", str(SEED), "--start-time", START_TIME.isoformat(),
    ]
    if shutil.which("taskset"):
        command = ["taskset", "-c", str(cpu), *command]
    with open(os.devnull, "w") as devnull:
        result = subprocess.run(
            command, cwd=PROJECT_ROOT, stdout=devnull, stderr=subprocess.PIPE, text=True,
            timeout=CLI_TIMEOUT_S, check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(
            f"The producer exited with status {result.returncode}:\n{result.stderr[-2000:]}"
        )
    return parse_summary(result.stderr.strip().splitlines()[-1])["rate_per_s"]


def measure_in_process(count: int) -> tuple[float, float]:
    """Generate and write ``count`` messages to /dev/null, and return the rates.

    Returns
    -------
    tuple of float
        Messages per wall-clock second and messages per CPU second.
    """
    generator = TransactionGenerator(
        seed=SEED, start_time=START_TIME, mean_interval_s=UNPACED_MEAN_INTERVAL_S
    )
    with open(os.devnull, "w") as devnull:
        sink = StdoutSink(devnull)
        wall, cpu = time.perf_counter(), time.process_time()
        produce(generator, sink, threading.Event(), count=count)
        sink.close()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return sink.sent / wall, sink.sent / cpu


def measure_baseline(count: int) -> float:
    """Encode and write one fixed message ``count`` times; return messages per wall second."""
    with open(os.devnull, "w") as devnull:
        started = time.perf_counter()
        for _ in range(count):
            devnull.write(COMPACT_JSON.encode(FIXED_MESSAGE) + "\n")
        return count / (time.perf_counter() - started)


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "best": round(max(values), 1)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    """Run the measurements, print them, and return the exit status."""
    args = _parse_args()
    load_before = os.getloadavg()
    os.sched_setaffinity(0, {args.cpu})

    cli, wall, cpu, baseline = [], [], [], []
    for repeat in range(args.repeats):
        try:
            cli.append(measure_cli(args.count, args.cpu))
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 1
        in_process_wall, in_process_cpu = measure_in_process(args.count)
        wall.append(in_process_wall)
        cpu.append(in_process_cpu)
        baseline.append(measure_baseline(args.count))
        print(
            f"run {repeat + 1}: cli {cli[-1]:.0f}/s, in-process {wall[-1]:.0f}/s "
            f"({cpu[-1]:.0f} per CPU second), baseline {baseline[-1]:.0f}/s"
        )

    record = {
        "benchmark": "generator_throughput",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": {
            "cpu_model": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "pinned_cpu": args.cpu,
            "taskset": shutil.which("taskset") is not None,
            "load_average_1m_before": round(load_before[0], 2),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "messages": args.count,
        "repeats": args.repeats,
        "cli_messages_per_s": _summary(cli),
        "in_process_messages_per_s": _summary(wall),
        "in_process_messages_per_cpu_s": _summary(cpu),
        "baseline_messages_per_s": _summary(baseline),
        "ratio": round(statistics.median(wall) / statistics.median(baseline), 3),
        "target_per_s": TARGET_PER_S,
        "target_met": statistics.median(cli) >= TARGET_PER_S,
    }
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
