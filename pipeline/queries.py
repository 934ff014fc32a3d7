"""Read-only SQL for the workbench pages.

Every query bounds its result in SQL (LIMIT, or an aggregate), so a page never
loads a whole table. Values travel only as bound parameters: WHERE clauses are
joined from fixed fragments of this module, and column names come from a fixed
table, never from user input.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.sql.elements import TextClause

__all__ = [
    "ALL_TIME",
    "CHOICE_COLUMNS",
    "FRAUD_COLUMNS",
    "MAX_CHOICES",
    "MAX_PAGE_SIZE",
    "TIME_RANGES",
    "FraudFilters",
    "FraudPage",
    "count_fraud_rows",
    "count_statement",
    "fetch_rejected_messages",
    "MAX_COUNTED_ROWS",
    "fetch_filter_choices",
    "fetch_fraud_page",
    "fetch_table_counts",
    "fraud_page_statement",
    "get_engine",
    "time_range_bounds",
]

MAX_PAGE_SIZE = 500
MAX_CHOICES = 500
# Counts stop here, so a page never scans a whole large table to count it.
MAX_COUNTED_ROWS = 10_000
CONNECT_TIMEOUT_SECONDS = 3
STATEMENT_TIMEOUT_MS = 10_000

ALL_TIME = "All time"
# Time range choices of the Frauds page: label -> width of the window ending now.
TIME_RANGES: dict[str, timedelta | None] = {
    "Last 15 minutes": timedelta(minutes=15),
    "Last hour": timedelta(hours=1),
    "Last 24 hours": timedelta(hours=24),
    "Last 7 days": timedelta(days=7),
    ALL_TIME: None,
}

FRAUD_COLUMNS = (
    "event_time",
    "transaction_id",
    "user_id",
    "first_name",
    "last_name",
    "amount",
    "device",
    "location",
    "transaction_location",
    "fraud_reasons",
    "fraud_pattern",
    "ingested_at",
)


@dataclass(frozen=True)
class FraudFilters:
    """Filters of the fraud table; an empty tuple or None means no filter."""

    start: datetime | None = None
    """Earliest ``event_time``, inclusive."""
    end: datetime | None = None
    """Latest ``event_time``, exclusive."""
    devices: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    """Values of ``transaction_location``, the country of the transaction."""
    patterns: tuple[str, ...] = ()
    """Values of ``fraud_pattern``, such as ``card_testing``."""


@dataclass(frozen=True)
class FraudPage:
    """One page of fraud rows, newest ``event_time`` first."""

    rows: pd.DataFrame
    page: int
    page_size: int
    has_next: bool


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


def time_range_bounds(label: str, now: datetime) -> tuple[datetime | None, datetime | None]:
    """Return ``(start, end)`` of the time range ``label`` ending at ``now``.

    Raises
    ------
    ValueError
        When ``label`` is not a key of :data:`TIME_RANGES`.
    """
    if label not in TIME_RANGES:
        raise ValueError(
            f"Unknown time range {label!r}. The choices are {', '.join(TIME_RANGES)}."
        )
    width = TIME_RANGES[label]
    if width is None:
        return None, None
    return now - width, None


def _where(filters: FraudFilters) -> tuple[str, dict[str, Any], list[str]]:
    """Return the WHERE clause, its parameters and the names of list parameters."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    expanding: list[str] = []
    if filters.start is not None:
        clauses.append("event_time >= :start")
        params["start"] = _aware(filters.start)
    if filters.end is not None:
        clauses.append("event_time < :end")
        params["end"] = _aware(filters.end)
    if filters.devices:
        clauses.append("device IN :devices")
        params["devices"] = list(filters.devices)
        expanding.append("devices")
    if filters.locations:
        clauses.append("transaction_location IN :locations")
        params["locations"] = list(filters.locations)
        expanding.append("locations")
    if filters.patterns:
        clauses.append("fraud_pattern IN :patterns")
        params["patterns"] = list(filters.patterns)
        expanding.append("patterns")
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    return where, params, expanding


