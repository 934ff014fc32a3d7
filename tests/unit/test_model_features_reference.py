"""build_features and models.history against a plain-Python reference implementation.

The reference computes every feature row by row, straight from the
definitions in models.features and models.history, in quadratic time. The
random frames have ties in time, times within one millisecond, users and
devices that training never saw, rows older than the training history, and
history lists with several entries per user, as live scoring builds them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from models import history
from models.features import VELOCITY_WINDOW, FeatureState, build_features

WINDOW_MS = int(VELOCITY_WINDOW / pd.Timedelta(milliseconds=1))
START = pd.Timestamp("2026-03-01T10:00:00Z")


def random_frame(rng: np.random.Generator, rows: int, users: list[str], devices: list[str], span_s: int) -> pd.DataFrame:
    # Whole seconds give many ties. Some rows get microseconds, so that two
    # rows can fall in the same millisecond without being equal.
    seconds = rng.integers(0, span_s, rows)
    micros = np.where(rng.random(rows) < 0.3, rng.integers(0, 2_000, rows), 0)
    times = START + pd.to_timedelta(seconds, unit="s") + pd.to_timedelta(micros, unit="us")
    countries = np.array(["FR", "DE", "NG", "BR"])
    return pd.DataFrame(
        {
            "user_id": rng.choice(users, rows),
            "event_time": times,
            "amount": np.round(rng.gamma(2.0, 40.0, rows), 2),
            "device": rng.choice(devices, rows),
            "location": rng.choice(countries[:2], rows),
            "transaction_location": rng.choice(countries, rows),
        }
    )


def reference_features(df: pd.DataFrame, state: FeatureState) -> pd.DataFrame:
    """Compute the user_history and all features row by row, from their definitions."""
    saved = state.history
    times_ns = pd.to_datetime(df["event_time"], utc=True, format="ISO8601").astype("int64").to_numpy()
    rows = [
        {
            "position": position,
            "user": str(user),
            "ms": int(time_ns) // 1_000_000,
            "hour": int(time_ns) // 3_600_000_000_000 % 24,
            "amount": float(amount),
            "device": str(device),
            "location": str(location),
            "transaction_location": str(transaction_location),
        }
        for position, (user, time_ns, amount, device, location, transaction_location) in enumerate(
            zip(df["user_id"], times_ns, df["amount"], df["device"], df["location"], df["transaction_location"])
        )
    ]
    known_pairs = set(zip(saved.get("device_user", []), saved.get("device", [])))
    recent = list(zip(saved.get("recent_user", []), saved.get("recent_time_ms", [])))
    last = list(zip(saved.get("last_user", []), saved.get("last_time_ms", []), saved.get("last_location", [])))

    result = []
    for row in rows:
        user, ms, position = row["user"], row["ms"], row["position"]
        own = [other for other in rows if other["user"] == user]
        earlier = [other for other in own if (other["ms"], other["position"]) < (ms, position)]

        median = state.user_median_amount.get(user, state.median_amount)
        device_seen = (user, row["device"]) in known_pairs or any(other["device"] == row["device"] for other in earlier)
        velocity = sum(1 for other in earlier if other["ms"] > ms - WINDOW_MS) + 1
        velocity += sum(1 for other_user, time_ms in recent if other_user == user and ms - WINDOW_MS < time_ms <= ms)

        # The previous transaction in the order of models.history: time, then
        # history before rows, then the position in the history or the input.
        candidates = [((time_ms, 0, index), location) for index, (other_user, time_ms, location) in enumerate(last) if other_user == user]
        candidates += [((other["ms"], 1, other["position"]), other["transaction_location"]) for other in own]
        before = [candidate for candidate in candidates if candidate[0] < (ms, 1, position)]
        country_change = float(max(before)[1] != row["transaction_location"]) if before else 0.0

        result.append(
            {
                "amount": row["amount"],
                "log_amount": 0.0,
                "amount_to_user_median": row["amount"] / max(median, 1.0),
                "device_freq": state.device_freq.get(row["device"], 0.0),
                "device_new": 0.0 if device_seen else 1.0,
                "location_change": float(row["location"] != row["transaction_location"]),
                "hour_of_day": float(row["hour"]),
                "velocity_10m": float(velocity),
                "country_change": country_change,
            }
        )
    expected = pd.DataFrame(result, index=df.index)
    # math.log1p and numpy's vectorised log1p can differ in the last bit, so
    # the reference takes numpy's, as build_features does.
    expected["log_amount"] = np.log1p(np.maximum(expected["amount"].to_numpy(), 0.0))
    return expected.loc[:, list(state.feature_names)]


def extended_state(state: FeatureState, rng: np.random.Generator, users: list[str]) -> FeatureState:
    """Append history entries the way live scoring does: repeated users, unseen devices and places."""
    extra_users = [str(user) for user in rng.choice(users, 12)]
    extra_ms = [int((START + pd.Timedelta(seconds=int(s))).value // 1_000_000) for s in rng.integers(0, 3_600, 12)]
    saved = {key: list(values) for key, values in state.history.items()}
    saved["device_user"] += extra_users
    saved["device"] += [str(device) for device in rng.choice(["d1", "d7", "d9"], 12)]
    saved["last_user"] += extra_users
    saved["last_time_ms"] += extra_ms
    saved["last_location"] += [str(place) for place in rng.choice(["FR", "IT", "NG"], 12)]
    saved["recent_user"] += extra_users
    saved["recent_time_ms"] += extra_ms
    return dataclasses.replace(state, history=saved)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("feature_set", ["user_history", "all"])
def test_features_match_reference(seed: int, feature_set: str) -> None:
    rng = np.random.default_rng(seed)
    trained_users = [f"u{i}" for i in range(7)]
    training = random_frame(rng, 150, trained_users, ["d0", "d1", "d2", "d3"], span_s=3_600)
    state = FeatureState.fit(training, feature_set)
    if seed % 2:
        state = extended_state(state, rng, trained_users + ["u8"])
    # Scored rows start before the end of training, and u7 to u9 are new users.
    scored = random_frame(rng, 220, [f"u{i}" for i in range(10)], ["d0", "d2", "d4", "d5"], span_s=5_400)

    for rows in (scored.sort_values("event_time", kind="stable"), scored):
        expected = reference_features(rows, state)

        pd.testing.assert_frame_equal(build_features(rows, state), expected, check_exact=True)
        pd.testing.assert_frame_equal(
            build_features(rows, state.without_history()), reference_features(rows, state.without_history()), check_exact=True
        )


def test_features_match_reference_mixed_input_types() -> None:
    rng = np.random.default_rng(42)
    training = random_frame(rng, 120, ["7", "8", "9"], ["d0", "d1"], span_s=1_800)
    state = FeatureState.fit(training)
    scored = random_frame(rng, 80, ["7", "8", "10"], ["d0", "d1", "d2"], span_s=3_600)
    # Integer user ids compare as their text, and times may be ISO strings
    # with an offset.
    scored["user_id"] = [int(user) if i % 2 else user for i, user in enumerate(scored["user_id"])]
    scored["event_time"] = scored["event_time"].dt.tz_convert("Europe/Paris").map(lambda t: t.isoformat())

    pd.testing.assert_frame_equal(build_features(scored, state), reference_features(scored, state), check_exact=True)


def reference_previous(user, time_ms, value, history_user, history_ms, history_value) -> list:
    result = []
    for position in range(len(user)):
        candidates = [((history_ms[k], 0, k), history_value[k]) for k in range(len(history_user)) if history_user[k] == user[position]]
        candidates += [((time_ms[j], 1, j), value[j]) for j in range(len(user)) if user[j] == user[position]]
        before = [candidate for candidate in candidates if candidate[0] < (time_ms[position], 1, position)]
        result.append(max(before)[1] if before else None)
    return result


@pytest.mark.parametrize("seed", range(4))
def test_history_functions_match_reference(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n, n_history = 150, 40
    user = rng.choice(["a", "b", "c", "d"], n).astype(object)
    time_ms = rng.integers(0, 1_200, n) * 1_000
    history_user = rng.choice(["a", "b", "e"], n_history).astype(object)
    history_ms = rng.integers(0, 1_200, n_history) * 1_000
    value = rng.choice(["x", "y", "z"], n).astype(object)
    history_value = rng.choice(["x", "y", "w"], n_history).astype(object)
    time = time_ms.astype("datetime64[ms]")
    history_time = history_ms.astype("datetime64[ms]")

    counts = history.count_in_window(user, time, pd.Timedelta(minutes=2), history_user, history_time)
    previous = history.previous_value(user, time, value, history_user, history_time, history_value)
    new = history.is_new_pair(user, time, value, history_user, history_value)

    window = 120_000
    expected_counts = [
        sum(1 for j in range(n) if user[j] == user[i] and time_ms[i] - window < time_ms[j] and (time_ms[j], j) <= (time_ms[i], i))
        + sum(1 for k in range(n_history) if history_user[k] == user[i] and time_ms[i] - window < history_ms[k] <= time_ms[i])
        for i in range(n)
    ]
    known = set(zip(history_user, history_value))
    expected_new = [
        0.0
        if (user[i], value[i]) in known
        or any(user[j] == user[i] and value[j] == value[i] and (time_ms[j], j) < (time_ms[i], i) for j in range(n))
        else 1.0
        for i in range(n)
    ]
    assert counts.tolist() == expected_counts
    assert previous.tolist() == reference_previous(user, time_ms, value, history_user, history_ms, history_value)
    assert new.tolist() == expected_new


@pytest.mark.parametrize("time_ordered", [True, False])
def test_user_time_order_many_users_matches_lexsort(time_ordered: bool) -> None:
    # Over 65,536 users the order takes two radix passes over the user codes.
    rng = np.random.default_rng(5)
    n = 200_000
    codes = rng.integers(0, 70_000, n)
    times = rng.integers(0, 10**7, n)
    time = (np.sort(times) if time_ordered else times).astype("datetime64[ms]")

    order = history.UserTimeOrder(codes, pd.Index(np.arange(70_000)), time)

    assert codes.max() >= 1 << 16
    np.testing.assert_array_equal(order.order, np.lexsort((np.arange(n), time, codes)))
