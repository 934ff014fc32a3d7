"""The Spark consumers against a real broker, a real Spark session and PostgreSQL.

The producer and both consumers run as separate processes, started the way
the workbench starts them. Every test uses its own topic and checkpoints, and
counts only the rows of its topic (``kafka_topic``), so tests do not see each
other's rows.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.producer import parse_summary
from tests.integration.conftest import (
    PROJECT_ROOT,
    JobProcess,
    LocalStack,
    wait_for,
    wait_for_query_start,
)

pytestmark = pytest.mark.timeout(900)

START_TIME = "2026-01-01T00:00:00+00:00"
CATCH_UP_TIMEOUT_S = 300


def _topic_env(stack: LocalStack, topic: str) -> dict[str, str]:
    return stack.env_with(
        KAFKA_TOPIC=topic,
        SPARK_CHECKPOINT_DIR=str(stack.state_dir / "checkpoints" / topic),
        SPARK_TRIGGER_SECONDS="1",
    )


def _expected_messages(count: int, seed: int) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.producer", "--stdout", "--count", str(count),
         "--seed", str(seed), "--start-time", START_TIME],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=True,
    )
    return [json.loads(line) for line in result.stdout.splitlines()]


def _produce(env: dict[str, str], count: int, seed: int, rate: float | None = None) -> dict:
    args = [sys.executable, "-m", "pipeline.producer", "--count", str(count), "--seed", str(seed),
            "--start-time", START_TIME]
    if rate:
        args += ["--rate", str(rate)]
    result = subprocess.run(args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return parse_summary(result.stdout.strip().splitlines()[-1])


def _kcat_send(stack: LocalStack, topic: str, records: list[tuple[str, str]]) -> None:
    """Send (key, value) records with kcat, a Kafka client independent of this project."""
    body = "".join(f"{key}\t{value}\n" for key, value in records)
    subprocess.run(
        ["kcat", "-P", "-b", stack.bootstrap_servers, "-t", topic, "-K", "\t"],
        input=body, text=True, check=True, timeout=60,
    )


def _count(stack: LocalStack, table: str, topic: str) -> int:
    return stack.scalar(f"SELECT count(*) FROM shop.{table} WHERE kafka_topic = %s", (topic,))


def _valid_message(**fields) -> dict:
    message = {
        "user_id": "user-kcat",
        "transaction_id": f"tx-{uuid.uuid4()}",
        "timestamp": "2026-03-01T12:00:00+00:00",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "location": "London",
        "transaction_location": "London",
        "amount": 12.5,
        "device": "mobile",
        "is_fraud": 0,
        "fraud_reasons": [],
    }
    message.update(fields)
    return message


@pytest.fixture(scope="module")
def running_consumers(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory):
    """Both consumers on the topic ``e2e``, started once for this module's tests."""
    topic = f"e2e-{uuid.uuid4().hex[:8]}"
    env = _topic_env(stack, topic)
    logs = tmp_path_factory.mktemp("consumers")
    # Create the topic first, with the producer's partitioning.
    _produce(env, count=1, seed=999)
    jobs = [
        JobProcess(["-m", "pipeline.consumers", sink], env, logs / f"{sink}.log").start()
        for sink in ("transactions", "frauds")
    ]
    try:
        for job in jobs:
            wait_for_query_start(job)
        wait_for(lambda: _count(stack, "transactions", topic) == 1, 180, "the first record")
        yield topic, env, jobs
    finally:
        for job in jobs:
            job.stop()


def test_consumers_store_every_transaction_once(stack: LocalStack, running_consumers) -> None:
    topic, env, _jobs = running_consumers
    expected = _expected_messages(2000, seed=7)

    summary = _produce(env, count=2000, seed=7)
    assert summary["sent"] == 2000
    assert summary["failed"] == 0

    ids = {message["transaction_id"] for message in expected}
    fraud_ids = {message["transaction_id"] for message in expected if message["is_fraud"] == 1}
    wait_for(
        lambda: stack.scalar(
            "SELECT count(*) FROM shop.transactions WHERE transaction_id = ANY(%s)", (list(ids),)
        ) == 2000,
        CATCH_UP_TIMEOUT_S,
        "2,000 ledger rows",
    )
    wait_for(
        lambda: stack.scalar(
            "SELECT count(*) FROM shop.fraud_transactions WHERE transaction_id = ANY(%s)",
            (list(ids),),
        ) == len(fraud_ids),
        CATCH_UP_TIMEOUT_S,
        f"{len(fraud_ids)} fraud rows",
    )

    stored = stack.query(
        "SELECT transaction_id, amount, is_fraud FROM shop.transactions WHERE transaction_id = ANY(%s)",
        (list(ids),),
    )
    assert len(stored) == 2000
    assert {row[0] for row in stored} == ids
    assert sum(row[1] for row in stored) == sum(Decimal(str(m["amount"])) for m in expected)
    assert {row[0] for row in stored if row[2] == 1} == fraud_ids

    stored_frauds = stack.query(
        "SELECT transaction_id FROM shop.fraud_transactions WHERE transaction_id = ANY(%s)",
        (list(ids),),
    )
    assert {row[0] for row in stored_frauds} == fraud_ids
    assert 0 < len(fraud_ids) < 2000


