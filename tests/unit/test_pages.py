"""Page tests with Streamlit's AppTest, while PostgreSQL and Kafka are unreachable.

DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS point at loopback ports that nothing
listens on, so every check fails fast with "connection refused".
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pipeline import supervisor
from pipeline.simulator import DEFAULT_FRAUD_RATIO, FRAUD_PATTERNS

pytestmark = pytest.mark.timeout(120)

APP = Path(__file__).resolve().parents[2] / "app.py"
PASSWORD = "s3cret-pw"
RUN_TIMEOUT_SECONDS = 60

# Variables of the developer's shell that would change the settings under test.
OUTSIDE_VARIABLES = (
    "KAFKA_TOPIC",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "WORKBENCH_KAFKA_PORT",
    "WORKBENCH_KAFKA_CONTROLLER_PORT",
    "WORKBENCH_POSTGRES_PORT",
)


def closed_port() -> int:
    """Return a loopback port that was free a moment ago and has no listener."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, int]:
    ports = {"postgres": closed_port(), "kafka": closed_port()}
    for name in OUTSIDE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(
        "DATABASE_URL", f"postgresql://fraud:{PASSWORD}@127.0.0.1:{ports['postgres']}/fraud"
    )
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{ports['kafka']}")
    monkeypatch.setenv("WORKBENCH_STATE_DIR", str(tmp_path / "state"))
    return ports


def run_page(page: str | None = None) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_SECONDS).run()
    if page is not None:
        app.switch_page(page).run()
    return app


def all_text(app: AppTest) -> str:
    """Return the text of every element that shows a message or a value."""
    parts = []
    for kind in ("error", "info", "success", "warning", "markdown", "caption", "code", "title"):
        parts.extend(str(element.value) for element in getattr(app, kind))
    return "\n".join(parts)


def error_messages(app: AppTest) -> list[str]:
    return [element.value for element in app.error]


def test_app_opens_overview_page_first(ports: dict[str, int]) -> None:
    app = run_page()

    assert not app.exception
    assert [title.value for title in app.title] == ["Overview"]
    # PostgreSQL is down: the page shows a plain sentence, not a trace.
    assert any("PostgreSQL" in message for message in error_messages(app))


def test_pipeline_page_reports_services_down(ports: dict[str, int]) -> None:
    app = run_page("pages/pipeline.py")
    errors = error_messages(app)

    assert not app.exception
    assert any(
        f"Kafka is not reachable at 127.0.0.1:{ports['kafka']} (connection refused)" in error
        for error in errors
    )
    assert any(
        f"PostgreSQL is not reachable at 127.0.0.1:{ports['postgres']} (connection refused)"
        in error
        for error in errors
    )
    assert PASSWORD not in all_text(app)


def test_pipeline_page_shows_jobs_stopped(ports: dict[str, int]) -> None:
    app = run_page("pages/pipeline.py")
    text = all_text(app)

    assert not app.exception
    assert text.count("Stopped") == 3
    for job in ("producer", "consumer-transactions", "consumer-frauds"):
        assert not app.button(key=f"start-{job}").disabled
        assert app.button(key=f"stop-{job}").disabled
    assert app.number_input(key="producer_rate").value == 20.0
    assert app.number_input(key="producer_fraud_ratio").value == DEFAULT_FRAUD_RATIO
    assert app.number_input(key="producer_seed").value is None


def test_pipeline_page_shows_campaign_form(ports: dict[str, int]) -> None:
    app = run_page("pages/pipeline.py")

    assert not app.exception
    assert app.selectbox(key="campaign_pattern").options == list(FRAUD_PATTERNS)
    assert app.number_input(key="campaign_count").value == 20
    assert not app.button(key="start-campaign").disabled
    assert "No campaign yet" in all_text(app)


def test_pipeline_page_starts_campaign_job(ports: dict[str, int]) -> None:
    app = run_page("pages/pipeline.py")
    app.selectbox(key="campaign_pattern").select("card_testing")
    app.number_input(key="campaign_count").set_value(7)
    app.number_input(key="producer_seed").set_value(5)

    try:
        app.button(key="start-campaign").click().run()
        job = supervisor.status("campaign")
    finally:
        supervisor.stop("campaign", timeout=5)

    assert not app.exception
    assert any("Campaign started with pid" in element.value for element in app.success)
    assert job.command[-8:-2] == (
        "--campaign",
        "card_testing",
        "--count",
        "7",
        "--seed",
        "5",
    )
    assert job.options == {"pattern": "card_testing", "count": 7, "seed": 5}


