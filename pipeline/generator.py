"""Synthetic card transactions with fraud labels, for the producer and tests.

:class:`TransactionGenerator` creates a fixed population of users once with
Faker (names, a home location and a usual device each) and then draws every
transaction from one ``random.Random``, so producing a message costs no Faker
call. The module does no I/O: the only outside input is the clock, read once
when ``start_time`` is omitted.

Fraud rules
-----------
A transaction is labelled fraud (``is_fraud == 1``) with probability
``fraud_ratio`` and then gets one or more of :data:`FRAUD_REASONS`, each of
which the message fields show:

``high_amount``
    ``amount >= HIGH_AMOUNT_THRESHOLD``.
``location_mismatch``
    ``transaction_location != location`` (the user's home location).
``unusual_device``
    ``device`` is one of :data:`UNUSUAL_DEVICES`, which no user has as their
    usual device.

A legitimate transaction (``is_fraud == 0``) meets none of these rules: its
amount is below the threshold, it happens at the user's home location and on
the user's usual device. The label and the fields therefore always agree.

Determinism
-----------
The same ``seed``, ``start_time``, ``fraud_ratio``, ``user_count`` and
``mean_interval_s`` give the same users and the same message sequence. This
holds for the Faker version pinned in ``requirements.txt``, because Faker
may change its word lists between releases.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from faker import Faker

__all__ = [
    "DEVICES",
    "FRAUD_REASONS",
    "HIGH_AMOUNT_THRESHOLD",
    "UNUSUAL_DEVICES",
    "TransactionGenerator",
    "User",
]

HIGH_AMOUNT = "high_amount"
LOCATION_MISMATCH = "location_mismatch"
UNUSUAL_DEVICE = "unusual_device"
FRAUD_REASONS = (HIGH_AMOUNT, LOCATION_MISMATCH, UNUSUAL_DEVICE)

# Amounts in dollars. Legitimate amounts follow a log-normal distribution with
# a median of LEGITIMATE_MEDIAN_AMOUNT, clipped to stay below the threshold.
HIGH_AMOUNT_THRESHOLD = 1000.00
MAX_HIGH_AMOUNT = 10_000.00
MIN_AMOUNT = 1.00
LEGITIMATE_MEDIAN_AMOUNT = 45.00
LEGITIMATE_AMOUNT_SIGMA = 0.9

DEVICES = (
    "iPhone 15",
    "iPhone 13",
    "Pixel 8",
    "Galaxy S24",
    "Galaxy A54",
    "iPad Air",
    "MacBook Air",
    "Windows laptop",
    "Windows desktop",
    "Chromebook",
)
UNUSUAL_DEVICES = (
    "Android emulator",
    "Headless browser",
    "Rooted Android",
    "Unknown device",
    "Linux virtual machine",
)

# After the first reason, each other reason joins with this probability, so
# about a third of frauds carry two or three reasons.
EXTRA_REASON_PROBABILITY = 0.2

LOCATION_COUNT = 200
MAX_USER_COUNT = 1_000_000
DEFAULT_USER_COUNT = 1000
DEFAULT_FRAUD_RATIO = 0.1
DEFAULT_MEAN_INTERVAL_S = 1.0


@dataclass(frozen=True)
class User:
    """A card holder: identity, home location and the device they usually use."""

    user_id: str
    first_name: str
    last_name: str
    location: str
    device: str


def _check_seed(seed: int | None) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int or None, got {seed!r}.")


def _check_fraud_ratio(fraud_ratio: float) -> float:
    if isinstance(fraud_ratio, bool) or not isinstance(fraud_ratio, (int, float)):
        raise TypeError(f"fraud_ratio must be a number from 0 to 1, got {fraud_ratio!r}.")
    if not 0.0 <= fraud_ratio <= 1.0:
        raise ValueError(f"fraud_ratio must be from 0 to 1, got {fraud_ratio!r}.")
    return float(fraud_ratio)


def _check_user_count(user_count: int) -> int:
    if isinstance(user_count, bool) or not isinstance(user_count, int):
        raise TypeError(
            f"user_count must be a whole number from 1 to {MAX_USER_COUNT}, got {user_count!r}."
        )
    if not 1 <= user_count <= MAX_USER_COUNT:
        raise ValueError(f"user_count must be from 1 to {MAX_USER_COUNT}, got {user_count!r}.")
    return user_count


def _check_mean_interval(mean_interval_s: float) -> float:
    if isinstance(mean_interval_s, bool) or not isinstance(mean_interval_s, (int, float)):
        raise TypeError(
            f"mean_interval_s must be a positive number of seconds, got {mean_interval_s!r}."
        )
    if not (math.isfinite(mean_interval_s) and mean_interval_s > 0):
        raise ValueError(
            f"mean_interval_s must be a finite number of seconds above 0, got {mean_interval_s!r}."
        )
    return float(mean_interval_s)


def _check_start_time(start_time: datetime | None) -> datetime:
    if start_time is None:
        return datetime.now(timezone.utc)
    if not isinstance(start_time, datetime):
        raise TypeError(f"start_time must be a datetime, got {start_time!r}.")
    if start_time.tzinfo is None or start_time.utcoffset() is None:
        raise ValueError(
            f"start_time must be timezone-aware (for example with tzinfo=timezone.utc), "
            f"got {start_time.isoformat()}."
        )
    return start_time.astimezone(timezone.utc)


def _uuid_from(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def build_locations(faker: Faker) -> tuple[str, ...]:
    """Create :data:`LOCATION_COUNT` distinct "City, ST" locations with Faker."""
    locations: list[str] = []
    seen: set[str] = set()
    while len(locations) < LOCATION_COUNT:
        location = f"{faker.city()}, {faker.state_abbr()}"
        if location not in seen:
            seen.add(location)
            locations.append(location)
    return tuple(locations)


def build_users(
    rng: random.Random, faker: Faker, locations: tuple[str, ...], user_count: int
) -> tuple[User, ...]:
    """Create ``user_count`` users with Faker names, each at home in one of ``locations``."""
    users = []
    for _ in range(user_count):
        users.append(
            User(
                user_id=_uuid_from(rng),
                first_name=faker.first_name(),
                last_name=faker.last_name(),
                location=rng.choice(locations),
                device=rng.choice(DEVICES),
            )
        )
    return tuple(users)


class TransactionGenerator:
    """An endless, reproducible stream of transaction messages.

    Parameters
    ----------
    seed
        Seed of every random choice, Faker included. ``None`` draws a seed
        from the operating system, so each run differs.
    start_time
        Timestamp of the first message, timezone-aware. ``None`` means now.
        Timestamps are written in UTC.
    fraud_ratio
        Probability that a message is fraud, from 0 to 1.
    user_count
        Size of the user population, from 1 to 1,000,000.
    mean_interval_s
        Mean gap in seconds between consecutive timestamps. Gaps are
        exponential (a Poisson arrival process) and rounded to the microsecond,
        so two messages may share a timestamp.
    clock
        When given, each message's timestamp is ``clock()`` at generation
        instead of a simulated one, for a live stream whose latency is
        measured from the event. The other fields are the same either way.

    Attributes
    ----------
    users
        The population, created once in ``__init__``.
    locations
        The :data:`LOCATION_COUNT` distinct locations that homes and
        mismatched transaction locations are drawn from.

    Raises
    ------
    TypeError, ValueError
        When a parameter has the wrong type or is out of range; the message
        names the parameter, the allowed range and the value received.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> from pipeline.message import MESSAGE_FIELDS
    >>> start = datetime(2026, 1, 5, tzinfo=timezone.utc)
    >>> message = next(TransactionGenerator(seed=1, start_time=start))
    >>> sorted(message) == sorted(MESSAGE_FIELDS)
    True
    """

    def __init__(
        self,
        seed: int | None = None,
        start_time: datetime | None = None,
        fraud_ratio: float = DEFAULT_FRAUD_RATIO,
        user_count: int = DEFAULT_USER_COUNT,
        mean_interval_s: float = DEFAULT_MEAN_INTERVAL_S,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        _check_seed(seed)
        self.fraud_ratio = _check_fraud_ratio(fraud_ratio)
        self.user_count = _check_user_count(user_count)
        self.mean_interval_s = _check_mean_interval(mean_interval_s)
        self.start_time = _check_start_time(start_time)
        self.seed = seed
        self._clock = clock

        self._rng = random.Random(seed)
        faker = Faker("en_US")
        faker.seed_instance(self._rng.getrandbits(64))
        self.locations = build_locations(faker)
        self.users = build_users(self._rng, faker, self.locations, self.user_count)

        self._elapsed_us = 0
        self._amount_mu = math.log(LEGITIMATE_MEDIAN_AMOUNT)
        self._max_legitimate_amount = HIGH_AMOUNT_THRESHOLD - 0.01

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        return self.next_message()

    def generate(self, count: int) -> list[dict[str, Any]]:
        """Return the next ``count`` messages as a list."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a whole number of at least 0, got {count!r}.")
        return [self.next_message() for _ in range(count)]

    def next_message(self) -> dict[str, Any]:
        """Return the next message: a dict with exactly the fields of ``MESSAGE_FIELDS``."""
        rng = self._rng
        timestamp = self.start_time + timedelta(microseconds=self._elapsed_us)
        if self._clock is not None:
            timestamp = self._clock()
        self._elapsed_us += round(rng.expovariate(1.0 / self.mean_interval_s) * 1_000_000)
        user = self.users[rng.randrange(self.user_count)]
        transaction_id = _uuid_from(rng)

        amount = self._legitimate_amount()
        transaction_location = user.location
        device = user.device
        reasons: list[str] = []

        # random() is in [0, 1), so a ratio of 0 never labels fraud and 1 always does.
        is_fraud = rng.random() < self.fraud_ratio
        if is_fraud:
            reasons = self._fraud_reasons()
            if HIGH_AMOUNT in reasons:
                amount = round(rng.uniform(HIGH_AMOUNT_THRESHOLD, MAX_HIGH_AMOUNT), 2)
            if LOCATION_MISMATCH in reasons:
                transaction_location = self._other_location(user.location)
            if UNUSUAL_DEVICE in reasons:
                device = rng.choice(UNUSUAL_DEVICES)

        message = {
            "user_id": user.user_id,
            "transaction_id": transaction_id,
            "timestamp": timestamp.isoformat(timespec="microseconds"),
            "first_name": user.first_name,
            "last_name": user.last_name,
            "location": user.location,
            "transaction_location": transaction_location,
            "amount": amount,
            "device": device,
            "is_fraud": int(is_fraud),
            "fraud_reasons": reasons,
        }
        return message

    def _legitimate_amount(self) -> float:
        amount = self._rng.lognormvariate(self._amount_mu, LEGITIMATE_AMOUNT_SIGMA)
        return round(min(max(amount, MIN_AMOUNT), self._max_legitimate_amount), 2)

    def _fraud_reasons(self) -> list[str]:
        rng = self._rng
        first = rng.choice(FRAUD_REASONS)
        chosen = {first}
        for reason in FRAUD_REASONS:
            if reason != first and rng.random() < EXTRA_REASON_PROBABILITY:
                chosen.add(reason)
        # Canonical order, so equal sets of reasons compare equal as lists.
        return [reason for reason in FRAUD_REASONS if reason in chosen]

    def _other_location(self, home: str) -> str:
        pool = self.locations
        location = home
        while location == home:
            location = pool[self._rng.randrange(len(pool))]
        return location

