"""Frauds page: the newest rows of shop.fraud_transactions, filtered and paged in SQL."""

import math
from datetime import datetime, timezone

import streamlit as st
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from pipeline.countries import country_label
from pipeline.health import database_error_message
from pipeline.queries import (
    ALL_TIME,
    TIME_RANGES,
    FraudFilters,
    MAX_COUNTED_ROWS,
    FraudPage,
    count_fraud_rows,
    fetch_filter_choices,
    fetch_fraud_page,
    fetch_rejected_messages,
    get_engine,
    time_range_bounds,
)
from pipeline.settings import get_settings

REFRESH_SECONDS = 5
CHOICES_TTL_SECONDS = 60
PAGE_SIZES = (25, 50, 100, 200)

settings = get_settings()

if "frauds_page" not in st.session_state:
    st.session_state.frauds_page = 1


@st.cache_resource(show_spinner=False)
def engine_for(database_url: str) -> Engine:
    return get_engine(database_url)


@st.cache_data(ttl=CHOICES_TTL_SECONDS, show_spinner=False)
def filter_choices(database_url: str, column: str) -> list[str]:
    return fetch_filter_choices(engine_for(database_url), column)


@st.cache_data(ttl=REFRESH_SECONDS, max_entries=100, show_spinner=False)
def matching_count(database_url: str, filters: FraudFilters) -> int:
    return count_fraud_rows(engine_for(database_url), filters)


@st.cache_data(ttl=REFRESH_SECONDS, max_entries=100, show_spinner=False)
def fraud_page(database_url: str, filters: FraudFilters, page: int, page_size: int) -> FraudPage:
    return fetch_fraud_page(engine_for(database_url), filters, page, page_size)


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def rejected_messages(database_url: str) -> tuple:
    return fetch_rejected_messages(engine_for(database_url))


def reset_page() -> None:
    st.session_state.frauds_page = 1


def change_page(step: int) -> None:
    st.session_state.frauds_page = max(1, st.session_state.frauds_page + step)


def load_choices(column: str, selected_key: str) -> list[str]:
    """Return the filter choices, keeping selected values even when the query fails."""
    try:
        choices = filter_choices(settings.database_url, column)
    except (SQLAlchemyError, ValueError):
        # The table below shows the database error; the filters stay usable.
        choices = []
    return sorted(set(choices) | set(st.session_state.get(selected_key, [])))


COLUMN_CONFIG = {
    "event_time": st.column_config.DatetimeColumn("Event time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "transaction_id": "Transaction",
    "user_id": "User",
    "first_name": "First name",
    "last_name": "Last name",
    "amount": st.column_config.NumberColumn("Amount", format="%.2f"),
    "device": "Device",
    "location": "Home country",
    "transaction_location": "Country",
    "fraud_reasons": st.column_config.ListColumn("Fraud reasons"),
    "fraud_pattern": "Fraud pattern",
    "ingested_at": st.column_config.DatetimeColumn("Stored at (UTC)", format="YYYY-MM-DD HH:mm:ss"),
}


@st.fragment(run_every=REFRESH_SECONDS)
def fraud_table(
    time_range: str, devices: list[str], locations: list[str], patterns: list[str], page_size: int
) -> None:
    now = datetime.now(timezone.utc)
    start, end = time_range_bounds(time_range, now)
    filters = FraudFilters(
        start=start,
        end=end,
        devices=tuple(devices),
        locations=tuple(locations),
        patterns=tuple(patterns),
    )

    try:
        total = matching_count(settings.database_url, filters)
        if total <= MAX_COUNTED_ROWS:
            last_page = max(1, math.ceil(total / page_size))
            st.session_state.frauds_page = min(st.session_state.frauds_page, last_page)
        result = fraud_page(settings.database_url, filters, st.session_state.frauds_page, page_size)
    except (SQLAlchemyError, ValueError) as exc:
        # ValueError: DATABASE_URL cannot be parsed, for example a port that is not a number.
        st.error(database_error_message(exc, settings.database_url), icon=":material/error:")
        return

    if total > MAX_COUNTED_ROWS:
        matched = f"More than {MAX_COUNTED_ROWS:,} frauds match · page {result.page}"
    else:
        noun = "fraud matches" if total == 1 else "frauds match"
        matched = f"{total:,} {noun} · page {result.page} of {last_page}"
    st.caption(f"{matched} · refreshed {now:%H:%M:%S} UTC, every {REFRESH_SECONDS} s")
    if result.rows.empty:
        st.info("No fraud matches these filters yet.")
    else:
        # Country codes with their names beside them, such as "DE · Germany".
        rows = result.rows.assign(
            location=result.rows["location"].map(country_label),
            transaction_location=result.rows["transaction_location"].map(country_label),
        )
        st.dataframe(rows, hide_index=True, column_config=COLUMN_CONFIG)

    previous_column, next_column, _ = st.columns([1, 1, 6])
    previous_column.button(
        "Newer",
        key="frauds_newer",
        on_click=change_page,
        args=(-1,),
        disabled=result.page <= 1,
        icon=":material/chevron_left:",
        width="stretch",
    )
    next_column.button(
        "Older",
        key="frauds_older",
        on_click=change_page,
        args=(1,),
        disabled=not result.has_next,
        icon=":material/chevron_right:",
        width="stretch",
    )


@st.fragment(run_every=REFRESH_SECONDS)
def rejected_table() -> None:
    try:
        rows, total = rejected_messages(settings.database_url)
    except (SQLAlchemyError, ValueError):
        # The fraud table reports the database error; one message is enough.
        st.caption("Rejected messages cannot be read while the database is unavailable.")
        return
    if total == 0:
        st.caption("No record has been rejected.")
        return
    shown = f"more than {MAX_COUNTED_ROWS:,}" if total > MAX_COUNTED_ROWS else f"{total:,}"
    st.caption(f"{shown} records rejected in all; the newest {len(rows)} are shown.")
    st.dataframe(rows, hide_index=True)


st.title("Frauds")
st.caption("Transactions labelled fraud, newest event time first.")

time_column, device_column, country_column, pattern_column, size_column = st.columns(
    [1.2, 1.6, 1.6, 1.6, 0.8]
)
time_range = time_column.selectbox(
    "Time range",
    list(TIME_RANGES),
    index=list(TIME_RANGES).index(ALL_TIME),
    key="frauds_time_range",
    on_change=reset_page,
)
devices = device_column.multiselect(
    "Device",
    load_choices("device", "frauds_devices"),
    key="frauds_devices",
    on_change=reset_page,
    placeholder="All devices",
)
locations = country_column.multiselect(
    "Country",
    load_choices("transaction_location", "frauds_locations"),
    key="frauds_locations",
    on_change=reset_page,
    placeholder="All countries",
    format_func=country_label,
)
patterns = pattern_column.multiselect(
    "Fraud pattern",
    load_choices("fraud_pattern", "frauds_patterns"),
    key="frauds_patterns",
    on_change=reset_page,
    placeholder="All patterns",
)
page_size = size_column.selectbox(
    "Rows per page", PAGE_SIZES, index=1, key="frauds_page_size", on_change=reset_page
)

fraud_table(time_range, devices, locations, patterns, page_size)

with st.expander("Rejected messages", icon=":material/block:"):
    st.caption(
        "Records the consumers could not accept, with the reason. They are kept in "
        "shop.rejected_messages and never stored as transactions."
    )
    rejected_table()
