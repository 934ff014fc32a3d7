"""Measure producer throughput to Kafka, with generator-only speed as a baseline.

Usage::

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 python bench/producer_throughput.py [--count N]

The Kafka figure comes from ``python -m pipeline.producer --count N`` run as a
subprocess without a rate limit, read from its summary line, so it measures the
command users run (``acks=all``, delivery callbacks, flush before the end).
Startup and topic creation are not timed. The baseline runs the ``--stdout``
path in this process, generating and serialising the same number of messages
into ``/dev/null``. It shows how much of the time Kafka I/O takes.

The benchmark writes to a new topic named ``bench-producer-<random>`` and
deletes it after a successful run unless ``--keep-topic`` is given. The last line of
output is one JSON object with the figures, the command, the date and the
machine (CPU count, load average, Python and kafka-python versions, and
whether the native ``crc32c`` package is installed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    # Lets `python bench/producer_throughput.py` import the project from any folder.
    sys.path.insert(0, str(PROJECT_ROOT))

import kafka  # noqa: E402
from kafka import KafkaAdminClient  # noqa: E402
from kafka.errors import KafkaError  # noqa: E402

from pipeline.simulator import TransactionGenerator  # noqa: E402
from pipeline.producer import (  # noqa: E402
    UNPACED_MEAN_INTERVAL_S,
    StdoutSink,
    parse_summary,
    produce,
)
from pipeline.settings import SettingsError, get_settings  # noqa: E402

DEFAULT_COUNT = 200_000
SEED = 1
START_TIME = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)
PRODUCER_TIMEOUT_S = 3600


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--count",
        type=int,
        default=DEFAULT_COUNT,
        help=f"messages per measurement (default: {DEFAULT_COUNT})",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        help="partitions of the benchmark topic (default: KAFKA_TOPIC_PARTITIONS)",
    )
    parser.add_argument(
        "--keep-topic", action="store_true", help="keep the benchmark topic afterwards"
    )
    args = parser.parse_args()
    if args.count < 1:
        parser.error(f"--count must be at least 1, got {args.count}")
    return args


def measure_generator(count: int) -> dict[str, float]:
    """Generate and serialise ``count`` messages into /dev/null, as ``--stdout`` does."""
    generator = TransactionGenerator(
        seed=SEED, start_time=START_TIME, mean_interval_s=UNPACED_MEAN_INTERVAL_S
    )
    with open(os.devnull, "w") as devnull:
        sink = StdoutSink(devnull)
        started = time.perf_counter()
        produce(generator, sink, threading.Event(), count=count)
        sink.close()
        elapsed = time.perf_counter() - started
    return {
        "messages": sink.sent,
        "elapsed_s": round(elapsed, 3),
        "messages_per_s": round(sink.sent / elapsed, 1),
    }


def measure_kafka(count: int, topic: str, partitions: int) -> dict[str, float]:
    """Run the producer command for ``count`` messages and return its summary figures."""
    command = [
        sys.executable,
        "-m",
        "pipeline.producer",
        "--count",
        str(count),
        "--seed",
        str(SEED),
        "--start-time",
        START_TIME.isoformat(),
        "--topic",
        topic,
        "--partitions",
        str(partitions),
    ]
    result = subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=PRODUCER_TIMEOUT_S,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"The producer exited with status {result.returncode}:\n{result.stderr[-2000:]}"
        )
    summary = parse_summary(result.stdout.strip().splitlines()[-1])
    return {
        "sent": int(summary["sent"]),
        "failed": int(summary["failed"]),
        "elapsed_s": summary["elapsed_s"],
        "messages_per_s": summary["rate_per_s"],
    }


def delete_topic(bootstrap_servers: str, client_config: dict[str, str], topic: str) -> None:
    """Delete the benchmark topic. A failure is printed and does not fail the run."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers, bootstrap_timeout_ms=5000, **client_config
        )
        try:
            admin.delete_topics([topic])
        finally:
            admin.close()
    except KafkaError as exc:
        print(f"Could not delete topic {topic}: {exc}", file=sys.stderr)


def main() -> int:
    """Run both measurements, print them, and return the exit status."""
    args = _parse_args()
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"Invalid setting: {exc}", file=sys.stderr)
        return 2
    partitions = args.partitions or settings.kafka_topic_partitions
    topic = f"bench-producer-{uuid.uuid4().hex[:8]}"
    load_before = os.getloadavg()

    generator_figures = measure_generator(args.count)
    print(
        f"generator only (--stdout path, in-process): "
        f"{generator_figures['messages_per_s']:.0f} messages/s"
    )
    try:
        kafka_figures = measure_kafka(args.count, topic, partitions)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    if not args.keep_topic:
        delete_topic(settings.kafka_bootstrap_servers, settings.kafka_client_config(), topic)
    print(
        f"kafka producer ({settings.kafka_bootstrap_servers}, {partitions} partitions, "
        f"acks=all): {kafka_figures['messages_per_s']:.0f} messages/s"
    )

    record = {
        "benchmark": "producer_throughput",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_1m_before": round(load_before[0], 2),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "kafka_python": kafka.__version__,
            # kafka-python falls back to a pure-Python CRC32C without this package.
            "crc32c_native": importlib.util.find_spec("crc32c") is not None,
        },
        "messages": args.count,
        "kafka": {
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "partitions": partitions,
            **kafka_figures,
        },
        "generator_only": generator_figures,
    }
    print(json.dumps(record))
    return 0 if kafka_figures["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
