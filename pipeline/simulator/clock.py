"""Simulated event time: a Poisson arrival process kept in integer microseconds.

Keeping the time as an integer avoids a datetime per message, and
:meth:`SimulatedClock.isoformat` builds the timestamp text from a cached
``YYYY-MM-DDTHH:MM:SS`` prefix that changes once per simulated second.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

__all__ = ["SimulatedClock", "check_mean_interval", "check_start_time"]

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)
MICROSECONDS_PER_HOUR = 3_600_000_000


def check_start_time(start_time: datetime | None) -> datetime:
    """Return ``start_time`` in UTC, or the current time when it is None.

    Raises
    ------
    TypeError, ValueError
        When ``start_time`` is not a datetime, or has no UTC offset.
    """
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


def check_mean_interval(mean_interval_s: float) -> float:
    """Return ``mean_interval_s`` as a float when it is a finite number of seconds above 0.

    Raises
    ------
    TypeError, ValueError
        When it is not a number, or not a finite number above 0.
    """
    if isinstance(mean_interval_s, bool) or not isinstance(mean_interval_s, (int, float)):
        raise TypeError(
            f"mean_interval_s must be a positive number of seconds, got {mean_interval_s!r}."
        )
    if not (math.isfinite(mean_interval_s) and mean_interval_s > 0):
        raise ValueError(
            f"mean_interval_s must be a finite number of seconds above 0, got {mean_interval_s!r}."
        )
    return float(mean_interval_s)


class SimulatedClock:
    """Event time that starts at ``start_time`` and advances by exponential gaps.

    Parameters
    ----------
    start_time
        Time of the first event, timezone-aware.
    mean_interval_s
        Mean gap between events in seconds. Each gap is rounded to the
        microsecond, so two events may share a time.

    Attributes
    ----------
    now_us
        Current event time in microseconds since 1970-01-01 UTC.
    """

    def __init__(self, start_time: datetime, mean_interval_s: float) -> None:
        self.now_us = (start_time - EPOCH) // MICROSECOND
        self._rate_per_s = 1.0 / mean_interval_s
        self._prefix_second: int | None = None
        self._prefix = ""

    def advance(self, rng: random.Random) -> None:
        """Move to the next event time, one exponential gap later."""
        self.now_us += round(rng.expovariate(self._rate_per_s) * 1_000_000)

    def hour(self) -> int:
        """Return the current UTC hour, from 0 to 23."""
        return self.now_us // MICROSECONDS_PER_HOUR % 24

    def isoformat(self) -> str:
        """Format the current time in UTC, as ``datetime.isoformat(timespec="microseconds")`` does.

        For example ``2026-01-05T10:00:00.250000+00:00``.
        """
        second, microsecond = divmod(self.now_us, 1_000_000)
        if second != self._prefix_second:
            self._prefix_second = second
            self._prefix = (EPOCH + timedelta(seconds=second)).isoformat()[:19]
        return f"{self._prefix}.{microsecond:06d}+00:00"
