"""SQL of the fraud queue: filters, sort orders, keyset paging, counts and filter choices.

The fraud queue is ``shop.fraud_transactions``. Its pages use keyset paging,
which continues each page after the sort key of the previous page's last row.
Rows that arrive while an analyst reads page 3 therefore do not shift the rows
of page 4, and a deep page costs as little as the first.
``sql/005_queue_indexes.sql`` has an index for each sort order of
:data:`SORT_ORDERS`.

Values travel only as bound parameters: WHERE clauses are joined from fixed
fragments of this module, and column names and sort keys come from fixed
tables, never from user input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import TextClause

from pipeline.queries import MAX_COUNTED_ROWS, MAX_PAGE_SIZE, assume_utc, convert_display_types, select_list

__all__ = [
    "ALL_TIME",
    "CHOICE_COLUMNS",
    "MAX_CHOICES",
    "MAX_SEARCH_LENGTH",
    "QUEUE_COLUMNS",
    "REVIEW_STATUSES",
    "SORT_ORDERS",
    "SOURCES",
    "TIME_RANGES",
    "FraudFilters",
    "QueuePage",
    "SortOrder",
    "WhereClause",
    "build_where",
    "count_fraud_rows",
    "count_statement",
    "escape_like",
    "fetch_filter_choices",
    "fetch_queue_page",
    "queue_statement",
    "time_range_bounds",
]

MAX_CHOICES = 500
MAX_SEARCH_LENGTH = 200

ALL_TIME = "All time"
# Time range choices of the queue: label -> width of the window ending now.
TIME_RANGES: dict[str, timedelta | None] = {
    "Last 15 minutes": timedelta(minutes=15),
    "Last hour": timedelta(hours=1),
    "Last 24 hours": timedelta(hours=24),
    "Last 7 days": timedelta(days=7),
    ALL_TIME: None,
}

# Values of the generated column shop.fraud_transactions.source.
SOURCES = ("rule", "model", "both")
REVIEW_STATUSES = ("unreviewed", "confirmed_fraud", "false_positive", "needs_info")

QUEUE_COLUMNS = (
    "event_time",
    "transaction_id",
    "user_id",
    "amount",
    "fraud_score",
    "source",
    "review_status",
    "fraud_pattern",
    "fraud_reasons",
    "device",
    "transaction_location",
    "location",
    "model_version",
    "ingested_at",
    "event_to_queue_seconds",
)


@dataclass(frozen=True)
class SortOrder:
    """A sort order of the queue: SQL expressions, every one descending.

    The last key is ``transaction_id``, which is unique, so the keys of a
    row identify its position and keyset paging neither skips nor repeats
    rows with equal values.
    """

    label: str
    keys: tuple[str, ...]


SORT_ORDERS: dict[str, SortOrder] = {
    "newest": SortOrder("Newest first", ("event_time", "transaction_id")),
    # Unscored rows (NULL fraud_score) sort last, because real scores lie in (0, 1].
    "score": SortOrder(
        "Highest fraud_score first",
        ("COALESCE(fraud_score, '-Infinity'::double precision)", "event_time", "transaction_id"),
    ),
    "amount": SortOrder("Largest amount first", ("amount", "event_time", "transaction_id")),
}


@dataclass(frozen=True)
class FraudFilters:
    """Filters of the fraud queue. An empty tuple, None or "" means no filter.

    Raises
    ------
    ValueError
        When a source or review status is unknown, a score bound is not a
        number, ``min_score`` > ``max_score``, or ``search`` is longer than
        :data:`MAX_SEARCH_LENGTH`.
    """

    start: datetime | None = None
    """Earliest ``event_time``, inclusive."""
    end: datetime | None = None
    """Latest ``event_time``, exclusive."""
    devices: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    """Values of ``transaction_location``, the country of the transaction."""
    patterns: tuple[str, ...] = ()
    """Values of ``fraud_pattern``, such as ``card_testing``."""
    min_score: float | None = None
    """Lowest ``fraud_score``, inclusive. A score bound leaves out unscored rows."""
    max_score: float | None = None
    """Highest ``fraud_score``, inclusive."""
    sources: tuple[str, ...] = ()
    """Values of :data:`SOURCES`."""
    review_statuses: tuple[str, ...] = ()
    """Values of :data:`REVIEW_STATUSES`."""
    search: str = ""
    """A ``user_id`` or ``transaction_id``, or the start of one."""

    def __post_init__(self) -> None:
        _check_choices("source", self.sources, SOURCES)
        _check_choices("review status", self.review_statuses, REVIEW_STATUSES)
        for name in ("min_score", "max_score"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)
            ):
                raise ValueError(f"{name} must be a number or None, got {value!r}.")
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            raise ValueError(
                f"min_score {self.min_score} is above max_score {self.max_score}. "
                "Choose a lower bound that is at most the upper bound."
            )
        if not isinstance(self.search, str):
            raise ValueError(f"search must be text, got {self.search!r}.")
        if len(self.search.strip()) > MAX_SEARCH_LENGTH:
            raise ValueError(
                f"The search has {len(self.search.strip())} characters; the limit is "
                f"{MAX_SEARCH_LENGTH}. Enter a user id or transaction id, or its start."
            )


def _check_choices(name: str, values: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    unknown = [value for value in values if value not in allowed]
    if unknown:
        raise ValueError(f"Unknown {name} {unknown[0]!r}. The choices are {', '.join(allowed)}.")


@dataclass(frozen=True)
class WhereClause:
    """A WHERE clause with its bound parameters."""

    sql: str
    """Empty, or `` WHERE ...`` with a leading space."""
    params: dict[str, Any] = field(default_factory=dict)
    expanding: tuple[str, ...] = ()
    """Names of list parameters, bound with ``bindparam(expanding=True)``."""


@dataclass(frozen=True)
class QueuePage:
    """One page of queue rows in a :data:`SORT_ORDERS` order."""

    rows: pd.DataFrame
    has_next: bool
    next_cursor: tuple | None
    """Sort key of the last row, to pass as ``after`` for the next page. None on the last page."""


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


def escape_like(value: str) -> str:
    """Escape the LIKE wildcards ``%`` and ``_`` and the escape character ``\\`` in ``value``."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def build_where(filters: FraudFilters) -> WhereClause:
    """Build the WHERE clause of ``filters`` over ``shop.fraud_transactions``.

    The search is a prefix match, ``LIKE 'value%'`` with the wildcards of
    the value escaped, on ``transaction_id`` and ``user_id``. An exact id is
    its own prefix. PostgreSQL serves a prefix LIKE from the
    ``text_pattern_ops`` indexes of ``sql/005_queue_indexes.sql`` whatever
    the database collation.
    """
    clauses: list[str] = []
    params: dict[str, Any] = {}
    expanding: list[str] = []

    if filters.start is not None:
        clauses.append("event_time >= :start")
        params["start"] = assume_utc(filters.start)
    if filters.end is not None:
        clauses.append("event_time < :end")
        params["end"] = assume_utc(filters.end)
    if filters.min_score is not None:
        clauses.append("fraud_score >= :min_score")
        params["min_score"] = float(filters.min_score)
    if filters.max_score is not None:
        clauses.append("fraud_score <= :max_score")
        params["max_score"] = float(filters.max_score)

    # (parameter name, column, values) of the list filters.
    for name, column, values in (
        ("devices", "device", filters.devices),
        ("locations", "transaction_location", filters.locations),
        ("patterns", "fraud_pattern", filters.patterns),
        ("sources", "source", filters.sources),
        ("review_statuses", "review_status", filters.review_statuses),
    ):
        if values:
            clauses.append(f"{column} IN :{name}")
            params[name] = list(values)
            expanding.append(name)

    search = filters.search.strip()
    if search:
        clauses.append("(transaction_id LIKE :search OR user_id LIKE :search)")
        params["search"] = escape_like(search) + "%"

    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    return WhereClause(where, params, tuple(expanding))

