"""Idempotent PostgreSQL writes for one partition of a micro-batch.

Every insert is ``ON CONFLICT DO NOTHING`` on the table's key: a micro-batch
that Spark replays after a crash, or a transaction sent twice, adds no row.
Each partition is written in one database transaction, so a failure leaves
none of it behind and the replay writes it whole.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

import psycopg2
from psycopg2.extras import execute_values

__all__ = ["write_partition", "PartitionCounts"]

logger = logging.getLogger(__name__)

PAGE_SIZE = 1000
# How long a partition write waits for PostgreSQL to come back before the
# batch fails; Spark then replays it when the consumer restarts.
CONNECT_RETRY_S = 300.0
# Errors caused by the values of a row: psycopg2 raises ValueError itself for
# a NUL character, before the statement reaches the server.
ROW_ERRORS = (psycopg2.DataError, psycopg2.IntegrityError, ValueError)

INSERT_LEDGER = """
INSERT INTO shop.transactions (
    transaction_id, user_id, event_time, first_name, last_name, location,
    transaction_location, amount, device, is_fraud, fraud_reasons, fraud_pattern,
    kafka_topic, kafka_partition, kafka_offset
) VALUES %s
ON CONFLICT (transaction_id) DO NOTHING
RETURNING 1
"""

INSERT_FRAUD = """
INSERT INTO shop.fraud_transactions (
    transaction_id, user_id, event_time, first_name, last_name, location,
    transaction_location, amount, device, fraud_reasons, fraud_pattern,
    kafka_topic, kafka_partition, kafka_offset
) VALUES %s
ON CONFLICT (transaction_id) DO NOTHING
RETURNING 1
"""

INSERT_REJECTED = """
INSERT INTO shop.rejected_messages (
    kafka_topic, kafka_partition, kafka_offset, kafka_key, raw_payload, reason
) VALUES %s
ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING
RETURNING 1
"""

# (valid rows PostgreSQL accepted or already had, rows inserted, rejected rows,
# rejected rows inserted)
PartitionCounts = tuple[int, int, int, int]


def _event_time(micros: int) -> datetime:
    seconds, remainder = divmod(micros, 1_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=remainder)


def _insert(cursor: Any, statement: str, rows: list[tuple]) -> int:
    if not rows:
        return 0
    # fetch=True collects the RETURNING rows of every page, so the count is
    # the number of rows really inserted, without the ones that conflicted.
    return len(execute_values(cursor, statement, rows, page_size=PAGE_SIZE, fetch=True))


def write_partition(
    rows: Iterable[Any], database_url: str, sink: str
) -> Iterator[PartitionCounts]:
    """Write one partition of parsed rows; yield its counts once.

    Parameters
    ----------
    rows
        Rows of :data:`pipeline.consumers.parse.PARSED_SCHEMA`.
    database_url
        libpq URL of the PostgreSQL database.
    sink
        ``"transactions"`` writes every valid row to ``shop.transactions``;
        ``"frauds"`` writes the rows with ``is_fraud = 1`` to
        ``shop.fraud_transactions``. Both write rejected rows to
        ``shop.rejected_messages``.
    """
    valid: list[tuple] = []
    rejected: list[tuple] = []
    for row in rows:
        if row.reject_reason is not None:
            rejected.append(
                (
                    row.kafka_topic,
                    row.kafka_partition,
                    row.kafka_offset,
                    row.kafka_key,
                    row.raw_payload,
                    row.reject_reason,
                )
            )
            continue
        if sink == "frauds" and row.is_fraud != 1:
            continue
        values = [
            row.transaction_id,
            row.user_id,
            _event_time(row.event_time_us),
            row.first_name,
            row.last_name,
            row.location,
            row.transaction_location,
            row.amount,
            row.device,
            row.is_fraud,
            list(row.fraud_reasons),
            row.fraud_pattern,
            row.kafka_topic,
            row.kafka_partition,
            row.kafka_offset,
        ]
        if sink == "frauds":
            del values[9]
        valid.append(tuple(values))

    if not valid and not rejected:
        yield (0, 0, 0, 0)
        return

    statement = INSERT_LEDGER if sink == "transactions" else INSERT_FRAUD
    failed: list[tuple] = []
    connection = _connect(database_url)
    try:
        with connection, connection.cursor() as cursor:
            try:
                cursor.execute("SAVEPOINT batch")
                inserted = _insert(cursor, statement, valid)
            except ROW_ERRORS as exc:
                # One row PostgreSQL will not take must not stop the stream:
                # insert row by row and quarantine the ones it rejects.
                cursor.execute("ROLLBACK TO SAVEPOINT batch")
                logger.warning("batch insert failed (%s), retrying row by row", _first_line(exc))
                inserted, failed = _insert_each(cursor, statement, valid)
            rejected_inserted = _insert(cursor, INSERT_REJECTED, rejected + failed)
    finally:
        connection.close()
    # A row PostgreSQL refused counts as rejected, not as valid.
    yield (len(valid) - len(failed), inserted, len(rejected) + len(failed), rejected_inserted)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _insert_each(cursor: Any, statement: str, rows: list[tuple]) -> tuple[int, list[tuple]]:
    """Insert rows one at a time; return the count inserted and quarantine rows for the rest."""
    inserted = 0
    failed: list[tuple] = []
    for row in rows:
        cursor.execute("SAVEPOINT row")
        try:
            inserted += _insert(cursor, statement, [row])
        except ROW_ERRORS as exc:
            cursor.execute("ROLLBACK TO SAVEPOINT row")
            topic, partition, offset = row[-3:]
            payload = json.dumps(dict(zip(_column_names(statement), row)), default=str)
            reason = f"PostgreSQL rejected the row: {_first_line(exc)}"
            logger.warning("quarantined %s[%s]@%s: %s", topic, partition, offset, reason)
            failed.append((topic, partition, offset, None, payload, reason))
    return inserted, failed


def _column_names(statement: str) -> list[str]:
    columns = statement.split("(", 1)[1].split(")", 1)[0]
    return [name.strip() for name in columns.split(",")]


def _connect(database_url: str) -> Any:
    """Connect to PostgreSQL, retrying for up to ``CONNECT_RETRY_S`` while it is unreachable.

    A database restart then delays the stream instead of failing the query.
    """
    deadline = time.monotonic() + CONNECT_RETRY_S
    delay = 1.0
    while True:
        try:
            return psycopg2.connect(database_url, connect_timeout=10)
        except psycopg2.OperationalError as exc:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning(
                "PostgreSQL is not reachable (%s); retrying in %.0f s", _first_line(exc), delay
            )
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
