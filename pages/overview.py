"""Overview page: the pipeline's figures at a glance, the health of each job and the production model.

This file contains only UI code. The queries, shaping and figures live in
:mod:`pipeline.overview`, and job status comes from the supervisor, as on the
Pipeline page.
"""

from datetime import datetime, timezone

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from components.frame import require_app_frame
from models import registry
from models.params import TrainingError
from pipeline import supervisor
from pipeline.supervisor import LONG_RUNNING_JOBS
from pipeline.countries import country_label
from pipeline.health import database_error_message
from pipeline.overview import (
    DEFAULT_WINDOW,
    NO_MODEL_MESSAGE,
    WINDOWS,
    Kpis,
    Overview,
    bar_figure,
    dashboard_url,
    fetch_overview,
    format_seconds,
    job_health,
    model_message,
    per_minute,
    timeseries_figure,
)
from pipeline.queries import get_engine
from pipeline.settings import get_settings

REFRESH_SECONDS = 10
JOBS_REFRESH_SECONDS = 5
MODEL_TTL_SECONDS = 30

require_app_frame("overview")
settings = get_settings()


@st.cache_resource(show_spinner=False)
def engine_for(database_url: str) -> Engine:
    return get_engine(database_url)


@st.cache_data(ttl=REFRESH_SECONDS, max_entries=len(WINDOWS), show_spinner=False)
def overview_data(database_url: str, window_label: str) -> Overview:
    return fetch_overview(engine_for(database_url), window_label, datetime.now(timezone.utc))


@st.cache_data(ttl=MODEL_TTL_SECONDS, show_spinner=False)
def production_model(database_url: str) -> int | None:
    return registry.production_version(database_url)


