"""Fraud pattern definitions: the mix, its validation, the parameters and the draw probabilities."""

from __future__ import annotations

import math

import pytest

from pipeline.countries import distance_km
from pipeline.simulator.patterns import (
    DEFAULT_PATTERN_MIX,
    FRAUD_PATTERNS,
    FRAUD_REASONS,
    PATTERN_REASONS,
    FraudParameters,
    LookAlikeParameters,
    countries_beyond,
    countries_within,
    fresh_draw_thresholds,
    high_amount_threshold,
    normalise_pattern_mix,
    parse_pattern_mix,
)


def test_default_pattern_mix_covers_every_pattern() -> None:
    assert tuple(DEFAULT_PATTERN_MIX) == FRAUD_PATTERNS
    assert math.isclose(sum(DEFAULT_PATTERN_MIX.values()), 1.0)


def test_pattern_reasons_use_known_reasons_in_order() -> None:
    assert tuple(PATTERN_REASONS) == FRAUD_PATTERNS
    for reasons in PATTERN_REASONS.values():
        assert reasons
        assert list(reasons) == [reason for reason in FRAUD_REASONS if reason in reasons]


def test_pattern_reasons_account_takeover_has_three() -> None:
    assert PATTERN_REASONS["account_takeover"] == (
        "high_amount",
        "location_mismatch",
        "unusual_device",
    )


def test_parse_pattern_mix_normalises() -> None:
    mix = parse_pattern_mix("high_amount=3, geo_jump=1")

    assert mix == {
        "high_amount": 0.75,
        "geo_jump": 0.25,
        "new_device": 0.0,
        "card_testing": 0.0,
        "account_takeover": 0.0,
    }


def test_parse_pattern_mix_single_pattern() -> None:
    assert parse_pattern_mix("card_testing=0.2")["card_testing"] == 1.0


