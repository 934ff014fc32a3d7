"""Send generated transactions to Kafka, or write them to stdout as JSON lines.

Usage::

    python -m pipeline.producer [--count N] [--rate TX_PER_S] [--seed S]
        [--start-time ISO] [--fraud-ratio F] [--topic NAME] [--partitions P]
        [--replication-factor R] [--stdout] [--metrics-file PATH]

Each record has the user id as its key (UTF-8) and a message of
:mod:`pipeline.generator` as its value (compact UTF-8 JSON). Kafka's default
partitioner hashes the key, so all transactions of one user land in one
partition, in order. The topic is created when missing.

The same ``--seed``, ``--start-time`` and ``--rate`` give the same messages,
in Kafka and with ``--stdout``. With ``--start-time``, timestamps are
simulated: ``--rate`` sets their mean gap to ``1 / rate`` seconds (1 ms
without it). Without ``--start-time`` the stream is live and each message is
stamped with the time it was made. The other fields depend on neither.

Output
------
After a run, the last line the producer prints is the summary: four
space-separated ``key=value`` pairs in this order::

    sent=2000 failed=0 elapsed_s=1.23 rate_per_s=1626.0

``sent`` counts records the broker acknowledged (``acks=all``), or lines
written with ``--stdout``. ``failed`` counts records whose delivery failed
after the producer's retries. ``rate_per_s`` is ``sent / elapsed_s``.
:func:`parse_summary` reads the line back. The summary goes to stdout, or to
stderr with ``--stdout`` so that stdout contains only JSON lines. Logs go to
stderr. When the producer cannot start (an invalid option or setting, or
Kafka not reachable) it writes an error message to stderr and no summary.

With ``--metrics-file PATH`` the producer rewrites PATH about once per second
with a JSON object: ``sent``, ``failed``, ``rate_per_s`` (acknowledged records
per second over the last interval), ``state`` (``running`` or ``stopped``)
and ``updated_at``.

Shutdown
--------
SIGINT, SIGTERM and the end of ``--count`` stop generation. The producer then
flushes and closes, so every record counted in ``sent`` has been acknowledged.
A delivery still pending fails after at most ``DELIVERY_TIMEOUT_MS``. Records
not acknowledged ``CLOSE_TIMEOUT_S`` after closing starts, or when a second
SIGINT or SIGTERM arrives, count as failed, so ``sent + failed`` equals the
number of messages generated. Both constants are in :mod:`pipeline.kafka_sink`.

Exit status: 0 when every generated message was sent, 1 when a delivery
failed or Kafka is not reachable, 2 for an invalid option or setting.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol, TextIO

from pipeline.generator import DEFAULT_FRAUD_RATIO, TransactionGenerator
from pipeline.jobmetrics import write_metrics
from pipeline.kafka_sink import KafkaUnreachableError, open_kafka_sink
from pipeline.message import parse_timestamp
from pipeline.settings import SettingsError, get_settings

__all__ = [
    "RatePacer",
    "StdoutSink",
    "format_summary",
    "main",
    "parse_args",
    "parse_summary",
]

# Under `python -m` this module is named __main__, so the logger takes the package name.
logger = logging.getLogger("pipeline.producer" if __name__ == "__main__" else __name__)

SUMMARY_KEYS = ("sent", "failed", "elapsed_s", "rate_per_s")

# Event-time spacing when --rate is omitted, so a bulk run does not spread its
# timestamps one second apart (the generator's default).
UNPACED_MEAN_INTERVAL_S = 0.001
METRICS_INTERVAL_S = 1.0
# Upper bound of --partitions and --replication-factor, as for KAFKA_TOPIC_PARTITIONS.
MAX_TOPIC_SIZE = 1000

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class Sink(Protocol):
    """Destination of produced messages: :class:`StdoutSink` or ``kafka_sink.KafkaSink``."""

    @property
    def queued(self) -> int: ...

    def send(self, message: dict[str, Any], stop: threading.Event) -> bool: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def counts(self) -> tuple[int, int]: ...


# ---------------------------------------------------------------- arguments


def _number_parser(
    convert: type[int] | type[float], low: float, high: float = math.inf
) -> Callable[[str], Any]:
    kind = "a whole number" if convert is int else "a number"
    if high == math.inf:
        allowed = f"{kind} of at least {low:g}"
    else:
        allowed = f"{kind} from {low:g} to {high:g}"

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    return parse


def _start_time(text: str) -> datetime:
    try:
        return parse_timestamp(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be ISO 8601 with a UTC offset, for example 2026-01-05T10:00:00+00:00, "
            f"got {text!r}"
        ) from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line. An invalid option exits with status 2 and a message."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.producer",
        description="Send synthetic card transactions to Kafka, or print them as JSON lines.",
    )

    parser.add_argument(
        "--count",
        metavar="N",
        type=_number_parser(int, 0),
        help="number of messages to send before stopping (default: run until SIGINT or SIGTERM)",
    )
    parser.add_argument(
        "--rate",
        metavar="TX_PER_S",
        type=_number_parser(float, 0),
        default=0.0,
        help="maximum messages per second (default: 0, no limit)",
    )

    parser.add_argument(
        "--seed",
        metavar="S",
        type=int,
        help="random seed (the same seed, --start-time and --rate repeat the messages)",
    )
    parser.add_argument(
        "--start-time",
        metavar="ISO",
        type=_start_time,
        help="ISO 8601 timestamp with a UTC offset for the first message; simulated "
        "timestamps follow it (default: stamp each message with the current time)",
    )
    parser.add_argument(
        "--fraud-ratio",
        metavar="F",
        type=_number_parser(float, 0, 1),
        default=DEFAULT_FRAUD_RATIO,
        help=f"share of messages labelled fraud, from 0 to 1 (default: {DEFAULT_FRAUD_RATIO})",
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

    return parser.parse_args(argv)


# ---------------------------------------------------------------- summary and pacing


def format_summary(sent: int, failed: int, elapsed_s: float) -> str:
    """Format the summary line: ``sent=2000 failed=0 elapsed_s=1.23 rate_per_s=1626.0``."""
    rate = sent / elapsed_s if elapsed_s > 0 else 0.0
    return f"sent={sent} failed={failed} elapsed_s={elapsed_s:.2f} rate_per_s={rate:.1f}"


def parse_summary(line: str) -> dict[str, float]:
    """Parse a line written by :func:`format_summary`. Raise ValueError on any other line."""
    values: dict[str, float] = {}
    for pair in line.split():
        key, separator, text = pair.partition("=")
        if not separator or key not in SUMMARY_KEYS:
            raise ValueError(f"not a producer summary line: {line!r}")
        values[key] = float(text)
    if tuple(values) != SUMMARY_KEYS:
        raise ValueError(f"a producer summary line has keys {', '.join(SUMMARY_KEYS)}: {line!r}")
    return values


class RatePacer:
    """Pacer that spaces sends ``1 / rate_per_s`` seconds apart.

    Each call to :meth:`delay` reserves the next send slot. A caller that falls
    more than ``max_lag_s`` behind schedule restarts the schedule from now, so
    a stall is not followed by a burst that exceeds the rate for long.
    """

    def __init__(self, rate_per_s: float, max_lag_s: float = 1.0) -> None:
        if not (math.isfinite(rate_per_s) and rate_per_s > 0):
            raise ValueError(f"rate_per_s must be a finite number above 0, got {rate_per_s!r}.")
        self.interval_s = 1.0 / rate_per_s
        self.max_lag_s = max_lag_s
        self._next_slot: float | None = None

    def delay(self, now: float) -> float:
        """Reserve the next slot and return the seconds to wait from ``now`` until it."""
        if self._next_slot is None or now - self._next_slot > self.max_lag_s:
            self._next_slot = now
        wait = max(0.0, self._next_slot - now)
        self._next_slot += self.interval_s
        return wait


class MetricsWriter:
    """Writer of sent, failed and the rate of the last interval to a metrics file."""

    def __init__(self, path: str, interval_s: float = METRICS_INTERVAL_S) -> None:
        self.path = path
        self.interval_s = interval_s
        self._last_time = time.monotonic()
        self._last_sent = 0
        self._error_logged = False

    def maybe_write(
        self, sent: int, failed: int, state: str = "running", force: bool = False
    ) -> None:
        """Write when ``interval_s`` has passed since the last write, or when ``force`` is set."""
        now = time.monotonic()
        if not force and now - self._last_time < self.interval_s:
            return
        elapsed = now - self._last_time
        rate = (sent - self._last_sent) / elapsed if elapsed > 0 else 0.0
        self._last_time = now
        self._last_sent = sent
        try:
            write_metrics(
                self.path,
                {"sent": sent, "failed": failed, "rate_per_s": round(rate, 1), "state": state},
            )
        except OSError as exc:
            # A full disk or a removed folder must not stop the producer.
            if not self._error_logged:
                logger.warning("Could not write metrics file %s: %s", self.path, exc)
                self._error_logged = True


# ---------------------------------------------------------------- sinks


class StdoutSink:
    """Sink that writes each message as one compact JSON line to ``stream``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.sent = 0

    def send(self, message: dict[str, Any], stop: threading.Event) -> bool:
        try:
            self.stream.write(json.dumps(message, separators=(",", ":")) + "\n")
        except BrokenPipeError:
            logger.info("The reader closed stdout, so the producer stops")
            self._discard_output()
            stop.set()
            return False
        self.sent += 1
        return True

    def _discard_output(self) -> None:
        # Point the closed pipe at /dev/null so the interpreter's final flush
        # does not raise BrokenPipeError again, as the Python signal docs advise.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())

    def close(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._discard_output()

    def abort(self) -> None:
        self.close()

    @property
    def queued(self) -> int:
        return self.sent

    def counts(self) -> tuple[int, int]:
        return self.sent, 0


# ---------------------------------------------------------------- main loop


def _install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            raise KeyboardInterrupt(f"second {name}")
        logger.info("Received %s, so generation stops and records in flight are flushed", name)
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def produce(
    generator: Iterator[dict[str, Any]],
    sink: Sink,
    stop: threading.Event,
    count: int | None = None,
    pacer: RatePacer | None = None,
    metrics: MetricsWriter | None = None,
) -> int:
    """Move messages from ``generator`` to ``sink`` until ``count`` or ``stop``.

    Returns
    -------
    int
        The number of messages the sink accepted.
    """
    queued = 0
    while count is None or queued < count:
        if stop.is_set():
            break
        if pacer is not None:
            wait = pacer.delay(time.monotonic())
            # Wait in steps so the metrics file stays fresh at low rates.
            while wait > 0 and not stop.is_set():
                step = min(wait, METRICS_INTERVAL_S)
                stop.wait(step)
                wait -= step
                if metrics is not None:
                    metrics.maybe_write(*sink.counts())
            if stop.is_set():
                break
        if not sink.send(next(generator), stop):
            break
        queued += 1
        if metrics is not None and (pacer is not None or queued % 256 == 0):
            metrics.maybe_write(*sink.counts())
    return queued


def _build_generator(args: argparse.Namespace) -> TransactionGenerator:
    mean_interval_s = 1.0 / args.rate if args.rate > 0 else UNPACED_MEAN_INTERVAL_S
    # Without --start-time the stream is live: each message carries the time
    # it was made, so ingested_at - event_time is the pipeline's latency.
    clock = None if args.start_time else _utc_now
    return TransactionGenerator(
        seed=args.seed,
        start_time=args.start_time,
        fraud_ratio=args.fraud_ratio,
        mean_interval_s=mean_interval_s,
        clock=clock,
    )


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the producer command line and return its exit status."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)

    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"Invalid setting: {exc}", file=sys.stderr)
        return EXIT_USAGE

    # Handlers go in before connecting, so a signal during the bootstrap
    # wait ends the run cleanly instead of with a traceback.
    stop = threading.Event()
    _install_signal_handlers(stop)
    generator = _build_generator(args)
    topic = args.topic or settings.kafka_topic
    sink: Sink
    if args.stdout:
        sink = StdoutSink(sys.stdout)
        summary_stream = sys.stderr
        destination = "stdout"
    else:
        partitions = args.partitions or settings.kafka_topic_partitions
        try:
            sink = open_kafka_sink(settings, topic, partitions, args.replication_factor)
        except KafkaUnreachableError as exc:
            print(exc, file=sys.stderr)
            return EXIT_FAILED
        summary_stream = sys.stdout
        destination = f"topic {topic} at {settings.kafka_bootstrap_servers}"

    pacer = RatePacer(args.rate) if args.rate > 0 else None
    metrics = MetricsWriter(args.metrics_file) if args.metrics_file else None
    logger.info(
        "Producing %s message(s) to %s (rate limit: %s, seed: %s)",
        args.count if args.count is not None else "unlimited",
        destination,
        f"{args.rate:g}/s" if pacer else "none",
        args.seed,
    )

    started = time.monotonic()
    aborted = False
    try:
        if metrics is not None:
            metrics.maybe_write(0, 0, force=True)
        produce(generator, sink, stop, args.count, pacer, metrics)
        sink.close()
    except KeyboardInterrupt:
        logger.warning("Received a second signal, so the producer closes without waiting")
        sink.abort()
        aborted = True
    elapsed = time.monotonic() - started

    sent, failed = sink.counts()
    if metrics is not None:
        metrics.maybe_write(sent, failed, state="stopped", force=True)
    logger.info(
        "Stopped after queueing %d message(s): %d sent, %d failed", sink.queued, sent, failed
    )
    print(format_summary(sent, failed, elapsed), file=summary_stream, flush=True)
    return EXIT_OK if failed == 0 and not aborted else EXIT_FAILED

if __name__ == "__main__":
    sys.exit(main())
