"""Live scoring by the transactions consumer, on a real broker, Spark and PostgreSQL.

One run per module, in a database of its own. Messages sent before any
model is in production are stored unscored. Then version 1 is promoted, and
the scores of the next messages must equal the scores of features computed
offline. Then version 2 is promoted while the consumer runs, and every
later message carries it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pytest
from kafka import KafkaProducer

from models import registry
from models.artifact import model_features
from models.synthetic import simulate_transactions
from models.train import fit_and_evaluate
from pipeline.jobmetrics import read_metrics
from tests.integration.conftest import JobProcess, LocalStack, wait_for, wait_for_query_start

START = "2026-05-01T08:00:00Z"
UNSEEN_DEVICE = "device-never-seen-in-training"
# Row ranges of the simulated stream, in time order: training, then the
# rows scored by the first and the second model. The rows sent before any
# model is in production are the latest in time. So the first scored rows
# have training rows in their velocity window, and stored rows later in
# time must not change a score.
TRAIN, FIRST_MODEL, SECOND_MODEL, UNSCORED = (
    slice(0, 1500),
    slice(1500, 2200),
    slice(2200, 2900),
    slice(2900, 3000),
)


def _query(database_url: str, sql: str, params: tuple = ()) -> pd.DataFrame:
    connection = psycopg2.connect(database_url, connect_timeout=5)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            return pd.DataFrame(cursor.fetchall(), columns=[column[0] for column in cursor.description])
    finally:
        connection.close()


def _message(row: pd.Series) -> dict:
    return {
        "user_id": row.user_id,
        "transaction_id": row.transaction_id,
        "timestamp": row.event_time.isoformat(),
        "first_name": row.first_name,
        "last_name": row.last_name,
        "location": row.location,
        "transaction_location": row.transaction_location,
        "amount": float(row.amount),
        "device": row.device,
        "is_fraud": int(row.is_fraud),
        "fraud_reasons": ["simulated"] if row.is_fraud else [],
        "fraud_pattern": row.fraud_pattern,
    }


class Stream:
    """The module's topic, database and the simulated transactions to send."""

    def __init__(self, stack: LocalStack, database_url: str, topic: str, rows: pd.DataFrame, metrics: Path):
        self.stack, self.database_url, self.topic, self.rows, self.metrics = stack, database_url, topic, rows, metrics

    def send(self, part: slice) -> pd.DataFrame:
        rows = self.rows.iloc[part]
        producer = KafkaProducer(bootstrap_servers=self.stack.bootstrap_servers, acks="all")
        try:
            for _, row in rows.iterrows():
                producer.send(self.topic, key=row.user_id.encode(), value=json.dumps(_message(row)).encode())
            producer.flush(60)
        finally:
            producer.close()
        ids = tuple(rows["transaction_id"])
        wait_for(
            lambda: _query(
                self.database_url, "SELECT count(*) AS n FROM shop.transactions WHERE transaction_id IN %s", (ids,)
            )["n"][0] == len(ids),
            240,
            f"{len(ids)} transactions stored",
        )
        return rows

    def stored(self, part: slice | None = None) -> pd.DataFrame:
        """The topic's stored rows in stream order, or only those of ``part``."""
        rows = _query(
            self.database_url,
            "SELECT * FROM shop.transactions WHERE kafka_topic = %s "
            "ORDER BY event_time, kafka_partition, kafka_offset",
            (self.topic,),
        )
        if part is not None:
            rows = rows[rows["transaction_id"].isin(self.rows.iloc[part]["transaction_id"])]
        return rows


@pytest.fixture(scope="module")
def stream(stack: LocalStack, own_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stream]:
    topic = f"live-{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp("live")
    env = stack.env_with(
        KAFKA_TOPIC=topic,
        DATABASE_URL=own_database,
        SPARK_CHECKPOINT_DIR=str(folder / "checkpoints"),
        SPARK_TRIGGER_SECONDS="1",
    )
    # Dense traffic of few users, so the history features vary.
    rows = simulate_transactions(rows=3_000, users=30, days=0.25, fraud_share=0.03, seed=5, start=START)
    rows = rows.sort_values("event_time", kind="stable").reset_index(drop=True)
    later = rows.index[FIRST_MODEL][::40]
    rows.loc[later, "device"] = UNSEEN_DEVICE

    # The training rows are also in the ledger, as when a model is trained
    # from PostgreSQL: scoring must not count them twice.
    _store_training_rows(own_database, rows.iloc[TRAIN])

    metrics = folder / "transactions.json"
    jobs = [
        JobProcess(["-m", "pipeline.consumers", "transactions", "--metrics-file", str(metrics)], env, folder / "transactions.log"),
        JobProcess(["-m", "pipeline.consumers", "frauds"], env, folder / "frauds.log"),
    ]
    try:
        for job in jobs:
            job.start()
        for job in jobs:
            wait_for_query_start(job)
        yield Stream(stack, own_database, topic, rows, metrics)
    finally:
        for job in jobs:
            job.stop()


def _store_training_rows(database_url: str, rows: pd.DataFrame) -> None:
    connection = psycopg2.connect(database_url, connect_timeout=5)
    try:
        with connection, connection.cursor() as cursor:
            for offset, row in enumerate(rows.itertuples()):
                cursor.execute(
                    "INSERT INTO shop.transactions (transaction_id, user_id, event_time, first_name, "
                    "last_name, location, transaction_location, amount, device, is_fraud, "
                    "kafka_topic, kafka_partition, kafka_offset) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'training', 0, %s)",
                    (row.transaction_id, row.user_id, row.event_time.to_pydatetime(), row.first_name,
                     row.last_name, row.location, row.transaction_location, row.amount, row.device,
                     int(row.is_fraud), offset),
                )
    finally:
        connection.close()


