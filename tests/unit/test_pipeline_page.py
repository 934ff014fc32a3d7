"""The Pipeline page's job cards show what live scoring did, from the consumer's metrics."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.settings import get_settings
from tests.unit.test_pages import all_text, ports, run_page  # noqa: F401 - ports is a fixture


def _write_metrics(job: str, metrics: dict) -> None:
    folder = Path(get_settings().jobs_dir) / job
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_transactions_card_says_why_rows_are_unscored(ports) -> None:
    _write_metrics(
        "consumer-transactions",
        {
            "batches": 3,
            "rows_written": 120,
            "rows_rejected": 0,
            "rows_scored": 0,
            "model_version": None,
            "scoring_problem": "No model is in production, so new transactions are stored without a score. "
            "Train and promote one on the Model page.",
        },
    )
    app = run_page("pages/pipeline.py")

    assert not app.exception
    warnings = [element.value for element in app.warning]
    assert any("No model is in production" in message for message in warnings)


def test_transactions_card_shows_the_scoring_model(ports) -> None:
    _write_metrics(
        "consumer-transactions",
        {"batches": 2, "rows_written": 80, "rows_scored": 80, "model_version": 4, "scoring_problem": None},
    )
    app = run_page("pages/pipeline.py")

    assert not app.exception
    assert "scored: 80 by model version 4" in all_text(app)
    assert not app.warning


def test_failed_job_card_names_the_cause(ports) -> None:
    import time

    from pipeline import supervisor

    app = run_page("pages/pipeline.py")
    app.button(key="start-producer").click().run()
    # Kafka is down, so the producer gives up after its bootstrap wait.
    deadline = time.monotonic() + 90
    while supervisor.status("producer").running and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not supervisor.status("producer").running
    app.run()

    errors = [element.value for element in app.error]
    assert not app.exception
    assert any(
        message.startswith("Producer stopped with an error.") and str(ports["kafka"]) in message
        for message in errors
    ), errors