def test_sidebar_settings_redact_password(ports: dict[str, int]) -> None:
    app = run_page()
    settings_text = "\n".join(block.value for block in app.sidebar.code)

    redacted_url = f"postgresql://fraud:***@127.0.0.1:{ports['postgres']}/fraud"
    assert f"DATABASE_URL={redacted_url}" in settings_text
    assert PASSWORD not in settings_text


def test_invalid_setting_shows_plain_error(
    ports: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_KAFKA_PORT", "ninety")

    app = run_page()

    assert not app.exception
    assert len(app.error) == 1
    assert "WORKBENCH_KAFKA_PORT must be a whole number from 1 to 65535, got 'ninety'" in (
        app.error[0].value
    )
    assert len(app.title) == 0


def test_frauds_page_reports_database_down(ports: dict[str, int]) -> None:
    app = run_page("pages/frauds.py")

    assert not app.exception
    assert [title.value for title in app.title] == ["Fraud queue"]
    assert error_messages(app) == [
        f"PostgreSQL is not reachable at 127.0.0.1:{ports['postgres']} (connection refused). "
        "Start the local stack with `python -m pipeline.stack up`, or set DATABASE_URL "
        "to a running server."
    ]
    assert app.selectbox(key="frauds_time_range").value == "All time"
    assert app.selectbox(key="frauds_sort").value == "newest"
    assert app.slider(key="frauds_score_range").value == (0.0, 1.0)
    assert app.multiselect(key="frauds_devices").options == []
    assert app.multiselect(key="frauds_patterns").options == []
    assert app.multiselect(key="frauds_sources").options == ["Rules", "Model", "Rules and model"]
    assert PASSWORD not in all_text(app)


def test_frauds_page_down_hides_model_notice(ports: dict[str, int]) -> None:
    app = run_page("pages/frauds.py")

    assert not app.exception
    assert "No model is in production" not in all_text(app)


def test_frauds_page_filter_change_keeps_working(ports: dict[str, int]) -> None:
    app = run_page("pages/frauds.py")

    app.selectbox(key="frauds_time_range").select("Last hour").run()
    app.selectbox(key="frauds_sort").select("score").run()
    app.text_input(key="frauds_search").input("user-1").run()

    assert not app.exception
    assert app.selectbox(key="frauds_time_range").value == "Last hour"
    assert app.selectbox(key="frauds_sort").value == "score"
    assert len(app.error) == 1


def test_frauds_export_database_down_error(ports: dict[str, int]) -> None:
    app = run_page("pages/frauds.py")

    app.button(key="frauds_export_prepare").click().run()

    assert not app.exception
    assert len(app.error) == 2
    for message in error_messages(app):
        assert f"PostgreSQL is not reachable at 127.0.0.1:{ports['postgres']}" in message
        assert "Traceback" not in message


def test_model_page_renders_form(ports: dict[str, int]) -> None:
    app = run_page("pages/model.py")

    assert not app.exception
    assert [title.value for title in app.title] == ["Model"]
    assert app.number_input(key="model_n_estimators").value == 100
    assert app.text_input(key="model_max_samples").value == "auto"
    assert len(app.error) == 0


def test_model_training_database_down_plain_error(ports: dict[str, int]) -> None:
    app = run_page("pages/model.py")

    app.button[0].click().run()

    assert not app.exception
    assert len(app.error) == 1
    assert f"127.0.0.1:{ports['postgres']}" in app.error[0].value
    assert PASSWORD not in app.error[0].value
    assert "Traceback" not in app.error[0].value


def test_model_invalid_max_samples_plain_error(ports: dict[str, int]) -> None:
    app = run_page("pages/model.py")

    app.text_input(key="model_max_samples").input("lots")
    app.button[0].click().run()

    assert not app.exception
    assert [error.value for error in app.error] == [
        "Max samples must be auto, a whole number of rows >= 1, or a share of rows "
        "from 0 to 1, got 'lots'."
    ]
