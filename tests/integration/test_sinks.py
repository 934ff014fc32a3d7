"""The partition writer against a real PostgreSQL: rows it cannot store are quarantined, not fatal."""

from __future__ import annotations

import uuid
from collections import namedtuple
from decimal import Decimal

from pipeline.consumers.parse import PARSED_SCHEMA
from pipeline.consumers.sinks import write_partition
from tests.integration.conftest import LocalStack

Row = namedtuple("Row", PARSED_SCHEMA.fieldNames())


def _row(topic: str, offset: int, **fields) -> Row:
    values = dict.fromkeys(PARSED_SCHEMA.fieldNames())
    values.update(
        transaction_id=f"sink-{uuid.uuid4()}",
        user_id="u-sink",
        event_time_us=1_767_225_600_000_000,
        first_name="Ada",
        last_name="Lovelace",
        location="GB",
        transaction_location="GB",
        amount=Decimal("10.00"),
        device="phone",
        is_fraud=0,
        fraud_reasons=[],
        kafka_topic=topic,
        kafka_partition=0,
        kafka_offset=offset,
        kafka_key="u-sink",
    )
    values.update(fields)
    return Row(**values)


def test_write_partition_quarantines_row_postgres_rejects(stack: LocalStack) -> None:
    topic = f"sink-{uuid.uuid4().hex[:8]}"
    good = _row(topic, 0)
    # Validation keeps NUL out; this row bypasses it, as a future bug might.
    poison = _row(topic, 1, first_name="Ada\x00")

    counts = list(write_partition([good, poison], stack.database_url, "transactions"))

    assert [count[:4] for count in counts] == [(1, 1, 1, 1)]
    assert stack.scalar("SELECT count(*) FROM shop.transactions WHERE kafka_topic = %s", (topic,)) == 1
    reason, payload = stack.query(
        "SELECT reason, raw_payload FROM shop.rejected_messages WHERE kafka_topic = %s", (topic,)
    )[0]
    assert reason.startswith("PostgreSQL rejected the row:")
    assert poison.transaction_id in payload


def test_write_partition_replay_adds_nothing(stack: LocalStack) -> None:
    topic = f"sink-{uuid.uuid4().hex[:8]}"
    rows = [_row(topic, offset) for offset in range(3)]
    rows.append(_row(topic, 3, reject_reason="the record value is not valid JSON", raw_payload="x"))

    first = list(write_partition(rows, stack.database_url, "transactions"))
    second = list(write_partition(rows, stack.database_url, "transactions"))

    assert [count[:4] for count in first] == [(3, 3, 1, 1)]
    assert [count[:4] for count in second] == [(3, 0, 1, 0)]
    assert stack.scalar("SELECT count(*) FROM shop.transactions WHERE kafka_topic = %s", (topic,)) == 3