TOP_FRAUDS_COLUMNS = {
    "event_time": st.column_config.DatetimeColumn("Event time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "transaction_id": "Transaction",
    "user_id": "User",
    "amount": st.column_config.NumberColumn("Amount", format="%.2f"),
    "device": "Device",
    "transaction_location": "Country",
    "source": "Source",
}


def show_kpis(kpis: Kpis) -> None:
    fraud_rate = "–" if kpis.fraud_rate is None else f"{kpis.fraud_rate:.2%}"
    values = {
        "Transactions": f"{kpis.transactions:,}",
        "Frauds": f"{kpis.frauds:,}",
        "Fraud rate": fraud_rate,
        "Model-flagged": f"{kpis.model_flagged:,}",
        "Rejected messages": f"{kpis.rejected:,}",
        "p95 event-to-stored latency": format_seconds(kpis.p95_latency_seconds),
    }
    for column, (label, value) in zip(st.columns(len(values)), values.items()):
        column.metric(label, value)


def show_model(kpis: Kpis) -> None:
    try:
        version = production_model(settings.database_url)
    except TrainingError as exc:
        # RegistryError: the message names the failure and the next step.
        st.warning(str(exc), icon=":material/warning:")
        return
    if version is None:
        st.info(NO_MODEL_MESSAGE, icon=":material/model_training:")
        return
    st.success(
        f"{model_message(version)} {kpis.scored:,} of the {kpis.transactions:,} transactions "
        "in this window have a fraud_score.",
        icon=":material/model_training:",
    )


def chart(title: str, figure: go.Figure, key: str) -> None:
    st.markdown(f"**{title}**")
    st.plotly_chart(figure, key=key, config={"displayModeBar": False})


def fraud_bars(title: str, frame: pd.DataFrame, category: str, key: str) -> None:
    if frame.empty:
        st.markdown(f"**{title}**")
        st.caption("No fraud in this window.")
    else:
        chart(title, bar_figure(frame, category, "frauds"), key)


def show_charts(data: Overview) -> None:
    bucket = data.bucket_seconds
    left, right = st.columns(2)
    with left:
        chart(
            "Transactions per minute: fraud against non-fraud",
            timeseries_figure(
                per_minute(data.ledger, bucket),
                {"non_fraud": "non-fraud", "fraud": "fraud"},
                "transactions per minute",
                stacked=True,
            ),
            "overview_ledger",
        )
    with right:
        chart(
            "Model-flagged against rule-labelled",
            timeseries_figure(
                per_minute(data.sources, bucket),
                {"rule_only": "rule only", "rule_and_model": "rule and model", "model_only": "model only"},
                "fraud table rows per minute",
                stacked=True,
            ),
            "overview_sources",
        )

    left, right = st.columns(2)
    with left:
        fraud_bars("Frauds by country", data.by_country, "country", "overview_countries")
    with right:
        fraud_bars("Frauds by device", data.by_device, "device", "overview_devices")

    left, right = st.columns(2)
    with left:
        chart(
            "Pipeline throughput",
            timeseries_figure(
                per_minute(data.throughput, bucket),
                {"ledger_rows": "ledger", "fraud_rows": "fraud table"},
                "rows stored per minute",
            ),
            "overview_throughput",
        )
    with right:
        chart(
            "Event-to-stored latency",
            timeseries_figure(data.latency, {"p50": "p50", "p95": "p95", "max": "max"}, "seconds"),
            "overview_latency",
        )

    left, right = st.columns(2)
    with left:
        chart(
            "Rejected messages per minute",
            timeseries_figure(
                per_minute(data.rejected, bucket), {"rejected": "rejected"}, "messages per minute", stacked=True
            ),
            "overview_rejected",
        )
    with right:
        st.markdown("**Top 5 frauds by amount**")
        if data.top_frauds.empty:
            st.caption("No transaction labelled fraud in this window.")
        else:
            rows = data.top_frauds.assign(
                transaction_location=data.top_frauds["transaction_location"].map(country_label)
            )
            st.dataframe(rows, hide_index=True, column_config=TOP_FRAUDS_COLUMNS)


@st.fragment(run_every=REFRESH_SECONDS)
def figures_panel(window_label: str) -> None:
    try:
        data = overview_data(settings.database_url, window_label)
    except (SQLAlchemyError, ValueError) as exc:
        # ValueError: DATABASE_URL cannot be parsed, for example a port that is not a number.
        st.error(database_error_message(exc, settings.database_url), icon=":material/error:")
        return

    st.caption(
        f"{data.start:%Y-%m-%d %H:%M:%S} to {data.end:%Y-%m-%d %H:%M:%S} UTC, "
        "by event time for transactions and frauds, and by storage time for throughput, "
        f"latency and rejections · refreshed every {REFRESH_SECONDS} s"
    )
    show_kpis(data.kpis)
    show_model(data.kpis)
    show_charts(data)


@st.fragment(run_every=JOBS_REFRESH_SECONDS)
def jobs_panel() -> None:
    try:
        statuses = supervisor.default_supervisor(settings).status_all(log_lines=0)
    except OSError as exc:
        st.error(
            f"The job state under {settings.jobs_dir} cannot be read: {exc}. "
            "Check that WORKBENCH_STATE_DIR points to a writable folder."
        )
        return

    now = datetime.now(timezone.utc)
    for column, name in zip(st.columns(len(LONG_RUNNING_JOBS)), LONG_RUNNING_JOBS):
        health = job_health(statuses[name], now)
        with column, st.container(border=True):
            st.markdown(f"**{health.title}**")
            if health.running:
                st.markdown(f":green[:material/play_circle: {health.state}]")
            else:
                st.markdown(f":gray[:material/stop_circle: {health.state}]")
            label = "Messages per second" if name == "producer" else "Rows per second"
            rate = "–" if health.rows_per_second is None else f"{health.rows_per_second:,.1f}"
            st.metric(label, rate)
            st.caption(health.last_batch)
            cause = statuses[name].failure_cause()
            if cause:
                st.error(
                    f"{health.title} stopped with an error, so its part of the pipeline is not running. "
                    f"The last error in its log: {cause} Restart it on the Pipeline page.",
                    icon=":material/error:",
                )
            problem = statuses[name].metrics.get("scoring_problem")
            if health.running and isinstance(problem, str) and problem:
                st.warning(problem, icon=":material/warning:")


st.title("Overview")
st.caption(
    "The stream at a glance. Start and stop the jobs on the Pipeline page, and work "
    "the flagged transactions on the Fraud queue page."
)

window_column, _, grafana_column = st.columns([2, 3, 1.4], vertical_alignment="bottom")
window_label = window_column.selectbox(
    "Time window",
    list(WINDOWS),
    index=list(WINDOWS).index(DEFAULT_WINDOW),
    key="overview_window",
)
grafana_column.link_button(
    "Open the Grafana dashboard",
    dashboard_url(settings.grafana_url),
    icon=":material/monitoring:",
    width="stretch",
)

st.subheader("Jobs")
jobs_panel()

st.subheader("Figures")
figures_panel(window_label)
