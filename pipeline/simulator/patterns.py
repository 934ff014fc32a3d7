"""Fraud patterns, their parameters, the pattern mix, and the legitimate look-alikes.

A fraudulent message has ``is_fraud = 1``, the pattern's name in
``fraud_pattern`` and the pattern's rule-style reasons in ``fraud_reasons``.
A legitimate message has ``is_fraud = 0``, ``fraud_pattern = null`` and no
reasons, also when it is a look-alike that a rule would flag.

Patterns (:data:`FRAUD_PATTERNS`)
---------------------------------
``high_amount``
    At home, on a usual device, for ``high_amount_factor`` (10 to 40) times
    the user's median amount. Reasons: ``high_amount``.
``geo_jump``
    In a country at least ``geo_jump_min_distance_km`` (3,000 km) from home,
    on a usual device, for a usual amount, at most ``geo_jump_max_gap_s``
    (1 hour) after the same user's previous transaction, which was at home.
    Reasons: ``location_mismatch``.
``new_device``
    At home, for a usual amount, on a device the user has never used: with
    probability ``emulator_share`` (0.5) one of :data:`FRAUD_DEVICES`,
    otherwise a common device that is not one of theirs. Reasons:
    ``unusual_device``.
``card_testing``
    A burst of ``card_testing_burst_size`` (5 to 12) transactions of one user
    from one new device, at home, each for ``card_testing_amount`` (0.50 to
    5.00). Consecutive transactions of a burst are 1 to
    ``card_testing_max_spacing`` (20) messages apart in the stream. Reasons:
    ``unusual_device``, ``velocity``.
``account_takeover``
    A new device, a country other than home, and a high amount together.
    Reasons: ``high_amount``, ``location_mismatch``, ``unusual_device``.

Look-alikes (:class:`LookAlikeParameters`)
------------------------------------------
Three kinds of legitimate transaction resemble a pattern. A trip abroad is
several transactions in one foreign country. A large purchase is 5 to 30
times the median amount. A new phone is a phone the user did not have, which
becomes one of their usual devices.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pipeline.countries import COUNTRIES, distance_km

__all__ = [
    "DEFAULT_PATTERN_MIX",
    "FRAUD_DEVICES",
    "FRAUD_PATTERNS",
    "FRAUD_REASONS",
    "PATTERN_REASONS",
    "FraudParameters",
    "LookAlikeParameters",
    "countries_beyond",
    "countries_within",
    "fresh_draw_thresholds",
    "high_amount_threshold",
    "normalise_pattern_mix",
    "parse_pattern_mix",
]

HIGH_AMOUNT = "high_amount"
GEO_JUMP = "geo_jump"
NEW_DEVICE = "new_device"
CARD_TESTING = "card_testing"
ACCOUNT_TAKEOVER = "account_takeover"
FRAUD_PATTERNS = (HIGH_AMOUNT, GEO_JUMP, NEW_DEVICE, CARD_TESTING, ACCOUNT_TAKEOVER)

# Rule-style reasons, in the order they appear in fraud_reasons. The first
# three are the values that the first producer wrote, so readers of
# fraud_reasons keep working.
LOCATION_MISMATCH = "location_mismatch"
UNUSUAL_DEVICE = "unusual_device"
VELOCITY = "velocity"
FRAUD_REASONS = (HIGH_AMOUNT, LOCATION_MISMATCH, UNUSUAL_DEVICE, VELOCITY)

PATTERN_REASONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        HIGH_AMOUNT: (HIGH_AMOUNT,),
        GEO_JUMP: (LOCATION_MISMATCH,),
        NEW_DEVICE: (UNUSUAL_DEVICE,),
        CARD_TESTING: (UNUSUAL_DEVICE, VELOCITY),
        ACCOUNT_TAKEOVER: (HIGH_AMOUNT, LOCATION_MISMATCH, UNUSUAL_DEVICE),
    }
)

# Share of fraudulent messages per pattern when no mix is given.
DEFAULT_PATTERN_MIX: Mapping[str, float] = MappingProxyType(
    {
        HIGH_AMOUNT: 0.25,
        GEO_JUMP: 0.15,
        NEW_DEVICE: 0.20,
        CARD_TESTING: 0.25,
        ACCOUNT_TAKEOVER: 0.15,
    }
)

# Devices that fraudsters use and no user has as a usual device.
FRAUD_DEVICES = (
    "Android emulator",
    "Headless browser",
    "Rooted Android",
    "Unknown device",
    "Linux virtual machine",
)


def _check_range(name: str, bounds: tuple[float, float], low: float) -> None:
    first, last = bounds
    if not (math.isfinite(first) and math.isfinite(last) and low <= first <= last):
        raise ValueError(
            f"{name} must be a (min, max) pair with {low:g} <= min <= max, got {bounds!r}."
        )


def _check_share(name: str, value: float) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be from 0 to 1, got {value!r}.")


@dataclass(frozen=True)
class FraudParameters:
    """Parameters of the fraud patterns. Amount factors multiply the user's median amount.

    Raises
    ------
    ValueError
        When a range is reversed or below its minimum, or a share is outside 0 to 1.
    """

    high_amount_factor: tuple[float, float] = (10.0, 40.0)
    geo_jump_min_distance_km: float = 3000.0
    geo_jump_max_gap_s: float = 3600.0
    emulator_share: float = 0.5
    card_testing_burst_size: tuple[int, int] = (5, 12)
    card_testing_amount: tuple[float, float] = (0.50, 5.00)
    card_testing_max_spacing: int = 20

    def __post_init__(self) -> None:
        _check_range("high_amount_factor", self.high_amount_factor, 1.0)
        _check_range("card_testing_burst_size", self.card_testing_burst_size, 2)
        _check_range("card_testing_amount", self.card_testing_amount, 0.01)
        _check_share("emulator_share", self.emulator_share)
        min_distance_km = self.geo_jump_min_distance_km
        if not (math.isfinite(min_distance_km) and min_distance_km >= 0):
            raise ValueError(
                "geo_jump_min_distance_km must be a finite number of km >= 0, "
                f"got {min_distance_km!r}."
            )
        if not (math.isfinite(self.geo_jump_max_gap_s) and self.geo_jump_max_gap_s > 0):
            raise ValueError(
                "geo_jump_max_gap_s must be a finite number of seconds above 0, "
                f"got {self.geo_jump_max_gap_s!r}."
            )
        if self.card_testing_max_spacing < 1:
            raise ValueError(
                "card_testing_max_spacing must be a whole number of messages >= 1, "
                f"got {self.card_testing_max_spacing!r}."
            )

    @property
    def mean_card_testing_burst(self) -> float:
        """Expected number of transactions in one card-testing burst."""
        return sum(self.card_testing_burst_size) / 2


@dataclass(frozen=True)
class LookAlikeParameters:
    """Parameters of the legitimate transactions that resemble frauds.

    The three probabilities apply to each legitimate transaction of a user
    who is not travelling, and at most one of them happens per transaction.

    Raises
    ------
    ValueError
        When a probability is outside 0 to 1, their sum is above 1, or a
        range is reversed.
    """

    travel_probability: float = 0.004
    """Probability that a user starts a trip abroad with this transaction."""
    trip_length: tuple[int, int] = (3, 12)
    """Number of transactions, this one included, that a trip lasts."""
    nearby_trip_share: float = 0.6
    """Share of trips to a country within ``nearby_distance_km`` of home."""
    nearby_distance_km: float = 2500.0
    large_purchase_probability: float = 0.005
    large_purchase_factor: tuple[float, float] = (5.0, 30.0)
    new_phone_probability: float = 0.001

    def __post_init__(self) -> None:
        for name in ("travel_probability", "large_purchase_probability",
                     "new_phone_probability", "nearby_trip_share"):
            _check_share(name, getattr(self, name))
        total = (
            self.travel_probability + self.large_purchase_probability + self.new_phone_probability
        )
        if total > 1.0:
            raise ValueError(
                "travel_probability + large_purchase_probability + new_phone_probability "
                f"must be at most 1, got {total!r}."
            )
        _check_range("trip_length", self.trip_length, 1)
        _check_range("large_purchase_factor", self.large_purchase_factor, 0.0)


def high_amount_threshold(median_amount: float, parameters: FraudParameters) -> float:
    """Return the smallest amount that the ``high_amount`` reason applies to.

    It is the lower ``high_amount_factor`` times the user's median amount,
    rounded up to the cent, so that amounts in cents compare exactly.
    """
    # round() first, so that float noise such as 1234.0000000001 does not
    # push the threshold up by a cent.
    return math.ceil(round(median_amount * parameters.high_amount_factor[0] * 100, 6)) / 100


def parse_pattern_mix(text: str) -> dict[str, float]:
    """Parse ``"high_amount=0.3,geo_jump=0.2"`` into a normalised mix.

    Patterns that the text leaves out get weight 0.

    Raises
    ------
    ValueError
        When an item is not ``NAME=WEIGHT``, a name is unknown or repeated,
        or a weight is invalid (see :func:`normalise_pattern_mix`).
    """
    weights: dict[str, float] = {}
    for item in text.split(","):
        name, separator, weight_text = item.strip().partition("=")
        name = name.strip()
        if not separator or not name:
            raise ValueError(
                f"pattern mix item {item.strip()!r} must be NAME=WEIGHT, for example "
                f"high_amount=0.3. The names are {', '.join(FRAUD_PATTERNS)}."
            )
        if name in weights:
            raise ValueError(f"pattern {name!r} appears twice in the pattern mix {text!r}.")
        try:
            weight = float(weight_text)
        except ValueError:
            weight = math.nan
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(
                f"weight of pattern {name!r} must be a number >= 0, got {weight_text.strip()!r}."
            )
        weights[name] = weight
    return normalise_pattern_mix(weights)


def normalise_pattern_mix(weights: Mapping[str, float]) -> dict[str, float]:
    """Return ``weights`` scaled to sum to 1, with every pattern of :data:`FRAUD_PATTERNS`.

    Raises
    ------
    ValueError
        When a name is not in :data:`FRAUD_PATTERNS`, a weight is negative,
        not finite or not a number, or all weights are 0.
    """
    unknown = sorted(set(weights) - set(FRAUD_PATTERNS))
    if unknown:
        raise ValueError(
            f"unknown fraud pattern {', '.join(map(repr, unknown))}. "
            f"The patterns are {', '.join(FRAUD_PATTERNS)}."
        )
    for name, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ValueError(f"weight of pattern {name!r} must be a number >= 0, got {weight!r}.")
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weight of pattern {name!r} must be a number >= 0, got {weight!r}.")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(
            "at least one pattern weight must be above 0, got "
            f"{dict(weights)!r}. Give a positive weight, for example high_amount=1."
        )
    return {name: weights.get(name, 0.0) / total for name in FRAUD_PATTERNS}


def fresh_draw_thresholds(
    fraud_ratio: float, mix: Mapping[str, float], parameters: FraudParameters
) -> tuple[tuple[float, str], ...]:
    """Return cumulative probabilities that a new draw starts each pattern.

    A card-testing burst yields several messages from one draw, and its later
    messages take stream slots that would otherwise get a new draw. With
    ``m_p`` the mean number of messages per incident of pattern ``p``, one
    draw yields on average ``E = 1 / (1 - r + r * sum_p(w_p / m_p))``
    messages, and starting ``p`` with probability ``q_p = r * w_p * E / m_p``
    makes pattern ``p`` a share ``r * w_p`` of the messages. The legitimate
    share is the rest, ``1 - sum_p(q_p)``, which is never negative.

    Returns
    -------
    tuple of (float, str)
        ``(cumulative probability, pattern)`` pairs for the patterns with a
        weight above 0. A draw ``u`` in [0, 1) starts the first pattern whose
        cumulative probability exceeds ``u``, or is legitimate when none does.
    """
    incident_messages = {name: 1.0 for name in FRAUD_PATTERNS}
    incident_messages[CARD_TESTING] = parameters.mean_card_testing_burst
    per_draw = 1.0 / (
        1.0 - fraud_ratio + fraud_ratio * sum(mix[p] / incident_messages[p] for p in FRAUD_PATTERNS)
    )
    thresholds = []
    cumulative = 0.0
    for name in FRAUD_PATTERNS:
        if mix[name] > 0:
            cumulative += fraud_ratio * mix[name] * per_draw / incident_messages[name]
            thresholds.append((cumulative, name))
    return tuple(thresholds)


def countries_beyond(code: str, min_distance_km: float) -> tuple[str, ...]:
    """Return the codes of the countries at least ``min_distance_km`` from ``code``.

    When none is that far, return the single farthest country, so a pattern
    always has a destination.

    Raises
    ------
    KeyError
        When ``code`` is not in :data:`pipeline.countries.COUNTRIES`.
    """
    others = [(distance_km(code, country.code), country.code) for country in COUNTRIES]
    far = tuple(
        other for distance, other in others if other != code and distance >= min_distance_km
    )
    return far or (max(others)[1],)


def countries_within(code: str, max_distance_km: float) -> tuple[str, ...]:
    """Return the codes of the other countries within ``max_distance_km`` of ``code``.

    When none is that close, return the single nearest other country.

    Raises
    ------
    KeyError
        When ``code`` is not in :data:`pipeline.countries.COUNTRIES`.
    """
    others = [
        (distance_km(code, country.code), country.code)
        for country in COUNTRIES
        if country.code != code
    ]
    near = tuple(other for distance, other in others if distance <= max_distance_km)
    return near or (min(others)[1],)


def pick(rng: random.Random, values: tuple[str, ...]) -> str:
    """Return one of ``values``, drawn uniformly with a single call to ``rng.random``."""
    return values[int(rng.random() * len(values))]
