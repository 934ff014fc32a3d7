"""Precision on reviewed alerts against the real PostgreSQL of the ``stack`` fixture.

Fraud-table rows are inserted directly with the review status an analyst
would have set, under a registered model version and under version numbers
that no other test uses. The rows and the version are deleted afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from models import registry
from models.reviewed import reviewed_precision
from models.synthetic import simulate_transactions
from models.train import fit_and_evaluate

REPO_ROOT = Path(__file__).resolve().parents[2]

INSERT_SQL = """
INSERT INTO shop.fraud_transactions (
    transaction_id, user_id, event_time, first_name, last_name, location, transaction_location,
    amount, device, kafka_topic, kafka_partition, kafka_offset,
    rule_flagged, model_flagged, model_version, review_status
) VALUES (%s, %s, %s, 'Test', 'User', 'FR', 'FR', 10.00, 'phone', %s, 0, %s, %s, %s, %s, %s)
"""


@dataclass(frozen=True)
class Reviews:
    version: int
    unreviewed_version: int
    topic: str


def insert_alert(stack, topic: str, offset: int, version: int, status: str, model_flagged: bool = True) -> None:
    stack.query(
        INSERT_SQL,
        (
            f"{topic}-{offset}", f"{topic}-user", datetime(2070, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=offset),
            topic, offset, not model_flagged, model_flagged, version, status,
        ),
    )


@pytest.fixture(scope="module")
def reviews(stack) -> Iterator[Reviews]:
    artifact, _ = fit_and_evaluate(simulate_transactions(rows=2000, users=50, seed=4), {"n_estimators": 10})
    version = registry.register_model(stack.database_url, artifact)
    # A version number far above the registry's, for alerts without a decisive review.
    unreviewed_version = version + 1_000_000
    topic = f"test-reviewed-{uuid.uuid4().hex[:8]}"
    statuses = [
        (version, "confirmed_fraud", True),
        (version, "confirmed_fraud", True),
        (version, "confirmed_fraud", True),
        (version, "false_positive", True),
        (version, "needs_info", True),
        (version, "unreviewed", True),
        # Rule-only frauds and other versions' alerts do not count.
        (version, "false_positive", False),
        (version, "false_positive", False),
        (unreviewed_version, "needs_info", True),
        (unreviewed_version, "unreviewed", True),
    ]
    try:
        for offset, (alert_version, status, model_flagged) in enumerate(statuses):
            insert_alert(stack, topic, offset, alert_version, status, model_flagged)
        yield Reviews(version=version, unreviewed_version=unreviewed_version, topic=topic)
    finally:
        stack.query("DELETE FROM shop.fraud_transactions WHERE kafka_topic = %s", (topic,))
        stack.query("DELETE FROM shop.model_versions WHERE version = %s", (version,))


def test_reviewed_precision_counts_decisive_reviews(stack, reviews: Reviews) -> None:
    result = reviewed_precision(stack.database_url, reviews.version)

    assert result["reviewed_precision"] == 0.75
    assert result["reviewed_confirmed_fraud"] == 3
    assert result["reviewed_false_positive"] == 1
    assert result["reviewed_note"] is None


def test_reviewed_precision_none_without_decisive_reviews(stack, reviews: Reviews) -> None:
    result = reviewed_precision(stack.database_url, reviews.unreviewed_version)

    assert result["reviewed_precision"] is None
    assert result["reviewed_confirmed_fraud"] == 0
    assert result["reviewed_false_positive"] == 0
    assert result["reviewed_note"].startswith(
        f"No alert of model version {reviews.unreviewed_version} has been reviewed as confirmed fraud or false positive"
    )


def test_evaluate_cli_reviewed_precision(stack, reviews: Reviews, tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl"
    messages = simulate_transactions(rows=400, users=20, seed=8).rename(columns={"event_time": "timestamp"})
    path.write_text(messages.assign(timestamp=messages["timestamp"].map(str)).to_json(orient="records", lines=True))

    completed = subprocess.run(
        [sys.executable, "-m", "models.evaluate", "--version", str(reviews.version), "--input", str(path)],
        cwd=REPO_ROOT, env=stack.env, capture_output=True, text=True, timeout=300,
    )

    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["version"] == reviews.version
    assert result["reviewed_precision"] == 0.75
    assert result["reviewed_confirmed_fraud"] == 3
    assert result["reviewed_false_positive"] == 1
    assert result["rows"] == len(messages)
