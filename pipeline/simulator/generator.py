"""The transaction stream: legitimate traffic of a population, with fraud patterns mixed in.

Each step emits one message. A step first emits a scheduled message when one
is due (the later transactions of a card-testing burst), and otherwise makes
a new draw: a fraud pattern with the probabilities of
:func:`~pipeline.simulator.patterns.fresh_draw_thresholds`, or a legitimate
transaction. Over a long stream each pattern is a share
``fraud_ratio * mix[pattern]`` of the messages.

A legitimate transaction belongs to a user drawn by activity weight who is
usually active in the current UTC hour (up to :data:`MAX_HOUR_TRIES` draws,
so a few happen off hours). It happens at home, or in the trip country while
the user travels, on one of their devices, for a log-normal amount around
their median, unless a look-alike of
:class:`~pipeline.simulator.patterns.LookAlikeParameters` applies. A fraud's
victim is drawn by activity weight at any hour.

Every decision uses the simulated clock, never the wall clock, so the
``clock`` parameter changes only the ``timestamp`` text of each message.

Determinism
-----------
The same ``seed``, ``start_time``, ``mean_interval_s``, ``fraud_ratio``,
``pattern_mix``, parameters and population give the same messages. This holds
for the Faker version pinned in ``requirements.txt``, because Faker may change
its name lists between releases.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from math import exp
from typing import Any

from pipeline.countries import COUNTRIES
from pipeline.simulator.clock import SimulatedClock, check_mean_interval, check_start_time
from pipeline.simulator.patterns import (
    ACCOUNT_TAKEOVER,
    CARD_TESTING,
    DEFAULT_PATTERN_MIX,
    FRAUD_DEVICES,
    GEO_JUMP,
    HIGH_AMOUNT,
    NEW_DEVICE,
    PATTERN_REASONS,
    FraudParameters,
    LookAlikeParameters,
    countries_beyond,
    countries_within,
    fresh_draw_thresholds,
    high_amount_threshold,
    normalise_pattern_mix,
    pick,
)
from pipeline.simulator.history import UserHistory
from pipeline.simulator.population import (
    DEFAULT_USER_COUNT,
    DEVICES,
    HOME_COUNTRIES,
    PHONES,
    build_population,
    check_user_count,
    uuid_from_bits,
)

__all__ = [
    "DEFAULT_FRAUD_RATIO",
    "DEFAULT_MEAN_INTERVAL_S",
    "DEFAULT_POPULATION_SEED",
    "TransactionGenerator",
]

DEFAULT_FRAUD_RATIO = 0.1
DEFAULT_MEAN_INTERVAL_S = 1.0
# Without a seed the stream is random but the users are those of this seed,
# so separate runs (a live producer and a campaign) share one population.
DEFAULT_POPULATION_SEED = 0
MAX_HOUR_TRIES = 6
MIN_AMOUNT = 1.00
# Common devices that a fraudster may use, which a user may also own.
COMMON_DEVICES = tuple(dict.fromkeys(DEVICES + PHONES))


def _check_seed(name: str, seed: int | None) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"{name} must be an int or None, got {seed!r}.")


def _check_fraud_ratio(fraud_ratio: float) -> float:
    if isinstance(fraud_ratio, bool) or not isinstance(fraud_ratio, (int, float)):
        raise TypeError(f"fraud_ratio must be a number from 0 to 1, got {fraud_ratio!r}.")
    if not 0.0 <= fraud_ratio <= 1.0:
        raise ValueError(f"fraud_ratio must be from 0 to 1, got {fraud_ratio!r}.")
    return float(fraud_ratio)


class TransactionGenerator:
    """An endless, reproducible stream of transaction messages.

    Parameters
    ----------
    seed
        Seed of the stream. ``None`` draws one from the operating system, so
        each run differs.
    start_time
        Simulated time of the first message, timezone-aware. ``None`` means
        now. Timestamps are written in UTC.
    fraud_ratio
        Share of messages that are fraud, from 0 to 1.
    user_count
        Size of the population, from 1 to 1,000,000.
    mean_interval_s
        Mean simulated gap in seconds between consecutive messages. Gaps are
        exponential (a Poisson arrival process) and rounded to the
        microsecond, so two messages may share a timestamp.
    clock
        When given, each message's timestamp is ``clock()`` at generation
        instead of the simulated time, for a live stream whose latency is
        measured from the event. The other fields are the same either way.
    pattern_mix
        Share of the frauds per pattern; see :data:`DEFAULT_PATTERN_MIX`.
        Weights are normalised, and a pattern left out gets none.
    population_seed
        Seed of the users. ``None`` uses ``seed``, or
        :data:`DEFAULT_POPULATION_SEED` when ``seed`` is None too.
    fraud_parameters, look_alikes
        Parameters of the patterns and of the legitimate look-alikes.

    Attributes
    ----------
    population
        The users, drawn once in ``__init__``.

    Raises
    ------
    TypeError, ValueError
        When a parameter has the wrong type or is out of range. The message
        names the parameter, the allowed range and the value received.

    Notes
    -----
    A ``geo_jump`` follows the newest transaction at home that is at most
    ``geo_jump_max_gap_s`` old and is still its user's last transaction.
    When there is none (at the start of a stream, or when almost every
    message is fraud abroad), the generator first emits a legitimate
    transaction at home for the victim and the fraud right after it. Those
    extra legitimate messages make the fraud share slightly lower than
    ``fraud_ratio`` in such streams.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> from pipeline.message import MESSAGE_FIELDS, OPTIONAL_FIELDS
    >>> start = datetime(2026, 1, 5, tzinfo=timezone.utc)
    >>> message = next(TransactionGenerator(seed=1, start_time=start, user_count=100))
    >>> tuple(message) == MESSAGE_FIELDS + OPTIONAL_FIELDS
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
        pattern_mix: Mapping[str, float] | None = None,
        population_seed: int | None = None,
        fraud_parameters: FraudParameters | None = None,
        look_alikes: LookAlikeParameters | None = None,
    ) -> None:
        _check_seed("seed", seed)
        _check_seed("population_seed", population_seed)
        self.seed = seed
        self.fraud_ratio = _check_fraud_ratio(fraud_ratio)
        self.user_count = check_user_count(user_count)
        self.mean_interval_s = check_mean_interval(mean_interval_s)
        self.start_time = check_start_time(start_time)
        self.pattern_mix = normalise_pattern_mix(
            DEFAULT_PATTERN_MIX if pattern_mix is None else pattern_mix
        )
        self.fraud_parameters = fraud_parameters or FraudParameters()
        self.look_alikes = look_alikes or LookAlikeParameters()
        if population_seed is None:
            population_seed = DEFAULT_POPULATION_SEED if seed is None else seed
        self.population_seed = population_seed
        self.population = build_population(population_seed, self.user_count)

        self._rng = random.Random(seed)
        self._clock = SimulatedClock(self.start_time, self.mean_interval_s)
        self._live_clock = clock
        self._thresholds = fresh_draw_thresholds(
            self.fraud_ratio, self.pattern_mix, self.fraud_parameters
        )
        self._fraud_threshold = self._thresholds[-1][0] if self._thresholds else 0.0
        self._start_incident = {
            HIGH_AMOUNT: self._high_amount,
            GEO_JUMP: self._geo_jump,
            NEW_DEVICE: self._new_device,
            CARD_TESTING: self._card_testing,
            ACCOUNT_TAKEOVER: self._account_takeover,
        }
        look_alikes = self.look_alikes
        self._travel_threshold = look_alikes.travel_probability
        self._new_phone_threshold = self._travel_threshold + look_alikes.new_phone_probability
        self._large_purchase_threshold = (
            self._new_phone_threshold + look_alikes.large_purchase_probability
        )

        # Destinations per home country, computed once so that no message computes a distance.
        parameters = self.fraud_parameters
        self._far = {
            home: countries_beyond(home, parameters.geo_jump_min_distance_km)
            for home in HOME_COUNTRIES
        }
        self._near = {
            home: countries_within(home, look_alikes.nearby_distance_km) for home in HOME_COUNTRIES
        }
        self._abroad = {
            home: tuple(country.code for country in COUNTRIES if country.code != home)
            for home in HOME_COUNTRIES
        }
        self._amount_mu = tuple(math.log(median) for median in self.population.median_amounts)
        self._geo_jump_max_gap_us = round(parameters.geo_jump_max_gap_s * 1_000_000)

        self._history = UserHistory(self.population)
        # Scheduled messages: (due position, sequence number, pattern, user,
        # device, transactions left). The sequence number breaks ties in order.
        self._pending: list[tuple[int, int, str, int, str, int]] = []
        self._sequence = 0
        self._position = 0

    # Public API

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
        """Return the next message, with the fields of ``MESSAGE_FIELDS`` and ``fraud_pattern``."""
        pending = self._pending
        if pending and pending[0][0] <= self._position:
            message = self._emit_scheduled(heapq.heappop(pending))
        else:
            draw = self._rng.random()
            if draw < self._fraud_threshold:
                for threshold, pattern in self._thresholds:
                    if draw < threshold:
                        break
                message = self._start_incident[pattern]()
            else:
                message = self._legitimate()
        self._position += 1
        self._clock.advance(self._rng)
        return message

    # Message assembly

    def _message(
        self, user: int, location: str, device: str, amount: float, pattern: str | None
    ) -> dict[str, Any]:
        population = self.population
        self._history.record(user, self._clock.now_us, location)

        if self._live_clock is None:
            timestamp = self._clock.isoformat()
        else:
            timestamp = self._live_clock().isoformat(timespec="microseconds")
        return {
            "user_id": population.user_ids[user],
            "transaction_id": uuid_from_bits(self._rng.getrandbits(128)),
            "timestamp": timestamp,
            "first_name": population.first_names[user],
            "last_name": population.last_names[user],
            "location": population.homes[user],
            "transaction_location": location,
            "amount": amount,
            "device": device,
            "is_fraud": 0 if pattern is None else 1,
            "fraud_reasons": [] if pattern is None else list(PATTERN_REASONS[pattern]),
            "fraud_pattern": pattern,
        }

    def _usual_device(self, user: int) -> str:
        devices = self._history.devices(user)
        return devices[0] if len(devices) == 1 else pick(self._rng, devices)

    def _usual_amount(self, user: int) -> float:
        # exp of a gauss() draw is log-normal, and faster than lognormvariate().
        amount = exp(self._rng.gauss(self._amount_mu[user], self.population.amount_sigmas[user]))
        return round(max(amount, MIN_AMOUNT), 2)

    def _fraud_usual_amount(self, user: int) -> float:
        # A usual amount, kept below the high_amount rule, so that
        # fraud_reasons match the fields of patterns without high_amount.
        threshold = high_amount_threshold(
            self.population.median_amounts[user], self.fraud_parameters
        )
        return min(self._usual_amount(user), round(threshold - 0.01, 2))

    def _fraud_high_amount(self, user: int) -> float:
        # At least the high_amount threshold, also after rounding to the cent.
        threshold = high_amount_threshold(
            self.population.median_amounts[user], self.fraud_parameters
        )
        return max(self._scaled_amount(user, self.fraud_parameters.high_amount_factor), threshold)

    def _scaled_amount(self, user: int, factor: tuple[float, float]) -> float:
        median = self.population.median_amounts[user]
        return round(max(median * self._rng.uniform(*factor), MIN_AMOUNT), 2)

    def _schedule(self, due: int, pattern: str, user: int, device: str, remaining: int) -> None:
        self._sequence += 1
        heapq.heappush(self._pending, (due, self._sequence, pattern, user, device, remaining))

    # Legitimate traffic and look-alikes

    def _legitimate(self) -> dict[str, Any]:
        # The user draw is inlined because this method makes most messages.
        rng = self._rng
        population = self.population
        cumulative = population.cumulative_activity
        total = cumulative[-1]
        last_user = len(cumulative) - 1
        hour_masks = population.hour_masks
        hour_bit = 1 << self._clock.hour()
        for _ in range(MAX_HOUR_TRIES):
            user = min(bisect_right(cumulative, rng.random() * total), last_user)
            if hour_masks[user] & hour_bit:
                break

        location = population.homes[user]
        device = self._usual_device(user)
        amount = None
        trip_country = self._history.continue_trip(user)
        if trip_country is not None:
            location = trip_country
        else:
            draw = rng.random()
            if draw < self._travel_threshold:
                location = self._start_trip(user, location)
            elif draw < self._new_phone_threshold:
                device = self._new_phone(user, device)
            elif draw < self._large_purchase_threshold:
                amount = self._scaled_amount(user, self.look_alikes.large_purchase_factor)
        if amount is None:
            amount = self._usual_amount(user)
        return self._message(user, location, device, amount, None)

    def _start_trip(self, user: int, home: str) -> str:
        rng = self._rng
        if rng.random() < self.look_alikes.nearby_trip_share:
            destination = pick(rng, self._near[home])
        else:
            destination = pick(rng, self._abroad[home])
        self._history.start_trip(user, destination, rng.randint(*self.look_alikes.trip_length))
        return destination

    def _new_phone(self, user: int, usual_device: str) -> str:
        devices = self._history.devices(user)
        candidates = tuple(phone for phone in PHONES if phone not in devices)
        if not candidates:
            return usual_device
        phone = pick(self._rng, candidates)
        self._history.add_device(user, phone)
        return phone

    # Fraud patterns

    def _fraud_device(self, user: int) -> str:
        rng = self._rng
        if rng.random() < self.fraud_parameters.emulator_share:
            return pick(rng, FRAUD_DEVICES)
        devices = self._history.devices(user)
        unused = tuple(device for device in COMMON_DEVICES if device not in devices)
        return pick(rng, unused or FRAUD_DEVICES)

    def _high_amount(self) -> dict[str, Any]:
        user = self.population.draw_user(self._rng)
        amount = self._fraud_high_amount(user)
        return self._message(
            user, self.population.homes[user], self._usual_device(user), amount, HIGH_AMOUNT
        )

    def _geo_jump(self) -> dict[str, Any]:
        user = self._history.pop_recent_home(self._clock.now_us, self._geo_jump_max_gap_us)
        if user is not None:
            return self._geo_jump_message(user)

        # No recent transaction at home: make one, and jump right after it.
        user = self.population.draw_user(self._rng)
        self._schedule(self._position + 1, GEO_JUMP, user, "", 0)
        return self._message(
            user,
            self.population.homes[user],
            self._usual_device(user),
            self._usual_amount(user),
            None,
        )

    def _geo_jump_message(self, user: int) -> dict[str, Any]:
        location = pick(self._rng, self._far[self.population.homes[user]])
        return self._message(
            user, location, self._usual_device(user), self._fraud_usual_amount(user), GEO_JUMP
        )

    def _new_device(self) -> dict[str, Any]:
        user = self.population.draw_user(self._rng)
        return self._message(
            user,
            self.population.homes[user],
            self._fraud_device(user),
            self._fraud_usual_amount(user),
            NEW_DEVICE,
        )

    def _card_testing(self) -> dict[str, Any]:
        user = self.population.draw_user(self._rng)
        device = self._fraud_device(user)
        size = self._rng.randint(*self.fraud_parameters.card_testing_burst_size)
        return self._card_testing_message(user, device, size)

    def _card_testing_message(self, user: int, device: str, remaining: int) -> dict[str, Any]:
        rng = self._rng
        parameters = self.fraud_parameters
        if remaining > 1:
            spacing = rng.randint(1, parameters.card_testing_max_spacing)
            self._schedule(self._position + spacing, CARD_TESTING, user, device, remaining - 1)
        amount = round(rng.uniform(*parameters.card_testing_amount), 2)
        return self._message(user, self.population.homes[user], device, amount, CARD_TESTING)

    def _account_takeover(self) -> dict[str, Any]:
        user = self.population.draw_user(self._rng)
        location = pick(self._rng, self._abroad[self.population.homes[user]])
        device = self._fraud_device(user)
        amount = self._fraud_high_amount(user)
        return self._message(user, location, device, amount, ACCOUNT_TAKEOVER)

    def _emit_scheduled(self, event: tuple[int, int, str, int, str, int]) -> dict[str, Any]:
        _due, _sequence, pattern, user, device, remaining = event
        if pattern == CARD_TESTING:
            return self._card_testing_message(user, device, remaining)
        return self._geo_jump_message(user)
