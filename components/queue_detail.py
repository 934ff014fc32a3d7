"""Detail panel of the Fraud queue: why a row was flagged, the user's history, similar transactions and reviews.

pages/frauds.py shows :func:`detail_panel` below the queue table for the
selected row. The panel's SQL is in pipeline/queue_detail.py, and reviews go
through pipeline/reviews.py.

The cached engine, the refresh interval and the row formatting that the
queue table shares with the panel's tables are defined here too, because a
page script such as pages/frauds.py cannot be imported.
"""

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from models.artifact import IncompatibleModelError
from models.charts import waterfall
from models.params import TrainingError
from pipeline.charts import history_figure
from pipeline.countries import country_label
from pipeline.health import database_error_message
from pipeline.queries import get_engine, score_label
from pipeline.queue_detail import fetch_queue_transaction, fetch_similar_transactions, fetch_user_history
from pipeline.reviews import (
    DECISION_LABELS,
    DECISIONS,
    MAX_NOTE_LENGTH,
    check_reviewer,
    record_review,
    review_history,
)

REFRESH_SECONDS = 5
SOURCE_LABELS = {"rule": "Rules", "model": "Model", "both": "Rules and model"}


@st.cache_resource(show_spinner=False)
def engine_for(database_url: str) -> Engine:
    return get_engine(database_url)


@st.cache_data(ttl=REFRESH_SECONDS, max_entries=50, show_spinner=False)
def queue_transaction(database_url: str, transaction_id: str) -> dict[str, Any] | None:
    return fetch_queue_transaction(engine_for(database_url), transaction_id)


@st.cache_data(ttl=30, max_entries=50, show_spinner=False)
def user_history(database_url: str, user_id: str, event_time: datetime) -> pd.DataFrame:
    return fetch_user_history(engine_for(database_url), user_id, event_time)


@st.cache_data(ttl=30, max_entries=50, show_spinner=False)
def similar_transactions(database_url: str, target: tuple) -> pd.DataFrame:
    keys = ("transaction_id", "user_id", "device", "transaction_location", "event_time")
    return fetch_similar_transactions(engine_for(database_url), dict(zip(keys, target)))


@st.cache_data(ttl=REFRESH_SECONDS, max_entries=50, show_spinner=False)
def reviews_of(database_url: str, transaction_id: str) -> pd.DataFrame:
    return review_history(engine_for(database_url), transaction_id)


# Failures are cached too, so a model that cannot be loaded is not loaded
# again on every rerun. The TTL bounds how long a fixed problem stays shown.
@st.cache_data(ttl=120, max_entries=32, show_spinner="Explaining the score with SHAP...")
def explanation(database_url: str, transaction_id: str, version: int) -> tuple[dict[str, Any] | None, str]:
    """Return the SHAP explanation and "", or None and the sentence that explains why there is none."""
    # Imported here: models.explain loads shap, which takes seconds.
    from models.explain import explain_transaction

    try:
        return explain_transaction(database_url, transaction_id, version), ""
    except (TrainingError, IncompatibleModelError) as exc:
        # TrainingError covers registry and database errors, with the next step in the message.
        return None, str(exc)


def clear_detail_caches() -> None:
    """Forget cached rows of the panel that a review changes."""
    for cached in (queue_transaction, reviews_of):
        cached.clear()


def forget_reviewer() -> None:
    st.session_state.frauds_reviewer = None


