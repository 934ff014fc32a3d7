"""Live scoring's pure parts: features from stored history equal the offline features."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from models.artifact import model_features
from models.features import INPUT_COLUMNS, VELOCITY_WINDOW
from models.synthetic import simulate_transactions
from models.train import fit_and_evaluate
from pipeline.consumers.scoring import (
    LedgerHistory,
    history_bounds,
    history_cutoff,
    score_rows,
    top_contributions,
)


def ledger_history(stored: pd.DataFrame, rows: pd.DataFrame, cutoff: datetime) -> LedgerHistory:
    """What the SQL of pipeline.consumers.live_model reads, computed with pandas."""
    bounds = history_bounds(rows).set_index("user_id")
    stored = stored[pd.to_datetime(stored["event_time"], utc=True) > cutoff]
    stored = stored[stored["user_id"].isin(bounds.index)]
    times = pd.to_datetime(stored["event_time"], utc=True)
    since = stored["user_id"].map(bounds["since"])
    until = stored["user_id"].map(bounds["until"])
    recent = stored[(times > since) & (times <= until)]
    before = stored[times <= since]
    last = before.sort_values("event_time", kind="stable").drop_duplicates("user_id", keep="last")
    pairs = rows[["user_id", "device"]].drop_duplicates()
    known = pairs.merge(before[["user_id", "device"]].drop_duplicates(), on=["user_id", "device"])
    return LedgerHistory(
        recent=recent.sort_values("event_time", kind="stable").loc[:, list(INPUT_COLUMNS)],
        last=last[["user_id", "event_time", "transaction_location"]],
        known_devices=known,
    )


@pytest.fixture(scope="module")
def model_and_stream():
    # Dense traffic of few users, so that velocity often exceeds 1 and
    # windows cross batch boundaries.
    df = simulate_transactions(rows=4_000, users=40, days=0.5, fraud_share=0.03, seed=7)
    df = df.sort_values("event_time", kind="stable").reset_index(drop=True)
    train = df.iloc[:2_000]
    stream = df.iloc[2_000:].reset_index(drop=True)
    # Devices the model never saw, each used again batches later.
    later = stream.index % 25 == 0
    stream.loc[later, "device"] = "new-phone-" + stream.loc[later, "user_id"].astype(str)
    artifact, _ = fit_and_evaluate(
        train, {"feature_set": "user_history", "holdout": 0.0, "n_estimators": 50, "random_state": 0}
    )
    return artifact, stream


def test_stream_features_equal_offline_features(model_and_stream):
    artifact, stream = model_and_stream
    offline = model_features(artifact, stream)
    cutoff = history_cutoff(artifact)

    computed = []
    for start in range(0, len(stream), 137):  # batches of uneven size
        rows = stream.iloc[start : start + 137]
        ledger = ledger_history(stream.iloc[:start], rows, cutoff)
        scored, features = score_rows(rows, artifact, ledger)
        computed.append(features)
        np.testing.assert_allclose(scored.fraud_score, -artifact["estimator"].score_samples(features))
    streamed = pd.concat(computed)

    pd.testing.assert_frame_equal(streamed, offline)
    # Every history feature took part, so each rule of LedgerHistory was needed.
    assert streamed["velocity_10m"].max() > 2
    assert streamed["country_change"].sum() > 0
    new_phones = streamed[stream["device"].str.startswith("new-phone-").to_numpy()]
    assert 0 < new_phones["device_new"].sum() < len(new_phones)


def test_empty_ledger_uses_model_history_only(model_and_stream):
    artifact, stream = model_and_stream
    cutoff = history_cutoff(artifact)
    rows = stream.iloc[:50]
    # Without ledger rows after the cutoff, the state alone is the history.
    _, features = score_rows(rows, artifact, LedgerHistory())
    pd.testing.assert_frame_equal(features, model_features(artifact, rows))
    assert cutoff == pd.Timestamp(artifact["training_window"]["end"]).to_pydatetime()


def test_unseen_user_and_device_get_defined_scores(model_and_stream):
    artifact, stream = model_and_stream
    rows = stream.iloc[:3].copy()
    rows["user_id"] = ["never-seen-1", "never-seen-2", "never-seen-2"]
    rows["device"] = "device-never-seen"
    scored, features = score_rows(rows, artifact, LedgerHistory())
    assert np.isfinite(scored.fraud_score).all()
    assert not features.isna().any().any()
    assert features["device_new"].tolist() == [1.0, 1.0, 0.0]
    assert features["device_freq"].eq(0.0).all()


def test_flag_agrees_with_threshold(model_and_stream):
    artifact, stream = model_and_stream
    scored, _ = score_rows(stream, artifact, LedgerHistory())
    assert (scored.flagged == (scored.fraud_score > artifact["threshold"])).all()
    assert scored.flagged.any()
    assert not scored.flagged.all()


def test_cutoff_without_user_features_is_none():
    artifact = {"feature_set": "seed_baseline", "training_window": {"end": "2026-01-01T00:00:00+00:00"}}
    assert history_cutoff(artifact) is None


def test_cutoff_without_window_counts_every_stored_row():
    artifact = {"feature_set": "user_history", "training_window": None}
    assert history_cutoff(artifact) == datetime(1970, 1, 1, tzinfo=timezone.utc)


def test_history_bounds_span_the_velocity_window():
    rows = pd.DataFrame(
        {
            "user_id": ["a", "a", "b"],
            "event_time": ["2026-01-01T10:00:00Z", "2026-01-01T10:05:00Z", "2026-01-01T11:00:00Z"],
        }
    )
    bounds = history_bounds(rows).set_index("user_id")
    assert bounds.loc["a", "since"] == pd.Timestamp("2026-01-01T10:00:00Z") - VELOCITY_WINDOW
    assert bounds.loc["a", "until"] == pd.Timestamp("2026-01-01T10:05:00Z")
    assert bounds.loc["b", "until"] == pd.Timestamp("2026-01-01T11:00:00Z")


def test_top_contributions_are_largest_by_size_first():
    contributions = pd.DataFrame({"a": [0.01, -0.3], "b": [-0.2, 0.1], "c": [0.05, 0.0]})
    features = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0]})
    top = top_contributions(contributions, features, count=2)
    assert [item["feature"] for item in top[0]] == ["b", "c"]
    assert [item["feature"] for item in top[1]] == ["a", "b"]
    assert top[1][0] == {"feature": "a", "value": 2.0, "contribution": -0.3}
