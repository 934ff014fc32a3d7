from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from pipeline.message import MESSAGE_FIELDS, OPTIONAL_FIELDS, validate_message


def _message(**fields) -> dict:
    message = {
        "user_id": "u-1",
        "transaction_id": "t-1",
        "timestamp": "2026-05-01T10:00:00+02:00",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "location": "London",
        "transaction_location": "Paris",
        "amount": 19.99,
        "device": "mobile",
        "is_fraud": 1,
        "fraud_reasons": ["location_mismatch"],
    }
    message.update(fields)
    return message


def _validate(message: dict) -> tuple:
    return validate_message(json.dumps(message).encode())


def test_message_valid_record_is_typed() -> None:
    record, reason = _validate(_message())

    assert reason is None
    assert set(record) == set(MESSAGE_FIELDS) | set(OPTIONAL_FIELDS)
    assert record["timestamp"] == datetime(2026, 5, 1, 8, 0, tzinfo=timezone.utc)
    assert record["amount"] == Decimal("19.99")
    assert record["is_fraud"] == 1


def test_message_extra_fields_are_ignored() -> None:
    record, reason = _validate(_message(merchant="Bakery"))

    assert reason is None
    assert "merchant" not in record


def test_message_fraud_pattern_missing_is_none() -> None:
    record, reason = _validate(_message())

    assert reason is None
    assert record["fraud_pattern"] is None


@pytest.mark.parametrize(
    ("fields", "stored"),
    [
        ({"is_fraud": 1, "fraud_pattern": "geo_jump"}, "geo_jump"),
        ({"is_fraud": 1, "fraud_pattern": None}, None),
        ({"is_fraud": 0, "fraud_pattern": None, "fraud_reasons": []}, None),
        ({"is_fraud": 1, "fraud_pattern": "x" * 64}, "x" * 64),
        ({"is_fraud": 1, "fraud_pattern": "newer_producer_pattern"}, "newer_producer_pattern"),
    ],
)
def test_message_fraud_pattern_accepted(fields: dict, stored: str | None) -> None:
    record, reason = _validate(_message(**fields))

    assert reason is None
    assert record["fraud_pattern"] == stored


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        (
            {"fraud_pattern": ""},
            'field fraud_pattern must be null or a non-empty string of at most 64 characters, got ""',
        ),
        ({"fraud_pattern": "  "}, "field fraud_pattern must be null or a non-empty string"),
        ({"fraud_pattern": "x" * 65}, "at most 64 characters"),
        (
            {"fraud_pattern": 3},
            "field fraud_pattern must be null or a non-empty string of at most 64 characters, got 3",
        ),
        ({"fraud_pattern": ["geo_jump"]}, "field fraud_pattern must be null or a non-empty string"),
        (
            {"is_fraud": 0, "fraud_pattern": "geo_jump"},
            'field fraud_pattern must be null when is_fraud is 0, got "geo_jump"',
        ),
    ],
)
def test_message_fraud_pattern_invalid_rejected(fields: dict, match: str) -> None:
    record, reason = _validate(_message(**fields))

    assert record is None
    assert match in reason


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (None, "no value"),
        (b"\xff\xfe", "not valid UTF-8"),
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b"", "not valid JSON"),
    ],
)
def test_message_unparseable_value(value: bytes | None, match: str) -> None:
    record, reason = validate_message(value)

    assert record is None
    assert match in reason


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"amount": "N/A"}, 'field amount must be a number, got "N/A"'),
        ({"amount": True}, "field amount must be a number"),
        ({"amount": -1}, "field amount must be from 0"),
        ({"amount": 1e12}, "field amount must be from 0"),
        ({"amount": None}, "field amount must be a number, got null"),
        ({"timestamp": "2026-05-01T10:00:00"}, "with a UTC offset"),
        ({"timestamp": "yesterday"}, "field timestamp must be ISO 8601"),
        ({"timestamp": 1700000000}, "field timestamp must be an ISO 8601 string"),
        ({"is_fraud": 2}, "field is_fraud must be 0 or 1, got 2"),
        ({"is_fraud": "1"}, "field is_fraud must be 0 or 1"),
        ({"is_fraud": 1.0}, "field is_fraud must be 0 or 1"),
        ({"is_fraud": True}, "field is_fraud must be 0 or 1, got true"),
        ({"timestamp": "0001-01-01T00:00:00+14:00"}, "field timestamp must be ISO 8601"),
        ({"timestamp": "9999-12-31T23:59:59-14:00"}, "field timestamp must be ISO 8601"),
        # Valid dates outside the accepted range, on both sides of pandas' range too.
        ({"timestamp": "0001-01-01T00:00:00+00:00"}, "field timestamp must be from 1970-01-01 to before 2200-01-01"),
        ({"timestamp": "1677-09-21T00:00:00+00:00"}, "field timestamp must be from 1970-01-01"),
        ({"timestamp": "1969-12-31T23:59:59+00:00"}, "field timestamp must be from 1970-01-01"),
        ({"timestamp": "2200-01-01T00:00:00+00:00"}, "field timestamp must be from 1970-01-01"),
        ({"timestamp": "2263-01-01T00:00:00+00:00"}, "field timestamp must be from 1970-01-01"),
        ({"timestamp": "9999-12-31T23:59:59+00:00"}, "field timestamp must be from 1970-01-01"),
        ({"first_name": "Ada\u0000"}, "field first_name contains a NUL character"),
        ({"fraud_reasons": ["high\u0000"]}, "field fraud_reasons contains a NUL character"),
        ({"user_id": ""}, "field user_id must be a non-empty string"),
        ({"device": 7}, "field device must be a non-empty string, got 7"),
        ({"fraud_reasons": "high_amount"}, "field fraud_reasons must be a list of strings"),
        ({"fraud_reasons": [1]}, "field fraud_reasons must be a list of strings"),
    ],
)
def test_message_wrong_type_names_field_and_value(fields: dict, match: str) -> None:
    record, reason = _validate(_message(**fields))

    assert record is None
    assert match in reason


