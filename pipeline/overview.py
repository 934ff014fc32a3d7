"""Queries, shaping and figures of the Overview page.

The page shows the views of the Grafana dashboard (grafana/dashboards/fraud-workbench.json)
for one time window that ends now: transactions and frauds by ``event_time``,
the fraud queue by source, rows stored and their latency by ``ingested_at``,
and rejected messages by ``received_at``. Every query filters its timestamp
column to the window, which an index of ``sql/`` serves, and returns
aggregates or at most :data:`MAX_CATEGORIES` rows.

Only :func:`fetch_overview` does I/O. The other functions are pure, and
:func:`job_health` shapes the supervisor's :class:`~pipeline.supervisor.JobStatus`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from sqlalchemy import text
from sqlalchemy.engine import Engine

from pipeline.supervisor import JOBS, JobStatus

__all__ = [
    "DASHBOARD_UID",
    "DEFAULT_WINDOW",
    "MAX_CATEGORIES",
    "NO_MODEL_MESSAGE",
    "STATEMENTS",
    "WINDOWS",
    "JobHealth",
    "Kpis",
    "Overview",
    "TimeWindow",
    "bar_figure",
    "bucket_index",
    "dashboard_url",
    "fetch_overview",
    "format_age",
    "format_seconds",
    "job_health",
    "model_message",
    "per_minute",
    "series_frame",
    "timeseries_figure",
    "window_bounds",
]

# The uid in grafana/dashboards/fraud-workbench.json, which fixes its URL.
DASHBOARD_UID = "fraud-workbench"
MAX_CATEGORIES = 10
TOP_FRAUDS = 5
NO_MODEL_MESSAGE = (
    "No model is in production, so new transactions are stored without a score. "
    "Train and promote one on the Model page."
)


@dataclass(frozen=True)
class TimeWindow:
    """A window that ends now, and the width of its chart buckets."""

    label: str
    width: timedelta
    bucket_seconds: int
    """At least 60, so per-minute rates never extrapolate from seconds."""


WINDOWS: dict[str, TimeWindow] = {
    window.label: window
    for window in (
        TimeWindow("Last 15 minutes", timedelta(minutes=15), 60),
        TimeWindow("Last hour", timedelta(hours=1), 60),
        TimeWindow("Last 6 hours", timedelta(hours=6), 300),
        TimeWindow("Last 24 hours", timedelta(hours=24), 900),
        TimeWindow("Last 7 days", timedelta(days=7), 7200),
    )
}
DEFAULT_WINDOW = "Last hour"

# Buckets start at multiples of bucket_seconds since the Unix epoch, like
# Grafana's $__timeGroup, so both show the same buckets.
_BUCKET = "floor(extract(epoch FROM {column}) / :bucket_seconds) * :bucket_seconds AS bucket"
_LATENCY = "extract(epoch FROM ingested_at - event_time)::double precision"

STATEMENTS: dict[str, str] = {
    "kpis": f"""
        SELECT ledger.transactions, ledger.frauds, ledger.scored,
               queue.model_flagged, rejected.rejected, stored.p95_latency_seconds
        FROM (SELECT count(*) AS transactions,
                     count(*) FILTER (WHERE is_fraud = 1) AS frauds,
                     count(fraud_score) AS scored
              FROM shop.transactions
              WHERE event_time >= :start AND event_time < :end) AS ledger,
             (SELECT count(*) FILTER (WHERE model_flagged) AS model_flagged
              FROM shop.fraud_transactions
              WHERE event_time >= :start AND event_time < :end) AS queue,
             (SELECT count(*) AS rejected
              FROM shop.rejected_messages
              WHERE received_at >= :start AND received_at < :end) AS rejected,
             (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY {_LATENCY}) AS p95_latency_seconds
              FROM shop.transactions
              WHERE ingested_at >= :start AND ingested_at < :end) AS stored
    """,
    "ledger": f"""
        SELECT {_BUCKET.format(column="event_time")},
               count(*) FILTER (WHERE is_fraud = 0) AS non_fraud,
               count(*) FILTER (WHERE is_fraud = 1) AS fraud
        FROM shop.transactions
        WHERE event_time >= :start AND event_time < :end
        GROUP BY 1 ORDER BY 1
    """,
    "sources": f"""
        SELECT {_BUCKET.format(column="event_time")},
               count(*) FILTER (WHERE source = 'rule') AS rule_only,
               count(*) FILTER (WHERE source = 'both') AS rule_and_model,
               count(*) FILTER (WHERE source = 'model') AS model_only
        FROM shop.fraud_transactions
        WHERE event_time >= :start AND event_time < :end
        GROUP BY 1 ORDER BY 1
    """,
    "stored": f"""
        SELECT {_BUCKET.format(column="ingested_at")},
               count(*) AS ledger_rows,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY {_LATENCY}) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY {_LATENCY}) AS p95,
               max({_LATENCY}) AS max
        FROM shop.transactions
        WHERE ingested_at >= :start AND ingested_at < :end
        GROUP BY 1 ORDER BY 1
    """,
    "fraud_stored": f"""
        SELECT {_BUCKET.format(column="ingested_at")}, count(*) AS fraud_rows
        FROM shop.fraud_transactions
        WHERE ingested_at >= :start AND ingested_at < :end
        GROUP BY 1 ORDER BY 1
    """,
    "rejected": f"""
        SELECT {_BUCKET.format(column="received_at")}, count(*) AS rejected
        FROM shop.rejected_messages
        WHERE received_at >= :start AND received_at < :end
        GROUP BY 1 ORDER BY 1
    """,
    "top_frauds": """
        SELECT event_time, transaction_id, user_id, amount, device,
               transaction_location, source
        FROM shop.fraud_transactions
        WHERE event_time >= :start AND event_time < :end AND is_fraud = 1
        ORDER BY amount DESC, transaction_id
        LIMIT :top_frauds
    """,
    "by_country": """
        SELECT coalesce(c.name, f.transaction_location) AS country, count(*) AS frauds
        FROM shop.fraud_transactions AS f
        LEFT JOIN shop.countries AS c ON c.code = f.transaction_location
        WHERE f.event_time >= :start AND f.event_time < :end AND f.is_fraud = 1
        GROUP BY f.transaction_location, c.name
        ORDER BY frauds DESC, country
        LIMIT :max_categories
    """,
    "by_device": """
        SELECT device, count(*) AS frauds
        FROM shop.fraud_transactions
        WHERE event_time >= :start AND event_time < :end AND is_fraud = 1
        GROUP BY device
        ORDER BY frauds DESC, device
        LIMIT :max_categories
    """,
}


@dataclass(frozen=True)
class Kpis:
    """Totals of one window."""

    transactions: int
    frauds: int
    """Transactions labelled fraud (``is_fraud = 1``)."""
    scored: int
    """Transactions stored with a ``fraud_score``."""
    model_flagged: int
    rejected: int
    p95_latency_seconds: float | None
    """95th percentile of ``ingested_at - event_time``; None when nothing was stored."""

    @property
    def fraud_rate(self) -> float | None:
        """Share of transactions labelled fraud, from 0 to 1; None without transactions."""
        return self.frauds / self.transactions if self.transactions else None


@dataclass(frozen=True)
class Overview:
    """Everything the Overview page draws for one window, with counts per bucket."""

    start: datetime
    end: datetime
    bucket_seconds: int
    kpis: Kpis
    ledger: pd.DataFrame
    """non_fraud and fraud transactions per bucket of event_time."""
    sources: pd.DataFrame
    """rule_only, rule_and_model and model_only fraud rows per bucket of event_time."""
    throughput: pd.DataFrame
    """ledger_rows and fraud_rows stored per bucket of ingested_at."""
    latency: pd.DataFrame
    """p50, p95 and max seconds per bucket of ingested_at; NaN where nothing was stored."""
    rejected: pd.DataFrame
    """rejected messages per bucket of received_at."""
    top_frauds: pd.DataFrame
    by_country: pd.DataFrame
    by_device: pd.DataFrame


def window_bounds(label: str, now: datetime) -> tuple[datetime, datetime, int]:
    """Return ``(start, end, bucket_seconds)`` of window ``label`` ending at ``now``.

    Raises
    ------
    ValueError
        When ``label`` is not a key of :data:`WINDOWS` or ``now`` is naive.
    """
    if label not in WINDOWS:
        raise ValueError(f"Unknown time window {label!r}. The choices are {', '.join(WINDOWS)}.")
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got {now.isoformat()}.")
    window = WINDOWS[label]
    return now - window.width, now, window.bucket_seconds


def bucket_index(start: datetime, end: datetime, bucket_seconds: int) -> pd.DatetimeIndex:
    """Return the UTC start of every bucket that overlaps ``[start, end)``."""
    first = math.floor(start.timestamp() / bucket_seconds) * bucket_seconds
    count = max(0, math.ceil((end.timestamp() - first) / bucket_seconds))
    return pd.DatetimeIndex(
        pd.to_datetime([first + i * bucket_seconds for i in range(count)], unit="s", utc=True),
        name="time",
    )


def series_frame(
    rows: list[Mapping[str, Any]], columns: tuple[str, ...], index: pd.DatetimeIndex, fill: float | None = 0
) -> pd.DataFrame:
    """Return ``columns`` of ``rows`` on ``index``, keyed by each row's ``bucket`` epoch seconds.

    Buckets without a row get ``fill``, or NaN when ``fill`` is None.
    """
    frame = pd.DataFrame(
        [[row[column] for column in columns] for row in rows], columns=list(columns), dtype=float
    )
    frame.index = pd.to_datetime([float(row["bucket"]) for row in rows], unit="s", utc=True)
    frame = frame.reindex(index)
    return frame if fill is None else frame.fillna(fill)


def per_minute(counts: pd.DataFrame, bucket_seconds: int) -> pd.DataFrame:
    """Convert counts per bucket to rates per minute."""
    return counts * (60.0 / bucket_seconds)


def fetch_overview(engine: Engine, window_label: str, now: datetime) -> Overview:
    """Run the Overview queries for window ``window_label`` ending at ``now``.

    The queries share one REPEATABLE READ transaction, so the KPIs and the
    charts come from the same snapshot.

    Raises
    ------
    ValueError
        When ``window_label`` is unknown.
    sqlalchemy.exc.SQLAlchemyError
        When PostgreSQL cannot be reached or a query fails.
    """
    start, end, bucket_seconds = window_bounds(window_label, now)
    params = {
        "start": start,
        "end": end,
        "bucket_seconds": bucket_seconds,
        "top_frauds": TOP_FRAUDS,
        "max_categories": MAX_CATEGORIES,
    }
    with engine.connect() as connection:
        connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with connection.begin():
            results = {
                name: [dict(row) for row in connection.execute(text(sql), params).mappings()]
                for name, sql in STATEMENTS.items()
            }

    kpi_row = results["kpis"][0]
    p95 = kpi_row["p95_latency_seconds"]
    kpis = Kpis(
        transactions=int(kpi_row["transactions"]),
        frauds=int(kpi_row["frauds"]),
        scored=int(kpi_row["scored"]),
        model_flagged=int(kpi_row["model_flagged"]),
        rejected=int(kpi_row["rejected"]),
        p95_latency_seconds=None if p95 is None else float(p95),
    )

    index = bucket_index(start, end, bucket_seconds)
    stored = results["stored"]
    throughput = series_frame(stored, ("ledger_rows",), index).join(
        series_frame(results["fraud_stored"], ("fraud_rows",), index)
    )
    top_frauds = pd.DataFrame(
        results["top_frauds"],
        columns=["event_time", "transaction_id", "user_id", "amount", "device", "transaction_location", "source"],
    )
    top_frauds["amount"] = pd.to_numeric(top_frauds["amount"]).astype(float)
    return Overview(
        start=start,
        end=end,
        bucket_seconds=bucket_seconds,
        kpis=kpis,
        ledger=series_frame(results["ledger"], ("non_fraud", "fraud"), index),
        sources=series_frame(results["sources"], ("rule_only", "rule_and_model", "model_only"), index),
        throughput=throughput,
        latency=series_frame(stored, ("p50", "p95", "max"), index, fill=None),
        rejected=series_frame(results["rejected"], ("rejected",), index),
        top_frauds=top_frauds,
        by_country=pd.DataFrame(results["by_country"], columns=["country", "frauds"]),
        by_device=pd.DataFrame(results["by_device"], columns=["device", "frauds"]),
    )


def model_message(version: int | None) -> str:
    """Return the sentence about the production model of ``version``."""
    if version is None:
        return NO_MODEL_MESSAGE
    return f"Model version {version} is in production."


def dashboard_url(grafana_url: str) -> str:
    """Return the address of the provisioned dashboard in the Grafana at ``grafana_url``."""
    return f"{grafana_url.rstrip('/')}/d/{DASHBOARD_UID}"


def format_seconds(seconds: float | None) -> str:
    """Format a latency: ``850 ms``, ``4.2 s``, ``3.5 min``, or ``–`` for None."""
    if seconds is None or math.isnan(seconds):
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def format_age(seconds: float) -> str:
    """Format how long ago something happened: ``5 s ago``, ``3 min ago``, ``2 h ago``."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.0f} h ago"


