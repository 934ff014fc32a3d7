"""The job table: which commands the supervisor runs, and the checks on their options."""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pipeline.simulator.patterns import FRAUD_PATTERNS

# A campaign is a burst for a demo, not a second stream.
MAX_CAMPAIGN_COUNT = 10_000

__all__ = [
    "JOBS",
    "LONG_RUNNING_JOBS",
    "MAX_CAMPAIGN_COUNT",
    "campaign_args",
    "JobDefinition",
    "JobOptionsError",
    "OptionsToArgs",
    "is_real_number",
    "no_options",
    "producer_args",
]


class JobOptionsError(ValueError):
    """An unknown job name or an invalid job option."""


OptionsToArgs = Callable[[str, Mapping[str, Any]], list[str]]


def no_options(name: str, options: Mapping[str, Any]) -> list[str]:
    """Reject every option, for jobs whose command takes none."""
    if options:
        raise JobOptionsError(
            f"Job {name} takes no options, got {', '.join(sorted(options))}."
        )
    return []


def producer_args(name: str, options: Mapping[str, Any]) -> list[str]:
    """Validate the producer's options and turn them into command-line arguments.

    ``rate`` is messages per second (>= 0), ``fraud_ratio`` the share of
    fraudulent messages (0 to 1) and ``seed`` an integer for a repeatable
    stream. An option that is missing or None is left to the producer's default.
    """
    unknown = sorted(set(options) - {"rate", "fraud_ratio", "seed"})
    if unknown:
        raise JobOptionsError(
            f"Job {name} has no option {', '.join(unknown)}. "
            "The options are rate, fraud_ratio and seed."
        )

    args: list[str] = []
    rate = options.get("rate")
    if rate is not None:
        if not is_real_number(rate) or not math.isfinite(rate) or rate < 0:
            raise JobOptionsError(
                f"rate must be a number of messages per second >= 0, got {rate!r}."
            )
        args += ["--rate", str(rate)]

    fraud_ratio = options.get("fraud_ratio")
    if fraud_ratio is not None:
        if not is_real_number(fraud_ratio) or not 0 <= fraud_ratio <= 1:
            raise JobOptionsError(
                f"fraud_ratio must be a number from 0 to 1, got {fraud_ratio!r}."
            )
        args += ["--fraud-ratio", str(fraud_ratio)]

    seed = options.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise JobOptionsError(f"seed must be a whole number, got {seed!r}.")
        args += ["--seed", str(int(seed))]
    return args


def campaign_args(name: str, options: Mapping[str, Any]) -> list[str]:
    """Validate a campaign's options and turn them into command-line arguments.

    ``pattern`` is required and is one of the fraud patterns. ``count`` is
    the number of messages, from 1 to :data:`MAX_CAMPAIGN_COUNT`. ``seed``
    selects the population to target, as the producer's seed does. A
    ``count`` or ``seed`` that is missing or None is left to the producer's
    default: 20 messages, and the users of seed 0.
    """
    unknown = sorted(set(options) - {"pattern", "count", "seed"})
    if unknown:
        raise JobOptionsError(
            f"Job {name} has no option {', '.join(unknown)}. "
            "The options are pattern, count and seed."
        )

    pattern = options.get("pattern")
    if pattern not in FRAUD_PATTERNS:
        raise JobOptionsError(
            f"pattern must be one of {', '.join(FRAUD_PATTERNS)}, got {pattern!r}."
        )
    args = ["--campaign", pattern]

    count = options.get("count")
    if count is not None:
        if (
            isinstance(count, bool)
            or not isinstance(count, numbers.Integral)
            or not 1 <= count <= MAX_CAMPAIGN_COUNT
        ):
            raise JobOptionsError(
                f"count must be a whole number of messages from 1 to {MAX_CAMPAIGN_COUNT}, "
                f"got {count!r}."
            )
        args += ["--count", str(int(count))]

    seed = options.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise JobOptionsError(f"seed must be a whole number, got {seed!r}.")
        args += ["--seed", str(int(seed))]
    return args


def is_real_number(value: Any) -> bool:
    """Return True for an int, float or other real number, but not for a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class JobDefinition:
    """A job's base command and the check that turns its options into arguments.

    The supervisor appends the option arguments and then
    ``--metrics-file PATH`` to ``command``.
    """

    title: str
    command: tuple[str, ...]
    options_to_args: OptionsToArgs = no_options
    # False for a job that does its work and exits.
    long_running: bool = True


JOBS: Mapping[str, JobDefinition] = MappingProxyType(
    {
        "producer": JobDefinition(
            "Producer", (sys.executable, "-m", "pipeline.producer"), producer_args
        ),
        "consumer-transactions": JobDefinition(
            "Transactions consumer", (sys.executable, "-m", "pipeline.consumers", "transactions")
        ),
        "consumer-frauds": JobDefinition(
            "Frauds consumer", (sys.executable, "-m", "pipeline.consumers", "frauds")
        ),
        # Sends a burst of one fraud pattern and exits.
        "campaign": JobDefinition(
            "Campaign", (sys.executable, "-m", "pipeline.producer"), campaign_args, long_running=False
        ),
    }
)

# The jobs that run until stopped, in the order the pages show them.
LONG_RUNNING_JOBS: tuple[str, ...] = tuple(name for name, job in JOBS.items() if job.long_running)

