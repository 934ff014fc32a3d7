"""The producer against a real Kafka broker, read back with a KafkaConsumer.

Each test writes to its own topic, so tests do not see each other's records.
The producer runs as a separate process with the stack's environment, the way
a user starts it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from pipeline.message import validate_message
from pipeline.producer import parse_summary

pytestmark = pytest.mark.timeout(300)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_TIME = "2026-01-05T10:00:00+00:00"
PRODUCER_TIMEOUT_S = 120
CONSUME_TIMEOUT_S = 60


def _new_topic() -> str:
    return f"producer-test-{uuid.uuid4().hex[:8]}"


def _producer_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.producer", *args]


def _run_producer(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _producer_command(*args),
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=PRODUCER_TIMEOUT_S,
    )


def _consume_all(bootstrap_servers: str, topic: str, expected: int) -> list:
    """Read ``topic`` from the start until ``expected`` records arrived or the timeout passed."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records = []
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(batch)
        # One more poll shows whether the topic contains more than expected.
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend(batch)
        return records
    finally:
        consumer.close()


def _partition_count(bootstrap_servers: str, topic: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        (description,) = admin.describe_topics([topic])
        return len(description["partitions"])
    finally:
        admin.close()


def test_producer_records_keyed_by_user(stack) -> None:
    topic = _new_topic()
    env = {**stack.env, "KAFKA_TOPIC": topic}
    count = 3000
    args = ("--count", str(count), "--seed", "17", "--start-time", START_TIME)

    result = _run_producer(env, *args, "--partitions", "3")

    assert result.returncode == 0, result.stderr[-3000:]
    summary = parse_summary(result.stdout.strip().splitlines()[-1])
    assert summary["sent"] == count
    assert summary["failed"] == 0
    assert _partition_count(stack.bootstrap_servers, topic) == 3

    records = _consume_all(stack.bootstrap_servers, topic, count)
    assert len(records) == count

    partitions_by_user = defaultdict(set)
    for record in records:
        message, reason = validate_message(record.value)
        assert reason is None, reason
        assert record.key == message["user_id"].encode("utf-8")
        partitions_by_user[message["user_id"]].add(record.partition)
    for user_id, partitions in partitions_by_user.items():
        assert len(partitions) == 1, (user_id, partitions)
    assert len({record.partition for record in records}) == 3

    # The records are exactly what --stdout prints for the same options.
    printed = _run_producer(env, "--stdout", *args)
    expected = [json.loads(line) for line in printed.stdout.splitlines()]
    received = [json.loads(record.value) for record in records]
    by_id = {message["transaction_id"]: message for message in received}
    assert len(by_id) == count
    assert by_id == {message["transaction_id"]: message for message in expected}


def test_producer_keeps_user_order_within_partition(stack) -> None:
    topic = _new_topic()
    count = 2000

    args = ("--topic", topic, "--count", str(count), "--seed", "5", "--start-time", START_TIME)

    result = _run_producer(stack.env, *args)

    assert result.returncode == 0, result.stderr[-3000:]
    records = _consume_all(stack.bootstrap_servers, topic, count)
    assert len(records) == count
    timestamps_by_user = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        message = json.loads(record.value)
        timestamps_by_user[message["user_id"]].append(message["timestamp"])
    for user_id, timestamps in timestamps_by_user.items():
        assert timestamps == sorted(timestamps), user_id


def test_producer_existing_topic_reused(stack) -> None:
    topic = _new_topic()

    first = _run_producer(stack.env, "--topic", topic, "--count", "10", "--partitions", "2")
    second = _run_producer(stack.env, "--topic", topic, "--count", "15", "--partitions", "5")

    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    assert "already exists" in second.stderr
    assert parse_summary(second.stdout.strip().splitlines()[-1])["sent"] == 15
    assert _partition_count(stack.bootstrap_servers, topic) == 2
    assert len(_consume_all(stack.bootstrap_servers, topic, 25)) == 25


def test_producer_sigterm_every_sent_record_stored(stack, tmp_path: Path) -> None:
    topic = _new_topic()
    metrics_path = tmp_path / "producer-metrics.json"
    process = subprocess.Popen(
        _producer_command("--topic", topic, "--rate", "500", "--metrics-file", str(metrics_path)),
        cwd=PROJECT_ROOT,
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in process.stderr:
            if "Producing unlimited message(s)" in line:
                break
        time.sleep(2)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=PRODUCER_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0, stderr[-3000:]
    summary = parse_summary(stdout.strip().splitlines()[-1])
    assert summary["sent"] > 0
    assert summary["failed"] == 0

    records = _consume_all(stack.bootstrap_servers, topic, int(summary["sent"]))
    assert len(records) == summary["sent"]

    metrics = json.loads(metrics_path.read_text())
    assert metrics["sent"] == summary["sent"]
    assert metrics["failed"] == 0
    assert metrics["state"] == "stopped"
