"""Fraud queue queries, reviews, CSV export and page against the real PostgreSQL.

Every test here uses one new, migrated database of the ``stack`` server
(``own_database``), so the queue holds only the rows inserted here and no
model is in production. Module rows are read-only. Tests that change rows
(reviews) or add rows (paging, export) insert their own and delete them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest
import streamlit as st
from psycopg2.extras import Json, execute_values
from streamlit.testing.v1 import AppTest

from pipeline.export import EXPORT_COLUMNS, export_csv, write_csv
from pipeline.queries import get_engine
from pipeline.fraud_queue import FraudFilters, count_fraud_rows, fetch_queue_page
from pipeline.queue_detail import fetch_queue_transaction, fetch_similar_transactions, fetch_user_history
from pipeline.reviews import record_review, review_history

pytestmark = pytest.mark.timeout(600)

PAGE = Path(__file__).resolve().parents[2] / "pages" / "frauds.py"
RUN_TIMEOUT_SECONDS = 120
NOW = datetime.now(timezone.utc).replace(microsecond=0)
NO_MODEL_MESSAGE = (
    "No model is in production, so new transactions are stored without a score. "
    "Train and promote one on the Model page."
)


@dataclass(frozen=True)
class QueueRow:
    transaction_id: str
    user_id: str
    event_time: datetime
    amount: str = "10.00"
    device: str = "phone"
    country: str = "DE"
    pattern: str | None = None
    rule_flagged: bool = True
    model_flagged: bool = False
    fraud_score: float | None = None
    model_version: int | None = None
    review_status: str = "unreviewed"
    reasons: tuple[str, ...] = ("high_amount",)
    latency_seconds: float = 1.5
    top_contributions: list | None = field(default=None, hash=False)


# The module's rows, newest first. q-06 and q-07 differ in a LIKE wildcard
# of their user ids, so the search proves that "_" is matched literally.
ROWS = (
    QueueRow("q-01", "u-alice", NOW - timedelta(minutes=1), "100.00", "phone", "DE", "card_testing"),
    QueueRow(
        "q-02", "u-alice", NOW - timedelta(minutes=2), "900.00", "laptop", "FR", "high_amount",
        model_flagged=True, fraud_score=0.91, model_version=1,
        top_contributions=[{"feature": "amount", "value": 900.0, "contribution": 0.21}],
    ),
    QueueRow(
        "q-03", "u-bob", NOW - timedelta(minutes=3), "50.00", "phone", "DE", None,
        rule_flagged=False, model_flagged=True, fraud_score=0.75, model_version=1,
        review_status="confirmed_fraud", reasons=(),
    ),
    QueueRow(
        "q-04", "u-bob", NOW - timedelta(hours=2), "20.00", "tablet", "US", "geo_jump",
        fraud_score=0.40, model_version=1, review_status="false_positive",
    ),
    QueueRow(
        "q-05", "u-carol", NOW - timedelta(days=3), "5000.00", "phone", "US", "account_takeover",
        model_flagged=True, fraud_score=0.99, model_version=2, review_status="needs_info",
    ),
    QueueRow("q-06", "u-dave_x", NOW - timedelta(days=30), "10.00", "laptop", "DE", "new_device"),
    QueueRow("q-07", "u-davexy", NOW - timedelta(days=31), "12.00", "laptop", "GB", "new_device"),
)
ALL_IDS = [row.transaction_id for row in ROWS]

INSERT_QUEUE = """
INSERT INTO shop.fraud_transactions (
    transaction_id, user_id, event_time, first_name, last_name, location,
    transaction_location, amount, device, fraud_reasons, kafka_topic,
    kafka_partition, kafka_offset, ingested_at, fraud_pattern, rule_flagged,
    model_flagged, fraud_score, model_version, review_status, top_contributions
) VALUES %s
"""
INSERT_LEDGER = """
INSERT INTO shop.transactions (
    transaction_id, user_id, event_time, first_name, last_name, location,
    transaction_location, amount, device, is_fraud, kafka_topic, kafka_partition, kafka_offset
) VALUES %s
"""


def execute(database_url: str, sql: str, params: tuple = ()) -> list[tuple]:
    connection = psycopg2.connect(database_url, connect_timeout=5)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


def insert_rows(database_url: str, rows: list[QueueRow] | tuple[QueueRow, ...]) -> None:
    values = [
        (
            row.transaction_id, row.user_id, row.event_time, "Ada", "Lovelace", "DE", row.country,
            Decimal(row.amount), row.device, list(row.reasons), "queue-test", 0, offset,
            row.event_time + timedelta(seconds=row.latency_seconds), row.pattern, row.rule_flagged,
            row.model_flagged, row.fraud_score, row.model_version, row.review_status,
            None if row.top_contributions is None else Json(row.top_contributions),
        )
        for offset, row in enumerate(rows)
    ]
    connection = psycopg2.connect(database_url, connect_timeout=5)
    try:
        with connection, connection.cursor() as cursor:
            execute_values(cursor, INSERT_QUEUE, values)
    finally:
        connection.close()


def delete_rows(database_url: str, transaction_ids: list[str]) -> None:
    execute(database_url, "DELETE FROM shop.reviews WHERE transaction_id = ANY(%s)", (transaction_ids,))
    execute(database_url, "DELETE FROM shop.fraud_transactions WHERE transaction_id = ANY(%s)", (transaction_ids,))


@pytest.fixture(scope="module")
def database_url(own_database: str) -> Iterator[str]:
    insert_rows(own_database, ROWS)
    yield own_database


@pytest.fixture(scope="module")
def engine(database_url: str):
    engine = get_engine(database_url)
    yield engine
    engine.dispose()


def queue_ids(engine, filters: FraudFilters, sort: str = "newest") -> list[str]:
    return list(fetch_queue_page(engine, filters, sort, None, 500).rows["transaction_id"])


# ---------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (FraudFilters(), ALL_IDS),
        (FraudFilters(start=NOW - timedelta(hours=1)), ["q-01", "q-02", "q-03"]),
        (FraudFilters(start=NOW - timedelta(days=7), end=NOW - timedelta(hours=1)), ["q-04", "q-05"]),
        (FraudFilters(min_score=0.7, max_score=1.0), ["q-02", "q-03", "q-05"]),
        (FraudFilters(max_score=0.5), ["q-04"]),
        (FraudFilters(min_score=0.0), ["q-02", "q-03", "q-04", "q-05"]),
        (FraudFilters(sources=("model",)), ["q-03"]),
        (FraudFilters(sources=("both",)), ["q-02", "q-05"]),
        (FraudFilters(sources=("rule",)), ["q-01", "q-04", "q-06", "q-07"]),
        (FraudFilters(patterns=("card_testing", "geo_jump")), ["q-01", "q-04"]),
        (FraudFilters(locations=("DE",)), ["q-01", "q-03", "q-06"]),
        (FraudFilters(devices=("phone",)), ["q-01", "q-03", "q-05"]),
        (FraudFilters(review_statuses=("confirmed_fraud",)), ["q-03"]),
        (FraudFilters(review_statuses=("unreviewed",)), ["q-01", "q-02", "q-06", "q-07"]),
        (FraudFilters(review_statuses=("false_positive", "needs_info")), ["q-04", "q-05"]),
        (FraudFilters(search="u-bob"), ["q-03", "q-04"]),
        (FraudFilters(search="u-a"), ["q-01", "q-02"]),
        (FraudFilters(search="q-05"), ["q-05"]),
        (FraudFilters(search=" q-0 "), ALL_IDS),
        (FraudFilters(search="u-dave_"), ["q-06"]),
        (FraudFilters(search="u-dave%"), []),
        (FraudFilters(search="alice"), []),
        (FraudFilters(start=NOW - timedelta(hours=1), locations=("DE",), devices=("phone",)), ["q-01", "q-03"]),
        (FraudFilters(devices=("tablet",), review_statuses=("unreviewed",)), []),
    ],
)
def test_queue_filter_returns_matching_rows(engine, filters: FraudFilters, expected: list[str]) -> None:
    assert queue_ids(engine, filters) == expected
    assert count_fraud_rows(engine, filters) == len(expected)


def test_count_stops_past_limit(engine) -> None:
    assert count_fraud_rows(engine, FraudFilters(), limit=3) == 4


# ------------------------------------------------------- sorting and paging


def test_queue_sorted_by_score_unscored_last(engine) -> None:
    page = fetch_queue_page(engine, FraudFilters(), "score", None, 50)

    assert list(page.rows["transaction_id"]) == ["q-05", "q-02", "q-03", "q-04", "q-01", "q-06", "q-07"]
    assert list(page.rows["fraud_score"])[-3:] == [None, None, None]


def test_queue_sorted_by_amount(engine) -> None:
    assert queue_ids(engine, FraudFilters(), "amount") == ["q-05", "q-02", "q-01", "q-03", "q-04", "q-07", "q-06"]


def test_queue_row_shows_event_to_queue_time(engine) -> None:
    rows = fetch_queue_page(engine, FraudFilters(search="q-01"), "newest", None, 10).rows

    assert rows["event_to_queue_seconds"].tolist() == [pytest.approx(1.5)]


PAGER_USER = "pager-user"
PAGER_TIME = NOW - timedelta(days=100)


def pager_rows() -> list[QueueRow]:
    """27 rows with ties on every sort key, and some unscored, to page through."""
    rows = []
    for index in range(27):
        rows.append(
            QueueRow(
                f"p-{index:02d}",
                PAGER_USER,
                PAGER_TIME - timedelta(minutes=index // 3),  # three rows per event_time
                amount=f"{10 + index % 4}.00",  # four amounts
                fraud_score=None if index % 5 == 0 else round(0.5 + (index % 3) / 10, 2),
                model_version=None if index % 5 == 0 else 1,
            )
        )
    return rows


def expected_order(rows: list[QueueRow], sort: str) -> list[str]:
    def key(row: QueueRow) -> tuple:
        first = {
            "newest": (),
            "score": (-math.inf if row.fraud_score is None else row.fraud_score,),
            "amount": (Decimal(row.amount),),
        }[sort]
        return (*first, row.event_time, row.transaction_id)

    return [row.transaction_id for row in sorted(rows, key=key, reverse=True)]


@pytest.fixture
def pager(database_url: str) -> Iterator[list[QueueRow]]:
    rows = pager_rows()
    insert_rows(database_url, rows)
    yield rows
    delete_rows(database_url, [row.transaction_id for row in rows] + ["p-new"])


@pytest.mark.parametrize("sort", ["newest", "score", "amount"])
def test_keyset_pages_cover_rows_once(engine, pager: list[QueueRow], sort: str) -> None:
    filters = FraudFilters(search=PAGER_USER)
    pages = []
    cursor = None
    while True:
        page = fetch_queue_page(engine, filters, sort, cursor, 10)
        pages.append(list(page.rows["transaction_id"]))
        if not page.has_next:
            assert page.next_cursor is None
            break
        cursor = page.next_cursor

    assert [len(ids) for ids in pages] == [10, 10, 7]
    assert sum(pages, []) == expected_order(pager, sort)


def test_keyset_page_ignores_newer_rows(database_url: str, engine, pager: list[QueueRow]) -> None:
    filters = FraudFilters(search=PAGER_USER)
    first = fetch_queue_page(engine, filters, "newest", None, 10)

    insert_rows(database_url, [QueueRow("p-new", PAGER_USER, PAGER_TIME + timedelta(minutes=1))])
    second = fetch_queue_page(engine, filters, "newest", first.next_cursor, 10)

    assert list(second.rows["transaction_id"]) == expected_order(pager, "newest")[10:20]
    assert queue_ids(engine, filters)[0] == "p-new"


# ------------------------------------------------------------ detail panel


def test_queue_transaction_has_every_detail(engine) -> None:
    row = fetch_queue_transaction(engine, "q-02")

    assert row["user_id"] == "u-alice"
    assert row["source"] == "both"
    assert row["fraud_score"] == pytest.approx(0.91)
    assert row["model_version"] == 1
    assert row["top_contributions"] == [{"feature": "amount", "value": 900.0, "contribution": 0.21}]
    assert row["fraud_reasons"] == ["high_amount"]
    assert row["event_to_queue_seconds"] == pytest.approx(1.5)


def test_queue_transaction_unknown_is_none(engine) -> None:
    assert fetch_queue_transaction(engine, "no-such-id") is None


def test_user_history_bounded_around_transaction(database_url: str, engine) -> None:
    user = f"history-{uuid.uuid4().hex[:8]}"
    target_time = NOW - timedelta(days=200)
    ledger = [
        (f"{user}-{index:03d}", user, target_time + timedelta(minutes=index), "Ada", "Lovelace", "DE", "DE",
         Decimal(100 + index), "phone", 0, "queue-test", 0, index)
        for index in range(-70, 20)
    ]
    connection = psycopg2.connect(database_url, connect_timeout=5)
    try:
        with connection, connection.cursor() as cursor:
            execute_values(cursor, INSERT_LEDGER, ledger)
    finally:
        connection.close()

    history = fetch_user_history(engine, user, target_time, before=50, after=10)

    ids = list(history["transaction_id"])
    assert len(ids) == 60
    assert ids[0] == f"{user}-010"
    assert ids[-1] == f"{user}--49"
    assert f"{user}-000" in ids
    assert list(history["event_time"]) == sorted(history["event_time"], reverse=True)


def test_similar_user_or_device_country(database_url: str, engine) -> None:
    base = NOW - timedelta(days=300)
    rows = [
        QueueRow("s-target", "s-user", base, device="watch", country="NL"),
        QueueRow("s-same-user", "s-user", base - timedelta(hours=3), device="phone", country="US"),
        QueueRow("s-device-country", "s-other", base + timedelta(hours=1), device="watch", country="NL"),
        QueueRow("s-device-only", "s-other", base + timedelta(minutes=5), device="watch", country="US"),
        QueueRow("s-country-only", "s-other", base + timedelta(minutes=6), device="phone", country="NL"),
        QueueRow("s-too-old", "s-user", base - timedelta(hours=25), device="watch", country="NL"),
    ]
    insert_rows(database_url, rows)
    try:
        target = fetch_queue_transaction(engine, "s-target")
        similar = fetch_similar_transactions(engine, target, timedelta(hours=24), per_side=10)
    finally:
        delete_rows(database_url, [row.transaction_id for row in rows])

    assert list(similar["transaction_id"]) == ["s-device-country", "s-same-user"]
    assert list(similar["match"]) == ["same device and country", "same user"]


def test_similar_bounded_per_side(database_url: str, engine) -> None:
    base = NOW - timedelta(days=400)
    rows = [QueueRow("b-target", "b-user", base)]
    rows += [QueueRow(f"b-before-{index}", "b-user", base - timedelta(minutes=index + 1)) for index in range(6)]
    rows += [QueueRow(f"b-after-{index}", "b-user", base + timedelta(minutes=index + 1)) for index in range(6)]
    insert_rows(database_url, rows)
    try:
        target = fetch_queue_transaction(engine, "b-target")
        similar = fetch_similar_transactions(engine, target, timedelta(hours=1), per_side=2)
    finally:
        delete_rows(database_url, [row.transaction_id for row in rows])

    assert sorted(similar["transaction_id"]) == ["b-after-0", "b-after-1", "b-before-0", "b-before-1"]


# ----------------------------------------------------------------- reviews


@pytest.fixture
def review_row(database_url: str) -> Iterator[str]:
    transaction_id = f"r-{uuid.uuid4().hex[:8]}"
    insert_rows(
        database_url,
        [QueueRow(transaction_id, "r-user", NOW - timedelta(days=500), fraud_score=0.8, model_version=7)],
    )
    yield transaction_id
    delete_rows(database_url, [transaction_id])


def review_rows(database_url: str, transaction_id: str) -> int:
    return execute(database_url, "SELECT count(*) FROM shop.reviews WHERE transaction_id = %s", (transaction_id,))[0][0]


def test_review_round_trip(database_url: str, engine, review_row: str) -> None:
    result = record_review(engine, review_row, "  Ada  ", "confirmed_fraud", "card reported stolen", uuid.uuid4())

    history = review_history(engine, review_row)
    assert result.recorded
    assert result.model_version == 7
    assert list(history["reviewer"]) == ["Ada"]
    assert list(history["decision"]) == ["confirmed_fraud"]
    assert list(history["note"]) == ["card reported stolen"]
    assert list(history["model_version"]) == [7]
    assert fetch_queue_transaction(engine, review_row)["review_status"] == "confirmed_fraud"
    confirmed = FraudFilters(review_statuses=("confirmed_fraud",), search=review_row)
    assert queue_ids(engine, confirmed) == [review_row]
    assert queue_ids(engine, FraudFilters(review_statuses=("unreviewed",), search=review_row)) == []


def test_review_latest_decision_wins(engine, review_row: str) -> None:
    record_review(engine, review_row, "Ada", "needs_info", None, uuid.uuid4())
    record_review(engine, review_row, "Grace", "false_positive", "customer confirmed", uuid.uuid4())

    history = review_history(engine, review_row)
    assert list(history["decision"]) == ["false_positive", "needs_info"]
    assert list(history["reviewer"]) == ["Grace", "Ada"]
    assert list(history["note"]) == ["customer confirmed", ""]
    assert fetch_queue_transaction(engine, review_row)["review_status"] == "false_positive"


def test_review_double_submit_adds_one_row(database_url: str, engine, review_row: str) -> None:
    request_id = uuid.uuid4()

    first = record_review(engine, review_row, "Ada", "confirmed_fraud", "", request_id)
    second = record_review(engine, review_row, "Ada", "confirmed_fraud", "", str(request_id))

    assert first.recorded
    assert not second.recorded
    assert review_rows(database_url, review_row) == 1


def test_review_reused_request_id_raises(database_url: str, engine, review_row: str) -> None:
    request_id = uuid.uuid4()
    record_review(engine, review_row, "Ada", "confirmed_fraud", "", request_id)

    with pytest.raises(ValueError, match=f"request_id {request_id} was already used for transaction {review_row!r}"):
        record_review(engine, "q-01", "Ada", "false_positive", "", request_id)
    assert fetch_queue_transaction(engine, "q-01")["review_status"] == "unreviewed"


@pytest.mark.parametrize(
    ("transaction_id", "reviewer", "decision", "note", "message"),
    [
        ("no-such-id", "Ada", "confirmed_fraud", "", "Transaction 'no-such-id' is not in the fraud queue."),
        (None, "Ada", "fraud", "", "Unknown decision 'fraud'. Choose one of confirmed_fraud"),
        (None, "   ", "needs_info", "", "Enter your name as reviewer before recording a review."),
        (None, "x" * 101, "needs_info", "", "The reviewer name has 101 characters; the limit is 100."),
        (None, "Ada", "needs_info", "n" * 2001, "The note has 2,001 characters; the limit is 2,000."),
    ],
)
def test_review_bad_input_stores_nothing(
    database_url: str, engine, review_row: str, transaction_id, reviewer, decision, note, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        record_review(engine, transaction_id or review_row, reviewer, decision, note, uuid.uuid4())

    assert review_rows(database_url, review_row) == 0
    assert fetch_queue_transaction(engine, review_row)["review_status"] == "unreviewed"


# ------------------------------------------------------------------ export


def read_csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def test_export_matches_filter_and_order(engine) -> None:
    data, result = export_csv(engine, FraudFilters(locations=("DE",)), "amount")
    rows = read_csv(data)

    assert not result.truncated
    assert result.rows == 3
    assert list(rows[0]) == list(EXPORT_COLUMNS)
    assert [row["transaction_id"] for row in rows] == ["q-01", "q-03", "q-06"]
    assert [row["amount"] for row in rows] == ["100.00", "50.00", "10.00"]
    assert [row["fraud_score"] for row in rows] == ["", "0.75", ""]
    assert [row["source"] for row in rows] == ["rule", "model", "rule"]
    assert rows[0]["fraud_reasons"] == "high_amount"
    assert float(rows[0]["event_to_queue_seconds"]) == pytest.approx(1.5)
    assert datetime.fromisoformat(rows[0]["event_time"]) == NOW - timedelta(minutes=1)


def test_export_guards_formula_cells(database_url: str, engine) -> None:
    row = QueueRow(
        "e-formula", "=cmd|'/C calc'!A0", NOW - timedelta(days=600), device="@SUM(1+1)", country="+DE",
        top_contributions=[{"feature": "amount", "value": 1.0, "contribution": 0.1}],
    )
    insert_rows(database_url, [row])
    try:
        data, _ = export_csv(engine, FraudFilters(search="e-formula"), "newest")
    finally:
        delete_rows(database_url, [row.transaction_id])
    exported = read_csv(data)[0]

    assert exported["user_id"] == "'=cmd|'/C calc'!A0"
    assert exported["device"] == "'@SUM(1+1)"
    assert exported["transaction_location"] == "'+DE"
    assert json.loads(exported["top_contributions"]) == [{"feature": "amount", "value": 1.0, "contribution": 0.1}]


def test_export_stops_at_cap_in_chunks(engine) -> None:
    out = io.StringIO()

    result = write_csv(engine, FraudFilters(), "newest", out, max_rows=5, chunk_rows=2)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))

    assert result.truncated
    assert result.rows == 5
    assert [row["transaction_id"] for row in rows] == ALL_IDS[:5]


def test_export_all_rows_in_small_chunks(engine) -> None:
    out = io.StringIO()

    result = write_csv(engine, FraudFilters(), "newest", out, max_rows=7, chunk_rows=2)

    assert not result.truncated
    assert [row["transaction_id"] for row in csv.DictReader(io.StringIO(out.getvalue()))] == ALL_IDS


# -------------------------------------------------------------------- page


@pytest.fixture
def page(stack, database_url: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    for name, value in stack.env.items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    # Query results are cached for the whole process.
    st.cache_data.clear()

    app = AppTest.from_file(str(PAGE), default_timeout=RUN_TIMEOUT_SECONDS).run()
    assert not app.exception
    return app


def queue_table(app: AppTest):
    assert not app.exception
    assert len(app.error) == 0, [error.value for error in app.error]
    return next(frame for frame in app.dataframe if frame.key == "frauds_table").value


def table_with(app: AppTest, column: str):
    """Return the first table on the page that has ``column``."""
    return next(frame.value for frame in app.dataframe if column in frame.value.columns)


def select_row(app: AppTest, transaction_id: str) -> AppTest:
    position = list(queue_table(app)["transaction_id"]).index(transaction_id)
    app.session_state["frauds_table"] = {"selection": {"rows": [position], "columns": [], "cells": []}}
    return app.run()


def texts(app: AppTest, kind: str) -> list[str]:
    return [str(element.value) for element in getattr(app, kind)]


def test_page_without_production_model_says_so(page: AppTest) -> None:
    table = queue_table(page)

    assert texts(page, "info")[0] == NO_MODEL_MESSAGE
    assert [title.value for title in page.title] == ["Fraud queue"]
    assert list(table["transaction_id"]) == ALL_IDS
    scores = dict(zip(table["transaction_id"], table["fraud_score"]))
    assert scores["q-01"] == "not scored"
    assert scores["q-02"] == "0.9100"
    assert "7 transactions match · page 1 of 1" in " ".join(texts(page, "caption"))


def test_page_filters_by_review_status_and_search(page: AppTest) -> None:
    page.multiselect(key="frauds_review_statuses").set_value(["false_positive", "needs_info"]).run()
    assert list(queue_table(page)["transaction_id"]) == ["q-04", "q-05"]

    page.text_input(key="frauds_search").input("u-bob").run()
    assert list(queue_table(page)["transaction_id"]) == ["q-04"]
    assert list(queue_table(page)["review_status"]) == ["False positive"]


def test_page_score_range_leaves_out_unscored(page: AppTest) -> None:
    page.slider(key="frauds_score_range").set_value((0.5, 1.0)).run()

    assert list(queue_table(page)["transaction_id"]) == ["q-02", "q-03", "q-05"]


def test_page_sorts_and_pages(page: AppTest) -> None:
    page.selectbox(key="frauds_sort").select("amount")
    page.selectbox(key="frauds_page_size").select(25).run()

    assert list(queue_table(page)["transaction_id"]) == ["q-05", "q-02", "q-01", "q-03", "q-04", "q-07", "q-06"]
    assert page.button(key="frauds_older").disabled
    assert page.button(key="frauds_newer").disabled


def test_page_detail_panel_of_unscored_row(page: AppTest) -> None:
    select_row(page, "q-01")

    assert not page.exception
    assert [header.value for header in page.subheader] == ["Transaction q-01"]
    assert "The rules labelled this transaction fraud for: high_amount." in texts(page, "markdown")
    # Only the rules queued q-01 so far: the transactions consumer has not stored it.
    assert any(info.startswith("This transaction has no score yet") for info in texts(page, "info"))
    metrics = {metric.label: metric.value for metric in page.metric}
    assert metrics["fraud_score"] == "not scored"
    assert metrics["Event to queue"] == "1.50 s"
    similar = table_with(page, "match")
    assert list(similar["transaction_id"]) == ["q-02", "q-03"]
    assert list(similar["match"]) == ["same user", "same device and country"]


def test_page_detail_panel_of_row_stored_unscored(database_url: str, page: AppTest) -> None:
    execute(
        database_url,
        "INSERT INTO shop.transactions (transaction_id, user_id, event_time, first_name, last_name, "
        "location, transaction_location, amount, device, is_fraud, kafka_topic, kafka_partition, kafka_offset) "
        "SELECT transaction_id, user_id, event_time, first_name, last_name, location, transaction_location, "
        "amount, device, 1, 'queue-test', 1, 1 FROM shop.fraud_transactions WHERE transaction_id = 'q-01'",
    )
    try:
        select_row(page, "q-01")

        infos = texts(page, "info")
        assert any("it was stored without a score: no model was in production then" in info for info in infos)
    finally:
        execute(database_url, "DELETE FROM shop.transactions WHERE transaction_id = 'q-01'")


def test_page_detail_panel_model_not_loadable(page: AppTest) -> None:
    select_row(page, "q-02")

    infos = texts(page, "info")
    assert any(
        info.startswith("Model version 1 cannot explain this transaction now. Model version 1 does not exist.")
        for info in infos
    )
    stored = table_with(page, "contribution")
    assert list(stored["feature"]) == ["amount"]
    assert list(stored["contribution"]) == [0.21]


def test_page_review_needs_reviewer_name(page: AppTest) -> None:
    select_row(page, "q-01")
    assert "Enter your name to review transactions." in texts(page, "info")

    page.text_input(key="frauds_reviewer_input").input("   ")
    page.button(key="frauds_reviewer_save").click().run()

    assert "Enter your name as reviewer before recording a review." in texts(page, "error")
    assert page.session_state["frauds_reviewer"] is None


def test_page_records_review_once(database_url: str, page: AppTest, review_row: str) -> None:
    page.text_input(key="frauds_search").input(review_row).run()
    select_row(page, review_row)
    page.text_input(key="frauds_reviewer_input").input("  Ada Lovelace ")
    page.button(key="frauds_reviewer_save").click().run()
    assert "Reviewing as **Ada Lovelace** for this session." in texts(page, "caption")

    page.radio(key=f"frauds_decision_{review_row}").set_value("confirmed_fraud")
    page.text_area(key=f"frauds_note_{review_row}").input("Card reported stolen.")
    page.button(key="frauds_review_submit").click().run()

    assert texts(page, "success") == [
        f"Recorded Confirmed fraud for transaction {review_row} by Ada Lovelace."
    ]
    assert list(queue_table(page)["review_status"]) == ["Confirmed fraud"]
    history = table_with(page, "reviewer")
    assert list(history["reviewer"]) == ["Ada Lovelace"]
    assert list(history["note"]) == ["Card reported stolen."]

    page.button(key="frauds_review_submit").click().run()

    assert texts(page, "success") == ["This review was already recorded, so nothing was added."]
    assert review_rows(database_url, review_row) == 1


def test_page_review_note_too_long(database_url: str, page: AppTest, review_row: str) -> None:
    page.session_state["frauds_reviewer"] = "Ada"
    page.text_input(key="frauds_search").input(review_row).run()
    select_row(page, review_row)

    page.radio(key=f"frauds_decision_{review_row}").set_value("needs_info")
    page.text_area(key=f"frauds_note_{review_row}").input("n" * 2001)
    page.button(key="frauds_review_submit").click().run()

    assert texts(page, "error") == [
        "The note has 2,001 characters; the limit is 2,000. Shorten it and record the review again."
    ]
    assert review_rows(database_url, review_row) == 0


def test_page_review_without_decision(database_url: str, page: AppTest, review_row: str) -> None:
    page.session_state["frauds_reviewer"] = "Ada"
    page.text_input(key="frauds_search").input(review_row).run()
    select_row(page, review_row)

    page.button(key="frauds_review_submit").click().run()

    assert texts(page, "error") == ["Choose a decision, then record the review."]
    assert review_rows(database_url, review_row) == 0


def test_page_close_detail_panel(page: AppTest) -> None:
    select_row(page, "q-03")
    assert [header.value for header in page.subheader] == ["Transaction q-03"]

    page.button(key="frauds_close").click().run()

    assert [header.value for header in page.subheader] == []
    assert page.session_state["frauds_selected"] is None


def test_page_prepares_csv_export(page: AppTest) -> None:
    page.multiselect(key="frauds_devices").set_value(["laptop"]).run()

    page.button(key="frauds_export_prepare").click().run()

    assert not page.exception
    assert "3 rows written at" in " ".join(texts(page, "caption"))
    export = page.session_state["frauds_export"]
    rows = read_csv(export["data"])
    assert [row["transaction_id"] for row in rows] == ["q-02", "q-06", "q-07"]
    assert texts(page, "warning") == []


def test_page_detail_shows_shap_waterfall(database_url: str, page: AppTest) -> None:
    from models import registry
    from models.synthetic import simulate_transactions
    from models.train import fit_and_evaluate

    df = simulate_transactions(rows=1500, users=40, days=10, seed=3, start="2031-06-01T00:00:00Z")
    ledger = [
        (f"w-{row.transaction_id}", f"w-{row.user_id}", row.event_time.to_pydatetime(), row.first_name,
         row.last_name, row.location, row.transaction_location, float(row.amount), row.device,
         int(row.is_fraud), "queue-test", 0, offset)
        for offset, row in enumerate(df.itertuples(index=False))
    ]
    connection = psycopg2.connect(database_url, connect_timeout=5)
    try:
        with connection, connection.cursor() as cursor:
            execute_values(cursor, INSERT_LEDGER, ledger, page_size=1000)
    finally:
        connection.close()
    artifact, _ = fit_and_evaluate(df, {"n_estimators": 30, "holdout": 0.2})
    version = registry.register_model(database_url, artifact)
    # The newest transaction is in the hold-out, after the training window,
    # as a live transaction would be.
    newest = df.sort_values("event_time").iloc[-1]
    transaction_id = f"w-{newest.transaction_id}"
    row = QueueRow(
        transaction_id, f"w-{newest.user_id}", newest.event_time.to_pydatetime(), f"{newest.amount:.2f}",
        newest.device, newest.transaction_location, rule_flagged=False, model_flagged=True,
        fraud_score=0.7, model_version=version,
    )
    insert_rows(database_url, [row])
    try:
        page.text_input(key="frauds_search").input(transaction_id).run()
        select_row(page, transaction_id)

        assert not page.exception
        chart = next(chart for chart in page.get("plotly_chart") if chart.proto.id.endswith("frauds_waterfall"))
        waterfall_spec = json.loads(chart.proto.spec)
        assert waterfall_spec["data"][0]["type"] == "waterfall"
        assert waterfall_spec["data"][0]["x"][0] == "Base value"
        assert any(f"Model version {version}, threshold" in caption for caption in texts(page, "caption"))
        history = table_with(page, "is_fraud")
        assert transaction_id in list(history["transaction_id"])
    finally:
        delete_rows(database_url, [transaction_id])
        execute(database_url, "DELETE FROM shop.model_versions WHERE version = %s", (version,))
