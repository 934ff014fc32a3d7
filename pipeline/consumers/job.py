"""The two streaming consumers: ``transactions`` (the ledger) and ``frauds``.

Each reads the topic from its own checkpoint (from the earliest offset on its
first start), parses records into :data:`~pipeline.consumers.parse.PARSED_SCHEMA`
and writes each micro-batch with :func:`~pipeline.consumers.sinks.write_partition`.
Spark commits a batch's offsets to the checkpoint only after ``foreachBatch``
returns, so a crash replays the batch, and the idempotent inserts make the
replay add nothing.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery, StreamingQueryListener

from pipeline.consumers.parse import PARSED_SCHEMA, parse_records
from pipeline.consumers.live_model import production_version
from pipeline.consumers.sinks import connect_with_retry, write_partition
from pipeline.jobmetrics import write_metrics
from pipeline.settings import Settings

__all__ = ["SINKS", "BatchWriter", "start_query", "run"]

logger = logging.getLogger(__name__)

SINKS = ("transactions", "frauds")
STOP_TIMEOUT_S = 30.0


class ProgressLogger(StreamingQueryListener):
    """Log query start, stop and progress with the query id and run id."""

    def onQueryStarted(self, event: Any) -> None:
        logger.info("query %s started: id=%s run_id=%s", event.name, event.id, event.runId)

    def onQueryProgress(self, event: Any) -> None:
        progress = event.progress
        logger.debug(
            "query progress: id=%s run_id=%s batch_id=%s input_rows=%s",
            progress.id,
            progress.runId,
            progress.batchId,
            progress.numInputRows,
        )

    def onQueryIdle(self, event: Any) -> None:
        pass

    def onQueryTerminated(self, event: Any) -> None:
        if event.exception:
            logger.error(
                "query terminated with an error: id=%s run_id=%s: %s",
                event.id,
                event.runId,
                event.exception,
            )
        else:
            logger.info("query stopped: id=%s run_id=%s", event.id, event.runId)


@dataclass
class BatchWriter:
    """``foreachBatch`` function that writes a micro-batch and keeps running totals."""

    sink: str
    database_url: str
    metrics_file: str | None = None
    totals: dict[str, Any] = field(
        default_factory=lambda: {"batches": 0, "rows_written": 0, "rows_rejected": 0, "rows_scored": 0}
    )

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        database_url, sink = self.database_url, self.sink
        # Read once per batch on the driver, so a promotion reaches the next
        # batch on every executor without a restart.
        version = self._production_version() if sink == "transactions" else None
        parsed = batch.select("key", "value", "topic", "partition", "offset").mapInPandas(
            parse_records, PARSED_SCHEMA
        )
        counts = parsed.rdd.mapPartitions(
            lambda rows: write_partition(rows, database_url, sink, version)
        ).collect()
        valid = sum(count.valid for count in counts)
        inserted = sum(count.inserted for count in counts)
        rejected = sum(count.rejected for count in counts)
        scored = sum(count.scored for count in counts)
        problems = sorted({count.scoring_problem for count in counts if count.scoring_problem})
        seconds = time.monotonic() - started

        self.totals["batches"] += 1
        self.totals["rows_written"] += inserted
        self.totals["rows_rejected"] += rejected
        self.totals.update(
            last_batch_id=batch_id,
            last_batch_rows=valid + rejected,
            last_batch_seconds=round(seconds, 3),
        )
        if sink == "transactions":
            self.totals["rows_scored"] += scored
            self.totals.update(model_version=version, scoring_problem=_scoring_problem(version, problems))
        logger.info(
            "batch_id=%d sink=%s rows=%d inserted=%d already_present=%d rejected=%d scored=%d "
            "model_version=%s duration_s=%.3f",
            batch_id,
            sink,
            valid,
            inserted,
            valid - inserted,
            rejected,
            scored,
            version,
            seconds,
        )
        if self.metrics_file:
            write_metrics(self.metrics_file, self.totals)


    def _production_version(self) -> int | None:
        connection = connect_with_retry(self.database_url)
        try:
            with connection, connection.cursor() as cursor:
                return production_version(cursor)
        finally:
            connection.close()


def _scoring_problem(version: int | None, problems: list[str]) -> str | None:
    """Return the sentence the workbench shows when rows are stored without a score."""
    if version is None:
        return (
            "No model is in production, so new transactions are stored without a score. "
            "Train and promote one on the Model page."
        )
    return " ".join(problems) or None


def start_query(
    spark: SparkSession,
    settings: Settings,
    sink: str,
    *,
    metrics_file: str | None = None,
    checkpoint: str | None = None,
) -> StreamingQuery:
    """Start the streaming query of ``sink`` and return it."""
    if sink not in SINKS:
        raise ValueError(f"sink must be one of {', '.join(SINKS)}, got {sink!r}.")
    checkpoint = checkpoint or f"{settings.spark_checkpoint_dir.rstrip('/')}/{sink}"

    reader = spark.readStream.format("kafka")
    for key, value in settings.spark_kafka_options().items():
        reader = reader.option(key, value)
    source = (
        reader.option("subscribe", settings.kafka_topic)
        # Used only when the checkpoint is new; later starts resume from it.
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", settings.spark_max_offsets_per_trigger)
        .load()
    )

    writer = (
        source.writeStream.queryName(f"consumer-{sink}")
        .foreachBatch(BatchWriter(sink, settings.database_url, metrics_file))
        .option("checkpointLocation", checkpoint)
    )
    if settings.spark_trigger_seconds > 0:
        writer = writer.trigger(processingTime=f"{settings.spark_trigger_seconds} seconds")
    return writer.start()


def _wait_for_batch_end(query: StreamingQuery, timeout: float = STOP_TIMEOUT_S) -> None:
    """Wait until no micro-batch runs, so that stopping does not interrupt a write.

    An interrupted batch would be replayed and deduplicated on the next start,
    so this keeps the log clean rather than the data safe.
    """
    deadline = time.monotonic() + timeout
    while query.status["isTriggerActive"] and time.monotonic() < deadline:
        time.sleep(0.1)


def run(settings: Settings, sink: str, metrics_file: str | None = None) -> int:
    """Run the consumer ``sink`` until SIGTERM or SIGINT; return an exit code."""
    from pipeline.consumers.session import build_session
    from pipeline.kafka_sink import prepare_topic

    # Spark's Kafka source fails on a topic that does not exist yet, so a
    # consumer started before the producer creates it with the same layout.
    prepare_topic(settings, settings.kafka_topic, settings.kafka_topic_partitions)
    spark = build_session(settings, f"fraud-workbench-{sink}")
    spark.streams.addListener(ProgressLogger())
    query = start_query(spark, settings, sink, metrics_file=metrics_file)

    stop_requested = False

    def request_stop(signum: int, _frame: Any) -> None:
        nonlocal stop_requested
        logger.info("received %s, stopping the query after the current batch", signal.Signals(signum).name)
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    exit_code = 0
    try:
        while query.isActive and not stop_requested:
            query.awaitTermination(1)
    except Exception:
        logger.error("query failed: id=%s run_id=%s", query.id, query.runId, exc_info=True)
        exit_code = 1
    finally:
        if query.isActive:
            _wait_for_batch_end(query)
            query.stop()
        if query.exception() is not None and exit_code == 0:
            logger.error("query failed: %s", query.exception())
            exit_code = 1
        spark.stop()
    return exit_code
