"""Kafka I/O of the producer: connecting, creating the topic and sending records.

:func:`open_kafka_sink` connects to ``KAFKA_BOOTSTRAP_SERVERS``, creates the
topic when missing and returns a :class:`KafkaSink` around a ready
KafkaProducer. Each record has the user id as its key (UTF-8) and the message
as its value (compact UTF-8 JSON). Kafka's default partitioner hashes the key,
so all transactions of one user land in one partition, in order.
:class:`KafkaSink` implements the ``Sink`` protocol of :mod:`pipeline.producer`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.record import util as kafka_record_util
from kafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
)

from pipeline.settings import Settings

__all__ = [
    "KafkaSink",
    "KafkaUnreachableError",
    "ensure_topic",
    "prepare_topic",
    "open_kafka_sink",
]

logger = logging.getLogger(__name__)

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
FAILURE_LOG_INTERVAL_S = 10.0
CLIENT_ID = "fraud-workbench-producer"


class KafkaUnreachableError(RuntimeError):
    """Kafka did not respond in time or rejected the connection. The message names the fix."""


# ---------------------------------------------------------------- sink


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


def _connection(settings: Settings) -> dict:
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": CLIENT_ID,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        "request_timeout_ms": REQUEST_TIMEOUT_MS,
        **settings.kafka_client_config(),
    }


def prepare_topic(
    settings: Settings, topic: str, partitions: int, replication_factor: int = 1
) -> None:
    """Connect to Kafka and create ``topic`` unless it exists.

    Raises
    ------
    KafkaUnreachableError
        When no broker answers within ``BOOTSTRAP_TIMEOUT_MS`` or the
        connection is rejected, for example by SASL authentication.
    """
    try:
        with _quiet_kafka_logs():
            admin = KafkaAdminClient(**_connection(settings))
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
    prepare_topic(settings, topic, partitions, replication_factor)

    _warn_without_native_crc32c()

    try:
        with _quiet_kafka_logs():
            producer = KafkaProducer(
                **_connection(settings),
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
