"""Per-user history of one stream: the state behind trips, new phones and geo_jump.

The population is fixed, and this state changes as messages are made. It is
kept in flat lists and small dicts keyed by user number, because the generator
reads or writes it for every message.
"""

from __future__ import annotations

from collections import deque

from pipeline.simulator.population import Population

__all__ = ["UserHistory"]

# Recent transactions at home that a geo_jump may follow. Only the newest
# entries are used, so the capacity only needs to cover a run of geo_jumps.
RECENT_HOME_CAPACITY = 1024
# Last time of a user with no transaction yet: far enough in the past that
# no gap check accepts it.
NEVER_US = -(2**62)


class UserHistory:
    """Per-user state of one stream.

    Parameters
    ----------
    population
        The users whose history this is.
    """

    def __init__(self, population: Population) -> None:
        self._population = population
        self.last_time_us = [NEVER_US] * len(population)
        """Time of each user's last transaction, in microseconds since the epoch."""
        self.last_location = [""] * len(population)
        """Country code of each user's last transaction, or "" before the first."""
        self._trips: dict[int, list] = {}
        self._bought_devices: dict[int, tuple[str, ...]] = {}
        self._recent_home: deque[tuple[int, int]] = deque(maxlen=RECENT_HOME_CAPACITY)

    def record(self, user: int, time_us: int, location: str) -> None:
        """Record a transaction of ``user`` at ``time_us`` in country ``location``."""
        self.last_time_us[user] = time_us
        self.last_location[user] = location
        if location == self._population.homes[user]:
            self._recent_home.append((time_us, user))

    def devices(self, user: int) -> tuple[str, ...]:
        """Return the user's devices: those of the population and any bought since."""
        return self._bought_devices.get(user) or self._population.devices[user]

    def add_device(self, user: int, device: str) -> None:
        """Make ``device`` one of the user's usual devices from now on."""
        self._bought_devices[user] = self.devices(user) + (device,)

    def start_trip(self, user: int, country: str, length: int) -> None:
        """Start a trip of ``length`` transactions in ``country``; the current one is the first."""
        if length > 1:
            self._trips[user] = [country, length - 1]

    def continue_trip(self, user: int) -> str | None:
        """Return the trip country of the user's next transaction, or None when at home.

        Each call uses up one transaction of the trip.
        """
        trip = self._trips.get(user)
        if trip is None:
            return None
        trip[1] -= 1
        if trip[1] == 0:
            del self._trips[user]
        return trip[0]

    def pop_recent_home(self, now_us: int, max_gap_us: int) -> int | None:
        """Return a user whose last transaction was at home at most ``max_gap_us`` ago.

        The newest candidates come first, and each recorded transaction is
        returned at most once. Returns None when there is no such user.
        """
        homes = self._population.homes
        recent = self._recent_home
        while recent:
            time_us, user = recent.pop()
            if now_us - time_us > max_gap_us:
                # Entries are in time order, so every older one is too old as well.
                recent.clear()
                return None
            if (
                self.last_location[user] == homes[user]
                and now_us - self.last_time_us[user] <= max_gap_us
            ):
                return user
        return None
