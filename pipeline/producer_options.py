"""The producer's command-line options, and the generator they configure.

:func:`parse_args` reads the options of ``python -m pipeline.producer`` and
:func:`build_generator` turns them into a
:class:`~pipeline.simulator.TransactionGenerator`. :mod:`pipeline.producer`
describes the command as a whole.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from pipeline.message import parse_timestamp
from pipeline.simulator import (
    DEFAULT_FRAUD_RATIO,
    DEFAULT_PATTERN_MIX,
    DEFAULT_USER_COUNT,
    FRAUD_PATTERNS,
    MAX_USER_COUNT,
    FraudParameters,
    TransactionGenerator,
    parse_pattern_mix,
)

__all__ = ["DEFAULT_CAMPAIGN_COUNT", "UNPACED_MEAN_INTERVAL_S", "build_generator", "parse_args"]

# Event-time spacing when --rate is omitted, so a bulk run does not spread its
# timestamps one second apart (the generator's default).
UNPACED_MEAN_INTERVAL_S = 0.001
# Upper bound of --partitions and --replication-factor, as for KAFKA_TOPIC_PARTITIONS.
MAX_TOPIC_SIZE = 1000
DEFAULT_CAMPAIGN_COUNT = 20


def _number_parser(
    convert: type[int] | type[float], low: float, high: float = math.inf
) -> Callable[[str], Any]:
    kind = "a whole number" if convert is int else "a number"
    if high == math.inf:
        allowed = f"{kind} of at least {_bound(low)}"
    else:
        allowed = f"{kind} from {_bound(low)} to {_bound(high)}"

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    return parse


def _bound(value: float) -> str:
    # Whole bounds in full: 1000000, not the 1e+06 of the g format.
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _start_time(text: str) -> datetime:
    try:
        return parse_timestamp(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be ISO 8601 with a UTC offset, for example 2026-01-05T10:00:00+00:00, "
            f"got {text!r}"
        ) from None


def _pattern_mix(text: str) -> dict[str, float]:
    try:
        return parse_pattern_mix(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line. An invalid option exits with status 2 and a message.

    After parsing, ``fraud_ratio`` and ``pattern_mix`` are None with
    ``--campaign`` and have their defaults without it, and ``count`` is
    :data:`DEFAULT_CAMPAIGN_COUNT` for a campaign without ``--count``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.producer",
        description="Send synthetic card transactions to Kafka, or print them as JSON lines.",
    )

    parser.add_argument(
        "--count",
        metavar="N",
        type=_number_parser(int, 0),
        help="number of messages to send before stopping (default: run until SIGINT or "
        f"SIGTERM, or {DEFAULT_CAMPAIGN_COUNT} with --campaign)",
    )
    parser.add_argument(
        "--rate",
        metavar="TX_PER_S",
        type=_number_parser(float, 0),
        default=0.0,
        help="maximum messages per second; with --stdout and --start-time it only spaces the timestamps (default: 0, no limit)",
    )

    parser.add_argument(
        "--seed",
        metavar="S",
        type=int,
        help="random seed of the users and the stream (the same seed, --start-time and "
        "--rate repeat the messages; default: a random stream of the users of seed 0)",
    )
    parser.add_argument(
        "--start-time",
        metavar="ISO",
        type=_start_time,
        help="ISO 8601 timestamp with a UTC offset for the first message; simulated "
        "timestamps follow it (default: stamp each message with the current time)",
    )
    parser.add_argument(
        "--users",
        metavar="N",
        type=_number_parser(int, 1, MAX_USER_COUNT),
        default=DEFAULT_USER_COUNT,
        help=f"number of users in the population (default: {DEFAULT_USER_COUNT})",
    )
    parser.add_argument(
        "--fraud-ratio",
        metavar="F",
        type=_number_parser(float, 0, 1),
        help=f"share of messages labelled fraud, from 0 to 1 (default: {DEFAULT_FRAUD_RATIO})",
    )
    parser.add_argument(
        "--pattern-mix",
        metavar="NAME=W,...",
        type=_pattern_mix,
        help="relative weights of the fraud patterns, for example "
        "high_amount=0.3,geo_jump=0.2; patterns left out get none (default: "
        + ",".join(f"{name}={weight:g}" for name, weight in DEFAULT_PATTERN_MIX.items())
        + ")",
    )
    parser.add_argument(
        "--campaign",
        metavar="PATTERN",
        choices=FRAUD_PATTERNS,
        help="send a burst of this fraud pattern now, stamped with the current time, and "
        f"exit; --count sets its number of messages (patterns: {', '.join(FRAUD_PATTERNS)})",
    )

    parser.add_argument(
        "--topic", metavar="NAME", help="Kafka topic (default: the KAFKA_TOPIC setting)"
    )
    parser.add_argument(
        "--partitions",
        metavar="P",
        type=_number_parser(int, 1, MAX_TOPIC_SIZE),
        help="partitions of the topic if it is created (default: KAFKA_TOPIC_PARTITIONS)",
    )
    parser.add_argument(
        "--replication-factor",
        metavar="R",
        type=_number_parser(int, 1, MAX_TOPIC_SIZE),
        default=1,
        help="replicas of each partition if the topic is created (default: 1)",
    )

    parser.add_argument(
        "--stdout",
        action="store_true",
        help="write JSON lines to stdout instead of Kafka, and the summary to stderr",
    )
    parser.add_argument(
        "--metrics-file",
        metavar="PATH",
        help="JSON file rewritten about once per second with sent, failed and rate_per_s",
    )

    args = parser.parse_args(argv)
    if args.campaign is None:
        if args.fraud_ratio is None:
            args.fraud_ratio = DEFAULT_FRAUD_RATIO
        return args

    # A campaign sends one pattern now, so options that set the mix or the
    # simulated time contradict it.
    for option, value in (
        ("--start-time", args.start_time),
        ("--fraud-ratio", args.fraud_ratio),
        ("--pattern-mix", args.pattern_mix),
    ):
        if value is not None:
            parser.error(
                f"argument --campaign: a campaign sends only {args.campaign} frauds stamped "
                f"with the current time, so it takes no {option}. Leave out {option}."
            )
    if args.count is None:
        args.count = DEFAULT_CAMPAIGN_COUNT
    return args


def build_generator(args: argparse.Namespace) -> TransactionGenerator:
    """Return the generator that the parsed options describe.

    A campaign uses the population of ``--seed`` (seed 0 without it) and a
    random stream, so each campaign makes new transactions of the same users.
    Its card-testing bursts are back to back, one user after another.
    """
    mean_interval_s = 1.0 / args.rate if args.rate > 0 else UNPACED_MEAN_INTERVAL_S
    # Without --start-time the stream is live: each message carries the time
    # it was made, so ingested_at - event_time is the pipeline's latency.
    clock = None if args.start_time else _utc_now
    if args.campaign is not None:
        return TransactionGenerator(
            seed=None,
            population_seed=args.seed,
            fraud_ratio=1.0,
            pattern_mix={args.campaign: 1.0},
            user_count=args.users,
            mean_interval_s=mean_interval_s,
            clock=clock,
            # Card tests go back to back, because with spacing a short
            # campaign would start many bursts and finish none.
            fraud_parameters=FraudParameters(card_testing_max_spacing=1),
        )
    return TransactionGenerator(
        seed=args.seed,
        start_time=args.start_time,
        fraud_ratio=args.fraud_ratio,
        pattern_mix=args.pattern_mix,
        user_count=args.users,
        mean_interval_s=mean_interval_s,
        clock=clock,
    )


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)
