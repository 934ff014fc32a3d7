"""The simulated population: determinism, user profiles and activity skew."""

from __future__ import annotations

import random
import uuid
from collections import Counter

import pytest

from pipeline.countries import COUNTRY_BY_CODE
from pipeline.simulator.population import (
    ACTIVE_LENGTH_HOURS,
    DEVICES,
    HOME_COUNTRIES,
    MAX_MEDIAN_AMOUNT,
    MIN_MEDIAN_AMOUNT,
    build_population,
    uuid_from_bits,
)


@pytest.fixture(scope="module")
def population():
    return build_population(11, 5000)


def test_population_same_seed_same_users() -> None:
    first = build_population(3, 300)
    build_population.cache_clear()
    second = build_population(3, 300)

    assert first == second


def test_population_different_seed_differs() -> None:
    first = build_population(1, 300)
    second = build_population(2, 300)

    assert set(first.user_ids).isdisjoint(second.user_ids)


def test_population_prefix_does_not_depend_on_size() -> None:
    small = build_population(5, 100)
    large = build_population(5, 400)

    assert [small.user(i) for i in range(100)] == [large.user(i) for i in range(100)]


def test_population_size_and_unique_ids(population) -> None:
    assert len(population) == 5000
    assert len(set(population.user_ids)) == 5000


def test_population_user_profiles_valid(population) -> None:
    for index in range(len(population)):
        user = population.user(index)
        assert user.home in HOME_COUNTRIES
        assert user.home in COUNTRY_BY_CODE
        assert 1 <= len(user.devices) <= 3
        assert len(set(user.devices)) == len(user.devices)
        assert set(user.devices) <= set(DEVICES)
        assert MIN_MEDIAN_AMOUNT <= user.median_amount <= MAX_MEDIAN_AMOUNT
        assert ACTIVE_LENGTH_HOURS[0] <= len(user.active_hours) <= ACTIVE_LENGTH_HOURS[1]
        assert user.activity > 0
        assert user.first_name.strip()
        assert user.last_name.strip()


def test_population_home_shares_follow_weights(population) -> None:
    counts = Counter(population.homes)
    total_weight = sum(weight for weight, _ in HOME_COUNTRIES.values())
    us_share = HOME_COUNTRIES["US"][0] / total_weight

    assert abs(counts["US"] / len(population) - us_share) < 0.03
    assert len(counts) == len(HOME_COUNTRIES)


def test_population_usual_hours_follow_home_time(population) -> None:
    # Users in Australia (UTC+10) and in the United States (UTC-5) are
    # awake at different UTC hours: 02:00 UTC is midday in Canberra and
    # night in Washington.
    australians = [i for i, home in enumerate(population.homes) if home == "AU"]
    americans = [i for i, home in enumerate(population.homes) if home == "US"]

    assert all(2 in population.user(i).active_hours for i in australians)
    assert not any(8 in population.user(i).active_hours for i in americans)


def test_population_activity_is_skewed(population) -> None:
    activity = sorted(population.activity, reverse=True)

    # Log-normal weights with sigma 1.2: the most active tenth of the users
    # has over 40% of the weight.
    assert sum(activity[: len(activity) // 10]) / sum(activity) > 0.4


def test_population_draw_user_follows_activity(population) -> None:
    rng = random.Random(4)
    draws = Counter(population.draw_user(rng) for _ in range(50_000))
    busiest = max(range(len(population)), key=population.activity.__getitem__)
    expected = 50_000 * population.activity[busiest] / population.cumulative_activity[-1]

    assert abs(draws[busiest] - expected) < 5 * expected**0.5


def test_population_holds_no_faker_objects(population) -> None:
    for values in vars(population).values():
        assert isinstance(values, tuple)
        assert all(isinstance(value, (str, int, float, tuple)) for value in values[:10])


def test_uuid_from_bits_matches_uuid4() -> None:
    rng = random.Random(8)
    for bits in [0, 2**128 - 1, *(rng.getrandbits(128) for _ in range(1000))]:
        assert uuid_from_bits(bits) == str(uuid.UUID(int=bits, version=4))


@pytest.mark.parametrize(
    "seed, user_count, error, match",
    [
        (1, 0, ValueError, r"user_count must be from 1 to 1000000, got 0"),
        (1, 1_000_001, ValueError, r"user_count must be from 1 to 1000000, got 1000001"),
        (1, "10", TypeError, r"user_count must be a whole number from 1 to 1000000, got '10'"),
        ("1", 10, TypeError, r"seed must be an int, got '1'"),
    ],
)
def test_population_invalid_arguments_raise(seed, user_count, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        build_population(seed, user_count)