def _statement(sql: str, expanding: tuple[str, ...] | list[str]) -> TextClause:
    return text(sql).bindparams(*(bindparam(name, expanding=True) for name in expanding))


def _sort_order(sort: str) -> SortOrder:
    if sort not in SORT_ORDERS:
        raise ValueError(f"Unknown sort order {sort!r}. The choices are {', '.join(SORT_ORDERS)}.")
    return SORT_ORDERS[sort]


def queue_statement(
    filters: FraudFilters,
    sort: str = "newest",
    after: tuple | None = None,
    limit: int = 51,
    columns: tuple[str, ...] = QUEUE_COLUMNS,
) -> tuple[TextClause, dict[str, Any]]:
    """Build the query of queue rows matching ``filters`` in the order ``sort``.

    The result has ``columns`` followed by one ``sort_key_<i>`` column per
    key of the sort order. ``after`` is the sort key of a row from an
    earlier query, and only rows after it are returned.

    Raises
    ------
    ValueError
        When ``sort`` is not a key of :data:`SORT_ORDERS`, ``after`` has
        the wrong number of values, or ``limit`` < 1.
    """
    order = _sort_order(sort)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a whole number >= 1, got {limit!r}.")
    where = build_where(filters)
    params = dict(where.params)
    sql = where.sql

    if after is not None:
        if len(after) != len(order.keys):
            raise ValueError(
                f"The cursor of sort order {sort!r} has {len(order.keys)} values, got {len(after)}. "
                "Start again from the first page."
            )
        # Every key is descending, so "after" is a smaller row value. The
        # row comparison matches the order of the sort index, which serves it.
        placeholders = ", ".join(f":after_{index}" for index in range(len(after)))
        condition = f"({', '.join(order.keys)}) < ({placeholders})"
        sql += (" AND " if sql else " WHERE ") + condition
        params.update({f"after_{index}": value for index, value in enumerate(after)})

    sort_keys = ", ".join(f"{key} AS sort_key_{index}" for index, key in enumerate(order.keys))
    ordering = ", ".join(f"{key} DESC" for key in order.keys)
    statement_sql = (
        f"SELECT {select_list(columns)}, {sort_keys} FROM shop.fraud_transactions{sql}"
        f" ORDER BY {ordering} LIMIT :limit"
    )
    params["limit"] = limit
    return _statement(statement_sql, where.expanding), params