def test_consumers_quarantine_malformed_records(stack: LocalStack, running_consumers) -> None:
    topic, _env, _jobs = running_consumers
    offset_time = _valid_message(timestamp="2026-03-01T14:30:00+02:00", is_fraud=1,
                                 fraud_reasons=["high_amount"])
    after = _valid_message()
    bad_amount = json.dumps(_valid_message(amount="N/A"))
    records = [
        ("k1", "this is not json"),
        ("k2", json.dumps({key: value for key, value in _valid_message().items()
                           if key != "transaction_id"})),
        ("k3", bad_amount),
        # Values PostgreSQL cannot store once stopped a consumer for good.
        ("k6", json.dumps(_valid_message(first_name="Ada\x00"))),
        ("k7", "x\x00y"),
        ("k8", json.dumps(_valid_message(timestamp="0001-01-01T00:00:00+14:00"))),
        ("k4", json.dumps(offset_time)),
        ("k5", json.dumps(after)),
    ]
    before = _count(stack, "rejected_messages", topic)

    _kcat_send(stack, topic, records)

    wait_for(lambda: _count(stack, "rejected_messages", topic) == before + 6, CATCH_UP_TIMEOUT_S,
             "six rejected records")
    reasons = {
        payload: reason
        for payload, reason in stack.query(
            "SELECT raw_payload, reason FROM shop.rejected_messages WHERE kafka_topic = %s", (topic,)
        )
    }
    assert "not valid JSON" in reasons["this is not json"]
    assert "transaction_id" in reasons[records[1][1]]
    assert "amount" in reasons[bad_amount]
    assert "N/A" in reasons[bad_amount]
    assert "NUL character" in reasons[records[3][1]]
    assert "not valid JSON" in reasons["x\ufffdy"]
    assert "field timestamp" in reasons[records[5][1]]

    # The stream goes on after bad records, and an offset is converted to UTC.
    wait_for(
        lambda: stack.scalar("SELECT count(*) FROM shop.transactions WHERE transaction_id = %s",
                             (after["transaction_id"],)) == 1,
        CATCH_UP_TIMEOUT_S, "the record sent after the malformed ones",
    )
    # kcat sends k4 and k5 to different partitions, so k4 may land one batch later.
    wait_for(
        lambda: stack.scalar("SELECT count(*) FROM shop.transactions WHERE transaction_id = %s",
                             (offset_time["transaction_id"],)) == 1,
        CATCH_UP_TIMEOUT_S, "the record with a +02:00 offset in the ledger",
    )
    utc_time = stack.scalar(
        "SELECT to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') "
        "FROM shop.transactions WHERE transaction_id = %s",
        (offset_time["transaction_id"],),
    )
    assert utc_time == "2026-03-01 12:30:00"
    wait_for(
        lambda: stack.scalar("SELECT count(*) FROM shop.fraud_transactions WHERE transaction_id = %s",
                             (offset_time["transaction_id"],)) == 1,
        CATCH_UP_TIMEOUT_S, "the fraud with a +02:00 offset in the fraud table",
    )
    # No partial row was stored for the rejected record that had a transaction id.
    assert stack.scalar(
        "SELECT count(*) FROM shop.transactions WHERE kafka_topic = %s AND transaction_id = %s",
        (topic, json.loads(bad_amount)["transaction_id"]),
    ) == 0


