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
number of messages generated.

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

from kafka import KafkaAdminClient, KafkaProducer
from kafka.record import util as kafka_record_util
from kafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
)

from pipeline.generator import DEFAULT_FRAUD_RATIO, TransactionGenerator
from pipeline.jobmetrics import write_metrics
from pipeline.message import parse_timestamp
from pipeline.settings import Settings, SettingsError, get_settings

__all__ = [
    "KafkaSink",
    "KafkaUnreachableError",
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

# How long the first connection to the cluster may take before the producer
# reports Kafka as unreachable. kafka-python's own default is 30 s.
BOOTSTRAP_TIMEOUT_MS = 5000
REQUEST_TIMEOUT_MS = 10_000
# Upper bound on the time between send() and a delivery's success or failure,
# retries included. kafka-python retries without a count limit until then.
DELIVERY_TIMEOUT_MS = 30_000
# Time close() waits for acknowledgements before it gives up on the rest.
CLOSE_TIMEOUT_S = DELIVERY_TIMEOUT_MS / 1000 + 5
# Maximum time send() blocks waiting for topic metadata.
MAX_BLOCK_MS = 10_000
# Batching for throughput: wait up to LINGER_MS to fill batches of up to
# BATCH_SIZE_BYTES per partition (a message is about 400 bytes). On a 2-CPU
# machine with a local broker these beat 5 ms and 64 KiB by about a third
# (kafka-python 3.0.12, measured with a bare send loop).
LINGER_MS = 50
BATCH_SIZE_BYTES = 256 * 1024
# kafka-python 3.0.12 has no buffer_memory limit, so the producer bounds its
# buffer itself: send() waits while this many records are unacknowledged.
MAX_PENDING_RECORDS = 50_000
PENDING_CHECK_INTERVAL = 256

# Event-time spacing when --rate is omitted, so a bulk run does not spread its
# timestamps one second apart (the generator's default).
UNPACED_MEAN_INTERVAL_S = 0.001
METRICS_INTERVAL_S = 1.0
FAILURE_LOG_INTERVAL_S = 10.0
# Upper bound of --partitions and --replication-factor, as for KAFKA_TOPIC_PARTITIONS.
MAX_TOPIC_SIZE = 1000
CLIENT_ID = "fraud-workbench-producer"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class KafkaUnreachableError(RuntimeError):
    """Kafka did not respond in time or rejected the connection. The message names the fix."""


class Sink(Protocol):
    """Destination of produced messages: Kafka or a text stream."""

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


class KafkaSink:
    """Sink that sends messages with a KafkaProducer and counts acknowledged and failed records.

    Delivery callbacks run on the producer's I/O thread, so the counters are
    guarded by a lock. :meth:`send` waits while ``max_pending`` or more
    records are unacknowledged. It checks once every ``PENDING_CHECK_INTERVAL``
    sends, so the buffer may exceed ``max_pending`` by fewer than that many.
    """

    def __init__(
        self, producer: KafkaProducer, topic: str, max_pending: int = MAX_PENDING_RECORDS
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._queued = 0
        self._sent = 0
        self._failed = 0
        self._unlogged_failures = 0
        self._last_failure_log = -math.inf
        self._final_counts: tuple[int, int] | None = None

    def send(self, message: dict[str, Any], stop: threading.Event) -> bool:
        """Queue one message. Return False without sending if ``stop`` is set while waiting."""
        if self._queued % PENDING_CHECK_INTERVAL == 0 and not self._wait_for_room(stop):
            return False
        key = message["user_id"].encode("utf-8")
        value = json.dumps(message, separators=(",", ":")).encode("utf-8")
        self._queued += 1
        try:
            future = self.producer.send(self.topic, key=key, value=value)
        except KafkaError as exc:
            self._on_error(exc)
            return True
        future.add_callback(self._on_success)
        future.add_errback(self._on_error)
        return True

    def _wait_for_room(self, stop: threading.Event) -> bool:
        while self.pending() >= self.max_pending:
            if stop.wait(0.01):
                return False
        return True

    def pending(self) -> int:
        """Return the number of records queued but neither acknowledged nor failed."""
        with self._lock:
            return self._queued - self._sent - self._failed

    def _on_success(self, _metadata: Any) -> None:
        with self._lock:
            self._sent += 1

    def _on_error(self, error: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self._failed += 1
            self._unlogged_failures += 1
            due = now - self._last_failure_log >= FAILURE_LOG_INTERVAL_S
            if due:
                failures, self._unlogged_failures = self._unlogged_failures, 0
                self._last_failure_log = now
        if due:
            logger.error(
                "Delivery to topic %s failed: %s (%d failure(s) since the last report)",
                self.topic,
                error,
                failures,
            )

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Flush and close, waiting at most ``timeout_s`` for acknowledgements.

        Afterwards :meth:`counts` is final: a record not acknowledged by then
        counts as failed.
        """
        try:
            self.producer.flush(timeout=timeout_s)
        except KafkaTimeoutError:
            logger.error(
                "%d record(s) to topic %s were not acknowledged within %.0f s of closing "
                "and count as failed",
                self.pending(),
                self.topic,
                timeout_s,
            )
            self.abort()
            return
        self.producer.close()
        self._finish()

    def abort(self) -> None:
        """Close without waiting. Records not yet acknowledged count as failed."""
        # NOTE: in kafka-python 3.0.12, close(timeout=0) raises
        # KafkaTimeoutError from its flush while records are pending, before
        # it stops the I/O thread. That thread is a daemon and ends with the
        # process, which exits right after an abort.
        with contextlib.suppress(KafkaError):
            self.producer.close(timeout=0)
        self._finish()

    def _finish(self) -> None:
        # Freeze the counts so that a callback arriving after close changes
        # neither the summary nor the metrics file.
        with self._lock:
            self._final_counts = (self._sent, self._queued - self._sent)
            failures, self._unlogged_failures = self._unlogged_failures, 0
        if failures:
            logger.error("Delivery to topic %s failed for %d more record(s)", self.topic, failures)

    @property
    def queued(self) -> int:
        return self._queued

    def counts(self) -> tuple[int, int]:
        """Return the records acknowledged and the records that failed so far."""
        with self._lock:
            if self._final_counts is not None:
                return self._final_counts
            return self._sent, self._failed


# ---------------------------------------------------------------- Kafka setup


@contextlib.contextmanager
def _quiet_kafka_logs() -> Iterator[None]:
    # kafka-python logs every refused connection at ERROR while it bootstraps;
    # the caller reports one plain error instead.
    kafka_logger = logging.getLogger("kafka")
    level = kafka_logger.level
    kafka_logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        kafka_logger.setLevel(level)


def _unreachable_message(settings: Settings, error: BaseException) -> str:
    problem = (
        f"Kafka is not reachable at {settings.kafka_bootstrap_servers} "
        f"(no answer within {BOOTSTRAP_TIMEOUT_MS / 1000:g} s: {error})."
    )
    if settings.kafka_external:
        return (
            f"{problem} Check that the cluster is running and that "
            "KAFKA_BOOTSTRAP_SERVERS is right."
        )
    return (
        f"{problem} Start the local stack with `python -m pipeline.stack up` "
        "or set KAFKA_BOOTSTRAP_SERVERS."
    )


def ensure_topic(
    admin: KafkaAdminClient, topic: str, partitions: int, replication_factor: int
) -> None:
    """Create ``topic`` unless it exists. An existing topic keeps its partition count."""
    try:
        admin.create_topics(
            {topic: {"num_partitions": partitions, "replication_factor": replication_factor}},
            wait_for_metadata=True,
        )
    except TopicAlreadyExistsError:
        logger.info("Topic %s already exists, so its partition count stays as it is", topic)
        return
    logger.info(
        "Created topic %s with %d partition(s) and replication factor %d",
        topic,
        partitions,
        replication_factor,
    )


def _warn_without_native_crc32c() -> None:
    # kafka-python checksums each record batch with CRC32C, in pure Python
    # unless the crc32c package is installed. With the settings above, this
    # producer sent about 12,000 messages/s to a local broker without it and
    # 26,000 with it (2 CPUs, bench/producer_throughput.py).
    if getattr(kafka_record_util, "crc32c_c", True) is None:
        logger.warning(
            "The crc32c package is not installed, so kafka-python computes checksums in "
            "pure Python and sends about half as many messages per second. "
            "Install it with `pip install -r requirements.txt`."
        )


def open_kafka_sink(
    settings: Settings, topic: str, partitions: int, replication_factor: int
) -> KafkaSink:
    """Connect, create the topic if missing and return a sink with a ready producer.

    Raises
    ------
    KafkaUnreachableError
        When no broker answers within ``BOOTSTRAP_TIMEOUT_MS`` or the
        connection is rejected, for example by SASL authentication.
    """
    connection = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": CLIENT_ID,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        "request_timeout_ms": REQUEST_TIMEOUT_MS,
        **settings.kafka_client_config(),
    }
    try:
        with _quiet_kafka_logs():
            admin = KafkaAdminClient(**connection)
    except (KafkaTimeoutError, KafkaConnectionError) as exc:
        raise KafkaUnreachableError(_unreachable_message(settings, exc)) from None
    except KafkaError as exc:
        raise KafkaUnreachableError(
            f"Connecting to Kafka at {settings.kafka_bootstrap_servers} failed: {exc}. "
            "Check KAFKA_SECURITY_PROTOCOL and the KAFKA_SASL_* settings."
        ) from None

    try:
        ensure_topic(admin, topic, partitions, replication_factor)
    finally:
        admin.close()

    _warn_without_native_crc32c()

    try:
        with _quiet_kafka_logs():
            producer = KafkaProducer(
                **connection,
                acks="all",
                linger_ms=LINGER_MS,
                batch_size=BATCH_SIZE_BYTES,
                delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
                max_block_ms=MAX_BLOCK_MS,
                # NOTE: kafka-python 3.0.12's idempotent producer (its default)
                # stopped sending for good after a 40-second broker stall:
                # no acknowledgement or failure followed once the broker was
                # back. Without idempotence it recovered. A retry may then
                # write a record twice, which the consumers absorb because
                # they write idempotently on transaction_id.
                enable_idempotence=False,
                # One request in flight per broker, so a retry cannot reorder
                # one user's records.
                max_in_flight_requests_per_connection=1,
            )
    except (KafkaTimeoutError, KafkaConnectionError) as exc:
        raise KafkaUnreachableError(_unreachable_message(settings, exc)) from None
    return KafkaSink(producer, topic)


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