@pytest.mark.parametrize(
    "text, match",
    [
        ("phishing=1", r"unknown fraud pattern 'phishing'\. The patterns are high_amount, geo_jump"),
        ("high_amount=-1", r"weight of pattern 'high_amount' must be a number >= 0, got '-1'"),
        ("high_amount=lots", r"weight of pattern 'high_amount' must be a number >= 0, got 'lots'"),
        ("high_amount=nan", r"weight of pattern 'high_amount' must be a number >= 0, got 'nan'"),
        ("high_amount=inf", r"must be a number >= 0, got 'inf'"),
        ("high_amount", r"pattern mix item 'high_amount' must be NAME=WEIGHT"),
        ("=1", r"pattern mix item '=1' must be NAME=WEIGHT"),
        ("high_amount=1,,geo_jump=1", r"pattern mix item '' must be NAME=WEIGHT"),
        ("geo_jump=1,geo_jump=2", r"pattern 'geo_jump' appears twice"),
        ("geo_jump=0,new_device=0", r"at least one pattern weight must be above 0"),
    ],
)
def test_parse_pattern_mix_invalid_raises(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_pattern_mix(text)


@pytest.mark.parametrize(
    "weights, match",
    [
        ({"geo_jump": "1"}, r"weight of pattern 'geo_jump' must be a number >= 0, got '1'"),
        ({"geo_jump": True}, r"weight of pattern 'geo_jump' must be a number >= 0, got True"),
        ({"geo_jump": -0.5}, r"weight of pattern 'geo_jump' must be a number >= 0, got -0\.5"),
        ({}, r"at least one pattern weight must be above 0"),
    ],
)
def test_normalise_pattern_mix_invalid_raises(weights: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        normalise_pattern_mix(weights)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"high_amount_factor": (40.0, 10.0)}, r"high_amount_factor must be a \(min, max\) pair"),
        ({"high_amount_factor": (0.5, 2.0)}, r"with 1 <= min <= max, got \(0\.5, 2\.0\)"),
        ({"card_testing_burst_size": (1, 3)}, r"card_testing_burst_size must be a \(min, max\) pair"),
        ({"emulator_share": 1.5}, r"emulator_share must be from 0 to 1, got 1\.5"),
        ({"geo_jump_max_gap_s": 0}, r"geo_jump_max_gap_s must be a finite number of seconds above 0"),
        ({"geo_jump_min_distance_km": -1}, r"geo_jump_min_distance_km must be a finite number of km"),
        ({"card_testing_max_spacing": 0}, r"card_testing_max_spacing must be a whole number"),
    ],
)
def test_fraud_parameters_invalid_raise(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FraudParameters(**options)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"travel_probability": -0.1}, r"travel_probability must be from 0 to 1, got -0\.1"),
        (
            {"travel_probability": 0.6, "large_purchase_probability": 0.6},
            r"travel_probability \+ large_purchase_probability \+ new_phone_probability "
            r"must be at most 1",
        ),
        ({"trip_length": (0, 3)}, r"trip_length must be a \(min, max\) pair"),
    ],
)
def test_look_alike_parameters_invalid_raise(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LookAlikeParameters(**options)


def _expected_shares(fraud_ratio: float, mix: dict[str, float]) -> dict[str, float]:
    """Simulate the draw rule exactly: the share of messages each pattern gets."""
    parameters = FraudParameters()
    thresholds = fresh_draw_thresholds(fraud_ratio, mix, parameters)
    starts = {}
    previous = 0.0
    for cumulative, name in thresholds:
        starts[name] = cumulative - previous
        previous = cumulative
    messages = {name: starts.get(name, 0.0) for name in FRAUD_PATTERNS}
    messages["card_testing"] *= parameters.mean_card_testing_burst
    legitimate = 1.0 - previous
    total = legitimate + sum(messages.values())
    return {name: count / total for name, count in messages.items()}


@pytest.mark.parametrize("fraud_ratio", [0.01, 0.1, 0.5, 0.9])
def test_fresh_draw_thresholds_give_requested_shares(fraud_ratio: float) -> None:
    shares = _expected_shares(fraud_ratio, dict(DEFAULT_PATTERN_MIX))

    for name in FRAUD_PATTERNS:
        assert math.isclose(shares[name], fraud_ratio * DEFAULT_PATTERN_MIX[name])


def test_fresh_draw_thresholds_skip_zero_weights() -> None:
    mix = normalise_pattern_mix({"geo_jump": 1})

    thresholds = fresh_draw_thresholds(0.2, mix, FraudParameters())

    assert [name for _, name in thresholds] == ["geo_jump"]
    assert math.isclose(thresholds[0][0], 0.2)


def test_fresh_draw_thresholds_all_fraud() -> None:
    mix = normalise_pattern_mix({"card_testing": 1})

    thresholds = fresh_draw_thresholds(1.0, mix, FraudParameters())

    assert math.isclose(thresholds[-1][0], 1.0)


@pytest.mark.parametrize(
    "median, threshold",
    [(40.0, 400.0), (12.345, 123.45), (12.3456, 123.46), (0.1 + 0.2, 3.0)],
)
def test_high_amount_threshold_rounds_up_to_cent(median: float, threshold: float) -> None:
    assert high_amount_threshold(median, FraudParameters()) == threshold


def test_countries_beyond_are_far() -> None:
    far = countries_beyond("DE", 3000)

    assert far
    assert "FR" not in far
    assert all(distance_km("DE", code) >= 3000 for code in far)


def test_countries_within_are_near_and_exclude_home() -> None:
    near = countries_within("DE", 1000)

    assert "DE" not in near
    assert {"AT", "CZ", "DK", "NL", "PL"} <= set(near)
    assert all(distance_km("DE", code) <= 1000 for code in near)


def test_countries_fallback_when_none_qualifies() -> None:
    assert countries_beyond("DE", 50_000) == ("NZ",)
    assert countries_within("NZ", 10) == ("AU",)


def test_countries_unknown_code_raises() -> None:
    with pytest.raises(KeyError, match="Unknown country code 'XX'"):
        countries_beyond("XX", 3000)
