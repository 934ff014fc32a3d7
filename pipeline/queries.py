"""Read-only SQL for the workbench pages: the engine, shared helpers, table counts and rejected messages.

Every query bounds its result in SQL (LIMIT, or an aggregate), so a page never
loads a whole table. Values travel only as bound parameters, and column names
come from fixed tables, never from user input.

The fraud queue's SQL is in :mod:`pipeline.fraud_queue` (filters, sort orders,
paging, counts and filter choices) and :mod:`pipeline.queue_detail` (one
transaction, the user's history and similar transactions). Both build on the
helpers here.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pandas as pd
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

__all__ = [
    "LATENCY_COLUMN",
    "MAX_COUNTED_ROWS",
    "MAX_PAGE_SIZE",
    "assume_utc",
    "convert_display_types",
    "fetch_rejected_messages",
    "fetch_table_counts",
    "get_engine",
    "score_label",
    "select_list",
]

MAX_PAGE_SIZE = 500
# Counts stop here, so a page never scans a whole large table to count it.
MAX_COUNTED_ROWS = 10_000
CONNECT_TIMEOUT_SECONDS = 3
STATEMENT_TIMEOUT_MS = 10_000

# Seconds from the event to the row being written to the queue, as analysts see it.
LATENCY_COLUMN = "EXTRACT(EPOCH FROM (ingested_at - event_time))::double precision AS event_to_queue_seconds"


def select_list(columns: tuple[str, ...]) -> str:
    """Join ``columns`` into a SELECT list, computing ``event_to_queue_seconds`` as :data:`LATENCY_COLUMN`."""
    return ", ".join(LATENCY_COLUMN if name == "event_to_queue_seconds" else name for name in columns)


def get_engine(
    database_url: str,
    *,
    connect_timeout: int = CONNECT_TIMEOUT_SECONDS,
    statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
) -> Engine:
    """Create a psycopg2 engine for ``database_url`` that fails fast.

    ``connect_timeout`` is in seconds (libpq uses at least 2), and the server
    cancels any statement that runs longer than ``statement_timeout_ms``.
    ``pool_pre_ping`` replaces connections that died while idle, for example
    after a database restart. No connection is opened here.
    """
    url = make_url(database_url)
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg2")
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={
            "connect_timeout": connect_timeout,
            "application_name": "fraud-workbench",
            "options": f"-c statement_timeout={int(statement_timeout_ms)}",
        },
    )


def assume_utc(moment: datetime) -> datetime:
    """Read a naive datetime as UTC, as ``event_time`` is stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def score_label(score: float | None) -> str:
    """Return ``fraud_score`` as text with 4 decimals, or "not scored" for a row without a score."""
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return "not scored"
    return f"{score:.4f}"


def convert_display_types(frame: pd.DataFrame) -> None:
    """Convert ``amount`` to float in place, and keep None (not NaN) for unscored rows."""
    frame["amount"] = pd.to_numeric(frame["amount"]).astype(float)
    scores = frame["fraud_score"].astype(object)
    frame["fraud_score"] = scores.where(scores.notna(), None)


def fetch_table_counts(engine: Engine) -> dict[str, int]:
    """Return the row counts of the ledger, fraud and rejected-message tables.

    NOTE: count(*) reads every row of each table, so its cost grows with the
    table size. Callers should cache the result.
    """
    sql = text(
        "SELECT (SELECT count(*) FROM shop.transactions) AS transactions,"
        " (SELECT count(*) FROM shop.fraud_transactions) AS fraud_transactions,"
        " (SELECT count(*) FROM shop.rejected_messages) AS rejected_messages"
    )
    with engine.connect() as connection:
        row = connection.execute(sql).mappings().one()
    return {name: int(value) for name, value in row.items()}


REJECTED_COLUMNS = ("received_at", "kafka_topic", "kafka_partition", "kafka_offset", "reason", "raw_payload")


def fetch_rejected_messages(engine: Engine, limit: int = 20) -> tuple[pd.DataFrame, int]:
    """Return the newest quarantined records and their count, capped at ``MAX_COUNTED_ROWS + 1``."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be from 1 to {MAX_PAGE_SIZE}, got {limit!r}.")
    rows_sql = text(
        f"SELECT {', '.join(REJECTED_COLUMNS)} FROM shop.rejected_messages"
        " ORDER BY received_at DESC LIMIT :limit"
    )
    count_sql = text(
        "SELECT count(*) FROM (SELECT 1 FROM shop.rejected_messages LIMIT :count_limit) AS rejected"
    )
    with engine.connect() as connection:
        rows = connection.execute(rows_sql, {"limit": limit}).all()
        count = connection.execute(count_sql, {"count_limit": MAX_COUNTED_ROWS + 1}).scalar_one()
    return pd.DataFrame([tuple(row) for row in rows], columns=list(REJECTED_COLUMNS)), int(count)
