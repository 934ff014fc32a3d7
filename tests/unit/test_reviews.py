"""Tests of the input checks of pipeline.reviews that need no database.

The engine points at a loopback port with no listener, so a check that
let bad input through would fail with a connection error instead of the
expected message.
"""

from __future__ import annotations

import re
import uuid

import pytest

from pipeline.queries import get_engine
from pipeline.fraud_queue import REVIEW_STATUSES
from pipeline.reviews import (
    DECISION_LABELS,
    DECISIONS,
    MAX_NOTE_LENGTH,
    MAX_REVIEWER_LENGTH,
    check_note,
    check_reviewer,
    record_review,
    review_history,
)

ENGINE = get_engine("postgresql://fraud:secret@127.0.0.1:1/fraud")


def test_check_reviewer_strips_spaces() -> None:
    assert check_reviewer("  Ada Lovelace \n") == "Ada Lovelace"


def test_check_reviewer_accepts_limit() -> None:
    name = "a" * MAX_REVIEWER_LENGTH

    assert check_reviewer(f" {name} ") == name


@pytest.mark.parametrize("name", ["", "   ", None, 42])
def test_check_reviewer_empty_raises(name) -> None:
    with pytest.raises(ValueError, match="Enter your name as reviewer before recording a review."):
        check_reviewer(name)


def test_check_reviewer_too_long_raises() -> None:
    with pytest.raises(ValueError, match=f"has {MAX_REVIEWER_LENGTH + 1} characters; the limit is 100"):
        check_reviewer("b" * (MAX_REVIEWER_LENGTH + 1))


def test_check_note_none_is_empty() -> None:
    assert check_note(None) == ""


def test_check_note_accepts_limit() -> None:
    note = "n" * MAX_NOTE_LENGTH

    assert check_note(note) == note


def test_check_note_too_long_raises() -> None:
    with pytest.raises(ValueError, match=re.escape("The note has 2,001 characters; the limit is 2,000.")):
        check_note("n" * (MAX_NOTE_LENGTH + 1))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"decision": "fraud"},
            "Unknown decision 'fraud'. Choose one of confirmed_fraud, false_positive, needs_info.",
        ),
        ({"decision": None}, "Unknown decision None."),
        ({"reviewer": " "}, "Enter your name as reviewer before recording a review."),
        ({"note": "x" * (MAX_NOTE_LENGTH + 1)}, "the limit is 2,000"),
        ({"request_id": "not-a-uuid"}, "request_id must be a UUID, got 'not-a-uuid'."),
    ],
)
def test_record_review_bad_input_raises(arguments: dict, message: str) -> None:
    values = {
        "transaction_id": "tx-1",
        "reviewer": "Ada",
        "decision": "confirmed_fraud",
        "note": "",
        "request_id": uuid.uuid4(),
        **arguments,
    }

    with pytest.raises(ValueError, match=re.escape(message)):
        record_review(ENGINE, **values)


def test_review_history_invalid_limit_raises() -> None:
    with pytest.raises(ValueError, match="limit must be from 1 to 1000, got 0"):
        review_history(ENGINE, "tx-1", limit=0)


def test_decisions_are_review_statuses() -> None:
    assert set(DECISIONS) == set(REVIEW_STATUSES) - {"unreviewed"}
    assert set(DECISION_LABELS) == set(REVIEW_STATUSES)


@pytest.mark.parametrize(
    "reviewer, note, message",
    [
        ("Ada\x00", "", "The reviewer name contains a NUL character"),
        ("Ada", "pasted\x00text", "The note contains a NUL character"),
    ],
)
def test_nul_character_is_rejected_with_a_message(reviewer: str, note: str, message: str) -> None:
    from pipeline.reviews import check_note, check_reviewer

    with pytest.raises(ValueError, match=message):
        check_reviewer(reviewer)
        check_note(note)
