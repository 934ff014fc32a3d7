"""Idempotent PostgreSQL writes for one partition of a micro-batch.

Every insert is keyed: a micro-batch that Spark replays after a crash, or a
transaction sent twice, adds no row. Each partition is written in one
database transaction, so a failure leaves none of it behind and the replay
writes it whole.

The ``transactions`` sink also scores the partition with the production
model (see :mod:`pipeline.consumers.scoring`), stores each row's
``fraud_score``, ``flagged`` and ``model_version`` in the ledger, and puts
the rows it newly stored that the model flagged or the producer labelled
fraud into ``shop.fraud_transactions`` with their top SHAP contributions.
Only newly stored rows go there, so a replayed batch scored by a newer model
cannot change the scores of the first write.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import psycopg2
from psycopg2.extras import Json, execute_values

from pipeline.consumers.live_model import LiveModel, ModelUnavailable, load_model, read_ledger_history
from pipeline.consumers.scoring import score_rows, top_contributions

__all__ = ["PartitionCounts", "connect_with_retry", "write_partition"]

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
    fraud_score, flagged, model_version, kafka_topic, kafka_partition, kafka_offset
) VALUES %s
ON CONFLICT (transaction_id) DO NOTHING
RETURNING transaction_id
"""

# The transactions sink's write of the queue. A row the frauds consumer
# stored first has no score yet, so the score fills it; a scored row is
# never rescored.
UPSERT_SCORED_FRAUD = """
INSERT INTO shop.fraud_transactions (
    transaction_id, user_id, event_time, first_name, last_name, location,
    transaction_location, amount, device, is_fraud, fraud_reasons, fraud_pattern,
    rule_flagged, model_flagged, fraud_score, model_version, top_contributions,
    kafka_topic, kafka_partition, kafka_offset
) VALUES %s
ON CONFLICT (transaction_id) DO UPDATE SET
    model_flagged = EXCLUDED.model_flagged,
    fraud_score = EXCLUDED.fraud_score,
    model_version = EXCLUDED.model_version,
    top_contributions = EXCLUDED.top_contributions
WHERE shop.fraud_transactions.model_version IS NULL
  AND EXCLUDED.model_version IS NOT NULL
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



class PartitionCounts(NamedTuple):
    """Counts of one partition write."""

    valid: int  # valid rows PostgreSQL accepted or already had
    inserted: int  # rows newly stored
    rejected: int  # rows quarantined, by validation or by PostgreSQL
    rejected_inserted: int  # quarantine rows newly stored
    scored: int = 0  # valid rows scored by the model
    scoring_problem: str | None = None  # why rows were stored unscored, when a model should score


def _event_time(micros: int) -> datetime:
    seconds, remainder = divmod(micros, 1_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=remainder)


def _insert(cursor: Any, statement: str, rows: list[tuple]) -> list[tuple]:
    if not rows:
        return []
    # fetch=True collects the RETURNING rows of every page: the rows really
    # inserted, without the ones that conflicted.
    return execute_values(cursor, statement, rows, page_size=PAGE_SIZE, fetch=True)


def write_partition(
    rows: Iterable[Any], database_url: str, sink: str, model_version: int | None = None
) -> Iterator[PartitionCounts]:
    """Write one partition of parsed rows; yield its :class:`PartitionCounts` once.

    Parameters
    ----------
    rows
        Rows of :data:`pipeline.consumers.parse.PARSED_SCHEMA`.
    database_url
        libpq URL of the PostgreSQL database.
    sink
        ``"transactions"`` writes every valid row to ``shop.transactions``,
        scored with ``model_version``, and the flagged and fraud-labelled
        ones to ``shop.fraud_transactions``; ``"frauds"`` writes the rows
        with ``is_fraud = 1`` to ``shop.fraud_transactions``. Both write
        rejected rows to ``shop.rejected_messages``.
    model_version
        The registry version in production when the micro-batch started, or
        None to store the rows unscored. Only the transactions sink scores.
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
        elif sink == "transactions" or row.is_fraud == 1:
            valid.append(_ledger_values(row))

    if not valid and not rejected:
        yield PartitionCounts(0, 0, 0, 0)
        return
    # A message sent twice can arrive twice in one partition. It is one
    # transaction: scored once, and written once, because an upsert may not
    # touch the same row twice in one statement.
    received = len(valid)
    valid = _first_of_each_transaction(valid)

    failed: list[tuple] = []
    scored, problem = 0, None
    connection = connect_with_retry(database_url)
    try:
        with connection, connection.cursor() as cursor:
            if sink == "transactions":
                model, problem = _live_model(cursor, database_url, model_version)
                scores = None
                if model is not None and valid:
                    scores, problem = _score(cursor, valid, model)
                if scores is not None:
                    scored = len(valid)
                    valid = [
                        (*values[:12], float(score), bool(flagged), model.version, *values[12:])
                        for values, score, flagged in zip(valid, *scores[:2])
                    ]
                else:
                    valid = [(*values[:12], None, None, None, *values[12:]) for values in valid]
                stored, failed = _insert_or_quarantine(cursor, INSERT_LEDGER, valid)
                _write_queue(cursor, valid, {row[0] for row in stored}, model, scores)
            else:
                fraud_rows = [values[:9] + values[10:] for values in valid]
                stored, failed = _insert_or_quarantine(cursor, INSERT_FRAUD, fraud_rows)
            rejected_inserted = len(_insert(cursor, INSERT_REJECTED, rejected + failed))
    finally:
        connection.close()
    # A row PostgreSQL refused counts as rejected, not as valid.
    yield PartitionCounts(
        received - len(failed),
        len(stored),
        len(rejected) + len(failed),
        rejected_inserted,
        scored - len(failed) if scored else 0,
        problem,
    )


