"""Analyst reviews of queue rows: ``shop.reviews`` and ``shop.fraud_transactions.review_status``.

A review is a decision on one transaction of the fraud queue. Reviews are
never updated or deleted, so a transaction's history is its rows in
``reviewed_at`` order, and ``review_status`` contains the latest decision so
the queue can filter on it.

Each submission carries a ``request_id`` that the client makes once per
submitted form. Sending the same request again (a double click, a retried
request) adds no second row, because ``shop.reviews.request_id`` is unique.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Engine

__all__ = [
    "DECISIONS",
    "DECISION_LABELS",
    "MAX_NOTE_LENGTH",
    "MAX_REVIEWER_LENGTH",
    "REVIEW_COLUMNS",
    "ReviewResult",
    "check_note",
    "check_reviewer",
    "record_review",
    "review_history",
]

logger = logging.getLogger(__name__)

DECISIONS = ("confirmed_fraud", "false_positive", "needs_info")
DECISION_LABELS = {
    "unreviewed": "Not reviewed",
    "confirmed_fraud": "Confirmed fraud",
    "false_positive": "False positive",
    "needs_info": "Needs more information",
}
# The same limits as the CHECK constraints of shop.reviews.
MAX_REVIEWER_LENGTH = 100
MAX_NOTE_LENGTH = 2000
MAX_HISTORY_ROWS = 1000

REVIEW_COLUMNS = ("reviewed_at", "reviewer", "decision", "note", "model_version", "request_id")

# Locks the queue row, so concurrent reviews of one transaction commit one
# after the other and review_status ends as the decision of the last one.
_LOCK_ROW = text(
    "SELECT model_version FROM shop.fraud_transactions WHERE transaction_id = :transaction_id FOR UPDATE"
)
_INSERT_REVIEW = text(
    """
    INSERT INTO shop.reviews (request_id, transaction_id, reviewer, decision, note, model_version)
    VALUES (CAST(:request_id AS uuid), :transaction_id, :reviewer, :decision, :note, :model_version)
    ON CONFLICT (request_id) DO NOTHING
    RETURNING id
    """
)
_EARLIER_REQUEST = text(
    "SELECT transaction_id FROM shop.reviews WHERE request_id = CAST(:request_id AS uuid)"
)
_UPDATE_STATUS = text(
    "UPDATE shop.fraud_transactions SET review_status = :decision WHERE transaction_id = :transaction_id"
)
_HISTORY = text(
    f"""
    SELECT {", ".join(REVIEW_COLUMNS)} FROM shop.reviews
    WHERE transaction_id = :transaction_id
    ORDER BY reviewed_at DESC, id DESC
    LIMIT :limit
    """
)


@dataclass(frozen=True)
class ReviewResult:
    """Outcome of :func:`record_review`."""

    recorded: bool
    """False when a review with the same ``request_id`` was already stored."""
    model_version: int | None
    """The queue row's model version, stored with the review."""


def check_reviewer(reviewer: object) -> str:
    """Return the reviewer name without surrounding spaces.

    Raises
    ------
    ValueError
        When the name is not text, or is empty or longer than
        :data:`MAX_REVIEWER_LENGTH` characters after stripping.
    """
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise ValueError("Enter your name as reviewer before recording a review.")
    name = reviewer.strip()
    if "\x00" in name:
        raise ValueError("The reviewer name contains a NUL character, which cannot be stored. Retype the name.")
    if len(name) > MAX_REVIEWER_LENGTH:
        raise ValueError(
            f"The reviewer name has {len(name)} characters; the limit is {MAX_REVIEWER_LENGTH}. "
            "Enter a shorter name."
        )
    return name


def check_note(note: object) -> str:
    """Return the note, or "" for None.

    Raises
    ------
    ValueError
        When the note is not text, contains a NUL character or is longer
        than :data:`MAX_NOTE_LENGTH` characters.
    """
    if note is None:
        return ""
    if not isinstance(note, str):
        raise ValueError(f"The note must be text, got {note!r}.")
    if "\x00" in note:
        raise ValueError(
            "The note contains a NUL character, which cannot be stored. Remove it, for example by "
            "retyping the pasted text, and record the review again."
        )
    if len(note) > MAX_NOTE_LENGTH:
        raise ValueError(
            f"The note has {len(note):,} characters; the limit is {MAX_NOTE_LENGTH:,}. "
            "Shorten it and record the review again."
        )
    return note


def _check_decision(decision: object) -> str:
    if decision not in DECISIONS:
        raise ValueError(f"Unknown decision {decision!r}. Choose one of {', '.join(DECISIONS)}.")
    return str(decision)


def _check_request_id(request_id: object) -> str:
    try:
        return str(uuid.UUID(str(request_id)))
    except ValueError:
        raise ValueError(f"request_id must be a UUID, got {request_id!r}.") from None


def record_review(
    engine: Engine,
    transaction_id: str,
    reviewer: str,
    decision: str,
    note: str | None,
    request_id: uuid.UUID | str,
) -> ReviewResult:
    """Store a review and set the queue row's ``review_status``, in one database transaction.

    The review stores the queue row's ``model_version``. A second call with
    the same ``request_id`` adds nothing and returns ``recorded=False``.

    Raises
    ------
    ValueError
        When the decision is not one of :data:`DECISIONS`, the reviewer is
        empty or too long, the note is too long, ``request_id`` is not a
        UUID, the transaction is not in the queue, or ``request_id`` was
        already used for another transaction.
    sqlalchemy.exc.SQLAlchemyError
        When the database cannot be reached or refuses the write.
    """
    decision = _check_decision(decision)
    reviewer = check_reviewer(reviewer)
    note = check_note(note)
    request = _check_request_id(request_id)

    with engine.begin() as connection:
        row = connection.execute(_LOCK_ROW, {"transaction_id": transaction_id}).first()
        if row is None:
            raise ValueError(
                f"Transaction {transaction_id!r} is not in the fraud queue. "
                "Check the id, or refresh the queue and select the row again."
            )
        model_version = row[0]
        inserted = connection.execute(
            _INSERT_REVIEW,
            {
                "request_id": request,
                "transaction_id": transaction_id,
                "reviewer": reviewer,
                "decision": decision,
                "note": note,
                "model_version": model_version,
            },
        ).first()
        if inserted is None:
            earlier = connection.execute(_EARLIER_REQUEST, {"request_id": request}).scalar_one()
            if earlier != transaction_id:
                raise ValueError(
                    f"request_id {request} was already used for transaction {earlier!r}. "
                    "Send a new request_id for each review."
                )
            return ReviewResult(recorded=False, model_version=model_version)
        connection.execute(_UPDATE_STATUS, {"decision": decision, "transaction_id": transaction_id})

    logger.info(
        "Recorded review %s of transaction %s: %s by %s", request, transaction_id, decision, reviewer
    )
    return ReviewResult(recorded=True, model_version=model_version)


def review_history(engine: Engine, transaction_id: str, limit: int = MAX_HISTORY_ROWS) -> pd.DataFrame:
    """Return the reviews of a transaction, newest first, at most ``limit`` of them."""
    if not 1 <= limit <= MAX_HISTORY_ROWS:
        raise ValueError(f"limit must be from 1 to {MAX_HISTORY_ROWS}, got {limit!r}.")
    with engine.connect() as connection:
        rows = connection.execute(_HISTORY, {"transaction_id": transaction_id, "limit": limit}).all()
    frame = pd.DataFrame([tuple(row) for row in rows], columns=list(REVIEW_COLUMNS))
    frame["request_id"] = frame["request_id"].astype(str)
    return frame
