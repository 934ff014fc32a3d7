"""Tests of the shared helpers in pipeline.queries that need no database."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pandas as pd

from pipeline.queries import (
    LATENCY_COLUMN,
    assume_utc,
    convert_display_types,
    get_engine,
    score_label,
    select_list,
)


def test_score_label_unscored_is_text() -> None:
    assert score_label(None) == "not scored"
    assert score_label(math.nan) == "not scored"
    assert score_label(0.0) == "0.0000"
    assert score_label(0.61234) == "0.6123"


def test_get_engine_uses_psycopg2_with_timeouts() -> None:
    engine = get_engine("postgres://fraud:secret@127.0.0.1:5433/fraud", connect_timeout=4)

    assert engine.url.drivername == "postgresql+psycopg2"
    assert engine.url.port == 5433
    assert engine.pool._pre_ping
    assert "secret" not in repr(engine)


def test_assume_utc_naive_and_aware() -> None:
    berlin = timezone(timedelta(hours=2))

    assert assume_utc(datetime(2024, 5, 1, 11, 0)) == datetime(2024, 5, 1, 11, 0, tzinfo=timezone.utc)
    assert assume_utc(datetime(2024, 5, 1, 11, 0, tzinfo=berlin)).tzinfo is berlin


def test_select_list_computes_latency() -> None:
    sql = select_list(("transaction_id", "event_to_queue_seconds"))

    assert sql == f"transaction_id, {LATENCY_COLUMN}"


def test_convert_display_types_keeps_none_score() -> None:
    frame = pd.DataFrame({"amount": [Decimal("10.50"), Decimal("3")], "fraud_score": [0.9, None]})

    convert_display_types(frame)

    assert frame["amount"].dtype == float
    assert list(frame["amount"]) == [10.5, 3.0]
    assert list(frame["fraud_score"]) == [0.9, None]
