"""Overview page against the real PostgreSQL of the ``stack`` fixture, and with PostgreSQL down.

The page reads a database of its own, created on the stack's server and
migrated, so the figures are exact whatever other tests write. The rows sit
minutes before now, because the page's windows end now; one older row is
only in the 24-hour window.
"""

from __future__ import annotations

import base64
import json
import math
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import pytest
import streamlit as st
from psycopg2 import sql as pgsql
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

# Imported before AppTest runs the page: Streamlit puts pages/ first on
# sys.path, where pages/pipeline.py would otherwise shadow the package.
from pipeline.jobmetrics import write_metrics
from pipeline.overview import NO_MODEL_MESSAGE, STATEMENTS, fetch_overview
from pipeline.queries import get_engine

pytestmark = pytest.mark.timeout(300)

PAGE = Path(__file__).resolve().parents[2] / "pages/overview.py"
RUN_TIMEOUT_SECONDS = 60
PASSWORD = "s3cret-pw"
GRAFANA_URL = "http://127.0.0.1:3999/grafana"

# (id, minutes before now, seconds to storage, is_fraud, amount, device, country, fraud_score)
LEDGER = [
    ("ov-a", 50, 2, 0, "10.00", "phone", "DE", 0.1),
    ("ov-b", 40, 4, 1, "500.00", "phone", "FR", 0.9),
    ("ov-c", 30, 1, 0, "20.00", "laptop", "DE", None),
    ("ov-d", 20, 3, 1, "700.00", "laptop", "FR", 0.7),
    ("ov-e", 10, 6, 0, "30.00", "phone", "DE", None),
    ("ov-f", 5, 2, 1, "300.00", "phone", "BR", None),
    ("ov-g", 3, 8, 0, "40.00", "phone", "DE", None),
    ("ov-h", 2, 5, 0, "50.00", "kiosk", "DE", None),
    ("ov-old", 180, 2, 1, "9000.00", "phone", "FR", None),
]
# source of each row in the fraud queue: labelled frauds and one model-only flag.
QUEUE = {"ov-b": "rule", "ov-d": "both", "ov-e": "model", "ov-f": "rule", "ov-old": "rule"}
# Minutes before now of each rejected message.
REJECTED_MINUTES = (15, 4, 120)
CONSUMER_METRICS = {
    "batches": 7,
    "rows_written": 800,
    "rows_rejected": 0,
    "last_batch_id": 6,
    "last_batch_rows": 120,
    "last_batch_seconds": 0.5,
}

LEDGER_SQL = """
INSERT INTO shop.transactions (
    transaction_id, user_id, event_time, first_name, last_name, location, transaction_location,
    amount, device, is_fraud, kafka_topic, kafka_partition, kafka_offset, ingested_at,
    fraud_score, flagged, model_version
) VALUES (%s, 'user-1', %s, 'Ada', 'Lovelace', 'DE', %s, %s, %s, %s, 'overview-test', 0, %s, %s, %s, %s, %s)
"""
QUEUE_SQL = """
INSERT INTO shop.fraud_transactions (
    transaction_id, user_id, event_time, first_name, last_name, location, transaction_location,
    amount, device, kafka_topic, kafka_partition, kafka_offset, ingested_at,
    is_fraud, rule_flagged, model_flagged
) VALUES (%s, 'user-1', %s, 'Ada', 'Lovelace', 'DE', %s, %s, %s, 'overview-test', 0, %s, %s, %s, %s, %s)
"""


def execute(database_url: str, statement: str | pgsql.Composable, params: tuple | None = None) -> list[tuple]:
    connection = psycopg2.connect(database_url, connect_timeout=5)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


def insert_rows(database_url: str, now: datetime) -> None:
    for offset, (transaction_id, minutes, latency, is_fraud, amount, device, country, score) in enumerate(LEDGER):
        event_time = now - timedelta(minutes=minutes)
        stored_at = event_time + timedelta(seconds=latency)
        scored = score is not None
        execute(
            database_url,
            LEDGER_SQL,
            (
                transaction_id, event_time, country, amount, device, is_fraud, offset, stored_at,
                score, (score >= 0.5) if scored else None, 1 if scored else None,
            ),
        )
        if transaction_id in QUEUE:
            source = QUEUE[transaction_id]
            execute(
                database_url,
                QUEUE_SQL,
                (
                    transaction_id, event_time, country, amount, device, offset, stored_at,
                    is_fraud, source in ("rule", "both"), source in ("model", "both"),
                ),
            )
    for offset, minutes in enumerate(REJECTED_MINUTES):
        execute(
            database_url,
            "INSERT INTO shop.rejected_messages"
            " (kafka_topic, kafka_partition, kafka_offset, raw_payload, reason, received_at)"
            " VALUES ('overview-test', 0, %s, 'oops', 'the record value is not valid JSON', %s)",
            (offset, now - timedelta(minutes=minutes)),
        )


