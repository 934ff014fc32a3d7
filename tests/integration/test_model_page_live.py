"""Model page against the real PostgreSQL of the ``stack`` fixture.

The test inserts synthetic transactions with ids, users and a kafka_topic
that carry a random marker, in a time window years ahead of any other test
data, so training and evaluation on that window see only these rows. The
rows, and the model versions the test registers, are deleted afterwards.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from psycopg2.extras import execute_values
from streamlit.testing.v1 import AppTest

from models import registry
from models.synthetic import simulate_transactions

pytestmark = pytest.mark.timeout(600)

APP = Path(__file__).resolve().parents[2] / "app.py"
RUN_TIMEOUT_SECONDS = 240

INSERT_SQL = """
INSERT INTO shop.transactions (
    transaction_id, user_id, event_time, first_name, last_name, location,
    transaction_location, amount, device, is_fraud, kafka_topic, kafka_partition, kafka_offset
) VALUES %s
"""


@dataclass(frozen=True)
class Window:
    marker: str
    start: str
    end: str
    rows: int


@pytest.fixture(scope="module")
def window(stack) -> Iterator[Window]:
    marker = uuid.uuid4().hex[:10]
    # A start day between 2031 and 2041 that no other test writes to.
    start = pd.Timestamp("2031-01-01", tz="UTC") + pd.Timedelta(days=int(marker[:6], 16) % 3650)
    df = simulate_transactions(rows=4000, users=120, days=20, seed=21, start=start.isoformat())
    rows = [
        (
            f"model-{marker}-{row.transaction_id}",
            f"{marker}-{row.user_id}",
            row.event_time.to_pydatetime(),
            row.first_name,
            row.last_name,
            row.location,
            row.transaction_location,
            float(row.amount),
            row.device,
            int(row.is_fraud),
            f"model-page-test-{marker}",
            0,
            offset,
        )
        for offset, row in enumerate(df.itertuples(index=False))
    ]
    import psycopg2

    connection = psycopg2.connect(stack.database_url, connect_timeout=5)
    try:
        with connection, connection.cursor() as cursor:
            execute_values(cursor, INSERT_SQL, rows, page_size=1000)
    finally:
        connection.close()

    end = df["event_time"].max() + pd.Timedelta(seconds=1)
    registered_before = stack.scalar("SELECT coalesce(max(version), 0) FROM shop.model_versions")
    yield Window(marker=marker, start=start.isoformat(), end=end.isoformat(), rows=len(df))

    stack.query("DELETE FROM shop.transactions WHERE kafka_topic = %s", (f"model-page-test-{marker}",))
    stack.query("DELETE FROM shop.model_promotions WHERE version > %s", (registered_before,))
    stack.query("DELETE FROM shop.model_versions WHERE version > %s", (registered_before,))


@pytest.fixture
def model_page(stack, window: Window, monkeypatch) -> AppTest:
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        if name not in stack.env:
            monkeypatch.delenv(name, raising=False)
    for name, value in stack.env.items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    st.cache_data.clear()
    st.cache_resource.clear()

    app = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_SECONDS).run()
    app.switch_page("pages/model.py").run()
    assert not app.exception
    return app


def texts(app: AppTest, kind: str) -> list[str]:
    return [str(element.value) for element in getattr(app, kind)]


def metric_values(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def shown_threshold(app: AppTest) -> float:
    markdown = "\n".join(texts(app, "markdown"))
    return float(re.search(r"Threshold in use: \*\*([0-9.]+)\*\*", markdown).group(1))


def test_model_page_train_tune_promote(stack, window: Window, model_page: AppTest) -> None:
    app = model_page
    app.number_input(key="model_n_estimators").set_value(30)
    app.number_input(key="model_limit").set_value(window.rows)
    app.text_input(key="model_start").input(window.start)
    app.text_input(key="model_end").input(window.end)
    next(button for button in app.button if button.label == "Train").click().run()

    # Training registered a new version and shows its hold-out metrics.
    assert not app.exception
    assert texts(app, "error") == []
    success = next(text for text in texts(app, "success") if text.startswith("Trained and registered"))
    version = int(re.search(r"version (\d+)", success).group(1))
    metrics = metric_values(app)
    assert metrics["Training rows"] == f"{window.rows - round(0.2 * window.rows):,}"
    assert metrics["ROC AUC"] != "n/a"
    assert app.selectbox(key="model_version").value == version

    # The evaluation window starts after the training rows and ends with the test rows.
    app.text_input(key="model_eval_end").input(window.end).run()
    caption = next(text for text in texts(app, "caption") if text.startswith(f"Version {version}"))
    assert f"on {round(0.2 * window.rows):,} transactions" in caption

    # Moving the threshold changes the alerts without retraining.
    alerts_before = metric_values(app)["Alerts"]
    slider = app.slider(key=f"model_threshold_{version}")
    slider.set_value(slider.min).run()
    assert metric_values(app)["Alerts"] != alerts_before
    threshold = shown_threshold(app)
    table = app.dataframe[0].value
    assert (table["predicted_fraud"] == (table["fraud_score"] > threshold)).all()
    assert stack.scalar("SELECT count(*) FROM shop.model_versions WHERE version > %s", (version,)) == 0

    # Promoting shows the version as production, in the page and in the registry.
    app.button(key="model_promote").click().run()
    assert f"Version {version} is now in production." in texts(app, "success")
    assert f"Production: version {version}" in texts(app, "caption")
    assert registry.production_version(stack.database_url) == version
    assert app.button(key="model_promote").disabled