def _first_of_each_transaction(valid: list[tuple]) -> list[tuple]:
    """Keep the first row of each transaction id, in the order received."""
    seen: set[str] = set()
    unique = []
    for values in valid:
        if values[0] not in seen:
            seen.add(values[0])
            unique.append(values)
    return unique


def _ledger_values(row: Any) -> tuple:
    """Return the INSERT_LEDGER values of a parsed row, without the three score columns."""
    return (
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
    )


_FRAME_COLUMNS = (
    "transaction_id",
    "user_id",
    "event_time",
    "first_name",
    "last_name",
    "location",
    "transaction_location",
    "amount",
    "device",
    "is_fraud",
)


def _frame(valid: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame([values[: len(_FRAME_COLUMNS)] for values in valid], columns=list(_FRAME_COLUMNS))
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    return frame


def _live_model(cursor: Any, database_url: str, version: int | None) -> tuple[LiveModel | None, str | None]:
    if version is None:
        return None, None
    try:
        return load_model(cursor, database_url, version), None
    except ModelUnavailable as exc:
        logger.error("storing rows unscored: %s", exc)
        return None, str(exc)


def _score(
    cursor: Any, valid: list[tuple], model: LiveModel
) -> tuple[tuple[np.ndarray, np.ndarray, pd.DataFrame] | None, str | None]:
    """Score the partition with its users' stored history.

    Returns the scores, flags and feature matrix, or None and the reason
    when scoring failed. The rows are then stored unscored rather than
    holding up the ledger, whatever the failure.
    """
    cursor.execute("SAVEPOINT scoring")
    try:
        frame = _frame(valid)
        ledger = read_ledger_history(cursor, frame, model.cutoff) if model.cutoff is not None else None
        result, features = score_rows(frame, model.artifact, ledger, model.state)
    except Exception as exc:  # noqa: BLE001 - any failure must leave the ledger write possible.
        cursor.execute("ROLLBACK TO SAVEPOINT scoring")
        logger.exception("scoring with model version %d failed; storing the rows unscored", model.version)
        return None, f"Scoring with model version {model.version} failed: {_first_line(exc)}"
    return (result.fraud_score, result.flagged, features), None


def _write_queue(
    cursor: Any,
    valid: list[tuple],
    stored_ids: set[str],
    model: LiveModel | None,
    scores: tuple[np.ndarray, np.ndarray, pd.DataFrame] | None,
) -> None:
    """Put the newly stored rows that are labelled fraud or flagged into the queue."""
    is_fraud = np.array([values[9] == 1 for values in valid], dtype=bool)
    stored = np.array([values[0] in stored_ids for values in valid], dtype=bool)
    flagged = scores[1] if scores is not None else np.zeros(len(valid), dtype=bool)
    queued = np.flatnonzero((is_fraud | flagged) & stored)
    if not len(queued):
        return
    contributions: list[Any] = [None] * len(queued)
    if scores is not None:
        features = scores[2].iloc[queued]
        try:
            explanation = model.explainer.explain_features(features)
            contributions = [Json(top) for top in top_contributions(explanation.contributions, features)]
        except Exception:  # noqa: BLE001 - the queue row matters more than its explanation.
            logger.exception("SHAP failed for model version %d; queueing rows without contributions", model.version)
    rows = []
    for position, top in zip(queued, contributions):
        values = valid[position]
        rows.append(
            (
                *values[:12],
                bool(is_fraud[position]),
                bool(flagged[position]),
                values[12],
                values[14],
                top,
                *values[15:],
            )
        )
    _insert(cursor, UPSERT_SCORED_FRAUD, rows)


def _insert_or_quarantine(cursor: Any, statement: str, rows: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    """Insert rows; return the RETURNING rows and quarantine rows for those PostgreSQL refused."""
    try:
        cursor.execute("SAVEPOINT batch")
        return _insert(cursor, statement, rows), []
    except ROW_ERRORS as exc:
        # One row PostgreSQL will not take must not stop the stream:
        # insert row by row and quarantine the ones it rejects.
        cursor.execute("ROLLBACK TO SAVEPOINT batch")
        logger.warning("batch insert failed (%s), retrying row by row", _first_line(exc))
        return _insert_each(cursor, statement, rows)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _insert_each(cursor: Any, statement: str, rows: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    """Insert rows one at a time; return the RETURNING rows and quarantine rows for the rest."""
    inserted: list[tuple] = []
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


def connect_with_retry(database_url: str) -> Any:
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
