from __future__ import annotations

import json

import pandas as pd

from pipeline.consumers.parse import PARSED_SCHEMA, parse_frame


def _raw(values: list[bytes | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "key": [b"u-1"] * len(values),
            "value": values,
            "topic": ["t"] * len(values),
            "partition": [2] * len(values),
            "offset": list(range(len(values))),
        }
    )


VALID = {
    "user_id": "u-1",
    "transaction_id": "t-1",
    "timestamp": "2026-05-01T10:00:00.250000+02:00",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "location": "London",
    "transaction_location": "London",
    "amount": 5,
    "device": "mobile",
    "is_fraud": 0,
    "fraud_reasons": [],
}


def test_parse_frame_has_schema_columns() -> None:
    parsed = parse_frame(_raw([json.dumps(VALID).encode()]))

    assert list(parsed.columns) == PARSED_SCHEMA.fieldNames()


def test_parse_frame_valid_row() -> None:
    row = parse_frame(_raw([json.dumps(VALID).encode()])).iloc[0]

    assert row["reject_reason"] is None
    assert row["raw_payload"] is None
    assert row["event_time_us"] == 1_777_622_400_250_000
    assert row["kafka_partition"] == 2
    assert row["kafka_key"] == "u-1"


def test_parse_frame_carries_fraud_pattern() -> None:
    fraud = {**VALID, "is_fraud": 1, "fraud_reasons": ["velocity"], "fraud_pattern": "card_testing"}
    rows = parse_frame(_raw([json.dumps(fraud).encode(), json.dumps(VALID).encode()]))

    assert rows.iloc[0]["fraud_pattern"] == "card_testing"
    assert rows.iloc[1]["fraud_pattern"] is None


def test_parse_frame_rejected_row_payload_only() -> None:
    row = parse_frame(_raw([b"{oops"])).iloc[0]

    assert "not valid JSON" in row["reject_reason"]
    assert row["raw_payload"] == "{oops"
    for column in ("transaction_id", "amount", "event_time_us", "is_fraud", "fraud_reasons"):
        assert row[column] is None


def test_parse_frame_mixed_rows_keep_order_and_offsets() -> None:
    parsed = parse_frame(_raw([b"x", json.dumps(VALID).encode(), None]))

    assert list(parsed["kafka_offset"]) == [0, 1, 2]
    assert [reason is None for reason in parsed["reject_reason"]] == [False, True, False]