def _train(stream: Stream, random_state: int) -> tuple[int, dict]:
    artifact, _ = fit_and_evaluate(
        stream.rows.iloc[TRAIN],
        {"feature_set": "user_history", "holdout": 0.0, "n_estimators": 60,
         "contamination": 0.05, "random_state": random_state},
    )
    return registry.register_model(stream.database_url, artifact), artifact


def _offline_scores(stream: Stream, artifact: dict, part: slice) -> pd.DataFrame:
    """Features and scores of ``part`` computed offline from everything stored after training."""
    stored = stream.stored()
    features = model_features(artifact, stored)
    features["fraud_score"] = -artifact["estimator"].score_samples(features)
    features["transaction_id"] = stored["transaction_id"].to_numpy()
    part_ids = set(stream.rows.iloc[part]["transaction_id"])
    return features[features["transaction_id"].isin(part_ids)].set_index("transaction_id")


@pytest.fixture(scope="module")
def versions(stream: Stream) -> dict:
    """Phase one runs without a model; then two versions are registered and the first promoted."""
    stream.send(UNSCORED)
    first, first_artifact = _train(stream, random_state=1)
    second, second_artifact = _train(stream, random_state=2)
    return {"first": (first, first_artifact), "second": (second, second_artifact)}


def test_no_model_stores_rows_unscored(stream: Stream, versions) -> None:
    stored = stream.stored(UNSCORED)
    assert len(stored) == 100
    assert stored["fraud_score"].isna().all()
    assert stored["flagged"].isna().all()
    assert stored["model_version"].isna().all()
    metrics = read_metrics(stream.metrics)
    assert "No model is in production" in metrics["scoring_problem"]
    assert metrics["model_version"] is None


def test_promoted_model_scores_every_row_as_offline(stream: Stream, versions) -> None:
    version, artifact = versions["first"]
    registry.promote(stream.database_url, version)
    stream.send(FIRST_MODEL)

    stored = stream.stored(FIRST_MODEL).set_index("transaction_id")
    assert (stored["model_version"] == version).all()
    offline = _offline_scores(stream, artifact, FIRST_MODEL).loc[stored.index]
    # Equal scores on every row: the stream built the same features, velocity included.
    np.testing.assert_allclose(stored["fraud_score"].astype(float), offline["fraud_score"], rtol=0, atol=1e-12)
    assert offline["velocity_10m"].max() > 2
    assert (stored["flagged"] == (stored["fraud_score"] > artifact["threshold"])).all()
    assert stored["flagged"].any()

    unseen = stored[stored["device"] == UNSEEN_DEVICE]
    assert len(unseen) > 5
    assert unseen["fraud_score"].notna().all()
    assert (offline.loc[unseen.index, "device_freq"] == 0.0).all()
    assert read_metrics(stream.metrics)["scoring_problem"] is None


def test_queue_rows_have_source_and_contributions(stream: Stream, versions) -> None:
    version, artifact = versions["first"]
    stored = stream.stored(FIRST_MODEL).set_index("transaction_id")
    expected = stored[(stored["flagged"]) | (stored["is_fraud"] == 1)]
    ids = tuple(expected.index)
    # The frauds consumer may store a labelled row first; the score fills it.
    wait_for(
        lambda: _query(
            stream.database_url,
            "SELECT count(*) AS n FROM shop.fraud_transactions WHERE transaction_id IN %s AND fraud_score IS NOT NULL",
            (ids,),
        )["n"][0] == len(ids),
        120,
        "every queued row scored",
    )
    queue = _query(
        stream.database_url, "SELECT * FROM shop.fraud_transactions WHERE transaction_id IN %s", (ids,)
    ).set_index("transaction_id")
    unflagged_ids = tuple(stored.index.difference(expected.index))
    assert _query(
        stream.database_url, "SELECT count(*) AS n FROM shop.fraud_transactions WHERE transaction_id IN %s",
        (unflagged_ids,),
    )["n"][0] == 0

    rows = expected.join(queue[["source", "fraud_score", "model_version", "top_contributions"]], rsuffix="_queue")
    sources = np.where(
        rows["flagged"] & (rows["is_fraud"] == 1), "both", np.where(rows["flagged"], "model", "rule")
    )
    assert rows["source"].tolist() == sources.tolist()
    assert {"both", "model"} <= set(sources)
    assert (rows["model_version_queue"] == version).all()
    np.testing.assert_allclose(rows["fraud_score_queue"].astype(float), rows["fraud_score"].astype(float))

    offline = _offline_scores(stream, artifact, FIRST_MODEL)
    for transaction_id, top in rows["top_contributions"].items():
        assert len(top) == 5
        sizes = [abs(item["contribution"]) for item in top]
        assert sizes == sorted(sizes, reverse=True)
        for item in top:
            assert item["value"] == pytest.approx(offline.loc[transaction_id, item["feature"]], abs=1e-12)


def test_promotion_mid_stream_reaches_later_rows_without_restart(stream: Stream, versions) -> None:
    version, artifact = versions["second"]
    registry.promote(stream.database_url, version)
    stream.send(SECOND_MODEL)

    stored = stream.stored(SECOND_MODEL).set_index("transaction_id")
    assert (stored["model_version"] == version).all()
    offline = _offline_scores(stream, artifact, SECOND_MODEL).loc[stored.index]
    np.testing.assert_allclose(stored["fraud_score"].astype(float), offline["fraud_score"], rtol=0, atol=1e-12)
    assert read_metrics(stream.metrics)["model_version"] == version
