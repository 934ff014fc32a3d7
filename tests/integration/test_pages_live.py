"""Fraud queue page against the real PostgreSQL of the ``stack`` fixture.

The rows inserted here carry a random marker in their ids, devices and
countries, so the filters isolate them from rows that other tests or a
running producer write to the same database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from pipeline.queries import get_engine
from pipeline.fraud_queue import FraudFilters, count_fraud_rows

pytestmark = pytest.mark.timeout(300)

APP = Path(__file__).resolve().parents[2] / "app.py"
RUN_TIMEOUT_SECONDS = 60
PAGED_ROWS = 27

INSERT_SQL = """
INSERT INTO shop.fraud_transactions (
    transaction_id, user_id, event_time, first_name, last_name, location,
    transaction_location, amount, device, fraud_reasons, kafka_topic,
    kafka_partition, kafka_offset
) VALUES (%s, %s, %s, 'Ada', 'Lovelace', 'London', %s, %s, %s, %s, 'pages-live-test', 0, %s)
"""


@dataclass(frozen=True)
class FraudRows:
    marker: str
    phone: str
    laptop: str
    pager: str
    home_country: str
    other_country: str

    def transaction_id(self, suffix: str) -> str:
        return f"pages-{self.marker}-{suffix}"


@pytest.fixture(scope="module")
def fraud_rows(stack) -> Iterator[FraudRows]:
    marker = uuid.uuid4().hex[:10]
    rows = FraudRows(
        marker=marker,
        phone=f"test-phone-{marker}",
        laptop=f"test-laptop-{marker}",
        pager=f"test-pager-{marker}",
        home_country=f"Testland-{marker}",
        other_country=f"Otherland-{marker}",
    )
    now = datetime.now(timezone.utc)
    samples = [
        ("recent-phone", now - timedelta(minutes=1), rows.home_country, rows.phone),
        ("recent-laptop", now - timedelta(minutes=2), rows.home_country, rows.laptop),
        ("recent-other", now - timedelta(minutes=3), rows.other_country, rows.phone),
        ("old-phone", now - timedelta(days=30), rows.home_country, rows.phone),
    ]
    samples += [
        (f"paged-{index:02d}", now - timedelta(minutes=10 + index), rows.home_country, rows.pager)
        for index in range(PAGED_ROWS)
    ]
    for offset, (suffix, event_time, country, device) in enumerate(samples):
        stack.query(
            INSERT_SQL,
            (
                rows.transaction_id(suffix),
                f"user-{marker}",
                event_time,
                country,
                "125.50",
                device,
                ["amount_above_limit"],
                offset,
            ),
        )
    yield rows
    stack.query(
        "DELETE FROM shop.fraud_transactions WHERE transaction_id LIKE %s",
        (f"pages-{marker}-%",),
    )


@pytest.fixture
def frauds_page(stack, fraud_rows: FraudRows, monkeypatch, tmp_path: Path) -> AppTest:
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        if name not in stack.env:
            monkeypatch.delenv(name, raising=False)
    for name, value in stack.env.items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    # Query results are cached for the whole process; the filter choices must
    # include the rows inserted above.
    st.cache_data.clear()

    app = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_SECONDS).run()
    app.switch_page("pages/frauds.py").run()
    assert not app.exception
    return app


def matched_caption(app: AppTest) -> str:
    return next(caption.value for caption in app.caption if "match" in caption.value)


def shown_ids(app: AppTest) -> list[str]:
    assert not app.exception
    assert len(app.error) == 0, [error.value for error in app.error]
    return list(app.dataframe[0].value["transaction_id"])


def test_frauds_page_shows_rows_newest_first(frauds_page: AppTest, fraud_rows: FraudRows) -> None:
    frauds_page.multiselect(key="frauds_devices").set_value([fraud_rows.phone, fraud_rows.laptop])
    frauds_page.run()

    assert shown_ids(frauds_page) == [
        fraud_rows.transaction_id("recent-phone"),
        fraud_rows.transaction_id("recent-laptop"),
        fraud_rows.transaction_id("recent-other"),
        fraud_rows.transaction_id("old-phone"),
    ]
    assert "4 transactions match · page 1 of 1" in matched_caption(frauds_page)


def test_frauds_page_lists_filter_choices(frauds_page: AppTest, fraud_rows: FraudRows) -> None:
    devices = frauds_page.multiselect(key="frauds_devices").options
    countries = frauds_page.multiselect(key="frauds_locations").options

    for device in (fraud_rows.phone, fraud_rows.laptop, fraud_rows.pager):
        assert device in devices
    assert fraud_rows.home_country in countries
    assert fraud_rows.other_country in countries


def test_frauds_page_filters_by_device(frauds_page: AppTest, fraud_rows: FraudRows) -> None:
    frauds_page.multiselect(key="frauds_devices").set_value([fraud_rows.laptop]).run()

    assert shown_ids(frauds_page) == [fraud_rows.transaction_id("recent-laptop")]


def test_frauds_page_filters_by_country(frauds_page: AppTest, fraud_rows: FraudRows) -> None:
    frauds_page.multiselect(key="frauds_locations").set_value([fraud_rows.other_country]).run()

    assert shown_ids(frauds_page) == [fraud_rows.transaction_id("recent-other")]


def test_frauds_page_filters_by_time_range(frauds_page: AppTest, fraud_rows: FraudRows) -> None:
    frauds_page.multiselect(key="frauds_devices").set_value([fraud_rows.phone])
    frauds_page.selectbox(key="frauds_time_range").select("Last 24 hours").run()

    assert shown_ids(frauds_page) == [
        fraud_rows.transaction_id("recent-phone"),
        fraud_rows.transaction_id("recent-other"),
    ]


def test_frauds_page_combines_device_and_country(
    frauds_page: AppTest, fraud_rows: FraudRows
) -> None:
    frauds_page.multiselect(key="frauds_devices").set_value([fraud_rows.phone])
    frauds_page.multiselect(key="frauds_locations").set_value([fraud_rows.home_country]).run()

    assert shown_ids(frauds_page) == [
        fraud_rows.transaction_id("recent-phone"),
        fraud_rows.transaction_id("old-phone"),
    ]


def test_frauds_page_pages_through_rows(frauds_page: AppTest, fraud_rows: FraudRows) -> None:
    frauds_page.multiselect(key="frauds_devices").set_value([fraud_rows.pager])
    frauds_page.selectbox(key="frauds_page_size").select(25).run()

    first_page = shown_ids(frauds_page)
    assert first_page == [fraud_rows.transaction_id(f"paged-{index:02d}") for index in range(25)]
    assert frauds_page.button(key="frauds_newer").disabled
    assert not frauds_page.button(key="frauds_older").disabled

    frauds_page.button(key="frauds_older").click().run()

    assert shown_ids(frauds_page) == [
        fraud_rows.transaction_id(f"paged-{index:02d}") for index in range(25, PAGED_ROWS)
    ]
    assert "27 transactions match · page 2 of 2" in matched_caption(frauds_page)
    assert frauds_page.button(key="frauds_older").disabled

    frauds_page.button(key="frauds_newer").click().run()

    assert shown_ids(frauds_page) == first_page


def test_frauds_page_empty_filter_result(frauds_page: AppTest, fraud_rows: FraudRows) -> None:
    frauds_page.multiselect(key="frauds_devices").set_value([fraud_rows.laptop])
    frauds_page.multiselect(key="frauds_locations").set_value([fraud_rows.other_country]).run()

    assert not frauds_page.exception
    fraud_tables = [frame for frame in frauds_page.dataframe if "transaction_id" in frame.value.columns]
    assert fraud_tables == []
    assert "No transaction in the queue matches these filters. New rows appear here as they arrive." in [
        info.value for info in frauds_page.info
    ]


def test_frauds_page_search_without_match_names_the_value(frauds_page: AppTest) -> None:
    frauds_page.text_input(key="frauds_search").input("TX-NO-SUCH-ID").run()

    assert not frauds_page.exception
    infos = [info.value for info in frauds_page.info]
    assert any("starts with 'TX-NO-SUCH-ID'" in info and "case-sensitive" in info for info in infos), infos


def test_count_fraud_rows_stops_past_limit(stack, fraud_rows: FraudRows) -> None:
    engine = get_engine(stack.database_url)
    filters = FraudFilters(devices=(fraud_rows.pager,))

    assert count_fraud_rows(engine, filters) == PAGED_ROWS
    assert count_fraud_rows(engine, filters, limit=10) == 11


def test_frauds_page_lists_rejected_messages(stack, frauds_page: AppTest, fraud_rows: FraudRows) -> None:
    topic = f"pages-rejected-{fraud_rows.marker}"
    stack.query(
        "INSERT INTO shop.rejected_messages (kafka_topic, kafka_partition, kafka_offset, raw_payload, reason)"
        " VALUES (%s, 0, 0, 'oops', 'the record value is not valid JSON')",
        (topic,),
    )
    try:
        st.cache_data.clear()
        frauds_page.run()

        tables = [frame.value for frame in frauds_page.dataframe]
        rejected = [table for table in tables if "reason" in table.columns]
        assert rejected, "no rejected-messages table on the page"
        assert topic in list(rejected[0]["kafka_topic"])
    finally:
        stack.query("DELETE FROM shop.rejected_messages WHERE kafka_topic = %s", (topic,))
