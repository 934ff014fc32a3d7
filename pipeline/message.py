"""The transaction message: its fields and the validation every consumer applies.

A message is one JSON object per Kafka record, keyed by ``user_id``. The
producer writes exactly :data:`MESSAGE_FIELDS`; consumers ignore extra fields
so that a newer producer does not break an older consumer.

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

__all__ = ["MESSAGE_FIELDS", "MAX_AMOUNT", "validate_message", "parse_timestamp"]

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
MAX_REASON_VALUE_CHARS = 60


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
        :data:`MESSAGE_FIELDS` with ``timestamp`` as an aware UTC datetime,
        ``amount`` as a Decimal rounded to the cent and ``is_fraud`` as 0 or 1.
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
    except ValueError:
        return None, (
            "field timestamp must be ISO 8601 with a UTC offset "
            f"(for example 2026-01-31T12:00:00+00:00), got {_show(raw_time)}"
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
    if raw_label in (0, 1) and not isinstance(raw_label, float):
        record["is_fraud"] = int(raw_label)
    else:
        return None, f"field is_fraud must be 0 or 1, got {_show(raw_label)}"

    reasons = payload["fraud_reasons"]
    if not isinstance(reasons, list) or not all(isinstance(item, str) for item in reasons):
        return None, f"field fraud_reasons must be a list of strings, got {_show(reasons)}"
    record["fraud_reasons"] = reasons

    return record, None
