"""The transaction message: its fields and the validation every consumer applies.

A message is one JSON object per Kafka record, keyed by ``user_id``. Every
field of :data:`MESSAGE_FIELDS` is required. Consumers ignore extra fields,
so that a newer producer does not break an older consumer.

:data:`OPTIONAL_FIELDS` may be missing, because producers older than the
field do not write it:

``fraud_pattern``
    The fraud pattern that made a fraudulent message, such as
    ``card_testing``. When present it must be null or a non-empty string of
    at most :data:`MAX_FRAUD_PATTERN_CHARS` characters, and it must be null
    when ``is_fraud`` is 0. Missing and null are stored as NULL. A message
    with ``is_fraud = 1`` and no pattern is valid, as older producers write
    it. Any name is accepted, not only the patterns of
    :mod:`pipeline.simulator`, so a newer producer may add patterns.

:func:`validate_message` is pure. It returns the typed record, or the reason
the record belongs in ``shop.rejected_messages``: a record is never stored
with a null or zero in place of a value it lacked.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

__all__ = [
    "MAX_AMOUNT",
    "MAX_FRAUD_PATTERN_CHARS",
    "MESSAGE_FIELDS",
    "OPTIONAL_FIELDS",
    "parse_timestamp",
    "validate_message",
]

MESSAGE_FIELDS = (
    "user_id",
    "transaction_id",
    "timestamp",
    "first_name",
    "last_name",
    "location",
    "transaction_location",
    "amount",
    "device",
    "is_fraud",
    "fraud_reasons",
)

OPTIONAL_FIELDS = ("fraud_pattern",)

TEXT_FIELDS = (
    "user_id",
    "transaction_id",
    "first_name",
    "last_name",
    "location",
    "transaction_location",
    "device",
)

# shop.transactions.amount is numeric(12, 2).
MAX_AMOUNT = Decimal("9999999999.99")
CENT = Decimal("0.01")
# Accepted event times: a card transaction from before 1970 or after 2200 is
# a producer bug. The bounds also keep every time, and a day on either side
# of it, inside pandas' nanosecond range (1677 to 2262), which scoring uses.
EARLIEST_EVENT_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST_EVENT_TIME = datetime(2200, 1, 1, tzinfo=timezone.utc)
MAX_REASON_VALUE_CHARS = 60
MAX_FRAUD_PATTERN_CHARS = 64


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > MAX_REASON_VALUE_CHARS:
        text = text[:MAX_REASON_VALUE_CHARS] + "..."
    return text


def parse_timestamp(value: str) -> datetime:
    """Parse an ISO 8601 timestamp that carries a UTC offset; return it in UTC.

    Raises
    ------
    ValueError
        When ``value`` is not ISO 8601 or has no offset, since a local time
        without one names no single instant.
    """
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("no UTC offset")
    return parsed.astimezone(timezone.utc)


def validate_message(value: bytes | str | None) -> tuple[dict[str, Any] | None, str | None]:
    """Parse and check one Kafka record value.

    Parameters
    ----------
    value
        The record value as Kafka delivered it.

    Returns
    -------
    record, reason
        Exactly one is not None. ``record`` has every field of
        :data:`MESSAGE_FIELDS` and :data:`OPTIONAL_FIELDS`, with ``timestamp``
        as an aware UTC datetime, ``amount`` as a Decimal rounded to the
        cent, ``is_fraud`` as 0 or 1 and ``fraud_pattern`` as a string or None.
        ``reason`` is a sentence naming the field and the value received.
    """
    if value is None:
        return None, "the record has no value (a null Kafka payload)"
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, f"the record value is not valid UTF-8 (byte {exc.start})"
    try:
        payload = json.loads(value)
    except json.JSONDecodeError as exc:
        return None, f"the record value is not valid JSON: {exc.msg} at character {exc.pos}"
    if not isinstance(payload, dict):
        return None, f"the record value must be a JSON object, got {type(payload).__name__}"

    missing = [name for name in MESSAGE_FIELDS if name not in payload]
    if missing:
        return None, "missing required field(s): " + ", ".join(missing)

    record: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        field_value = payload[name]
        if not isinstance(field_value, str) or not field_value.strip():
            return None, f"field {name} must be a non-empty string, got {_show(field_value)}"
        record[name] = field_value

    raw_time = payload["timestamp"]
    if not isinstance(raw_time, str):
        return None, f"field timestamp must be an ISO 8601 string, got {_show(raw_time)}"
    try:
        record["timestamp"] = parse_timestamp(raw_time)
    except (ValueError, OverflowError):
        # OverflowError: a valid date whose offset moves it past year 1 or 9999.
        return None, (
            "field timestamp must be ISO 8601 with a UTC offset "
            f"(for example 2026-01-31T12:00:00+00:00), got {_show(raw_time)}"
        )
    if not EARLIEST_EVENT_TIME <= record["timestamp"] < LATEST_EVENT_TIME:
        return None, (
            f"field timestamp must be from {EARLIEST_EVENT_TIME.date()} to before "
            f"{LATEST_EVENT_TIME.date()} (UTC), got {_show(raw_time)}"
        )

    raw_amount = payload["amount"]
    if isinstance(raw_amount, bool) or not isinstance(raw_amount, (int, float)):
        return None, f"field amount must be a number, got {_show(raw_amount)}"
    if isinstance(raw_amount, float) and not math.isfinite(raw_amount):
        return None, f"field amount must be finite, got {raw_amount!r}"
    try:
        amount = Decimal(str(raw_amount)).quantize(CENT, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:
        return None, f"field amount is out of range, got {_show(raw_amount)}"
    if not Decimal(0) <= amount <= MAX_AMOUNT:
        return None, f"field amount must be from 0 to {MAX_AMOUNT}, got {_show(raw_amount)}"
    record["amount"] = amount

    raw_label = payload["is_fraud"]
    if raw_label in (0, 1) and not isinstance(raw_label, (bool, float)):
        record["is_fraud"] = int(raw_label)
    else:
        return None, f"field is_fraud must be 0 or 1, got {_show(raw_label)}"

    reasons = payload["fraud_reasons"]
    if not isinstance(reasons, list) or not all(isinstance(item, str) for item in reasons):
        return None, f"field fraud_reasons must be a list of strings, got {_show(reasons)}"
    record["fraud_reasons"] = reasons

    pattern = payload.get("fraud_pattern")
    if pattern is not None:
        if (
            not isinstance(pattern, str)
            or not pattern.strip()
            or len(pattern) > MAX_FRAUD_PATTERN_CHARS
        ):
            return None, (
                "field fraud_pattern must be null or a non-empty string of at most "
                f"{MAX_FRAUD_PATTERN_CHARS} characters, got {_show(pattern)}"
            )
        if record["is_fraud"] == 0:
            return None, (
                f"field fraud_pattern must be null when is_fraud is 0, got {_show(pattern)}"
            )
    record["fraud_pattern"] = pattern

    # PostgreSQL text cannot hold NUL, so such a record could never be stored.
    for name in (*TEXT_FIELDS, "fraud_reasons", "fraud_pattern"):
        values = record[name] if isinstance(record[name], list) else [record[name]]
        if any(isinstance(item, str) and "\x00" in item for item in values):
            return None, f"field {name} contains a NUL character (\\u0000), which cannot be stored"

    return record, None
