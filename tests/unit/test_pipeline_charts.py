"""Plotly figure builders of pipeline.charts, on a small user history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd

from models.charts import FRAUD_COLOR, LEGITIMATE_COLOR
from pipeline.charts import history_figure

START = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
# Newest first, as fetch_user_history returns a history.
HISTORY = pd.DataFrame(
    {
        "event_time": [START + timedelta(minutes=minutes) for minutes in (30, 20, 10, 0)],
        "transaction_id": ["tx-4", "tx-3", "tx-2", "tx-1"],
        "amount": [950.0, 12.5, 40.0, 25.0],
        "is_fraud": [1, 0, 1, 0],
    }
)


def traces_by_name(figure) -> dict:
    return {trace.name: trace for trace in figure.data}


def utc_times(values) -> list[pd.Timestamp]:
    """Read plotly's x values, which it stores as naive UTC datetime64, as aware timestamps."""
    return list(pd.to_datetime(values, utc=True))


def test_history_figure_marks_transaction() -> None:
    figure = history_figure(HISTORY, "tx-2")

    star = traces_by_name(figure)["This transaction"]
    assert utc_times(star.x) == [START + timedelta(minutes=10)]
    assert list(star.y) == [40.0]
    assert star.marker.symbol == "star"
    assert star.marker.color == FRAUD_COLOR


def test_history_figure_star_is_last_trace() -> None:
    figure = history_figure(HISTORY, "tx-2")

    assert figure.data[-1].name == "This transaction"


def test_history_figure_splits_frauds() -> None:
    traces = traces_by_name(history_figure(HISTORY, "tx-2"))

    legitimate = traces["Legitimate (is_fraud = 0)"]
    fraud = traces["Fraud (is_fraud = 1)"]
    assert list(legitimate.text) == ["tx-1", "tx-3"]
    assert legitimate.marker.color == LEGITIMATE_COLOR
    assert list(fraud.text) == ["tx-2", "tx-4"]
    assert list(fraud.y) == [40.0, 950.0]
    assert fraud.marker.color == FRAUD_COLOR


def test_history_figure_line_in_time_order() -> None:
    line = traces_by_name(history_figure(HISTORY, "tx-2"))["Amount"]

    assert utc_times(line.x) == sorted(HISTORY["event_time"])
    assert list(line.y) == [25.0, 40.0, 12.5, 950.0]


def test_history_figure_unknown_transaction_empty_star() -> None:
    star = traces_by_name(history_figure(HISTORY, "tx-missing"))["This transaction"]

    assert len(star.x) == 0
    assert len(star.y) == 0