@pytest.fixture(scope="module")
def database_url(own_database: str) -> str:
    """Return the URL of a new, migrated database with the rows above."""
    insert_rows(own_database, datetime.now(timezone.utc))
    return own_database


@pytest.fixture
def page_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point the settings at a fresh state folder and Grafana address; return the jobs folder."""
    for name in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME",
                 "KAFKA_SASL_PASSWORD", "WORKBENCH_KAFKA_PORT", "WORKBENCH_KAFKA_CONTROLLER_PORT",
                 "WORKBENCH_POSTGRES_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORKBENCH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("WORKBENCH_GRAFANA_URL", GRAFANA_URL)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{closed_port()}")
    # Query results are cached for the whole process.
    st.cache_data.clear()
    return tmp_path / "state" / "jobs"


def closed_port() -> int:
    """Return a loopback port that was free a moment ago and has no listener."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_page() -> AppTest:
    app = AppTest.from_file(str(PAGE), default_timeout=RUN_TIMEOUT_SECONDS).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def metrics(app: AppTest) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for metric in app.metric:
        values.setdefault(metric.label, []).append(metric.value)
    return values


def chart_data(app: AppTest) -> list[list[dict[str, Any]]]:
    """Return the traces of every plotly chart, in page order, with x and y as lists."""
    charts = []
    for chart in app.get("plotly_chart"):
        traces = json.loads(chart.proto.spec)["data"]
        charts.append([{**trace, "x": as_list(trace["x"]), "y": as_list(trace["y"])} for trace in traces])
    return charts


