"""The transaction generator: determinism, message contract, pattern shares and semantics.

Most checks read one stream of 100,000 messages (the ``stream`` fixture),
spaced 2 s apart on average so that it covers every hour of the day.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import faker.providers
import pytest

from pipeline.countries import COUNTRY_BY_CODE, distance_km
from pipeline.message import MESSAGE_FIELDS, OPTIONAL_FIELDS, parse_timestamp, validate_message
from pipeline.simulator import (
    DEFAULT_PATTERN_MIX,
    FRAUD_DEVICES,
    FRAUD_PATTERNS,
    PATTERN_REASONS,
    PHONES,
    FraudParameters,
    TransactionGenerator,
)
from pipeline.simulator.patterns import high_amount_threshold

START = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)
STREAM_SIZE = 100_000
STREAM_USERS = 10_000
PARAMETERS = FraudParameters()


def _messages(count: int, **options) -> list[dict]:
    options.setdefault("seed", 42)
    options.setdefault("start_time", START)
    options.setdefault("user_count", 500)
    return TransactionGenerator(**options).generate(count)


class Stream:
    """A generated stream with the population behind it and per-message lookups."""

    def __init__(self, generator: TransactionGenerator, count: int) -> None:
        self.population = generator.population
        self.messages = generator.generate(count)
        # Messages made after the stream, so bursts that start near its end are complete.
        self.tail = generator.generate(500)
        self.user_index = {user_id: i for i, user_id in enumerate(self.population.user_ids)}
        self.times = [parse_timestamp(m["timestamp"]) for m in self.messages + self.tail]

    def user(self, message: dict) -> int:
        return self.user_index[message["user_id"]]

    def of_pattern(self, pattern: str | None) -> list[tuple[int, dict]]:
        return [(i, m) for i, m in enumerate(self.messages) if m["fraud_pattern"] == pattern]


@pytest.fixture(scope="module")
def stream() -> Stream:
    generator = TransactionGenerator(
        seed=42, start_time=START, mean_interval_s=2.0, user_count=STREAM_USERS
    )
    return Stream(generator, STREAM_SIZE)


# ---------------------------------------------------------------- determinism and contract


def test_generator_same_seed_same_messages() -> None:
    first = _messages(2000)
    second = _messages(2000)

    assert first == second


def test_generator_different_seed_differs() -> None:
    first = _messages(50, seed=1)
    second = _messages(50, seed=2)

    assert [m["transaction_id"] for m in first] != [m["transaction_id"] for m in second]
    assert {m["user_id"] for m in first}.isdisjoint({m["user_id"] for m in second})


def test_generator_without_seed_uses_default_population() -> None:
    first = TransactionGenerator(start_time=START, user_count=200)
    second = TransactionGenerator(start_time=START, user_count=200)

    assert first.population == second.population
    assert first.generate(5) != second.generate(5)


def test_generator_population_seed_overrides_seed() -> None:
    generator = TransactionGenerator(seed=1, population_seed=7, start_time=START, user_count=200)
    other = TransactionGenerator(seed=7, start_time=START, user_count=200)

    assert generator.population == other.population


def test_generator_iteration_matches_generate() -> None:
    generator = TransactionGenerator(seed=9, start_time=START, user_count=500)
    iterated = [next(generator) for _ in range(20)]

    assert iterated == _messages(20, seed=9)


def test_generator_field_order_and_types(stream: Stream) -> None:
    for message in stream.messages[:5000]:
        assert tuple(message) == MESSAGE_FIELDS + OPTIONAL_FIELDS
        assert isinstance(message["amount"], float)
        assert round(message["amount"], 2) == message["amount"]
        assert type(message["is_fraud"]) is int
        assert isinstance(message["fraud_reasons"], list)


def test_generator_messages_pass_validation() -> None:
    for message in _messages(3000, fraud_ratio=0.5):
        record, reason = validate_message(json.dumps(message).encode("utf-8"))
        assert reason is None, (reason, message)
        assert record is not None


def test_generator_locations_are_country_codes(stream: Stream) -> None:
    for message in stream.messages:
        assert message["location"] in COUNTRY_BY_CODE
        assert message["transaction_location"] in COUNTRY_BY_CODE


def test_generator_transaction_ids_unique(stream: Stream) -> None:
    ids = [m["transaction_id"] for m in stream.messages]

    assert len(set(ids)) == len(ids)


def test_generator_messages_call_no_faker(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = TransactionGenerator(seed=3, start_time=START, user_count=300)

    def fail(*_args, **_kwargs):
        raise AssertionError("a Faker provider was called while making messages")

    # Every Faker name provider draws through these two methods.
    monkeypatch.setattr(faker.providers.BaseProvider, "random_element", fail)
    monkeypatch.setattr(faker.providers.BaseProvider, "random_elements", fail)

    assert len(generator.generate(3000)) == 3000


# ---------------------------------------------------------------- time


def test_generator_timestamps_start_and_advance() -> None:
    messages = _messages(1000)
    times = [parse_timestamp(m["timestamp"]) for m in messages]

    assert times[0] == START
    assert all(later >= earlier for earlier, later in zip(times, times[1:]))
    assert times[-1] > START
    for message in messages[:50]:
        assert message["timestamp"].endswith("+00:00")


def test_generator_timestamp_text_matches_isoformat() -> None:
    for message in _messages(2000, mean_interval_s=0.7):
        parsed = parse_timestamp(message["timestamp"])
        assert message["timestamp"] == parsed.isoformat(timespec="microseconds")


def test_generator_mean_interval_sets_spacing() -> None:
    messages = _messages(5000, mean_interval_s=0.5)
    span = parse_timestamp(messages[-1]["timestamp"]) - START
    mean_gap_s = span.total_seconds() / (len(messages) - 1)

    assert 0.45 < mean_gap_s < 0.55


def test_generator_start_time_converted_to_utc() -> None:
    eastern = timezone(timedelta(hours=-5))
    message = _messages(1, start_time=datetime(2026, 1, 5, 5, 0, tzinfo=eastern))[0]

    assert message["timestamp"] == "2026-01-05T10:00:00.000000+00:00"


def test_generator_default_start_time_is_now() -> None:
    before = datetime.now(timezone.utc)
    message = TransactionGenerator(seed=1, user_count=100).generate(1)[0]
    after = datetime.now(timezone.utc)

    assert before <= parse_timestamp(message["timestamp"]) <= after


def test_generator_clock_stamps_live_time_and_keeps_fields() -> None:
    live_time = datetime(2030, 6, 1, 9, 30, tzinfo=timezone.utc)
    simulated = _messages(300, fraud_ratio=0.5)
    live = _messages(300, fraud_ratio=0.5, clock=lambda: live_time)

    assert {m["timestamp"] for m in live} == {live_time.isoformat(timespec="microseconds")}
    for left, right in zip(simulated, live):
        assert {**left, "timestamp": None} == {**right, "timestamp": None}


# ---------------------------------------------------------------- shares


def test_generator_fraud_ratio_within_tolerance(stream: Stream) -> None:
    observed = sum(m["is_fraud"] for m in stream.messages) / STREAM_SIZE

    # Frauds come in bursts (card testing), so the spread is wider than a
    # binomial one; 0.005 is still about five standard deviations.
    assert abs(observed - 0.1) < 0.005


@pytest.mark.parametrize("pattern", FRAUD_PATTERNS)
def test_generator_pattern_share_within_tolerance(stream: Stream, pattern: str) -> None:
    expected = 0.1 * DEFAULT_PATTERN_MIX[pattern] * STREAM_SIZE
    observed = len(stream.of_pattern(pattern))

    # Tolerance: 10% of the expected count for one-message patterns (over
    # four binomial standard deviations), 20% for card testing, whose
    # messages come in bursts of 5 to 12.
    tolerance = 0.2 if pattern == "card_testing" else 0.1
    assert abs(observed - expected) <= tolerance * expected, (observed, expected)


def test_generator_pattern_mix_option_sets_shares() -> None:
    messages = _messages(20_000, fraud_ratio=0.2, pattern_mix={"geo_jump": 3, "new_device": 1})
    counts = Counter(m["fraud_pattern"] for m in messages)

    assert set(counts) == {None, "geo_jump", "new_device"}
    assert abs(counts["geo_jump"] - 3000) <= 300
    assert abs(counts["new_device"] - 1000) <= 150


@pytest.mark.parametrize("fraud_ratio, expected", [(0.0, {0}), (1.0, {1})])
def test_generator_fraud_ratio_bounds(fraud_ratio: float, expected: set[int]) -> None:
    mix = {"high_amount": 1, "new_device": 1, "card_testing": 1, "account_takeover": 1}
    labels = {m["is_fraud"] for m in _messages(3000, fraud_ratio=fraud_ratio, pattern_mix=mix)}

    assert labels == expected


def test_generator_fraud_ratio_one_with_geo_jump() -> None:
    messages = _messages(5000, fraud_ratio=1.0)
    share = sum(m["is_fraud"] for m in messages) / len(messages)

    # A geo_jump with no recent transaction at home is preceded by a
    # legitimate one, which happens only before the first transaction at home.
    assert share > 0.99


# ---------------------------------------------------------------- labels and reasons


def test_generator_label_pattern_and_reasons_agree(stream: Stream) -> None:
    for message in stream.messages:
        if message["is_fraud"] == 0:
            assert message["fraud_pattern"] is None
            assert message["fraud_reasons"] == []
        else:
            assert message["fraud_pattern"] in FRAUD_PATTERNS
            assert message["fraud_reasons"] == list(PATTERN_REASONS[message["fraud_pattern"]])


def test_generator_reasons_match_fields(stream: Stream) -> None:
    population = stream.population
    for _, message in [pair for p in FRAUD_PATTERNS for pair in stream.of_pattern(p)]:
        user = stream.user(message)
        reasons = message["fraud_reasons"]
        threshold = high_amount_threshold(population.median_amounts[user], PARAMETERS)
        moved = message["transaction_location"] != message["location"]
        assert ("high_amount" in reasons) == (message["amount"] >= threshold)
        assert ("location_mismatch" in reasons) == moved
        if "unusual_device" in reasons:
            assert message["device"] not in population.devices[user]


def test_high_amount_above_usual_spending(stream: Stream) -> None:
    low, high = PARAMETERS.high_amount_factor
    for _, message in stream.of_pattern("high_amount"):
        user = stream.user(message)
        median = stream.population.median_amounts[user]
        assert low * median - 0.01 <= message["amount"] <= high * median + 0.01
        assert message["transaction_location"] == message["location"]
        assert message["device"] in stream.population.devices[user] + PHONES


def test_geo_jump_follows_home_transaction(stream: Stream) -> None:
    last_seen: dict[str, tuple[datetime, str]] = {}
    jumps = 0
    for index, message in enumerate(stream.messages):
        time = stream.times[index]
        if message["fraud_pattern"] == "geo_jump":
            jumps += 1
            previous_time, previous_country = last_seen[message["user_id"]]
            assert message["transaction_location"] != message["location"]
            assert distance_km(message["location"], message["transaction_location"]) >= 3000
            assert previous_country == message["location"]
            assert time - previous_time <= timedelta(seconds=PARAMETERS.geo_jump_max_gap_s)
        last_seen[message["user_id"]] = (time, message["transaction_location"])

    assert jumps > 0


def test_new_device_never_used_before(stream: Stream) -> None:
    used: dict[str, set[str]] = defaultdict(set)
    emulators = 0
    for message in stream.messages:
        user = stream.user(message)
        if message["fraud_pattern"] == "new_device":
            assert message["device"] not in used[message["user_id"]]
            assert message["device"] not in stream.population.devices[user]
            assert message["transaction_location"] == message["location"]
            emulators += message["device"] in FRAUD_DEVICES
        elif message["is_fraud"] == 0:
            used[message["user_id"]].add(message["device"])

    # About half of the new devices are emulators, the rest common devices.
    new_devices = len(stream.of_pattern("new_device"))
    assert 0.4 * new_devices < emulators < 0.6 * new_devices


def test_card_testing_bursts_of_small_amounts(stream: Stream) -> None:
    bursts: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, message in enumerate(stream.messages + stream.tail):
        if message["fraud_pattern"] == "card_testing":
            bursts[(message["user_id"], message["device"])].append(index)
            low, high = PARAMETERS.card_testing_amount
            assert low <= message["amount"] <= high
            assert message["transaction_location"] == message["location"]

    # A user may be card-tested twice from the same device, so a gap longer
    # than the maximum spacing starts a new burst.
    runs = []
    for positions in bursts.values():
        run = [positions[0]]
        for position in positions[1:]:
            if position - run[-1] > PARAMETERS.card_testing_max_spacing:
                runs.append(run)
                run = []
            run.append(position)
        runs.append(run)
    started_in_stream = [run for run in runs if run[0] < STREAM_SIZE]

    assert len(started_in_stream) > 100
    for run in started_in_stream:
        assert len(run) >= PARAMETERS.card_testing_burst_size[0]


def test_card_testing_unpaced_within_seconds() -> None:
    messages = _messages(20_000, mean_interval_s=0.001, user_count=2000)
    bursts: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for message in messages:
        if message["fraud_pattern"] == "card_testing":
            time = parse_timestamp(message["timestamp"])
            bursts[(message["user_id"], message["device"])].append(time)

    complete = [times for times in bursts.values() if len(times) >= 5]
    assert complete
    for times in complete:
        assert times[-1] - times[0] <= timedelta(seconds=60)


def test_account_takeover_combines_signals(stream: Stream) -> None:
    for _, message in stream.of_pattern("account_takeover"):
        user = stream.user(message)
        assert message["device"] not in stream.population.devices[user]
        assert message["transaction_location"] != message["location"]
        threshold = high_amount_threshold(stream.population.median_amounts[user], PARAMETERS)
        assert message["amount"] >= threshold


# ---------------------------------------------------------------- legitimate traffic, look-alikes


def test_legitimate_home_device_and_hours(stream: Stream) -> None:
    legitimate = stream.of_pattern(None)
    population = stream.population
    at_home = sum(m["transaction_location"] == m["location"] for _, m in legitimate)
    usual_device = sum(m["device"] in population.devices[stream.user(m)] for _, m in legitimate)
    usual_hour = sum(
        population.hour_masks[stream.user(m)] >> stream.times[i].hour & 1 for i, m in legitimate
    )

    assert at_home / len(legitimate) > 0.95
    assert usual_device / len(legitimate) > 0.97
    assert usual_hour / len(legitimate) > 0.9


def test_legitimate_travel_exists_and_is_legitimate(stream: Stream) -> None:
    trips = [m for _, m in stream.of_pattern(None) if m["transaction_location"] != m["location"]]
    countries_per_user: dict[str, set[str]] = defaultdict(set)
    for message in trips:
        countries_per_user[message["user_id"]].add(message["transaction_location"])

    assert len(trips) > 500
    assert all(m["is_fraud"] == 0 and m["fraud_reasons"] == [] for m in trips)
    # A trip lasts several transactions, so most travellers pay more than once abroad.
    repeat_travellers = Counter(m["user_id"] for m in trips)
    assert sum(count >= 2 for count in repeat_travellers.values()) > len(repeat_travellers) / 2
    # Some trips go as far as a geo_jump would.
    assert any(distance_km(m["location"], m["transaction_location"]) >= 3000 for m in trips)


def test_legitimate_large_purchases_exist(stream: Stream) -> None:
    factor = PARAMETERS.high_amount_factor[0]
    medians = stream.population.median_amounts
    large = [m for _, m in stream.of_pattern(None) if m["amount"] >= factor * medians[stream.user(m)]]

    assert len(large) > 100


def test_legitimate_new_phone_becomes_usual(stream: Stream) -> None:
    new_phones: dict[tuple[str, str], int] = Counter()
    for _, message in stream.of_pattern(None):
        if message["device"] not in stream.population.devices[stream.user(message)]:
            assert message["device"] in PHONES
            new_phones[(message["user_id"], message["device"])] += 1

    assert len(new_phones) > 20
    # The user keeps using the new phone after buying it.
    assert any(count >= 2 for count in new_phones.values())


def test_users_activity_is_skewed(stream: Stream) -> None:
    per_user = sorted(Counter(m["user_id"] for m in stream.messages).values(), reverse=True)
    top_tenth = per_user[: STREAM_USERS // 10]

    assert sum(top_tenth) / STREAM_SIZE > 0.35


# ---------------------------------------------------------------- campaigns and edge cases


def test_geo_jump_campaign_pairs() -> None:
    messages = _messages(200, fraud_ratio=1.0, pattern_mix={"geo_jump": 1})

    for previous, message in zip(messages, messages[1:]):
        if message["fraud_pattern"] == "geo_jump":
            assert previous["user_id"] == message["user_id"]
            assert previous["transaction_location"] == message["location"]
            assert previous["is_fraud"] == 0
    assert sum(m["is_fraud"] for m in messages) == 100


def test_card_testing_back_to_back_bursts() -> None:
    messages = _messages(
        60,
        fraud_ratio=1.0,
        pattern_mix={"card_testing": 1},
        fraud_parameters=FraudParameters(card_testing_max_spacing=1),
    )
    runs = [1]
    for previous, message in zip(messages, messages[1:]):
        if message["user_id"] == previous["user_id"]:
            runs[-1] += 1
        else:
            runs.append(1)

    assert all(m["fraud_pattern"] == "card_testing" for m in messages)
    assert all(5 <= run <= 12 for run in runs[:-1])


def test_generator_single_user_population() -> None:
    messages = _messages(2000, user_count=1, fraud_ratio=0.5)

    assert len({m["user_id"] for m in messages}) == 1
    assert {m["fraud_pattern"] for m in messages} == {None, *FRAUD_PATTERNS}


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
        ({"population_seed": 1.5}, TypeError, r"population_seed must be an int or None, got 1\.5"),
        ({"start_time": datetime(2026, 1, 5)}, ValueError, r"start_time must be timezone-aware"),
        ({"start_time": "2026-01-05"}, TypeError, r"start_time must be a datetime"),
        ({"pattern_mix": {"phishing": 1}}, ValueError, r"unknown fraud pattern 'phishing'"),
        ({"pattern_mix": {"geo_jump": 0}}, ValueError, r"at least one pattern weight must be above"),
    ],
)
def test_generator_invalid_parameters_raise(options: dict, error: type, match: str) -> None:
    options.setdefault("seed", 1)
    options.setdefault("user_count", 100)
    with pytest.raises(error, match=match):
        TransactionGenerator(**options)


def test_generator_generate_negative_count_raises() -> None:
    generator = TransactionGenerator(seed=1, start_time=START, user_count=100)

    with pytest.raises(ValueError, match=r"count must be a whole number of at least 0, got -1"):
        generator.generate(-1)