def fetch_queue_page(
    engine: Engine,
    filters: FraudFilters,
    sort: str = "newest",
    after: tuple | None = None,
    page_size: int = 50,
) -> QueuePage:
    """Return one page of queue rows, continuing after the cursor ``after``.

    ``amount`` is converted to float for display, and ``fraud_score`` stays
    None where the row was not scored.

    Raises
    ------
    ValueError
        When ``page_size`` is outside 1 to :data:`MAX_PAGE_SIZE`, or as
        :func:`queue_statement` raises.
    """
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not (
        1 <= page_size <= MAX_PAGE_SIZE
    ):
        raise ValueError(f"page_size must be from 1 to {MAX_PAGE_SIZE}, got {page_size!r}.")
    # The extra row past page_size shows whether a next page exists, without counting.
    statement, params = queue_statement(filters, sort, after, page_size + 1)
    with engine.connect() as connection:
        rows = connection.execute(statement, params).all()

    page_rows = rows[:page_size]
    key_count = len(SORT_ORDERS[sort].keys)
    has_next = len(rows) > page_size
    next_cursor = tuple(page_rows[-1][-key_count:]) if has_next else None
    frame = pd.DataFrame([tuple(row)[:-key_count] for row in page_rows], columns=list(QUEUE_COLUMNS))
    convert_display_types(frame)
    return QueuePage(frame, has_next, next_cursor)


def count_statement(
    filters: FraudFilters, limit: int = MAX_COUNTED_ROWS
) -> tuple[TextClause, dict[str, Any]]:
    """Build the query that counts the queue rows matching ``filters``, up to ``limit + 1``.

    Counting stops one row past ``limit``, so the cost stays bounded on a
    table of millions of rows and a result above ``limit`` means "more".
    """
    where = build_where(filters)
    sql = (
        "SELECT count(*) FROM ("
        f"SELECT 1 FROM shop.fraud_transactions{where.sql} LIMIT :count_limit"
        ") AS matching"
    )
    return _statement(sql, where.expanding), {**where.params, "count_limit": limit + 1}


def count_fraud_rows(engine: Engine, filters: FraudFilters, limit: int = MAX_COUNTED_ROWS) -> int:
    """Return the number of queue rows matching ``filters``, capped at ``limit + 1``."""
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
