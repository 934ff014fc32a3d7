"""SQL of the fraud queue's detail panel: one transaction, the user's history and similar transactions.

Every query reads a bounded number of rows through an index, whatever the
table size, and values travel only as bound parameters.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import TextClause

from pipeline.queries import MAX_PAGE_SIZE, assume_utc, convert_display_types, select_list

__all__ = [
    "DETAIL_COLUMNS",
    "HISTORY_COLUMNS",
    "MAX_SIMILAR_PER_SIDE",
    "MAX_SIMILAR_WINDOW",
    "SIMILAR_COLUMNS",
    "fetch_queue_transaction",
    "fetch_similar_transactions",
    "fetch_user_history",
    "similar_statement",
]

DETAIL_COLUMNS = (
    "transaction_id",
    "user_id",
    "event_time",
    "first_name",
    "last_name",
    "location",
    "transaction_location",
    "amount",
    "device",
    "is_fraud",
    "fraud_reasons",
    "fraud_pattern",
    "rule_flagged",
    "model_flagged",
    "source",
    "fraud_score",
    "model_version",
    "top_contributions",
    "review_status",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "ingested_at",
    "event_to_queue_seconds",
)


def fetch_queue_transaction(engine: Engine, transaction_id: str) -> dict[str, Any] | None:
    """Return every column of one queue row as a dict, or None when it is not in the queue.

    The key ``in_ledger`` is True once the transactions consumer has stored
    the row. The frauds consumer often queues a labelled row before that.
    """
    sql = text(
        f"SELECT {select_list(DETAIL_COLUMNS)}, EXISTS ("
        "SELECT 1 FROM shop.transactions t WHERE t.transaction_id = shop.fraud_transactions.transaction_id"
        ") AS in_ledger FROM shop.fraud_transactions"
        " WHERE transaction_id = :transaction_id"
    )
    with engine.connect() as connection:
        row = connection.execute(sql, {"transaction_id": transaction_id}).mappings().first()
    return None if row is None else dict(row)


HISTORY_COLUMNS = (
    "event_time",
    "transaction_id",
    "amount",
    "device",
    "transaction_location",
    "is_fraud",
    "fraud_pattern",
    "fraud_score",
    "model_version",
)

# The user's newest transactions up to the given time, and the first ones
# after it, from the ledger. Both halves read the (user_id, event_time)
# index and stop at their LIMIT.
_HISTORY_SQL = f"""
SELECT {", ".join(HISTORY_COLUMNS)} FROM (
    (SELECT {", ".join(HISTORY_COLUMNS)} FROM shop.transactions
     WHERE user_id = :user_id AND event_time <= :event_time
     ORDER BY event_time DESC LIMIT :before)
    UNION ALL
    (SELECT {", ".join(HISTORY_COLUMNS)} FROM shop.transactions
     WHERE user_id = :user_id AND event_time > :event_time
     ORDER BY event_time ASC LIMIT :after)
) AS history
ORDER BY event_time DESC, transaction_id DESC
"""


def fetch_user_history(
    engine: Engine, user_id: str, event_time: datetime, before: int = 50, after: int = 10
) -> pd.DataFrame:
    """Return a user's transactions around ``event_time`` from ``shop.transactions``, newest first.

    At most ``before`` transactions at or before ``event_time`` (the
    transaction itself included) and ``after`` transactions after it.

    Raises
    ------
    ValueError
        When ``before`` is outside 1 to :data:`MAX_PAGE_SIZE` or ``after``
        outside 0 to :data:`MAX_PAGE_SIZE`.
    """
    if not 1 <= before <= MAX_PAGE_SIZE:
        raise ValueError(f"before must be from 1 to {MAX_PAGE_SIZE}, got {before!r}.")
    if not 0 <= after <= MAX_PAGE_SIZE:
        raise ValueError(f"after must be from 0 to {MAX_PAGE_SIZE}, got {after!r}.")
    params = {"user_id": user_id, "event_time": assume_utc(event_time), "before": before, "after": after}
    with engine.connect() as connection:
        rows = connection.execute(text(_HISTORY_SQL), params).all()
    frame = pd.DataFrame([tuple(row) for row in rows], columns=list(HISTORY_COLUMNS))
    convert_display_types(frame)
    return frame


MAX_SIMILAR_WINDOW = timedelta(days=7)
MAX_SIMILAR_PER_SIDE = 50
SIMILAR_COLUMNS = (
    "event_time",
    "transaction_id",
    "user_id",
    "amount",
    "fraud_score",
    "source",
    "review_status",
    "fraud_pattern",
    "device",
    "transaction_location",
)

# One branch per (criterion, side of the transaction in time). Each branch
# reads one index in event_time order and stops at its LIMIT, so the query
# returns at most 4 * per_side rows whatever the table size. Rows of the
# same user match the first criterion only.
_SIMILAR_BRANCH = """
    (SELECT {columns}, '{match}' AS match FROM shop.fraud_transactions
     WHERE {criterion} AND transaction_id <> :transaction_id
       AND event_time {side} ORDER BY event_time {direction} LIMIT :per_side)
