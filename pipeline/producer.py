"""Send generated transactions to Kafka, or write them to stdout as JSON lines.

Usage::

    python -m pipeline.producer [--count N] [--rate TX_PER_S] [--seed S]
        [--start-time ISO] [--users N] [--fraud-ratio F]
        [--pattern-mix NAME=W,...] [--topic NAME] [--partitions P]
        [--replication-factor R] [--stdout] [--metrics-file PATH]
    python -m pipeline.producer --campaign PATTERN [--count N] [--rate TX_PER_S]
        [--seed S] [--users N] [--topic NAME] [--stdout] [--metrics-file PATH]

Each record has the user id as its key (UTF-8) and a message of
:mod:`pipeline.simulator` as its value (compact UTF-8 JSON). Kafka's default
partitioner hashes the key, so all transactions of one user land in one
partition, in order. The topic is created when missing.

The same ``--seed``, ``--start-time``, ``--rate``, ``--users``,
``--fraud-ratio`` and ``--pattern-mix`` give byte-identical messages, in
Kafka and with ``--stdout``. With ``--start-time``, timestamps are
simulated: ``--rate`` sets their mean gap to ``1 / rate`` seconds (1 ms
without it), and with ``--stdout`` it does not slow the output. Without ``--start-time`` the stream is live and each message is
stamped with the time it was made. The other fields depend on neither.
Without ``--seed`` the stream is random, and the users are those of seed 0,
so separate runs share one population.

``--campaign PATTERN`` sends ``--count`` messages (20 by default) of that
one fraud pattern, stamped with the current time, to the users of the
``--seed`` population, and exits. A ``geo_jump`` campaign sends a legitimate
transaction at home before each jump, so half of its messages are frauds.
The options are parsed in :mod:`pipeline.producer_options`.

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

import contextlib
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, TextIO

from pipeline.jobmetrics import write_metrics
from pipeline.kafka_sink import KafkaUnreachableError, open_kafka_sink
from pipeline.producer_options import UNPACED_MEAN_INTERVAL_S, build_generator, parse_args
from pipeline.settings import SettingsError, get_settings

__all__ = [
    "UNPACED_MEAN_INTERVAL_S",
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

METRICS_INTERVAL_S = 1.0

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


# One encoder for every line: json.dumps with separators builds a new one per call.
COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


class StdoutSink:
    """Sink that writes each message as one compact JSON line to ``stream``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.sent = 0

    def send(self, message: dict[str, Any], stop: threading.Event) -> bool:
        try:
            self.stream.write(COMPACT_JSON.encode(message) + "\n")
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
    generator = build_generator(args)
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

    # Simulated timestamps written to a file need no pacing: --rate then only
    # spaces the timestamps, and a day of history takes seconds to write.
    paced = args.rate > 0 and not (args.stdout and args.start_time)
    pacer = RatePacer(args.rate) if paced else None
    metrics = MetricsWriter(args.metrics_file) if args.metrics_file else None
    logger.info(
        "Producing %s message(s) to %s (rate limit: %s, seed: %s, users: %d, %s)",
        args.count if args.count is not None else "unlimited",
        destination,
        f"{args.rate:g}/s" if pacer else "none",
        args.seed,
        args.users,
        f"campaign: {args.campaign}" if args.campaign else f"fraud ratio: {args.fraud_ratio:g}",
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
