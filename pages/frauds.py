"""Fraud queue page: filter, sort and page shop.fraud_transactions, explain a row, review it, export CSV.

Every filter, sort and page runs in SQL (pipeline/fraud_queue.py). Selecting a
row opens its detail panel (components/queue_detail.py) below the queue, and
reviews go through pipeline/reviews.py.
"""

import math
from datetime import datetime, timezone

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from components.frame import require_app_frame
from models import registry
from models.params import TrainingError
from components.queue_detail import (
    COLUMN_CONFIG,
    REFRESH_SECONDS,
    SOURCE_LABELS,
    detail_panel,
    display_frame,
    engine_for,
)
from pipeline.countries import country_label
from pipeline.export import MAX_EXPORT_ROWS, ExportResult, export_csv
from pipeline.health import database_error_message
from pipeline.queries import MAX_COUNTED_ROWS, fetch_rejected_messages
from pipeline.fraud_queue import (
    ALL_TIME,
    MAX_SEARCH_LENGTH,
    REVIEW_STATUSES,
    SORT_ORDERS,
    SOURCES,
    TIME_RANGES,
    FraudFilters,
    QueuePage,
    count_fraud_rows,
    fetch_filter_choices,
    fetch_queue_page,
    time_range_bounds,
)
from pipeline.reviews import DECISION_LABELS
from pipeline.settings import get_settings

CHOICES_TTL_SECONDS = 60
PAGE_SIZES = (25, 50, 100, 200)
FULL_SCORE_RANGE = (0.0, 1.0)
NO_MODEL_MESSAGE = (
    "No model is in production, so new transactions are stored without a score. "
    "Train and promote one on the Model page."
)

require_app_frame("queue")
settings = get_settings()
DATABASE_URL = settings.database_url

for name, default in (
    ("frauds_cursors", []),  # Sort keys of the last row of each earlier page.
    ("frauds_selected", None),  # transaction_id of the open detail panel.
    ("frauds_table_ids", []),  # transaction_id of each row of the table shown last.
    ("frauds_table_rows", []),  # The selected row positions the page set last.
    ("frauds_reviewer", None),
):
    if name not in st.session_state:
        st.session_state[name] = default


@st.cache_data(ttl=CHOICES_TTL_SECONDS, show_spinner=False)
def filter_choices(database_url: str, column: str) -> list[str]:
    return fetch_filter_choices(engine_for(database_url), column)


@st.cache_data(ttl=REFRESH_SECONDS, max_entries=100, show_spinner=False)
def matching_count(database_url: str, filters: FraudFilters, limit: int = MAX_COUNTED_ROWS) -> int:
    return count_fraud_rows(engine_for(database_url), filters, limit)


@st.cache_data(ttl=REFRESH_SECONDS, max_entries=100, show_spinner=False)
def queue_page(
    database_url: str, filters: FraudFilters, sort: str, after: tuple | None, page_size: int
) -> QueuePage:
    return fetch_queue_page(engine_for(database_url), filters, sort, after, page_size)


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def rejected_messages(database_url: str) -> tuple:
    return fetch_rejected_messages(engine_for(database_url))


@st.cache_data(ttl=30, show_spinner=False)
def production_model(database_url: str) -> int | None:
    return registry.production_version(database_url)


def clear_queue_caches() -> None:
    """Forget cached queue rows that a review changes."""
    for cached in (matching_count, queue_page):
        cached.clear()


def reset_paging() -> None:
    st.session_state.frauds_cursors = []


def show_older(cursor: tuple) -> None:
    st.session_state.frauds_cursors = [*st.session_state.frauds_cursors, cursor]


def show_newer() -> None:
    st.session_state.frauds_cursors = st.session_state.frauds_cursors[:-1]


def close_detail() -> None:
    st.session_state.frauds_selected = None
    st.session_state.frauds_table = {"selection": {"rows": [], "columns": [], "cells": []}}
    st.session_state.frauds_table_rows = []


def load_choices(column: str, selected_key: str) -> list[str]:
    """Return the filter choices, keeping selected values even when the query fails."""
    try:
        choices = filter_choices(DATABASE_URL, column)
    except (SQLAlchemyError, ValueError):
        # The queue below shows the database error, and the filters stay usable.
        choices = []
    return sorted(set(choices) | set(st.session_state.get(selected_key, [])))


def read_filters(now: datetime) -> FraudFilters:
    """Build the filters from the widgets, with the time range ending at ``now``."""
    state = st.session_state
    start, end = time_range_bounds(state.frauds_time_range, now)
    low, high = state.frauds_score_range
    narrowed = (low, high) != FULL_SCORE_RANGE
    return FraudFilters(
        start=start,
        end=end,
        devices=tuple(state.frauds_devices),
        locations=tuple(state.frauds_locations),
        patterns=tuple(state.frauds_patterns),
        min_score=low if narrowed else None,
        max_score=high if narrowed else None,
        sources=tuple(state.frauds_sources),
        review_statuses=tuple(state.frauds_review_statuses),
        search=state.frauds_search,
    )


