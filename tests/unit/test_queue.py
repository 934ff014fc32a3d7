"""Tests of the fraud queue's query builders in pipeline.fraud_queue that need no database."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy.dialects import postgresql

from pipeline.queries import MAX_COUNTED_ROWS, MAX_PAGE_SIZE, get_engine
from pipeline.fraud_queue import (
    ALL_TIME,
    CHOICE_COLUMNS,
    MAX_SEARCH_LENGTH,
    QUEUE_COLUMNS,
    SORT_ORDERS,
    TIME_RANGES,
    FraudFilters,
    build_where,
    count_statement,
    escape_like,
    fetch_filter_choices,
    fetch_queue_page,
    queue_statement,
    time_range_bounds,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def compiled_sql(statement) -> str:
    """Return the SQL compiled for psycopg2, with placeholders for every value."""
    return str(statement.compile(dialect=postgresql.psycopg2.dialect()))


def test_time_range_bounds_last_hour() -> None:
    assert time_range_bounds("Last hour", NOW) == (NOW - timedelta(hours=1), None)


def test_time_range_bounds_all_time() -> None:
    assert time_range_bounds(ALL_TIME, NOW) == (None, None)


@pytest.mark.parametrize("label", list(TIME_RANGES))
def test_time_range_bounds_every_label(label: str) -> None:
    start, end = time_range_bounds(label, NOW)

    assert end is None
    assert start is None or start < NOW


def test_time_range_bounds_unknown_label_raises() -> None:
    with pytest.raises(ValueError, match="Unknown time range 'Last year'. The choices are"):
        time_range_bounds("Last year", NOW)


def test_where_without_filters_is_empty() -> None:
    where = build_where(FraudFilters())

    assert where.sql == ""
    assert where.params == {}
    assert where.expanding == ()


def test_where_binds_every_filter() -> None:
    filters = FraudFilters(
        start=NOW - timedelta(hours=1),
        end=NOW,
        devices=("mobile",),
        locations=("FR",),
        patterns=("card_testing",),
        min_score=0.5,
        max_score=0.9,
        sources=("model", "both"),
        review_statuses=("unreviewed",),
        search="user-7",
    )

    where = build_where(filters)

    assert where.sql == (
        " WHERE event_time >= :start AND event_time < :end"
        " AND fraud_score >= :min_score AND fraud_score <= :max_score"
        " AND device IN :devices AND transaction_location IN :locations"
        " AND fraud_pattern IN :patterns AND source IN :sources"
        " AND review_status IN :review_statuses"
        " AND (transaction_id LIKE :search OR user_id LIKE :search)"
    )
    assert where.params == {
        "start": NOW - timedelta(hours=1),
        "end": NOW,
        "min_score": 0.5,
        "max_score": 0.9,
        "devices": ["mobile"],
        "locations": ["FR"],
        "patterns": ["card_testing"],
        "sources": ["model", "both"],
        "review_statuses": ["unreviewed"],
        "search": "user-7%",
    }
    assert where.expanding == ("devices", "locations", "patterns", "sources", "review_statuses")


def test_where_keeps_values_out_of_sql() -> None:
    filters = FraudFilters(devices=("mobile", "x' OR '1'='1"), search="'; DROP TABLE x; --")

    statement, params = queue_statement(filters)
    sql = compiled_sql(statement)

    assert "device IN (__[POSTCOMPILE_devices])" in sql
    assert "mobile" not in sql
    assert "1'='1" not in sql
    assert "DROP" not in sql
    assert params["devices"] == ["mobile", "x' OR '1'='1"]


def test_where_score_bound_alone() -> None:
    where = build_where(FraudFilters(min_score=0.7))

    assert where.sql == " WHERE fraud_score >= :min_score"
    assert where.params == {"min_score": 0.7}


def test_where_search_is_stripped_prefix() -> None:
    assert build_where(FraudFilters(search="  abc  ")).params == {"search": "abc%"}
    assert build_where(FraudFilters(search="   ")).sql == ""


def test_where_search_escapes_wildcards() -> None:
    assert build_where(FraudFilters(search="50%_off\\")).params["search"] == "50\\%\\_off\\\\%"


def test_escape_like_leaves_plain_text() -> None:
    assert escape_like("user-000123") == "user-000123"


def test_where_reads_naive_time_as_utc() -> None:
    where = build_where(FraudFilters(start=datetime(2024, 5, 1, 11, 0)))

    assert where.params["start"] == datetime(2024, 5, 1, 11, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sources": ("rules",)}, "Unknown source 'rules'. The choices are rule, model, both."),
        ({"review_statuses": ("done",)}, "Unknown review status 'done'. The choices are unreviewed"),
        ({"min_score": 0.8, "max_score": 0.2}, "min_score 0.8 is above max_score 0.2"),
        ({"min_score": math.nan}, "min_score must be a number or None, got nan"),
        ({"max_score": "high"}, "max_score must be a number or None, got 'high'"),
        ({"min_score": True}, "min_score must be a number or None, got True"),
        ({"search": "x" * (MAX_SEARCH_LENGTH + 1)}, f"the limit is {MAX_SEARCH_LENGTH}"),
        ({"search": None}, "search must be text, got None"),
    ],
)
def test_filters_invalid_value_raises(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        FraudFilters(**kwargs)


def test_queue_statement_newest_first_page() -> None:
    statement, params = queue_statement(FraudFilters(), "newest", None, 51)
    sql = statement.text

    assert "WHERE" not in sql
    assert sql.endswith("ORDER BY event_time DESC, transaction_id DESC LIMIT :limit")
    assert "event_time AS sort_key_0, transaction_id AS sort_key_1" in sql
    assert params == {"limit": 51}
    for column in QUEUE_COLUMNS:
        assert column in sql


def test_queue_statement_latency_column() -> None:
    sql = str(queue_statement(FraudFilters())[0])

    assert "EXTRACT(EPOCH FROM (ingested_at - event_time))::double precision AS event_to_queue_seconds" in sql


def test_queue_statement_keyset_after_cursor() -> None:
    cursor = (NOW, "tx-9")

    statement, params = queue_statement(FraudFilters(devices=("tablet",)), "newest", cursor, 26)
    sql = statement.text

    assert " WHERE device IN :devices AND (event_time, transaction_id) < (:after_0, :after_1)" in sql
    assert params["after_0"] == NOW
    assert params["after_1"] == "tx-9"
    assert params["limit"] == 26


def test_score_order_unscored_last() -> None:
    statement, params = queue_statement(FraudFilters(), "score", (-math.inf, NOW, "tx-1"))
    sql = statement.text

    key = "COALESCE(fraud_score, '-Infinity'::double precision)"
    assert f"ORDER BY {key} DESC, event_time DESC, transaction_id DESC" in sql
    assert f"WHERE ({key}, event_time, transaction_id) < (:after_0, :after_1, :after_2)" in sql
    assert params["after_0"] == -math.inf


def test_queue_statement_amount_order() -> None:
    sql = str(queue_statement(FraudFilters(), "amount", (Decimal("10.00"), NOW, "tx-1"))[0])

    assert "ORDER BY amount DESC, event_time DESC, transaction_id DESC" in sql


def test_sort_orders_end_with_transaction_id() -> None:
    for order in SORT_ORDERS.values():
        assert order.keys[-1] == "transaction_id"


@pytest.mark.parametrize(
    ("sort", "after", "limit", "message"),
    [
        ("oldest", None, 10, "Unknown sort order 'oldest'. The choices are newest, score, amount."),
        ("newest", (NOW,), 10, "The cursor of sort order 'newest' has 2 values, got 1."),
        ("newest", None, 0, "limit must be a whole number >= 1, got 0."),
        ("newest", None, True, "limit must be a whole number >= 1, got True."),
    ],
)
def test_queue_statement_invalid_arguments_raise(sort, after, limit, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        queue_statement(FraudFilters(), sort, after, limit)


@pytest.mark.parametrize("page_size", [0, MAX_PAGE_SIZE + 1, 1.5])
def test_fetch_queue_page_invalid_size_raises(page_size) -> None:
    engine = get_engine("postgresql://fraud:secret@127.0.0.1:1/fraud")

    with pytest.raises(ValueError, match=f"page_size must be from 1 to {MAX_PAGE_SIZE}"):
        fetch_queue_page(engine, FraudFilters(), page_size=page_size)


def test_count_statement_uses_same_filters() -> None:
    statement, params = count_statement(FraudFilters(devices=("tablet",)))
    sql = statement.text

    assert "FROM shop.fraud_transactions WHERE device IN" in sql
    assert "LIMIT :count_limit" in sql
    assert params == {"devices": ["tablet"], "count_limit": MAX_COUNTED_ROWS + 1}


def test_choice_columns_include_fraud_pattern() -> None:
    assert "fraud_pattern" in CHOICE_COLUMNS
    assert "fraud_pattern" in QUEUE_COLUMNS


def test_filter_choices_unknown_column_raises() -> None:
    engine = get_engine("postgresql://fraud:secret@127.0.0.1:1/fraud")

    with pytest.raises(ValueError, match="Cannot list values of column 'amount'"):
        fetch_filter_choices(engine, "amount")
    with pytest.raises(ValueError, match="limit must be >= 1, got 0"):
        fetch_filter_choices(engine, CHOICE_COLUMNS[0], limit=0)
