"""``python -m models.explain`` against the real PostgreSQL of the ``stack`` fixture.

The module inserts synthetic transactions whose ids, users and kafka_topic
carry a random marker, in a time window years ahead of other test data,
trains one model on them and registers it without promoting it. The rows
and the version are deleted afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pytest
from psycopg2.extras import execute_values

from models import registry
from models.artifact import fraud_score
from models.synthetic import simulate_transactions
from models.train import train_model

REPO_ROOT = Path(__file__).resolve().parents[2]

INSERT_SQL = """
INSERT INTO shop.transactions (
    transaction_id, user_id, event_time, first_name, last_name, location,
    transaction_location, amount, device, is_fraud, kafka_topic, kafka_partition, kafka_offset
) VALUES %s
"""


@dataclass(frozen=True)
class MarkedRows:
    """Transactions inserted for one test module, and where to find them."""

    marker: str
    topic: str
    start: str
    end: str
    frame: pd.DataFrame


def insert_marked_transactions(database_url: str, first_year: int, rows: int = 3000, seed: int = 5) -> MarkedRows:
    """Insert simulated transactions on a day of the ten years from ``first_year`` that the marker picks.

    Ids and users get the marker as a prefix and kafka_topic names it, so
    :func:`delete_marked_transactions` removes exactly these rows.
    """
    marker = uuid.uuid4().hex[:10]
    start = pd.Timestamp(f"{first_year}-01-01", tz="UTC") + pd.Timedelta(days=int(marker[:6], 16) % 3650)
    df = simulate_transactions(rows=rows, users=60, days=10, seed=seed, start=start.isoformat())
    df["transaction_id"] = f"{marker}-" + df["transaction_id"].astype(str)
    df["user_id"] = f"{marker}-" + df["user_id"].astype(str)
    topic = f"model-test-{marker}"
    values = [
        (
            row.transaction_id, row.user_id, row.event_time.to_pydatetime(), row.first_name, row.last_name,
            row.location, row.transaction_location, float(row.amount), row.device, int(row.is_fraud),
            topic, 0, offset,
        )
        for offset, row in enumerate(df.itertuples(index=False))
    ]
    connection = psycopg2.connect(database_url, connect_timeout=5)
    try:
        with connection, connection.cursor() as cursor:
            execute_values(cursor, INSERT_SQL, values, page_size=1000)
    finally:
        connection.close()
    end = df["event_time"].max() + pd.Timedelta(seconds=1)
    return MarkedRows(marker=marker, topic=topic, start=start.isoformat(), end=end.isoformat(), frame=df)


def delete_marked_transactions(stack, rows: MarkedRows) -> None:
    stack.query("DELETE FROM shop.transactions WHERE kafka_topic = %s", (rows.topic,))


@dataclass(frozen=True)
class Trained:
    rows: MarkedRows
    version: int
    training_end: pd.Timestamp


@pytest.fixture(scope="module")
def trained(stack, tmp_path_factory) -> Iterator[Trained]:
    rows = insert_marked_transactions(stack.database_url, first_year=2051)
    registered_before = stack.scalar("SELECT coalesce(max(version), 0) FROM shop.model_versions")
    try:
        params = {"n_estimators": 30, "limit": len(rows.frame), "start": rows.start, "end": rows.end}
        result = train_model(stack.database_url, params, output_dir=tmp_path_factory.mktemp("models"))
        yield Trained(rows, result["version"], pd.Timestamp(result["training_window"]["end"]))
    finally:
        delete_marked_transactions(stack, rows)
        stack.query("DELETE FROM shop.model_promotions WHERE version > %s", (registered_before,))
        stack.query("DELETE FROM shop.model_versions WHERE version > %s", (registered_before,))


def run_explain(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "models.explain", *args],
        cwd=REPO_ROOT, env=stack.env, capture_output=True, text=True, timeout=300,
    )


def stored_score(stack, trained: Trained, transaction_id: str) -> float:
    """Score a transaction with the registered model and its user's rows since training, read here."""
    _, artifact = registry.load_version(stack.database_url, trained.version)
    context = pd.DataFrame(
        stack.query(
            """
            SELECT t.transaction_id, t.user_id, t.event_time, t.amount, t.device, t.location,
                   t.transaction_location
            FROM shop.transactions t
            JOIN shop.transactions target ON target.transaction_id = %s AND t.user_id = target.user_id
            WHERE t.event_time > %s AND t.event_time <= target.event_time
            """,
            (transaction_id, trained.training_end.to_pydatetime()),
        ),
        columns=["transaction_id", "user_id", "event_time", "amount", "device", "location", "transaction_location"],
    )
    scores = fraud_score(artifact, context)
    return float(scores[np.flatnonzero(context["transaction_id"].to_numpy() == transaction_id)[0]])


def test_explain_cli_sums_to_stored_score(stack, trained: Trained) -> None:
    # The user with the most transactions after training, and their latest
    # one, so the history features see earlier rows of the same user.
    later = trained.rows.frame[trained.rows.frame["event_time"] > trained.training_end]
    user = later["user_id"].value_counts().index[0]
    transaction_id = later.loc[later["user_id"] == user, "transaction_id"].iloc[-1]

    completed = run_explain(stack, "--transaction-id", transaction_id, "--version", str(trained.version))

    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    expected = stored_score(stack, trained, transaction_id)
    assert result["version"] == trained.version
    assert result["transaction_id"] == transaction_id
    assert result["fraud_score"] == pytest.approx(expected, abs=1e-12)
    assert result["base_value"] + sum(result["contributions"].values()) == pytest.approx(expected, abs=1e-9)
    assert set(result["contributions"]) == set(result["features"])
    assert result["flagged"] == (expected > result["threshold"])


def test_explain_cli_unknown_transaction(stack, trained: Trained) -> None:
    completed = run_explain(stack, "--transaction-id", "no-such-transaction", "--version", str(trained.version))

    assert completed.returncode == 2
    assert "Transaction 'no-such-transaction' was not found in shop.transactions" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""


def test_explain_cli_training_transaction(stack, trained: Trained) -> None:
    earlier = trained.rows.frame[trained.rows.frame["event_time"] <= trained.training_end]
    transaction_id = earlier["transaction_id"].iloc[-1]

    completed = run_explain(stack, "--transaction-id", transaction_id, "--version", str(trained.version))

    assert completed.returncode == 2
    assert f"Transaction {transaction_id!r} at " in completed.stderr
    assert "is in the training window of the model" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""
