import numpy as np
import pandas as pd
import pytest

from models.features import FeatureState, build_features
from models.synthetic import simulate_transactions


def frame(rows):
    return pd.DataFrame(
        rows,
        columns=["user_id", "event_time", "amount", "device", "location", "transaction_location"],
    )


HISTORY = frame(
    [
        ("a", "2026-01-01T10:00:00Z", 10.0, "phone", "FR", "FR"),
        ("a", "2026-01-01T10:05:00Z", 30.0, "phone", "FR", "FR"),
        ("b", "2026-01-01T10:06:00Z", 100.0, "laptop", "DE", "DE"),
        ("a", "2026-01-01T10:20:00Z", 20.0, "tablet", "FR", "NG"),
    ]
)


def test_user_history_training_rows_see_only_earlier():
    state = FeatureState.fit(HISTORY)

    features = build_features(HISTORY, state.without_history())

    assert features["device_new"].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert features["velocity_10m"].tolist() == [1.0, 2.0, 1.0, 1.0]
    assert features["country_change"].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert features["amount_to_user_median"].tolist() == [0.5, 1.5, 1.0, 1.0]


def test_user_history_unseen_user_and_device_defined():
    state = FeatureState.fit(HISTORY)
    new = frame([("z", "2026-01-02T00:00:00Z", 40.0, "watch", "IT", "IT")])

    features = build_features(new, state)

    assert not features.isna().any().any()
    assert features.loc[0, "device_freq"] == 0.0
    assert features.loc[0, "device_new"] == 1.0
    assert features.loc[0, "amount_to_user_median"] == 40.0 / 25.0
    assert features.loc[0, "country_change"] == 0.0


def test_user_history_continues_after_training():
    state = FeatureState.fit(HISTORY)
    later = frame(
        [
            ("a", "2026-01-01T10:25:00Z", 20.0, "tablet", "FR", "FR"),
            ("b", "2026-01-01T10:30:00Z", 100.0, "phone", "DE", "DE"),
        ]
    )

    features = build_features(later, state)

    assert features["device_new"].tolist() == [0.0, 1.0]
    assert features["velocity_10m"].tolist() == [2.0, 1.0]
    assert features["country_change"].tolist() == [1.0, 0.0]


def test_user_history_order_independent():
    state = FeatureState.fit(HISTORY)
    shuffled = HISTORY.iloc[[3, 1, 0, 2]]

    features = build_features(shuffled, state.without_history())

    pd.testing.assert_frame_equal(features.sort_index(), build_features(HISTORY, state.without_history()))


def test_user_history_offset_times_as_utc():
    local = HISTORY.assign(event_time=["2026-01-01T11:00:00+01:00", *HISTORY["event_time"].iloc[1:]])

    features = build_features(local, FeatureState.fit(local))

    assert features["hour_of_day"].tolist() == [10.0, 10.0, 10.0, 10.0]


def test_user_history_invalid_time():
    bad = HISTORY.assign(event_time=["soon", *HISTORY["event_time"].iloc[1:]])

    with pytest.raises(ValueError, match="event_time must contain ISO 8601 times, got 'soon' at index 0"):
        FeatureState.fit(bad)


def test_user_history_state_round_trip():
    import json

    state = FeatureState.fit(HISTORY)

    restored = FeatureState.from_dict(json.loads(json.dumps(state.to_dict())))

    pd.testing.assert_frame_equal(build_features(HISTORY, restored), build_features(HISTORY, state))


def test_user_history_large_frame_no_nan():
    df = simulate_transactions(rows=50_000, users=2_000, seed=3)

    features = build_features(df, FeatureState.fit(df).without_history())

    assert len(features) == len(df)
    assert np.isfinite(features.to_numpy()).all()
    assert features["velocity_10m"].min() == 1.0
