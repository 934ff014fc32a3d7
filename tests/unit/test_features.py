import json
import math
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from models.features import FEATURE_SETS, FeatureState, build_features, required_columns

FEATURE_NAMES = FEATURE_SETS["seed_baseline"]
INPUT_COLUMNS = required_columns("seed_baseline")


def make_frame(**columns):
    base = {
        "amount": [10.0, 20.0, 30.0, 40.0],
        "device": ["phone", "phone", "phone", "laptop"],
        "location": ["Paris", "Paris", "Berlin", "Rome"],
        "transaction_location": ["Paris", "Lyon", "Berlin", "Madrid"],
    }
    base.update(columns)
    return pd.DataFrame(base)


def test_fit_device_freq_values():
    state = FeatureState.fit(make_frame(), "seed_baseline")

    assert state.device_freq == {"phone": 0.75, "laptop": 0.25}
    assert state.n_rows == 4
    assert math.isclose(sum(state.device_freq.values()), 1.0)


def test_fit_leaves_input_unchanged():
    df = make_frame()
    before = df.copy()

    FeatureState.fit(df, "seed_baseline")
    build_features(df, FeatureState.fit(df, "seed_baseline"))

    pd.testing.assert_frame_equal(df, before)


def test_build_features_device_freq_from_state():
    state = FeatureState.fit(make_frame(), "seed_baseline")
    features = build_features(make_frame(), state)

    assert features["device_freq"].tolist() == [0.75, 0.75, 0.75, 0.25]


def test_build_features_unseen_device_zero():
    state = FeatureState.fit(make_frame(), "seed_baseline")
    df = make_frame(device=["tablet", "phone", "watch", "laptop"])

    features = build_features(df, state)

    assert features["device_freq"].tolist() == [0.0, 0.75, 0.0, 0.25]
    assert not features.isna().any().any()


def test_build_features_empty_state_all_unseen():
    features = build_features(make_frame(), FeatureState(feature_set="seed_baseline"))

    assert features["device_freq"].tolist() == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("location", "transaction_location", "expected"),
    [
        ("Paris", "Paris", 0.0),
        ("Paris", "Lyon", 1.0),
        ("Paris", "paris", 1.0),
        ("Paris", "Paris ", 1.0),
    ],
)
def test_build_features_location_change(location, transaction_location, expected):
    df = make_frame(
        location=[location] * 4,
        transaction_location=[transaction_location] * 4,
    )

    features = build_features(df, FeatureState.fit(df, "seed_baseline"))

    assert features["location_change"].tolist() == [expected] * 4


def test_build_features_column_order_and_dtypes():
    df = make_frame(extra=["a", "b", "c", "d"])

    features = build_features(df, FeatureState.fit(df, "seed_baseline"))

    assert list(features.columns) == list(FEATURE_NAMES)
    assert FEATURE_NAMES == ("amount", "device_freq", "location_change")
    assert all(dtype == np.float64 for dtype in features.dtypes)


def test_build_features_keeps_index():
    df = make_frame().set_axis([7, 3, 11, 5])

    features = build_features(df, FeatureState.fit(df, "seed_baseline"))

    assert features.index.tolist() == [7, 3, 11, 5]


def test_build_features_amount_types():
    # PostgreSQL numeric arrives as Decimal. Other callers may pass ints or strings.
    df = make_frame(amount=[Decimal("12.34"), 5, "7.5", 1.25])

    features = build_features(df, FeatureState.fit(df, "seed_baseline"))

    assert features["amount"].tolist() == [12.34, 5.0, 7.5, 1.25]
    assert features["amount"].dtype == np.float64


def test_build_features_empty_frame():
    state = FeatureState.fit(make_frame(), "seed_baseline")

    features = build_features(make_frame().iloc[:0], state)

    assert features.empty
    assert list(features.columns) == list(FEATURE_NAMES)
    assert all(dtype == np.float64 for dtype in features.dtypes)


@pytest.mark.parametrize("column", INPUT_COLUMNS)
def test_build_features_missing_column(column):
    state = FeatureState.fit(make_frame(), "seed_baseline")

    with pytest.raises(ValueError, match=f"missing the column\\(s\\) {column}\\."):
        build_features(make_frame().drop(columns=[column]), state)


def test_fit_missing_columns_named():
    df = make_frame().drop(columns=["device", "transaction_location"])

    with pytest.raises(ValueError, match=r"missing the column\(s\) device, transaction_location\."):
        FeatureState.fit(df, "seed_baseline")


def test_fit_empty_frame():
    with pytest.raises(ValueError, match="Cannot fit the feature state on 0 transactions"):
        FeatureState.fit(make_frame().iloc[:0], "seed_baseline")


# pandas stores None in a float column as NaN, so the message shows nan.
@pytest.mark.parametrize(
    ("amount", "shown"),
    [(float("nan"), "nan"), (float("inf"), "inf"), ("abc", "'abc'"), (None, "nan")],
)
def test_build_features_invalid_amount(amount, shown):
    state = FeatureState.fit(make_frame(), "seed_baseline")
    df = make_frame(amount=[1.0, amount, 3.0, 4.0])

    with pytest.raises(ValueError, match=f"finite numbers, got {shown} at index 1 "):
        build_features(df, state)


@pytest.mark.parametrize("column", ["device", "location", "transaction_location"])
def test_build_features_missing_value(column):
    state = FeatureState.fit(make_frame(), "seed_baseline")
    values = make_frame()[column].tolist()
    values[2] = None
    df = make_frame(**{column: values})

    match = f"Column {column} has 1 missing value\\(s\\), the first at index 2\\."
    with pytest.raises(ValueError, match=match):
        build_features(df, state)


def test_feature_state_dict_round_trip():
    state = FeatureState.fit(make_frame(), "seed_baseline")

    data = json.loads(json.dumps(state.to_dict()))
    restored = FeatureState.from_dict(data)

    assert restored == state


def test_feature_state_from_dict_missing_key():
    with pytest.raises(ValueError, match=r"missing the key\(s\) n_rows\."):
        FeatureState.from_dict({"feature_set": "seed_baseline", "device_freq": {}})


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_feature_state_from_dict_share_out_of_range(share):
    with pytest.raises(ValueError, match=f"device 'phone' must be from 0 to 1, got {share}"):
        FeatureState.from_dict(
            {"feature_set": "seed_baseline", "device_freq": {"phone": share}, "n_rows": 3}
        )