COLUMN_CONFIG = {
    "event_time": st.column_config.DatetimeColumn("Event time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "transaction_id": "Transaction",
    "user_id": "User",
    "amount": st.column_config.NumberColumn("Amount", format="%.2f"),
    "fraud_score": st.column_config.TextColumn("fraud_score", help="Higher is more suspicious."),
    "source": "Flagged by",
    "review_status": "Review",
    "fraud_pattern": "Fraud pattern",
    "fraud_reasons": st.column_config.ListColumn("Rule reasons"),
    "device": "Device",
    "transaction_location": "Country",
    "location": "Home country",
    "model_version": st.column_config.NumberColumn("Model version", format="%d"),
    "ingested_at": st.column_config.DatetimeColumn("In queue at (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "event_to_queue_seconds": st.column_config.NumberColumn(
        "Event to queue (s)",
        format="%.2f",
        help="Seconds from the event to the row being written to the queue (ingested_at - event_time).",
    ),
}


def display_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Return queue rows as shown: score text, labels, and countries with their names."""
    frame = rows.copy()
    if "fraud_score" in frame:
        frame["fraud_score"] = frame["fraud_score"].map(score_label)
    if "source" in frame:
        frame["source"] = frame["source"].map(lambda value: SOURCE_LABELS.get(value, value))
    if "review_status" in frame:
        frame["review_status"] = frame["review_status"].map(lambda value: DECISION_LABELS.get(value, value))
    for column in ("location", "transaction_location"):
        if column in frame:
            frame[column] = frame[column].map(country_label)
    return frame


def rule_section(row: dict[str, Any]) -> None:
    st.markdown("**Rules**")
    reasons = ", ".join(row["fraud_reasons"] or [])
    if not row["rule_flagged"]:
        flagged_by_model = "; the model flagged it" if row["model_flagged"] else ""
        st.write(f"The rules did not label this transaction fraud{flagged_by_model}.")
    elif reasons:
        st.write(f"The rules labelled this transaction fraud for: {reasons}.")
    else:
        st.write("The rules labelled this transaction fraud without naming a reason.")
    if row["fraud_pattern"]:
        st.write(f"Fraud pattern: {row['fraud_pattern']}.")


def stored_contributions(row: dict[str, Any]) -> None:
    contributions = row["top_contributions"] or []
    if not contributions:
        return
    st.write("The largest contributions stored when the transaction was scored, in fraud_score units:")
    st.dataframe(pd.DataFrame(contributions), hide_index=True)


def model_section(database_url: str, row: dict[str, Any]) -> None:
    st.markdown("**Model**")
    version = row["model_version"]
    if version is None and not row.get("in_ledger", True):
        st.info(
            "This transaction has no score yet: the rules queued it before the transactions consumer "
            "stored and scored it, which usually takes a few seconds. Select it again to see the score. "
            "If it stays unscored, check the transactions consumer on the Pipeline page.",
            icon=":material/info:",
        )
        return
    if version is None:
        st.info(
            "This transaction has no SHAP explanation because it was stored without a score: no model "
            "was in production then, or the production model could not be loaded. The transactions "
            "consumer's card on the Pipeline page gives the reason.",
            icon=":material/info:",
        )
        stored_contributions(row)
        return
    result, problem = explanation(database_url, row["transaction_id"], int(version))
    if result is not None:
        try:
            figure = waterfall(
                result["base_value"], result["contributions"], result["fraud_score"],
                result["threshold"], result["features"],
            )
        except ValueError as exc:
            problem = str(exc)
    if problem:
        st.info(f"Model version {version} cannot explain this transaction now. {problem}", icon=":material/info:")
        stored_contributions(row)
        return
    st.plotly_chart(figure, key="frauds_waterfall")
    st.caption(
        f"Model version {version}, threshold {result['threshold']:.4f}. Stored fraud_score "
        f"{score_label(row['fraud_score'])}; recomputed from the stored history "
        f"{result['fraud_score']:.4f}."
    )


def history_section(database_url: str, row: dict[str, Any]) -> None:
    try:
        history = user_history(database_url, row["user_id"], row["event_time"])
    except (SQLAlchemyError, ValueError) as exc:
        st.error(database_error_message(exc, database_url), icon=":material/error:")
        return
    if history.empty:
        st.info(f"User {row['user_id']} has no transactions in shop.transactions around this time.")
        return
    st.caption(
        f"User {row['user_id']}: up to 50 transactions until this one and 10 after it, from shop.transactions."
    )
    st.plotly_chart(history_figure(history, row["transaction_id"]), key="frauds_history_chart")
    st.dataframe(display_frame(history), hide_index=True, column_config=COLUMN_CONFIG)


def similar_section(database_url: str, row: dict[str, Any]) -> None:
    st.caption(
        "Other transactions in the queue within 24 hours of this one, either of the same user or with "
        "the same device and the same country. At most 10 before and 10 after it for each criterion, "
        "nearest in time first."
    )
    target = (row["transaction_id"], row["user_id"], row["device"], row["transaction_location"], row["event_time"])
    try:
        similar = similar_transactions(database_url, target)
    except (SQLAlchemyError, ValueError) as exc:
        st.error(database_error_message(exc, database_url), icon=":material/error:")
        return
    if similar.empty:
        st.info("No similar transaction is in the queue.")
        return
    st.dataframe(display_frame(similar), hide_index=True, column_config=COLUMN_CONFIG)


def reviewer_name() -> str | None:
    """Return the reviewer of this session, or ask for the name and return None."""
    reviewer = st.session_state.frauds_reviewer
    if reviewer:
        name_column, change_column = st.columns([4, 1])
        name_column.caption(f"Reviewing as **{reviewer}** for this session.")
        change_column.button("Change name", key="frauds_reviewer_change", on_click=forget_reviewer)
        return reviewer
    with st.form("frauds_reviewer_form"):
        entered = st.text_input(
            "Your name", key="frauds_reviewer_input",
            help="Stored with each review. Entered once per browser session.",
        )
        saved = st.form_submit_button("Save name", key="frauds_reviewer_save")
    if saved:
        try:
            st.session_state.frauds_reviewer = check_reviewer(entered)
        except ValueError as exc:
            st.error(str(exc), icon=":material/error:")
            return None
        st.rerun()
    st.info("Enter your name to review transactions.")
    return None


def submit_review(
    database_url: str,
    row: dict[str, Any],
    reviewer: str,
    decision: str,
    note: str,
    on_review: Callable[[], None],
) -> None:
    transaction_id = row["transaction_id"]
    values = (transaction_id, reviewer, decision, note)
    last = st.session_state.get("frauds_last_review")
    # A submission equal to the last recorded one (a double click) reuses its
    # request_id, so the database keeps one row.
    request_id = last["request_id"] if last and last["values"] == values else str(uuid.uuid4())
    try:
        result = record_review(engine_for(database_url), transaction_id, reviewer, decision, note, request_id)
    except ValueError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    except SQLAlchemyError as exc:
        st.error(database_error_message(exc, database_url), icon=":material/error:")
        return
    st.session_state.frauds_last_review = {"values": values, "request_id": request_id}
    if result.recorded:
        message = f"Recorded {DECISION_LABELS[decision]} for transaction {transaction_id} by {reviewer}."
    else:
        message = "This review was already recorded, so nothing was added."
    st.session_state.frauds_review_message = message
    clear_detail_caches()
    on_review()
    st.rerun()


def review_section(database_url: str, row: dict[str, Any], on_review: Callable[[], None]) -> None:
    message = st.session_state.pop("frauds_review_message", None)
    if message:
        st.success(message, icon=":material/check_circle:")
    st.write(f"Review status: **{DECISION_LABELS.get(row['review_status'], row['review_status'])}**")

    reviewer = reviewer_name()
    if reviewer:
        transaction_id = row["transaction_id"]
        with st.form("frauds_review_form"):
            decision = st.radio(
                "Decision", DECISIONS, index=None, format_func=DECISION_LABELS.get,
                horizontal=True, key=f"frauds_decision_{transaction_id}",
            )
            note = st.text_area(
                "Note (optional)", key=f"frauds_note_{transaction_id}",
                help=f"At most {MAX_NOTE_LENGTH:,} characters.",
            )
            submitted = st.form_submit_button("Record review", type="primary", key="frauds_review_submit")
        if submitted:
            if decision is None:
                st.error("Choose a decision, then record the review.", icon=":material/error:")
            else:
                submit_review(database_url, row, reviewer, decision, note, on_review)

    try:
        history = reviews_of(database_url, row["transaction_id"])
    except (SQLAlchemyError, ValueError) as exc:
        st.error(database_error_message(exc, database_url), icon=":material/error:")
        return
    if history.empty:
        st.caption("No review yet.")
        return
    st.markdown("**Review history**, newest first")
    reviews = history.assign(decision=history["decision"].map(DECISION_LABELS.get))
    st.dataframe(
        reviews,
        hide_index=True,
        column_config={
            "reviewed_at": st.column_config.DatetimeColumn("Reviewed at (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "reviewer": "Reviewer",
            "decision": "Decision",
            "note": "Note",
            "model_version": st.column_config.NumberColumn("Model version", format="%d"),
            "request_id": None,
        },
    )


def detail_panel(
    database_url: str,
    transaction_id: str,
    *,
    on_close: Callable[[], None],
    on_review: Callable[[], None],
) -> None:
    """Show the queue row ``transaction_id`` with its explanation, history, similar rows and reviews.

    ``on_close`` is the callback of the Close button, which must clear the
    table selection. ``on_review`` runs after a review is recorded, so the
    caller can forget its cached queue rows before the page reruns.
    """
    st.divider()
    try:
        row = queue_transaction(database_url, transaction_id)
    except (SQLAlchemyError, ValueError) as exc:
        st.error(database_error_message(exc, database_url), icon=":material/error:")
        return
    title_column, close_column = st.columns([6, 1])
    title_column.subheader(f"Transaction {transaction_id}")
    close_column.button("Close", key="frauds_close", on_click=on_close, icon=":material/close:", width="stretch")
    if row is None:
        st.info(f"Transaction {transaction_id} is no longer in the queue. Select another row.")
        return

    amount, score, source, status, latency = st.columns(5)
    amount.metric("Amount", f"{float(row['amount']):,.2f}")
    score.metric("fraud_score", score_label(row["fraud_score"]))
    source.metric("Flagged by", SOURCE_LABELS.get(row["source"], row["source"]))
    status.metric("Review", DECISION_LABELS.get(row["review_status"], row["review_status"]))
    latency.metric("Event to queue", f"{row['event_to_queue_seconds']:.2f} s")

    why_tab, history_tab, similar_tab, review_tab = st.tabs(
        ["Why flagged", "User history", "Similar transactions", "Review"]
    )
    with why_tab:
        rule_section(row)
        model_section(database_url, row)
        fields = {
            name: row[name]
            for name in (
                "event_time", "user_id", "first_name", "last_name", "device", "location",
                "transaction_location", "is_fraud", "model_version", "ingested_at",
                "kafka_topic", "kafka_partition", "kafka_offset",
            )
        }
        fields["location"] = country_label(fields["location"])
        fields["transaction_location"] = country_label(fields["transaction_location"])
        st.dataframe(
            pd.DataFrame({"field": list(fields), "value": [str(value) for value in fields.values()]}),
            hide_index=True,
        )
    with history_tab:
        history_section(database_url, row)
    with similar_tab:
        similar_section(database_url, row)
    with review_tab:
        review_section(database_url, row, on_review)