def as_list(array: list | dict[str, str]) -> list:
    """Decode plotly's base64 typed array ({"dtype", "bdata"}), which plotly 6 writes for numpy data."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
    return list(array)


def all_text(app: AppTest) -> str:
    parts = []
    for kind in ("error", "info", "success", "warning", "markdown", "caption", "title"):
        parts.extend(str(element.value) for element in getattr(app, kind))
    return "\n".join(parts)


@pytest.fixture
def live_page(stack, database_url: str, page_env: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("DATABASE_URL", database_url)
    write_metrics(page_env / "consumer-transactions" / "metrics.json", CONSUMER_METRICS)
    return run_page()


def test_overview_shows_kpis_of_last_hour(live_page: AppTest) -> None:
    values = metrics(live_page)

    assert [title.value for title in live_page.title] == ["Overview"]
    assert len(live_page.error) == 0, [error.value for error in live_page.error]
    assert values["Transactions"] == ["8"]
    assert values["Frauds"] == ["3"]
    assert values["Fraud rate"] == ["37.50%"]
    assert values["Model-flagged"] == ["2"]
    assert values["Rejected messages"] == ["2"]
    # Latencies 1, 2, 2, 3, 4, 5, 6, 8 s: 6 + 0.65 * (8 - 6).
    assert values["p95 event-to-stored latency"] == ["7.3 s"]


def test_overview_states_no_production_model(live_page: AppTest) -> None:
    assert [info.value for info in live_page.info] == [NO_MODEL_MESSAGE]
    assert len(live_page.success) == 0


def test_overview_names_production_model(database_url: str, page_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    execute(
        database_url,
        "INSERT INTO shop.model_versions (version, parameters, feature_set, feature_names, row_count,"
        " metrics, threshold, sklearn_version, artifact)"
        " VALUES (1, '{}', 'basic', '{amount}', 0, '{}', 0.5, 'test', 'not a model')",
    )
    execute(database_url, "INSERT INTO shop.model_promotions (version) VALUES (1)")
    try:
        app = run_page()
    finally:
        execute(database_url, "DELETE FROM shop.model_promotions")
        execute(database_url, "DELETE FROM shop.model_versions")

    assert [success.value for success in app.success] == [
        "Model version 1 is in production. 3 of the 8 transactions in this window have a fraud_score."
    ]
    assert NO_MODEL_MESSAGE not in all_text(app)


def test_overview_lists_top_frauds(live_page: AppTest) -> None:
    tables = [frame.value for frame in live_page.dataframe]

    assert len(tables) == 1
    assert list(tables[0]["transaction_id"]) == ["ov-d", "ov-b", "ov-f"]
    assert list(tables[0]["amount"]) == [700.0, 500.0, 300.0]
    assert list(tables[0]["transaction_location"]) == ["FR · France", "FR · France", "BR · Brazil"]
    assert list(tables[0]["source"]) == ["both", "rule", "rule"]


def test_overview_charts_match_rows(live_page: AppTest) -> None:
    ledger, sources, countries, devices, throughput, latency, rejected = chart_data(live_page)

    # One-minute buckets in the last hour, so each value is a count.
    assert [trace["name"] for trace in ledger] == ["non-fraud", "fraud"]
    assert sum(ledger[0]["y"]) == 5
    assert sum(ledger[1]["y"]) == 3
    assert len(ledger[0]["x"]) in (60, 61)
    assert {trace["name"]: sum(trace["y"]) for trace in sources} == {
        "rule only": 2, "rule and model": 1, "model only": 1
    }
    assert countries[0]["y"] == ["France", "Brazil"]
    assert countries[0]["x"] == [2, 1]
    assert devices[0]["y"] == ["phone", "laptop"]
    assert devices[0]["x"] == [2, 1]
    assert {trace["name"]: sum(trace["y"]) for trace in throughput} == {"ledger": 8, "fraud table": 4}
    assert [trace["name"] for trace in latency] == ["p50", "p95", "max"]
    assert max(value for value in latency[2]["y"] if not math.isnan(value)) == 8
    assert sum(rejected[0]["y"]) == 2


def test_overview_shows_job_health(live_page: AppTest) -> None:
    values = metrics(live_page)
    captions = [caption.value for caption in live_page.caption]

    assert values["Messages per second"] == ["–"]
    assert sorted(values["Rows per second"]) == ["240.0", "–"]
    assert any(caption.startswith("Batch 6: 120 rows in 0.5 s,") for caption in captions)
    assert "No batch yet." in captions
    assert "No message sent yet." in captions
    assert all_text(live_page).count("Stopped") == 3


def test_overview_links_grafana_dashboard(live_page: AppTest) -> None:
    buttons = live_page.get("link_button")

    assert [button.proto.url for button in buttons] == [f"{GRAFANA_URL}/d/fraud-workbench"]


def test_overview_window_change_widens_figures(live_page: AppTest) -> None:
    live_page.selectbox(key="overview_window").select("Last 24 hours").run()
    values = metrics(live_page)

    assert not live_page.exception
    assert values["Transactions"] == ["9"]
    assert values["Frauds"] == ["4"]
    assert values["Rejected messages"] == ["3"]
    assert list(live_page.dataframe[0].value["transaction_id"])[0] == "ov-old"


def test_overview_statements_use_indexes(database_url: str) -> None:
    # With sequential scans priced out, PostgreSQL still picks one where no
    # index can serve the window filter, so a Seq Scan here is a missing index.
    now = datetime.now(timezone.utc)
    params = {"start": now - timedelta(hours=1), "end": now, "bucket_seconds": 60, "top_frauds": 5, "max_categories": 10}
    engine = get_engine(database_url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SET enable_seqscan = off"))
            for name, statement in STATEMENTS.items():
                plan = connection.execute(text("EXPLAIN (FORMAT JSON) " + statement), params).scalar_one()
                scans = [node["Node Type"] for node in plan_nodes(plan[0]["Plan"])]
                assert scans, f"{name} reads no table"
                assert "Seq Scan" not in scans, f"{name}: {scans}"
    finally:
        engine.dispose()


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield the nodes of an EXPLAIN plan that read a table."""
    if "Relation Name" in node:
        yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def test_fetch_overview_rejects_unknown_window(database_url: str) -> None:
    engine = get_engine(database_url)
    try:
        with pytest.raises(ValueError, match="Unknown time window 'Forever'"):
            fetch_overview(engine, "Forever", datetime.now(timezone.utc))
    finally:
        engine.dispose()


def test_overview_reports_database_down(page_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    monkeypatch.setenv("DATABASE_URL", f"postgresql://fraud:{PASSWORD}@127.0.0.1:{port}/fraud")

    app = run_page()

    assert [title.value for title in app.title] == ["Overview"]
    assert [error.value for error in app.error] == [
        f"PostgreSQL is not reachable at 127.0.0.1:{port} (connection refused). "
        "Start the local stack with `python -m pipeline.stack up`, or set DATABASE_URL "
        "to a running server."
    ]
    assert len(app.metric) == 3, "only the three job metrics"
    assert all_text(app).count("Stopped") == 3
    assert PASSWORD not in all_text(app)
    assert "Traceback" not in all_text(app)


def test_overview_without_frauds_says_so(stack, page_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.migrate import migrate
    from tests.integration.conftest import _admin

    admin_url = stack.database_url.rsplit("/", 1)[0] + "/postgres"
    empty_url = stack.database_url.rsplit("/", 1)[0] + "/overview_empty"
    _admin(admin_url, 'DROP DATABASE IF EXISTS "overview_empty" WITH (FORCE)')
    _admin(admin_url, 'CREATE DATABASE "overview_empty"')
    try:
        migrate(empty_url)
        monkeypatch.setenv("DATABASE_URL", empty_url)
        app = run_page()
    finally:
        _admin(admin_url, 'DROP DATABASE IF EXISTS "overview_empty" WITH (FORCE)')

    captions = [caption.value for caption in app.caption]
    assert captions.count("No fraud in this window.") == 2
