"""Pure shaping of pipeline/overview.py: windows, buckets, rates, job health and figures.

tests/integration/test_overview_page.py runs the queries and the page against PostgreSQL.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.overview import (
    MAX_CATEGORIES,
    NO_MODEL_MESSAGE,
    STATEMENTS,
    WINDOWS,
    Kpis,
    bar_figure,
    bucket_index,
    dashboard_url,
    format_age,
    format_seconds,
    job_health,
    model_message,
    per_minute,
    series_frame,
    timeseries_figure,
    window_bounds,
)
from pipeline.supervisor import JobExit, JobStatus

NOW = datetime(2024, 3, 1, 12, 0, 30, tzinfo=timezone.utc)
# Charts stay readable and cheap to draw below this many buckets.
MAX_BUCKETS = 200


def utc(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2024, 3, 1, hour, minute, second, tzinfo=timezone.utc)


def status(
    name: str,
    metrics: dict[str, Any],
    *,
    running: bool = False,
    exit: JobExit | None = None,
) -> JobStatus:
    return JobStatus(
        name=name,
        running=running,
        pid=4321 if running else None,
        started_at=NOW - timedelta(minutes=5),
        uptime_seconds=300.0 if running else None,
        command=(),
        options={},
        metrics=metrics,
        log_tail=(),
        exit=exit,
        log_path=Path("/nonexistent/output.log"),
        metrics_path=Path("/nonexistent/metrics.json"),
    )


# ---- Windows and buckets -------------------------------------------------------


@pytest.mark.parametrize("label", list(WINDOWS))
def test_window_bounds_end_now(label: str) -> None:
    start, end, bucket_seconds = window_bounds(label, NOW)

    assert end == NOW
    assert end - start == WINDOWS[label].width
    assert bucket_seconds == WINDOWS[label].bucket_seconds


@pytest.mark.parametrize("label", list(WINDOWS))
def test_window_buckets_bounded(label: str) -> None:
    window = WINDOWS[label]
    buckets = window.width.total_seconds() / window.bucket_seconds

    assert window.bucket_seconds >= 60
    assert 10 <= buckets <= MAX_BUCKETS


def test_window_bounds_unknown_label() -> None:
    with pytest.raises(ValueError, match="Unknown time window 'Last year'. The choices are Last 15 minutes"):
        window_bounds("Last year", NOW)


def test_window_bounds_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        window_bounds("Last hour", NOW.replace(tzinfo=None))


def test_bucket_index_aligns_to_epoch() -> None:
    index = bucket_index(utc(10, 0, 30), utc(10, 3), 60)

    assert list(index) == [pd.Timestamp(utc(10, minute)) for minute in (0, 1, 2)]
    assert str(index.tz) == "UTC"


def test_bucket_index_covers_partial_last_bucket() -> None:
    index = bucket_index(utc(10, 0), utc(10, 4, 1), 120)

    assert list(index) == [pd.Timestamp(utc(10, minute)) for minute in (0, 2, 4)]


def test_series_frame_fills_missing_buckets() -> None:
    index = bucket_index(utc(10, 0), utc(10, 3), 60)
    rows = [{"bucket": utc(10, 1).timestamp(), "fraud": 2, "non_fraud": 5}]

    frame = series_frame(rows, ("non_fraud", "fraud"), index)

    assert list(frame.columns) == ["non_fraud", "fraud"]
    assert frame["non_fraud"].tolist() == [0.0, 5.0, 0.0]
    assert frame["fraud"].tolist() == [0.0, 2.0, 0.0]


def test_series_frame_leaves_gaps_without_fill() -> None:
    index = bucket_index(utc(10, 0), utc(10, 2), 60)
    rows = [{"bucket": utc(10, 0).timestamp(), "p95": 1.5}]

    frame = series_frame(rows, ("p95",), index, fill=None)

    assert frame["p95"].iloc[0] == 1.5
    assert math.isnan(frame["p95"].iloc[1])


def test_series_frame_no_rows() -> None:
    index = bucket_index(utc(10, 0), utc(10, 2), 60)

    frame = series_frame([], ("rejected",), index)

    assert frame["rejected"].tolist() == [0.0, 0.0]


def test_per_minute_divides_by_bucket_minutes() -> None:
    counts = pd.DataFrame({"rows": [4.0, 0.0, 9.0]})

    assert per_minute(counts, 120)["rows"].tolist() == [2.0, 0.0, 4.5]
    assert per_minute(counts, 60)["rows"].tolist() == [4.0, 0.0, 9.0]


# ---- KPIs and sentences ---------------------------------------------------------


def test_fraud_rate_share_of_transactions() -> None:
    kpis = Kpis(transactions=8, frauds=3, scored=0, model_flagged=0, rejected=0, p95_latency_seconds=None)

    assert kpis.fraud_rate == 0.375


def test_fraud_rate_none_without_transactions() -> None:
    kpis = Kpis(transactions=0, frauds=0, scored=0, model_flagged=0, rejected=2, p95_latency_seconds=None)

    assert kpis.fraud_rate is None


def test_model_message_without_model() -> None:
    assert model_message(None) == (
        "No model is in production, so new transactions are stored without a score. "
        "Train and promote one on the Model page."
    )
    assert model_message(None) == NO_MODEL_MESSAGE


def test_model_message_names_version() -> None:
    assert model_message(3) == "Model version 3 is in production."


@pytest.mark.parametrize("grafana_url", ["http://127.0.0.1:3000", "http://127.0.0.1:3000/"])
def test_dashboard_url_appends_uid(grafana_url: str) -> None:
    assert dashboard_url(grafana_url) == "http://127.0.0.1:3000/d/fraud-workbench"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "–"), (float("nan"), "–"), (0.0123, "12 ms"), (0.85, "850 ms"), (4.21, "4.2 s"), (119.9, "119.9 s"), (210, "3.5 min")],
)
def test_format_seconds_units(seconds: float | None, text: str) -> None:
    assert format_seconds(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [(-2, "0 s ago"), (4.6, "5 s ago"), (180, "3 min ago"), (7200, "2 h ago")])
def test_format_age_units(seconds: float, text: str) -> None:
    assert format_age(seconds) == text


# ---- Job health -----------------------------------------------------------------


def test_job_health_running_consumer_rate() -> None:
    metrics = {
        "batches": 7,
        "rows_written": 800,
        "last_batch_id": 6,
        "last_batch_rows": 120,
        "last_batch_seconds": 0.5,
        "updated_at": NOW.timestamp() - 3,
    }

    health = job_health(status("consumer-transactions", metrics, running=True), NOW)

    assert health.title == "Transactions consumer"
    assert health.running
    assert health.state == "Running · pid 4321"
    assert health.rows_per_second == 240.0
    assert health.last_batch == "Batch 6: 120 rows in 0.5 s, 3 s ago."


def test_job_health_stopped_keeps_last_run() -> None:
    ended = JobExit(returncode=-15, ended_at=NOW, stopped_by_request=True)
    metrics = {"last_batch_id": 2, "last_batch_rows": 10, "last_batch_seconds": 2.0, "updated_at": NOW.timestamp() - 600}

    health = job_health(status("consumer-frauds", metrics, exit=ended), NOW)

    assert not health.running
    assert health.state == "Stopped · ended by SIGTERM, on request"
    assert health.rows_per_second == 5.0
    assert health.last_batch == "Batch 2: 10 rows in 2.0 s, 10 min ago."


def test_job_health_never_started() -> None:
    health = job_health(status("consumer-frauds", {}), NOW)

    assert health.state == "Stopped"
    assert health.rows_per_second is None
    assert health.last_batch == "No batch yet."


def test_job_health_zero_second_batch_has_no_rate() -> None:
    metrics = {"last_batch_id": 0, "last_batch_rows": 0, "last_batch_seconds": 0}

    health = job_health(status("consumer-transactions", metrics, running=True), NOW)

    assert health.rows_per_second is None
    assert health.last_batch == "Batch 0: 0 rows in 0.0 s."


@pytest.mark.parametrize(
    "metrics",
    [
        {"last_batch_id": "6", "last_batch_rows": 120, "last_batch_seconds": 0.5},
        {"last_batch_id": 6, "last_batch_rows": True, "last_batch_seconds": 0.5},
        {"last_batch_id": 6, "last_batch_rows": 120, "last_batch_seconds": float("inf")},
    ],
    ids=["text-id", "bool-rows", "infinite-seconds"],
)
def test_job_health_ignores_invalid_metrics(metrics: dict[str, Any]) -> None:
    health = job_health(status("consumer-transactions", metrics, running=True), NOW)

    assert health.rows_per_second is None
    assert health.last_batch == "No batch yet."


def test_job_health_producer_rate() -> None:
    metrics = {"sent": 12500, "failed": 0, "rate_per_s": 19.8, "updated_at": NOW.timestamp() - 1}

    health = job_health(status("producer", metrics, running=True), NOW)

    assert health.title == "Producer"
    assert health.rows_per_second == 19.8
    assert health.last_batch == "12,500 messages sent, 1 s ago."


def test_job_health_producer_not_started() -> None:
    health = job_health(status("producer", {}), NOW)

    assert health.rows_per_second is None
    assert health.last_batch == "No message sent yet."


# ---- Figures --------------------------------------------------------------------


def test_timeseries_figure_stacks_bars() -> None:
    index = bucket_index(utc(10, 0), utc(10, 3), 60)
    frame = pd.DataFrame({"non_fraud": [3.0, 1.0, 0.0], "fraud": [1.0, 0.0, 2.0]}, index=index)

    figure = timeseries_figure(frame, {"non_fraud": "non-fraud", "fraud": "fraud"}, "transactions per minute", stacked=True)

    assert [trace.name for trace in figure.data] == ["non-fraud", "fraud"]
    assert [trace.type for trace in figure.data] == ["bar", "bar"]
    assert list(figure.data[1].y) == [1.0, 0.0, 2.0]
    assert figure.layout.barmode == "stack"
    assert figure.layout.yaxis.title.text == "transactions per minute"


def test_timeseries_figure_lines_keep_gaps() -> None:
    index = bucket_index(utc(10, 0), utc(10, 2), 60)
    frame = pd.DataFrame({"p95": [1.5, float("nan")]}, index=index)

    figure = timeseries_figure(frame, {"p95": "p95"}, "seconds")

    assert figure.data[0].type == "scatter"
    assert figure.data[0].mode == "lines"
    assert math.isnan(figure.data[0].y[1])


def test_bar_figure_horizontal_first_on_top() -> None:
    frame = pd.DataFrame({"device": ["phone", "laptop"], "frauds": [3, 1]})

    figure = bar_figure(frame, "device", "frauds")

    assert figure.data[0].orientation == "h"
    assert list(figure.data[0].y) == ["phone", "laptop"]
    assert figure.layout.yaxis.autorange == "reversed"


# ---- Statements -------------------------------------------------------------------


@pytest.mark.parametrize("name", list(STATEMENTS))
def test_statement_bounded_by_window(name: str) -> None:
    sql = STATEMENTS[name]
    filters = re.findall(r"(?:\w+\.)?(\w+) >= :start AND (?:\w+\.)?\1 < :end", sql)

    assert filters, f"{name} has no time window filter"
    assert set(filters) <= {"event_time", "ingested_at", "received_at"}


@pytest.mark.parametrize("name", ["top_frauds", "by_country", "by_device"])
def test_row_statement_has_limit(name: str) -> None:
    assert re.search(r"LIMIT :(top_frauds|max_categories)\s*$", STATEMENTS[name])
    assert MAX_CATEGORIES == 10
