"""The transaction generator: determinism, message contract and fraud labels."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from faker import Faker

from pipeline.generator import (
    DEVICES,
    FRAUD_REASONS,
    HIGH_AMOUNT_THRESHOLD,
    UNUSUAL_DEVICES,
    TransactionGenerator,
)
from pipeline.message import MESSAGE_FIELDS, parse_timestamp, validate_message

START = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)


def _messages(count: int, **options) -> list[dict]:
    options.setdefault("seed", 42)
    options.setdefault("start_time", START)
    return TransactionGenerator(**options).generate(count)


def test_generator_same_seed_same_messages() -> None:
    first = _messages(500)
    second = _messages(500)

    assert first == second


def test_generator_same_seed_same_users() -> None:
    first = TransactionGenerator(seed=3, start_time=START)
    second = TransactionGenerator(seed=3, start_time=START)

    assert first.users == second.users
    assert first.locations == second.locations


def test_generator_different_seed_differs() -> None:
    first = _messages(50, seed=1)
    second = _messages(50, seed=2)

    assert [m["transaction_id"] for m in first] != [m["transaction_id"] for m in second]
    assert {m["user_id"] for m in first}.isdisjoint({m["user_id"] for m in second})


def test_generator_iteration_matches_generate() -> None:
    generator = TransactionGenerator(seed=9, start_time=START)
    iterated = [next(generator) for _ in range(20)]

    assert iterated == _messages(20, seed=9)


def test_generator_messages_pass_validation() -> None:
    for message in _messages(2000, fraud_ratio=0.5):
        record, reason = validate_message(json.dumps(message).encode("utf-8"))
        assert reason is None, (reason, message)
        assert record is not None


def test_generator_exact_field_set_and_types() -> None:
    for message in _messages(500, fraud_ratio=0.5):
        assert tuple(message) == MESSAGE_FIELDS
        assert isinstance(message["amount"], float)
        assert round(message["amount"], 2) == message["amount"]
        assert message["is_fraud"] in (0, 1)
        assert type(message["is_fraud"]) is int
        assert isinstance(message["fraud_reasons"], list)


def test_generator_timestamps_start_and_advance() -> None:
    messages = _messages(1000)
    times = [parse_timestamp(m["timestamp"]) for m in messages]

    assert times[0] == START
    assert all(later >= earlier for earlier, later in zip(times, times[1:]))
    assert times[-1] > START
    for message in messages[:50]:
        assert message["timestamp"].endswith("+00:00")


def test_generator_mean_interval_sets_spacing() -> None:
    messages = _messages(5000, mean_interval_s=0.5)
    span = parse_timestamp(messages[-1]["timestamp"]) - START
    mean_gap_s = span.total_seconds() / (len(messages) - 1)

    assert 0.45 < mean_gap_s < 0.55


def test_generator_mean_interval_changes_only_timestamps() -> None:
    slow = _messages(300, mean_interval_s=1.0)
    fast = _messages(300, mean_interval_s=0.001)

    assert [m["timestamp"] for m in slow] != [m["timestamp"] for m in fast]
    for slow_message, fast_message in zip(slow, fast):
        slow_message.pop("timestamp")
        fast_message.pop("timestamp")
        assert slow_message == fast_message


def test_generator_start_time_converted_to_utc() -> None:
    eastern = timezone(timedelta(hours=-5))
    message = _messages(1, start_time=datetime(2026, 1, 5, 5, 0, tzinfo=eastern))[0]

    assert message["timestamp"] == "2026-01-05T10:00:00.000000+00:00"


def test_generator_default_start_time_is_now() -> None:
    before = datetime.now(timezone.utc)
    message = TransactionGenerator(seed=1).generate(1)[0]
    after = datetime.now(timezone.utc)

    assert before <= parse_timestamp(message["timestamp"]) <= after


@pytest.mark.parametrize("fraud_ratio", [0.1, 0.3])
def test_generator_fraud_ratio_within_tolerance(fraud_ratio: float) -> None:
    messages = _messages(20_000, fraud_ratio=fraud_ratio)
    observed = sum(m["is_fraud"] for m in messages) / len(messages)

    # The binomial standard deviation is at most 0.0033 here, so 0.015 is
    # more than four of them.
    assert abs(observed - fraud_ratio) < 0.015


def test_generator_default_fraud_ratio_is_tenth() -> None:
    messages = _messages(20_000)
    observed = sum(m["is_fraud"] for m in messages) / len(messages)

    assert abs(observed - 0.1) < 0.015


@pytest.mark.parametrize("fraud_ratio, expected", [(0.0, 0), (1.0, 1)])
def test_generator_fraud_ratio_bounds(fraud_ratio: float, expected: int) -> None:
    labels = {m["is_fraud"] for m in _messages(2000, fraud_ratio=fraud_ratio)}

    assert labels == {expected}


def test_generator_fraud_reasons_match_fields() -> None:
    generator = TransactionGenerator(seed=5, start_time=START, fraud_ratio=0.5)
    usual_device = {user.user_id: user.device for user in generator.users}
    seen_reasons: set[str] = set()

    for message in generator.generate(5000):
        reasons = message["fraud_reasons"]
        high_amount = message["amount"] >= HIGH_AMOUNT_THRESHOLD
        mismatch = message["transaction_location"] != message["location"]
        unusual = message["device"] in UNUSUAL_DEVICES

        if message["is_fraud"] == 0:
            assert reasons == []
            assert not high_amount
            assert not mismatch
            assert message["device"] == usual_device[message["user_id"]]
            continue

        assert reasons, message
        assert set(reasons) <= set(FRAUD_REASONS)
        assert len(reasons) == len(set(reasons))
        assert ("high_amount" in reasons) == high_amount
        assert ("location_mismatch" in reasons) == mismatch
        assert ("unusual_device" in reasons) == unusual
        if not unusual:
            assert message["device"] == usual_device[message["user_id"]]
        seen_reasons.update(reasons)

    assert seen_reasons == set(FRAUD_REASONS)


def test_generator_some_frauds_have_several_reasons() -> None:
    reason_counts = {len(m["fraud_reasons"]) for m in _messages(5000, fraud_ratio=1.0)}

    assert 1 in reason_counts
    assert 2 in reason_counts


def test_generator_users_fixed_population() -> None:
    generator = TransactionGenerator(seed=11, start_time=START, user_count=50)
    users = {user.user_id: user for user in generator.users}
    messages = generator.generate(2000)

    assert len(users) == 50
    assert {m["user_id"] for m in messages} <= set(users)
    for message in messages:
        user = users[message["user_id"]]
        assert message["first_name"] == user.first_name
        assert message["last_name"] == user.last_name
        assert message["location"] == user.location
    for user in generator.users:
        assert user.device in DEVICES
        assert user.location in generator.locations


def test_generator_single_user_can_mismatch_location() -> None:
    messages = _messages(200, user_count=1, fraud_ratio=1.0)
    mismatches = [m for m in messages if "location_mismatch" in m["fraud_reasons"]]

    assert mismatches
    for message in mismatches:
        assert message["transaction_location"] != message["location"]


def test_generator_transaction_ids_unique() -> None:
    ids = [m["transaction_id"] for m in _messages(20_000)]

    assert len(set(ids)) == len(ids)


def test_generator_keeps_no_faker_instance() -> None:
    generator = TransactionGenerator(seed=1, start_time=START)

    # Faker is used only while building the population, so a message costs
    # no Faker call.
    for value in vars(generator).values():
        assert not isinstance(value, Faker)


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"fraud_ratio": 1.5}, ValueError, r"fraud_ratio must be from 0 to 1, got 1\.5"),
        ({"fraud_ratio": -0.1}, ValueError, r"fraud_ratio must be from 0 to 1, got -0\.1"),
        ({"fraud_ratio": float("nan")}, ValueError, r"fraud_ratio must be from 0 to 1, got nan"),
        ({"fraud_ratio": "0.1"}, TypeError, r"must be a number from 0 to 1, got '0\.1'"),
        ({"fraud_ratio": True}, TypeError, r"fraud_ratio must be a number"),
        ({"user_count": 0}, ValueError, r"user_count must be from 1 to 1000000, got 0"),
        ({"user_count": 2.5}, TypeError, r"user_count must be a whole number"),
        (
            {"mean_interval_s": 0},
            ValueError,
            r"mean_interval_s must be a finite number of seconds above 0, got 0",
        ),
        ({"mean_interval_s": float("inf")}, ValueError, r"mean_interval_s must be a finite number"),
        ({"seed": "abc"}, TypeError, r"seed must be an int or None, got 'abc'"),
        ({"start_time": datetime(2026, 1, 5)}, ValueError, r"start_time must be timezone-aware"),
        ({"start_time": "2026-01-05"}, TypeError, r"start_time must be a datetime"),
    ],
)
def test_generator_invalid_parameters_raise(options: dict, error: type, match: str) -> None:
    options.setdefault("seed", 1)
    with pytest.raises(error, match=match):
        TransactionGenerator(**options)


def test_generator_generate_negative_count_raises() -> None:
    generator = TransactionGenerator(seed=1, start_time=START)

    with pytest.raises(ValueError, match=r"count must be a whole number of at least 0, got -1"):
        generator.generate(-1)


def test_generator_clock_stamps_live_time_and_keeps_fields() -> None:
    live_time = datetime(2030, 6, 1, 9, 30, tzinfo=timezone.utc)
    simulated = TransactionGenerator(seed=5, start_time=START).generate(3)
    live = TransactionGenerator(seed=5, start_time=START, clock=lambda: live_time).generate(3)

    assert [message["timestamp"] for message in live] == [live_time.isoformat(timespec="microseconds")] * 3
    for left, right in zip(simulated, live):
        assert {**left, "timestamp": None} == {**right, "timestamp": None}