def filter_snapshot() -> tuple:
    """Return the widget values that define the filters, comparable from run to run."""
    state = st.session_state
    return (
        state.frauds_time_range,
        tuple(state.frauds_score_range),
        tuple(state.frauds_devices),
        tuple(state.frauds_locations),
        tuple(state.frauds_patterns),
        tuple(state.frauds_sources),
        tuple(state.frauds_review_statuses),
        state.frauds_search.strip(),
        state.frauds_sort,
    )


def sync_selection(shown_ids: list[str]) -> bool:
    """Apply a row click of the analyst, then select the open transaction in the new rows.

    The table's selection is a row position. The page reads a click against
    the rows it showed last, then moves the selection to wherever the open
    transaction is now, because refreshes add rows above it. Returns True
    when the analyst opened or closed a transaction.
    """
    state = st.session_state
    widget = state.get("frauds_table")
    clicked = list(widget["selection"]["rows"]) if widget else []
    changed = False
    if clicked != state.frauds_table_rows:
        previous_ids = state.frauds_table_ids
        opened = previous_ids[clicked[0]] if clicked and clicked[0] < len(previous_ids) else None
        changed = opened != state.frauds_selected
        state.frauds_selected = opened

    selected = state.frauds_selected
    rows = [shown_ids.index(selected)] if selected in shown_ids else []
    state.frauds_table = {"selection": {"rows": rows, "columns": [], "cells": []}}
    state.frauds_table_rows = rows
    state.frauds_table_ids = shown_ids
    return changed


@st.fragment(run_every=REFRESH_SECONDS)
def queue_table(page_size: int) -> None:
    now = datetime.now(timezone.utc)
    sort = st.session_state.frauds_sort
    cursors = st.session_state.frauds_cursors
    try:
        filters = read_filters(now)
        total = matching_count(DATABASE_URL, filters)
        result = queue_page(DATABASE_URL, filters, sort, cursors[-1] if cursors else None, page_size)
    except (SQLAlchemyError, ValueError) as exc:
        # ValueError: DATABASE_URL cannot be parsed, for example a port that is not a number.
        st.error(database_error_message(exc, DATABASE_URL), icon=":material/error:")
        return

    page = len(cursors) + 1
    if total > MAX_COUNTED_ROWS:
        matched = f"More than {MAX_COUNTED_ROWS:,} transactions match · page {page}"
    else:
        noun = "transaction matches" if total == 1 else "transactions match"
        matched = f"{total:,} {noun} · page {page} of {max(1, math.ceil(total / page_size))}"
    st.caption(f"{matched} · refreshed {now:%H:%M:%S} UTC, every {REFRESH_SECONDS} s")

    shown_ids = list(result.rows["transaction_id"])
    if sync_selection(shown_ids):
        # The detail panel is outside this fragment, so the whole page reruns.
        st.rerun()
    if result.rows.empty:
        searched = st.session_state.get("frauds_search", "").strip()
        if searched:
            st.info(
                f"No transaction in the queue has a transaction id or user id that starts with "
                f"{searched!r} under these filters. Ids are case-sensitive; check the id or clear other filters."
            )
        else:
            st.info("No transaction in the queue matches these filters. New rows appear here as they arrive.")
    else:
        st.dataframe(
            display_frame(result.rows),
            hide_index=True,
            column_config=COLUMN_CONFIG,
            key="frauds_table",
            on_select="rerun",
            selection_mode="single-row",
        )
        st.caption("Select a row to open its details, explanation and review form below.")

    newer_column, older_column, _ = st.columns([1, 1, 6])
    newer_column.button(
        "Newer" if sort == "newest" else "Previous",
        key="frauds_newer",
        on_click=show_newer,
        disabled=not cursors,
        icon=":material/chevron_left:",
        width="stretch",
    )
    older_column.button(
        "Older" if sort == "newest" else "Next",
        key="frauds_older",
        on_click=show_older,
        args=(result.next_cursor,),
        disabled=not result.has_next,
        icon=":material/chevron_right:",
        width="stretch",
    )


def production_notice() -> None:
    try:
        version = production_model(DATABASE_URL)
    except TrainingError:
        # The queue reports database errors, and one message is enough.
        return
    if version is None:
        st.info(NO_MODEL_MESSAGE, icon=":material/info:")
    else:
        st.caption(f"Model version {version} is in production and scores new transactions.")