def test_consumers_store_duplicate_once(stack: LocalStack, running_consumers) -> None:
    topic, _env, _jobs = running_consumers
    message = _valid_message(is_fraud=1, fraud_reasons=["unusual_device"])
    marker = _valid_message()

    _kcat_send(stack, topic, [("dup", json.dumps(message)), ("dup", json.dumps(message))])
    _kcat_send(stack, topic, [("dup", json.dumps(message)), ("marker", json.dumps(marker))])

    wait_for(
        lambda: stack.scalar("SELECT count(*) FROM shop.transactions WHERE transaction_id = %s",
                             (marker["transaction_id"],)) == 1,
        CATCH_UP_TIMEOUT_S, "the marker record sent after the duplicates",
    )
    for table in ("transactions", "fraud_transactions"):
        wait_for(
            lambda: stack.scalar(f"SELECT count(*) FROM shop.{table} WHERE transaction_id = %s",
                                 (message["transaction_id"],)) >= 1,
            CATCH_UP_TIMEOUT_S, f"the duplicated transaction in shop.{table}",
        )
        assert stack.scalar(
            f"SELECT count(*) FROM shop.{table} WHERE transaction_id = %s",
            (message["transaction_id"],),
        ) == 1


def _uncommit_last_batch(checkpoint: Path) -> int:
    """Delete the newest commit file, as a crash after the write and before the commit leaves it."""
    commits = sorted((checkpoint / "commits").glob("[0-9]*"), key=lambda path: int(path.name))
    assert commits, f"no committed batch in {checkpoint}"
    last = commits[-1]
    last.unlink()
    (checkpoint / "commits" / f".{last.name}.crc").unlink(missing_ok=True)
    return int(last.name)


def test_transactions_consumer_survives_sigkill_and_replay(
    stack: LocalStack, job_factory, tmp_path: Path
) -> None:
    topic = f"kill-{uuid.uuid4().hex[:8]}"
    env = _topic_env(stack, topic).copy()
    # Small batches, so the kill lands between batches with rows already written.
    env["SPARK_MAX_OFFSETS_PER_TRIGGER"] = "200"
    total = 3000

    consumer = job_factory(["-m", "pipeline.consumers", "transactions"], env, name="consumer")
    producer = job_factory(["-m", "pipeline.producer", "--count", str(total), "--seed", "21",
                            "--start-time", START_TIME, "--rate", "400"], env, name="producer")
    wait_for_query_start(consumer)
    wait_for(lambda: _count(stack, "transactions", topic) >= 400, CATCH_UP_TIMEOUT_S,
             "the consumer to write its first batches")

    consumer.stop(signal.SIGKILL)
    rows_at_kill = _count(stack, "transactions", topic)
    assert rows_at_kill < total

    restarted = job_factory(["-m", "pipeline.consumers", "transactions"], env, name="restarted")
    wait_for_query_start(restarted)
    wait_for(lambda: producer.process.poll() is not None, CATCH_UP_TIMEOUT_S, "the producer to finish")
    assert producer.process.returncode == 0
    wait_for(lambda: _count(stack, "transactions", topic) >= total, CATCH_UP_TIMEOUT_S,
             f"{total} rows after the restart")
    restarted.stop()

    # Replay the last batch, as after a crash between the write and the commit.
    checkpoint = stack.state_dir / "checkpoints" / topic / "transactions"
    replayed_batch = _uncommit_last_batch(checkpoint)
    replay = job_factory(["-m", "pipeline.consumers", "transactions"], env, name="replay")
    wait_for_query_start(replay)
    wait_for(lambda: f"batch_id={replayed_batch} " in replay.log(), CATCH_UP_TIMEOUT_S,
             f"batch {replayed_batch} to be replayed")
    replay.stop()

    assert _count(stack, "transactions", topic) == total
    assert stack.scalar(
        "SELECT count(DISTINCT transaction_id) FROM shop.transactions WHERE kafka_topic = %s", (topic,)
    ) == total


def test_consumer_started_before_topic_exists(stack: LocalStack, job_factory) -> None:
    topic = f"late-{uuid.uuid4().hex[:8]}"
    env = _topic_env(stack, topic)

    consumer = job_factory(["-m", "pipeline.consumers", "transactions"], env, name="early-consumer")
    wait_for_query_start(consumer)
    summary = _produce(env, count=50, seed=31)

    assert summary["sent"] == 50
    wait_for(lambda: _count(stack, "transactions", topic) == 50, CATCH_UP_TIMEOUT_S,
             "50 rows from a topic created after the consumer started")
    assert consumer.running()
