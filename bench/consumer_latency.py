"""Measure whether the Spark consumers keep up with a steady stream, and their latency.

Runs both consumers on a fresh topic of the running local stack and sends
``--rate`` transactions per second for ``--seconds`` seconds with live
timestamps. Once every row is stored, it reports p50, p95 and the maximum of
``ingested_at - event_time`` for each table, and the rate at which the ledger
grew. The baseline in the same run is the producer's own send
rate: consumers keep up when the ledger's rate matches it.

Usage::

    python -m pipeline.stack up
    python bench/consumer_latency.py --rate 1000 --seconds 300

The last line printed is one JSON object with the machine, command and figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.producer import parse_summary  # noqa: E402
from pipeline.settings import get_settings  # noqa: E402

LATENCY_SQL = """
SELECT
    count(*),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ingested_at - event_time)),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM ingested_at - event_time)),
    max(extract(epoch FROM ingested_at - event_time)),
    extract(epoch FROM max(ingested_at) - min(ingested_at))
FROM shop.{table}
WHERE kafka_topic = %s AND transaction_id <> ALL(%s)
"""


def _count(database_url: str, table: str, topic: str) -> int:
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM shop.{table} WHERE kafka_topic = %s", (topic,))
        return cursor.fetchone()[0]


def _wait(condition, timeout: float, description: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {description}")


def start_consumers(env: dict[str, str], logs: Path, database_url: str, topic: str) -> tuple[list, list[str]]:
    """Create the topic with one warm-up record, start both consumers, and wait until it is stored.

    Returns the consumer processes and the warm-up transaction ids, which
    the figures leave out. Stop the processes with :func:`stop_consumers`,
    also when this raises.
    """
    subprocess.run(
        [sys.executable, "-m", "pipeline.producer", "--count", "1", "--seed", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )
    consumers = []
    for sink in ("transactions", "frauds"):
        log = open(logs / f"{env['KAFKA_TOPIC']}-{sink}.log", "wb")
        consumers.append(
            subprocess.Popen(
                [sys.executable, "-m", "pipeline.consumers", sink],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        )
    try:
        _wait(lambda: _count(database_url, "transactions", topic) >= 1, 300, "the consumers to start")
    except BaseException:
        stop_consumers(consumers)
        raise
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT array_agg(transaction_id) FROM shop.transactions WHERE kafka_topic = %s", (topic,))
        return consumers, cursor.fetchone()[0]


def stop_consumers(consumers: list) -> None:
    for process in consumers:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)


def send_and_wait(env: dict[str, str], database_url: str, topic: str, rate: float, seconds: float,
                  warmup: int, seed: str | None = None) -> dict:
    """Send ``rate`` live-stamped transactions per second for ``seconds``; wait until the ledger has them all.

    Returns the producer's summary with ``caught_up_s``, the seconds from
    the first send until the last row was stored.
    """
    args = [sys.executable, "-m", "pipeline.producer", "--count", str(int(rate * seconds)), "--rate", str(rate)]
    if seed is not None:
        args += ["--seed", seed]
    started = time.monotonic()
    producer = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    if producer.returncode != 0:
        raise SystemExit(f"producer failed:\n{producer.stderr[-2000:]}")
    summary = parse_summary(producer.stdout.strip().splitlines()[-1])
    expected = int(summary["sent"]) + warmup
    _wait(lambda: _count(database_url, "transactions", topic) >= expected, 600, "the ledger to catch up")
    return {**summary, "caught_up_s": time.monotonic() - started}


def latency_figures(database_url: str, topic: str, warmup_ids: list[str], table: str) -> dict:
    """Return the row count, latency percentiles and storage rate of ``table`` for ``topic``."""
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(LATENCY_SQL.format(table=table), (topic, warmup_ids))
        rows, p50, p95, worst, span = cursor.fetchone()
    return {
        "rows": rows,
        "latency_p50_s": round(float(p50), 3),
        "latency_p95_s": round(float(p95), 3),
        "latency_max_s": round(float(worst), 3),
        "stored_per_s": round(rows / float(span), 1) if span else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000, help="transactions per second sent")
    parser.add_argument("--seconds", type=float, default=300, help="how long to send")
    args = parser.parse_args()

    settings = get_settings()
    topic = f"bench-latency-{uuid.uuid4().hex[:8]}"
    env = dict(
        os.environ,
        KAFKA_TOPIC=topic,
        SPARK_CHECKPOINT_DIR=str(settings.state_dir / "bench" / topic),
        PYTHONPATH=str(ROOT),
    )
    logs = settings.state_dir / "bench"
    logs.mkdir(parents=True, exist_ok=True)

    consumers, warmup_ids = start_consumers(env, logs, settings.database_url, topic)
    try:
        summary = send_and_wait(env, settings.database_url, topic, args.rate, args.seconds, len(warmup_ids), seed="2")
        figures = {
            table: latency_figures(settings.database_url, topic, warmup_ids, table)
            for table in ("transactions", "fraud_transactions")
        }
    finally:
        stop_consumers(consumers)

    print(
        json.dumps(
            {
                "benchmark": "consumer_latency",
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "system": platform.platform()},
                "command": " ".join(["python", "bench/consumer_latency.py", "--rate", str(args.rate),
                                     "--seconds", str(args.seconds)]),
                "producer_sent": int(summary["sent"]),
                "producer_rate_per_s": summary["rate_per_s"],
                "seconds_until_caught_up": round(summary["caught_up_s"], 1),
                **figures,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