def test_message_missing_fields_are_listed() -> None:
    message = _message()
    del message["transaction_id"]
    del message["amount"]

    record, reason = _validate(message)

    assert record is None
    assert reason == "missing required field(s): transaction_id, amount"


@pytest.mark.parametrize(
    ("amount", "stored"),
    [(10, Decimal("10.00")), (0.1, Decimal("0.10")), (2.675, Decimal("2.68")), (0, Decimal("0.00"))],
)
def test_message_amount_rounds_to_cent(amount: float, stored: Decimal) -> None:
    record, _ = _validate(_message(amount=amount))

    assert record["amount"] == stored


def test_message_timestamp_bounds_are_accepted() -> None:
    earliest, _ = _validate(_message(timestamp="1970-01-01T00:00:00+00:00"))
    latest, _ = _validate(_message(timestamp="2199-12-31T23:59:59.999999+00:00"))

    assert earliest["timestamp"] == datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert latest["timestamp"].year == 2199


def test_message_zulu_timestamp() -> None:
    record, _ = _validate(_message(timestamp="2026-05-01T10:00:00Z"))

    assert record["timestamp"] == datetime(2026, 5, 1, 10, 0, tzinfo=timezone.utc)


HOSTILE_VALUES = [
    None, True, 0, -1, 1e308, float("nan"), "", " ", "\u0000", "x" * 10_000, [], {}, [None],
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-02-30T00:00:00+00:00",
]


@pytest.mark.parametrize("field", MESSAGE_FIELDS)
def test_message_hostile_values_never_raise(field: str) -> None:
    for value in HOSTILE_VALUES:
        record, reason = validate_message(json.dumps(_message(**{field: value})).encode())

        assert (record is None) != (reason is None)
