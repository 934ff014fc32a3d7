"""Tests of the detail panel's query builders in pipeline.queue_detail that need no database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pipeline.queue_detail import MAX_SIMILAR_PER_SIDE, MAX_SIMILAR_WINDOW, similar_statement

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
TARGET = {
    "transaction_id": "tx-1",
    "user_id": "user-1",
    "device": "iPhone 15",
    "transaction_location": "DE",
    "event_time": NOW,
}


def test_similar_statement_bounds_each_branch() -> None:
    statement, params = similar_statement(TARGET, timedelta(hours=6), per_side=5)
    sql = statement.text

    assert sql.count("LIMIT :per_side") == 4
    assert sql.count("user_id = :user_id") == 2
    assert sql.count("device = :device AND transaction_location = :location AND user_id <> :user_id") == 2
    assert sql.count("transaction_id <> :transaction_id") == 4
    assert params["per_side"] == 5
    assert params["window_start"] == NOW - timedelta(hours=6)
    assert params["window_end"] == NOW + timedelta(hours=6)


def test_similar_statement_nearest_first() -> None:
    sql = str(similar_statement(TARGET)[0])

    assert sql.endswith("ORDER BY abs(EXTRACT(EPOCH FROM (event_time - :event_time))), transaction_id")


@pytest.mark.parametrize(
    ("window", "per_side", "message"),
    [
        (timedelta(0), 10, "The similarity window must be longer than 0"),
        (MAX_SIMILAR_WINDOW + timedelta(seconds=1), 10, "The similarity window must be longer than 0"),
        (timedelta(hours=1), 0, f"per_side must be from 1 to {MAX_SIMILAR_PER_SIDE}, got 0"),
        (timedelta(hours=1), MAX_SIMILAR_PER_SIDE + 1, f"per_side must be from 1 to {MAX_SIMILAR_PER_SIDE}"),
    ],
)
def test_similar_statement_out_of_bounds_raises(window, per_side, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        similar_statement(TARGET, window, per_side)


def test_similar_statement_largest_window_accepted() -> None:
    _, params = similar_statement(TARGET, MAX_SIMILAR_WINDOW, MAX_SIMILAR_PER_SIDE)

    assert params["per_side"] == MAX_SIMILAR_PER_SIDE


@pytest.mark.parametrize("moment", [datetime(1, 1, 1, tzinfo=timezone.utc), datetime(9999, 12, 31, 23, tzinfo=timezone.utc)])
def test_similar_statement_at_calendar_edges(moment: datetime) -> None:
    # Older releases accepted any date PostgreSQL takes, so such rows may be stored.
    _, params = similar_statement({**TARGET, "event_time": moment}, timedelta(hours=24), per_side=5)

    assert params["window_start"] <= moment <= params["window_end"]
