"""The simulator's stream through Kafka, both Spark consumers and PostgreSQL.

A seeded stream with every fraud pattern, and then a campaign started through
the supervisor as the Pipeline page starts it, go to a topic of their own.
Every message must be stored, none rejected, with its ``fraud_pattern`` in
both tables.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipeline.countries import COUNTRIES
from pipeline.producer import parse_summary
from pipeline.simulator import FRAUD_PATTERNS
from pipeline.supervisor import Supervisor
from tests.integration.conftest import (
    PROJECT_ROOT,
    JobProcess,
    LocalStack,
    wait_for,
    wait_for_query_start,
)

pytestmark = pytest.mark.timeout(900)

START_TIME = "2026-02-01T08:00:00+00:00"
PRODUCER_ARGS = [
    "--count", "3000", "--seed", "17", "--start-time", START_TIME,
    "--users", "2000", "--fraud-ratio", "0.3",
]
CATCH_UP_TIMEOUT_S = 300


def _count(stack: LocalStack, table: str, topic: str) -> int:
    return stack.scalar(f"SELECT count(*) FROM shop.{table} WHERE kafka_topic = %s", (topic,))


def _patterns(stack: LocalStack, table: str, topic: str) -> dict[str, str | None]:
    rows = stack.query(
        f"SELECT transaction_id, fraud_pattern FROM shop.{table} WHERE kafka_topic = %s", (topic,)
    )
    return dict(rows)


@pytest.fixture(scope="module")
def pattern_stream(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory):
    """A seeded stream in its own topic, and both consumers reading it."""
    topic = f"patterns-{uuid.uuid4().hex[:8]}"
    env = stack.env_with(
        KAFKA_TOPIC=topic,
        SPARK_CHECKPOINT_DIR=str(stack.state_dir / "checkpoints" / topic),
        SPARK_TRIGGER_SECONDS="1",
    )
    printed = subprocess.run(
        [sys.executable, "-m", "pipeline.producer", "--stdout", *PRODUCER_ARGS],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    expected = [json.loads(line) for line in printed.stdout.splitlines()]
    sent = subprocess.run(
        [sys.executable, "-m", "pipeline.producer", *PRODUCER_ARGS],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert sent.returncode == 0, sent.stderr[-3000:]
    assert parse_summary(sent.stdout.strip().splitlines()[-1])["sent"] == len(expected)

    logs = tmp_path_factory.mktemp("pattern-consumers")
    jobs = [
        JobProcess(["-m", "pipeline.consumers", sink], env, logs / f"{sink}.log").start()
        for sink in ("transactions", "frauds")
    ]
    try:
        for job in jobs:
            wait_for_query_start(job)
        yield topic, env, expected
    finally:
        for job in jobs:
            job.stop()


def test_consumers_store_every_pattern(stack: LocalStack, pattern_stream) -> None:
    topic, _env, expected = pattern_stream
    frauds = {m["transaction_id"]: m["fraud_pattern"] for m in expected if m["is_fraud"] == 1}
    assert {m["fraud_pattern"] for m in expected} == {None, *FRAUD_PATTERNS}

    wait_for(lambda: _count(stack, "transactions", topic) >= len(expected), CATCH_UP_TIMEOUT_S,
             f"{len(expected)} ledger rows")
    wait_for(lambda: _count(stack, "fraud_transactions", topic) >= len(frauds), CATCH_UP_TIMEOUT_S,
             f"{len(frauds)} fraud rows")

    assert _count(stack, "rejected_messages", topic) == 0
    assert _patterns(stack, "transactions", topic) == {
        m["transaction_id"]: m["fraud_pattern"] for m in expected
    }
    assert _patterns(stack, "fraud_transactions", topic) == frauds
    stored_locations = set(stack.query(
        "SELECT location, transaction_location FROM shop.transactions WHERE kafka_topic = %s",
        (topic,),
    ))
    assert stored_locations == {(m["location"], m["transaction_location"]) for m in expected}


def test_campaign_job_reaches_both_tables(
    stack: LocalStack, pattern_stream, tmp_path: Path
) -> None:
    topic, env, expected = pattern_stream
    frauds = [m for m in expected if m["is_fraud"] == 1]
    card_tests = [m for m in frauds if m["fraud_pattern"] == "card_testing"]
    wait_for(lambda: _count(stack, "fraud_transactions", topic) >= len(frauds), CATCH_UP_TIMEOUT_S,
             "the seeded frauds to be stored")
    supervisor = Supervisor(tmp_path / "jobs", env=env)

    def finished_run():
        status = supervisor.status("campaign")
        return status if status.exit is not None else None

    supervisor.start("campaign", pattern="card_testing", count=12)
    run = wait_for(finished_run, 120, "the campaign to finish")

    assert run.exit.returncode == 0, "\n".join(run.log_tail)
    assert run.metrics["sent"] == 12
    wait_for(lambda: _count(stack, "fraud_transactions", topic) >= len(frauds) + 12,
             CATCH_UP_TIMEOUT_S, "the 12 campaign frauds")
    stored_card_tests = stack.scalar(
        "SELECT count(*) FROM shop.fraud_transactions"
        " WHERE kafka_topic = %s AND fraud_pattern = 'card_testing'",
        (topic,),
    )
    assert stored_card_tests == len(card_tests) + 12
    assert _count(stack, "transactions", topic) == len(expected) + 12
    assert _count(stack, "rejected_messages", topic) == 0


def test_countries_table_matches_country_list(stack: LocalStack) -> None:
    rows = stack.query("SELECT code, name FROM shop.countries ORDER BY code")

    assert rows == [(country.code, country.name) for country in COUNTRIES]