def export_section() -> None:
    st.caption(
        f"The CSV holds the transactions that match the filters, in the chosen order, at most "
        f"{MAX_EXPORT_ROWS:,} rows. An unscored row has an empty fraud_score. A text cell that a "
        "spreadsheet would run as a formula starts with an apostrophe."
    )
    snapshot = filter_snapshot()
    if st.button("Prepare CSV", key="frauds_export_prepare", icon=":material/table_view:"):
        filters = read_filters(datetime.now(timezone.utc))
        try:
            with st.spinner("Writing the CSV..."):
                data, result = export_csv(engine_for(DATABASE_URL), filters, st.session_state.frauds_sort)
        except (SQLAlchemyError, ValueError) as exc:
            st.error(database_error_message(exc, DATABASE_URL), icon=":material/error:")
            return
        made_at = datetime.now(timezone.utc)
        st.session_state.frauds_export = {"snapshot": snapshot, "data": data, "result": result, "made_at": made_at}

    export = st.session_state.get("frauds_export")
    if export is None or export["snapshot"] != snapshot:
        return
    result: ExportResult = export["result"]
    if result.truncated:
        st.warning(
            f"More than {MAX_EXPORT_ROWS:,} transactions match these filters, so the CSV holds only "
            f"the first {MAX_EXPORT_ROWS:,} in the chosen order. Narrow the filters to export the rest.",
            icon=":material/warning:",
        )
    st.caption(f"{result.rows:,} rows written at {export['made_at']:%H:%M:%S} UTC.")
    st.download_button(
        "Download CSV",
        export["data"],
        file_name=f"fraud-queue-{export['made_at']:%Y%m%d-%H%M%S}.csv",
        mime="text/csv",
        key="frauds_export_download",
        on_click="ignore",
        icon=":material/download:",
    )


@st.fragment(run_every=REFRESH_SECONDS)
def rejected_table() -> None:
    try:
        rows, total = rejected_messages(DATABASE_URL)
    except (SQLAlchemyError, ValueError):
        # The queue reports the database error, and one message is enough.
        st.caption("Rejected messages cannot be read while the database is unavailable.")
        return
    if total == 0:
        st.caption("No record has been rejected.")
        return
    shown = f"more than {MAX_COUNTED_ROWS:,}" if total > MAX_COUNTED_ROWS else f"{total:,}"
    st.caption(f"{shown} records rejected in all; the newest {len(rows)} are shown.")
    st.dataframe(rows, hide_index=True)


st.title("Fraud queue")
st.caption(
    "Transactions that the rules labelled fraud or the model flagged. fraud_score is higher for "
    "more suspicious transactions."
)
production_notice()

search_column, time_column, sort_column, size_column = st.columns([2.4, 1.2, 1.4, 0.8])
search_column.text_input(
    "Search",
    key="frauds_search",
    on_change=reset_paging,
    max_chars=MAX_SEARCH_LENGTH,
    placeholder="User id or transaction id, or its start",
)
time_column.selectbox(
    "Time range", list(TIME_RANGES), index=list(TIME_RANGES).index(ALL_TIME),
    key="frauds_time_range", on_change=reset_paging,
)
sort_column.selectbox(
    "Sort", list(SORT_ORDERS), format_func=lambda key: SORT_ORDERS[key].label,
    key="frauds_sort", on_change=reset_paging,
)
page_size = size_column.selectbox(
    "Rows per page", PAGE_SIZES, index=1, key="frauds_page_size", on_change=reset_paging
)

score_column, source_column, status_column = st.columns([2, 1.5, 2])
score_column.slider(
    "fraud_score range", 0.0, 1.0, FULL_SCORE_RANGE, step=0.01, key="frauds_score_range",
    on_change=reset_paging,
    help="Higher is more suspicious. A range narrower than 0 to 1 leaves out transactions that are not scored.",
)
source_column.multiselect(
    "Flagged by", SOURCES, format_func=SOURCE_LABELS.get, key="frauds_sources",
    on_change=reset_paging, placeholder="Rules or model",
)
status_column.multiselect(
    "Review status", REVIEW_STATUSES, format_func=DECISION_LABELS.get, key="frauds_review_statuses",
    on_change=reset_paging, placeholder="Any status",
)

pattern_column, country_column, device_column = st.columns(3)
pattern_column.multiselect(
    "Fraud pattern", load_choices("fraud_pattern", "frauds_patterns"), key="frauds_patterns",
    on_change=reset_paging, placeholder="All patterns",
)
country_column.multiselect(
    "Country", load_choices("transaction_location", "frauds_locations"), key="frauds_locations",
    on_change=reset_paging, placeholder="All countries", format_func=country_label,
)
device_column.multiselect(
    "Device", load_choices("device", "frauds_devices"), key="frauds_devices",
    on_change=reset_paging, placeholder="All devices",
)

queue_table(page_size)

with st.expander("Export as CSV", icon=":material/download:"):
    export_section()

if st.session_state.frauds_selected is not None:
    detail_panel(
        DATABASE_URL, st.session_state.frauds_selected, on_close=close_detail, on_review=clear_queue_caches
    )

with st.expander("Rejected messages", icon=":material/block:"):
    st.caption(
        "Records the consumers could not accept, with the reason. They are kept in "
        "shop.rejected_messages and never stored as transactions."
    )
    rejected_table()
