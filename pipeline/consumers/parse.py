"""Turn raw Kafka records into typed rows, each either valid or rejected with a reason.

The conversion runs on the executors through ``mapInPandas`` and calls the
pure :func:`pipeline.message.validate_message`, so the stream and the tests
apply the same rules. Its output has the explicit schema :data:`PARSED_SCHEMA`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
from pyspark.sql.types import (
    ArrayType,
    DecimalType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructField,
    StructType,
)

from pipeline.message import MESSAGE_FIELDS, OPTIONAL_FIELDS, validate_message

__all__ = ["PARSED_SCHEMA", "parse_frame", "parse_records"]

# event_time travels as microseconds since the epoch (UTC): a Spark timestamp
# would be turned into a naive local time when rows reach Python again.
PARSED_SCHEMA = StructType(
    [
        StructField("transaction_id", StringType()),
        StructField("user_id", StringType()),
        StructField("event_time_us", LongType()),
        StructField("first_name", StringType()),
        StructField("last_name", StringType()),
        StructField("location", StringType()),
        StructField("transaction_location", StringType()),
        StructField("amount", DecimalType(12, 2)),
        StructField("device", StringType()),
        StructField("is_fraud", ShortType()),
        StructField("fraud_reasons", ArrayType(StringType())),
        StructField("fraud_pattern", StringType()),
        StructField("kafka_topic", StringType(), nullable=False),
        StructField("kafka_partition", IntegerType(), nullable=False),
        StructField("kafka_offset", LongType(), nullable=False),
        StructField("kafka_key", StringType()),
        StructField("raw_payload", StringType()),
        StructField("reject_reason", StringType()),
    ]
)

# The record's fields that become columns as they are; timestamp becomes event_time_us.
MESSAGE_COLUMNS = [name for name in (*MESSAGE_FIELDS, *OPTIONAL_FIELDS) if name != "timestamp"]

# A rejected payload is kept for inspection, cut at this many characters.
MAX_RAW_PAYLOAD_CHARS = 100_000


def _decode(value: bytes | bytearray | None) -> str | None:
    """Decode for storage: invalid UTF-8 and NUL, which PostgreSQL text rejects, become U+FFFD."""
    if value is None:
        return None
    return bytes(value).decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def parse_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """Parse one pandas frame of Kafka records (key, value, topic, partition, offset)."""
    rows = []
    for key, value, topic, partition, offset in zip(
        raw["key"], raw["value"], raw["topic"], raw["partition"], raw["offset"]
    ):
        value_bytes = None if value is None else bytes(value)
        record, reason = validate_message(value_bytes)
        row: dict = dict.fromkeys(PARSED_SCHEMA.fieldNames())
        row.update({
            "kafka_topic": topic,
            "kafka_partition": int(partition),
            "kafka_offset": int(offset),
            "kafka_key": _decode(key),
        })
        if record is None:
            payload = _decode(value_bytes)
            row["raw_payload"] = payload[:MAX_RAW_PAYLOAD_CHARS] if payload else payload
            row["reject_reason"] = reason
        else:
            for column in MESSAGE_COLUMNS:
                row[column] = record[column]
            timestamp = record["timestamp"]
            row["event_time_us"] = (
                int(timestamp.timestamp()) * 1_000_000 + timestamp.microsecond
            )
        rows.append(row)
    # dtype=object keeps None as None: a float column would turn a missing
    # value into NaN and integers into floats.
    return pd.DataFrame(rows, columns=PARSED_SCHEMA.fieldNames(), dtype=object)


def parse_records(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """``mapInPandas`` function: parse each frame of Kafka records."""
    for raw in frames:
        yield parse_frame(raw)
