"""Tests of the query builders in pipeline.queries that need no database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import postgresql

from pipeline.queries import (
    ALL_TIME,
    CHOICE_COLUMNS,
    FRAUD_COLUMNS,
    MAX_COUNTED_ROWS,
    MAX_PAGE_SIZE,
    TIME_RANGES,
    FraudFilters,
    count_statement,
    fetch_filter_choices,
    fraud_page_statement,
    get_engine,
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


def test_page_statement_without_filters() -> None:
    statement, params = fraud_page_statement(FraudFilters(), page=1, page_size=50)
    sql = str(statement)

    assert "WHERE" not in sql
    assert "ORDER BY event_time DESC, transaction_id DESC" in sql
    assert "LIMIT :limit OFFSET :offset" in sql
    assert params == {"limit": 51, "offset": 0}
    for column in FRAUD_COLUMNS:
        assert column in sql


def test_page_statement_offset_of_third_page() -> None:
    _, params = fraud_page_statement(FraudFilters(), page=3, page_size=20)

    assert params["offset"] == 40
    assert params["limit"] == 21


def test_page_statement_binds_every_filter_value() -> None:
    start = NOW - timedelta(hours=1)
    filters = FraudFilters(
        start=start,
        end=NOW,
        devices=("mobile", "x' OR '1'='1"),
        locations=("France",),
    )

    statement, params = fraud_page_statement(filters, page=1, page_size=10)
    sql = compiled_sql(statement)

    assert "event_time >= %(start)s" in sql
    assert "event_time < %(end)s" in sql
    assert "device IN (__[POSTCOMPILE_devices])" in sql
    assert "transaction_location IN (__[POSTCOMPILE_locations])" in sql
    assert "mobile" not in sql
    assert "France" not in sql
    assert "1'='1" not in sql
    assert params["start"] == start
    assert params["end"] == NOW
    assert params["devices"] == ["mobile", "x' OR '1'='1"]
    assert params["locations"] == ["France"]


def test_page_statement_binds_pattern_filter() -> None:
    filters = FraudFilters(patterns=("card_testing", "geo_jump"))

    statement, params = fraud_page_statement(filters, page=1, page_size=10)
    sql = compiled_sql(statement)

    assert "fraud_pattern IN (__[POSTCOMPILE_patterns])" in sql
    assert "card_testing" not in sql
    assert params["patterns"] == ["card_testing", "geo_jump"]


def test_choice_columns_include_fraud_pattern() -> None:
    assert "fraud_pattern" in CHOICE_COLUMNS
    assert "fraud_pattern" in FRAUD_COLUMNS


def test_page_statement_reads_naive_time_as_utc() -> None:
    _, params = fraud_page_statement(
        FraudFilters(start=datetime(2024, 5, 1, 11, 0)), page=1, page_size=10
    )

    assert params["start"] == datetime(2024, 5, 1, 11, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("page", "page_size", "message"),
    [
        (0, 10, r"page must be a whole number >= 1, got 0\."),
        (1.5, 10, "page must be a whole number"),
        (True, 10, "page must be a whole number"),
        (1, 0, f"page_size must be from 1 to {MAX_PAGE_SIZE}, got 0."),
        (1, MAX_PAGE_SIZE + 1, "page_size must be from 1 to"),
    ],
)
def test_page_statement_invalid_paging_raises(page, page_size, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fraud_page_statement(FraudFilters(), page=page, page_size=page_size)


def test_count_statement_uses_same_filters() -> None:
    statement, params = count_statement(FraudFilters(devices=("tablet",)))
    sql = str(statement)

    assert "FROM shop.fraud_transactions WHERE device IN" in sql
    assert "LIMIT :count_limit" in sql
    assert params == {"devices": ["tablet"], "count_limit": MAX_COUNTED_ROWS + 1}


def test_filter_choices_unknown_column_raises() -> None:
    engine = get_engine("postgresql://fraud:secret@127.0.0.1:1/fraud")

    with pytest.raises(ValueError, match="Cannot list values of column 'amount'"):
        fetch_filter_choices(engine, "amount")
    with pytest.raises(ValueError, match="limit must be >= 1, got 0"):
        fetch_filter_choices(engine, CHOICE_COLUMNS[0], limit=0)


def test_get_engine_uses_psycopg2_with_timeouts() -> None:
    engine = get_engine("postgres://fraud:secret@127.0.0.1:5433/fraud", connect_timeout=4)

    assert engine.url.drivername == "postgresql+psycopg2"
    assert engine.url.port == 5433
    assert engine.pool._pre_ping
    assert "secret" not in repr(engine)