# ---- Job health --------------------------------------------------------------



@dataclass(frozen=True)
class JobHealth:
    """One job's state, rate and latest progress, as the Overview page shows them."""

    name: str
    title: str
    running: bool
    state: str
    """``Running`` or ``Stopped``, with the pid or how the last run ended."""
    rows_per_second: float | None
    """Producer: messages acknowledged per second. Consumer: rows its last
    micro-batch processed per second of its duration, as Spark's
    processedRowsPerSecond. None before the first report."""
    last_batch: str
    """The latest progress report as a sentence, with its age."""


def _number(metrics: Mapping[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def job_health(status: JobStatus, now: datetime) -> JobHealth:
    """Shape a job's supervisor status and metrics file into a :class:`JobHealth`.

    The metrics are the last run's when the job has stopped. Values of a
    wrong type count as missing, because a job writes its metrics file itself.
    """
    title = JOBS[status.name].title if status.name in JOBS else status.name
    if status.running:
        state = f"Running · pid {status.pid}"
    elif status.exit is not None:
        state = f"Stopped · {status.exit.describe()}"
    else:
        state = "Stopped"

    metrics = status.metrics
    updated_at = _number(metrics, "updated_at")
    age = "" if updated_at is None else f", {format_age(now.timestamp() - updated_at)}"

    if status.name == "producer":
        rate = _number(metrics, "rate_per_s")
        sent = _number(metrics, "sent")
        last_batch = "No message sent yet." if sent is None else f"{sent:,.0f} messages sent{age}."
        return JobHealth(status.name, title, status.running, state, rate, last_batch)

    rows = _number(metrics, "last_batch_rows")
    seconds = _number(metrics, "last_batch_seconds")
    batch_id = _number(metrics, "last_batch_id")
    if rows is None or seconds is None or batch_id is None:
        return JobHealth(status.name, title, status.running, state, None, "No batch yet.")
    rate = rows / seconds if seconds > 0 else None
    last_batch = f"Batch {batch_id:.0f}: {rows:,.0f} rows in {seconds:.1f} s{age}."
    return JobHealth(status.name, title, status.running, state, rate, last_batch)


# ---- Figures -----------------------------------------------------------------

FRAUD_COLOR = "#e45756"
LEGITIMATE_COLOR = "#4c78a8"
SERIES_COLORS = {
    "non_fraud": LEGITIMATE_COLOR,
    "fraud": FRAUD_COLOR,
    "rule_only": "#f58518",
    "rule_and_model": FRAUD_COLOR,
    "model_only": "#b279a2",
}


def timeseries_figure(
    frame: pd.DataFrame, labels: Mapping[str, str], y_title: str, *, stacked: bool = False
) -> go.Figure:
    """Draw one trace per column of ``labels`` (column -> legend name) over ``frame``'s time index.

    Stacked figures are bars, the others lines. Times are shown in UTC.
    """
    figure = go.Figure()
    for column, label in labels.items():
        color = SERIES_COLORS.get(column)
        if stacked:
            trace = go.Bar(x=frame.index, y=frame[column], name=label, marker_color=color)
        else:
            trace = go.Scatter(x=frame.index, y=frame[column], name=label, mode="lines", line_color=color)
        figure.add_trace(trace)
    figure.update_layout(
        barmode="stack" if stacked else None,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        height=280,
        legend={"orientation": "h", "y": -0.2},
        xaxis_title="time (UTC)",
        yaxis_title=y_title,
        yaxis_rangemode="tozero",
    )
    return figure


def bar_figure(frame: pd.DataFrame, category: str, value: str) -> go.Figure:
    """Draw horizontal bars of ``value`` by ``category``, the first row on top."""
    figure = go.Figure(
        go.Bar(x=frame[value], y=frame[category], orientation="h", marker_color=FRAUD_COLOR)
    )
    figure.update_layout(
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        height=280,
        xaxis_title=value,
        yaxis={"autorange": "reversed", "type": "category"},
    )
    return figure