"""
_SIMILAR_CRITERIA = (
    ("same user", "user_id = :user_id"),
    (
        "same device and country",
        "device = :device AND transaction_location = :location AND user_id <> :user_id",
    ),
)
_SIMILAR_SIDES = (
    ("<= :event_time AND event_time >= :window_start", "DESC"),
    ("> :event_time AND event_time <= :window_end", "ASC"),
)


def similar_statement(
    target: dict[str, Any],
    window: timedelta = timedelta(hours=24),
    per_side: int = 10,
) -> tuple[TextClause, dict[str, Any]]:
    """Build the query of queue rows similar to ``target``, nearest in time first.

    A row is similar when its ``event_time`` is within ``window`` of the
    target's and it has the target's ``user_id``, or both its ``device``
    and its ``transaction_location``. A device alone is not enough, since
    the simulator's devices are ten common models shared by many users.
    Each criterion returns at most ``per_side`` rows before the target and
    ``per_side`` after it.

    Parameters
    ----------
    target
        A queue row with ``transaction_id``, ``user_id``, ``device``,
        ``transaction_location`` and ``event_time``.

    Raises
    ------
    ValueError
        When ``window`` is not positive or longer than
        :data:`MAX_SIMILAR_WINDOW`, or ``per_side`` is outside 1 to
        :data:`MAX_SIMILAR_PER_SIDE`.
    """
    if not timedelta(0) < window <= MAX_SIMILAR_WINDOW:
        raise ValueError(
            f"The similarity window must be longer than 0 and at most {MAX_SIMILAR_WINDOW}, got {window}."
        )
    if isinstance(per_side, bool) or not isinstance(per_side, int) or not 1 <= per_side <= MAX_SIMILAR_PER_SIDE:
        raise ValueError(f"per_side must be from 1 to {MAX_SIMILAR_PER_SIDE}, got {per_side!r}.")

    columns = ", ".join(SIMILAR_COLUMNS)
    branches = [
        _SIMILAR_BRANCH.format(columns=columns, match=match, criterion=criterion, side=side, direction=direction)
        for match, criterion in _SIMILAR_CRITERIA
        for side, direction in _SIMILAR_SIDES
    ]
    sql = (
        f"SELECT {columns}, match FROM ({' UNION ALL '.join(branches)}) AS similar_rows"
        " ORDER BY abs(EXTRACT(EPOCH FROM (event_time - :event_time))), transaction_id"
    )
    event_time = assume_utc(target["event_time"])
    params = {
        "transaction_id": target["transaction_id"],
        "user_id": target["user_id"],
        "device": target["device"],
        "location": target["transaction_location"],
        "event_time": event_time,
        "window_start": _shift(event_time, -window),
        "window_end": _shift(event_time, window),
        "per_side": per_side,
    }
    return text(sql), params


def _shift(moment: datetime, delta: timedelta) -> datetime:
    """Return ``moment + delta``, held at the bounds of datetime for rows stored near year 1 or 9999."""
    try:
        return moment + delta
    except OverflowError:
        bound = datetime.max if delta > timedelta(0) else datetime.min
        return bound.replace(tzinfo=moment.tzinfo)


def fetch_similar_transactions(
    engine: Engine, target: dict[str, Any], window: timedelta = timedelta(hours=24), per_side: int = 10
) -> pd.DataFrame:
    """Return the queue rows similar to ``target``, as :func:`similar_statement` defines them."""
    statement, params = similar_statement(target, window, per_side)
    with engine.connect() as connection:
        rows = connection.execute(statement, params).all()
    frame = pd.DataFrame([tuple(row) for row in rows], columns=[*SIMILAR_COLUMNS, "match"])
    convert_display_types(frame)
    return frame