def _aware(moment: datetime) -> datetime:
    """Read a naive datetime as UTC, as ``event_time`` is stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _statement(sql: str, expanding: list[str]) -> TextClause:
    return text(sql).bindparams(*(bindparam(name, expanding=True) for name in expanding))


def fraud_page_statement(
    filters: FraudFilters, page: int, page_size: int
) -> tuple[TextClause, dict[str, Any]]:
    """Build the query of one page of fraud rows, newest first.

    The query requests ``page_size + 1`` rows so the caller can tell whether a
    next page exists without counting.

    Raises
    ------
    ValueError
        When ``page`` < 1 or ``page_size`` is outside 1 to :data:`MAX_PAGE_SIZE`.
    """
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise ValueError(f"page must be a whole number >= 1, got {page!r}.")
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not (
        1 <= page_size <= MAX_PAGE_SIZE
    ):
        raise ValueError(f"page_size must be from 1 to {MAX_PAGE_SIZE}, got {page_size!r}.")

    where, params, expanding = _where(filters)
    # transaction_id breaks ties, so rows with the same event_time keep their
    # order from page to page.
    sql = (
        f"SELECT {', '.join(FRAUD_COLUMNS)} FROM shop.fraud_transactions{where}"
        " ORDER BY event_time DESC, transaction_id DESC LIMIT :limit OFFSET :offset"
    )
    params["limit"] = page_size + 1
    params["offset"] = (page - 1) * page_size
    return _statement(sql, expanding), params


def count_statement(
    filters: FraudFilters, limit: int = MAX_COUNTED_ROWS
) -> tuple[TextClause, dict[str, Any]]:
    """Build the query that counts the fraud rows matching ``filters``, up to ``limit + 1``.

    Counting stops one row past ``limit``, so the cost stays bounded on a
    table of millions of rows and a result above ``limit`` means "more".
    """
    where, params, expanding = _where(filters)
    sql = (
        "SELECT count(*) FROM ("
        f"SELECT 1 FROM shop.fraud_transactions{where} LIMIT :count_limit"
        ") AS matching"
    )
    return _statement(sql, expanding), {**params, "count_limit": limit + 1}


def fetch_fraud_page(
    engine: Engine, filters: FraudFilters, page: int = 1, page_size: int = 50
) -> FraudPage:
    """Return one page of fraud rows, newest ``event_time`` first.

    ``amount`` is converted to float for display. OFFSET paging reads and
    skips the rows of earlier pages, so a deep page costs more than the first.
    """
    statement, params = fraud_page_statement(filters, page, page_size)
    with engine.connect() as connection:
        rows = connection.execute(statement, params).all()

    frame = pd.DataFrame([tuple(row) for row in rows[:page_size]], columns=list(FRAUD_COLUMNS))
    frame["amount"] = pd.to_numeric(frame["amount"]).astype(float)
    return FraudPage(frame, page, page_size, has_next=len(rows) > page_size)


def count_fraud_rows(engine: Engine, filters: FraudFilters, limit: int = MAX_COUNTED_ROWS) -> int:
    """Return the number of fraud rows matching ``filters``, capped at ``limit + 1``."""
    statement, params = count_statement(filters, limit)
    with engine.connect() as connection:
        return int(connection.execute(statement, params).scalar_one())


# A loose index scan: each step jumps to the next larger value through the
# (column, event_time) index, so the cost grows with the number of distinct
# values returned, not with the table size. PostgreSQL evaluates a recursive
# CTE only as far as the outer LIMIT reads it.
_CHOICES_TEMPLATE = """
WITH RECURSIVE choices AS (
    (SELECT {column} AS value FROM shop.fraud_transactions ORDER BY {column} LIMIT 1)
    UNION ALL
    SELECT (
        SELECT f.{column} FROM shop.fraud_transactions AS f
        WHERE f.{column} > c.value ORDER BY f.{column} LIMIT 1
    )
    FROM choices AS c
    WHERE c.value IS NOT NULL
)
SELECT value FROM choices WHERE value IS NOT NULL LIMIT :limit
"""
CHOICE_COLUMNS = ("device", "transaction_location", "fraud_pattern")
_CHOICES_SQL = {column: _CHOICES_TEMPLATE.format(column=column) for column in CHOICE_COLUMNS}


def fetch_filter_choices(engine: Engine, column: str, limit: int = MAX_CHOICES) -> list[str]:
    """Return up to ``limit`` distinct values of ``column`` in the fraud table, sorted.

    Raises
    ------
    ValueError
        When ``column`` is not in :data:`CHOICE_COLUMNS` or ``limit`` < 1.
    """
    if column not in _CHOICES_SQL:
        raise ValueError(
            f"Cannot list values of column {column!r}. The columns are "
            f"{', '.join(CHOICE_COLUMNS)}."
        )
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}.")
    with engine.connect() as connection:
        return list(connection.execute(text(_CHOICES_SQL[column]), {"limit": limit}).scalars())


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
