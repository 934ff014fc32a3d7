"""Read transactions for the models from PostgreSQL or from a JSON-lines file.

Both sources return the same columns: those of :data:`TRANSACTION_COLUMNS`,
plus ``fraud_pattern`` when the source has it. The column is optional
because older databases and producers do not write it.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import URL, Connection, create_engine, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError

from models.params import TrainingError
from pipeline.settings import redact_url

__all__ = [
    "TRANSACTION_COLUMNS",
    "connect",
    "has_fraud_pattern",
    "load_transactions",
    "read_jsonl",
    "split_by_time",
]

logger = logging.getLogger(__name__)

TRANSACTION_COLUMNS = (
    "transaction_id",
    "user_id",
    "event_time",
    "amount",
    "device",
    "location",
    "transaction_location",
    "is_fraud",
)
OPTIONAL_COLUMN = "fraud_pattern"

FRAUD_PATTERN_QUERY = text(
    """
    SELECT EXISTS (
        SELECT 1 FROM information_schema.columns
        WHERE table_schema = 'shop' AND table_name = 'transactions'
          AND column_name = 'fraud_pattern'
    )
    """
)

# Newest rows of the window first. transaction_id breaks ties so that the
# same table, window and limit always select the same rows.
_SELECT = """
    SELECT {columns}
    FROM shop.transactions
    WHERE (CAST(:start AS timestamptz) IS NULL OR event_time >= CAST(:start AS timestamptz))
      AND (CAST(:end AS timestamptz) IS NULL OR event_time < CAST(:end AS timestamptz))
    ORDER BY event_time DESC, transaction_id DESC
    LIMIT :limit
"""


def engine_url(database_url: str) -> URL:
    """Return the SQLAlchemy URL of ``database_url`` with the psycopg2 driver.

    Raises
    ------
    TrainingError
        When the URL is invalid or not a PostgreSQL URL.
    """
    shown_url = redact_url(database_url)
    try:
        url = make_url(database_url)
    except (ArgumentError, ValueError) as exc:
        raise TrainingError(
            f"DATABASE_URL {shown_url!r} is invalid: {exc}. "
            "Use the form postgresql://user:password@host:port/database."
        ) from exc

    # SQLAlchemy 2.1 maps postgresql:// to psycopg 3, but this project
    # installs psycopg2. settings also accept the postgres:// spelling.
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg2")
    if url.drivername != "postgresql+psycopg2":
        raise TrainingError(f"DATABASE_URL must start with postgresql://, got {shown_url!r}.")
    return url


def first_line(exc: DBAPIError) -> str:
    """Return the first line of a database error, without the SQL that SQLAlchemy appends."""
    message = str(exc.orig if exc.orig is not None else exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def connect(database_url: str) -> Connection:
    """Open a connection; the caller closes it, which also disposes of the engine.

    Raises
    ------
    TrainingError
        When the URL is invalid or the database cannot be reached. The
        message shows the URL without its password.
    """
    engine = create_engine(engine_url(database_url), connect_args={"connect_timeout": 10})
    try:
        return engine.connect()
    except DBAPIError as exc:
        engine.dispose()
        raise TrainingError(
            f"Could not connect to the database at {redact_url(database_url)}: {first_line(exc)}. "
            "Check that PostgreSQL is running and that DATABASE_URL points at it."
        ) from exc


def has_fraud_pattern(connection: Connection) -> bool:
    """Return whether ``shop.transactions`` has the optional ``fraud_pattern`` column."""
    return bool(connection.execute(FRAUD_PATTERN_QUERY).scalar())


def load_transactions(
    database_url: str,
    limit: int,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
) -> pd.DataFrame:
    """Read the newest ``limit`` rows of ``shop.transactions`` in a time window.

    Parameters
    ----------
    database_url
        PostgreSQL URL.
    limit
        Maximum number of rows.
    start, end
        Optional window ``start <= event_time < end``; None leaves that side open.

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`TRANSACTION_COLUMNS`, plus ``fraud_pattern``
        when the table has it, newest first.

    Raises
    ------
    TrainingError
        When the URL is invalid, the database cannot be reached or the table
        does not exist. The message shows the URL without its password.
    """
    shown_url = redact_url(database_url)
    connection = connect(database_url)
    try:
        try:
            columns = list(TRANSACTION_COLUMNS)
            if has_fraud_pattern(connection):
                columns.append(OPTIONAL_COLUMN)
            # The column names are this module's constants, never user input.
            query = text(_SELECT.format(columns=", ".join(columns)))
            params = {"limit": limit, "start": start, "end": end}
            return pd.read_sql(query, connection, params=params)
        except DBAPIError as exc:
            # SQLSTATE 3F000 (invalid_schema_name) and 42P01 (undefined_table)
            # mean that the migration has not run on this database.
            if getattr(exc.orig, "pgcode", None) in ("3F000", "42P01"):
                raise TrainingError(
                    f"Table shop.transactions does not exist in {shown_url}. "
                    "Run `python -m pipeline.migrate` to create it, then train again."
                ) from exc
            raise TrainingError(f"Reading shop.transactions from {shown_url} failed: {first_line(exc)}.") from exc
    finally:
        connection.close()
        connection.engine.dispose()


def read_jsonl(path: str | os.PathLike[str], limit: int | None = None) -> pd.DataFrame:
    """Read producer messages, one JSON object per line, as transactions.

    The message field ``timestamp`` becomes ``event_time``. Blank lines are
    skipped. With ``limit``, only the newest ``limit`` rows by ``timestamp``
    are kept.

    Raises
    ------
    TrainingError
        When the file cannot be read, a line is not a JSON object, or a
        required field is missing; the message names the line.
    """
    records = []
    try:
        with Path(path).open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TrainingError(f"{path} line {number} is not valid JSON: {exc.msg}.") from exc
                if not isinstance(record, dict):
                    raise TrainingError(f"{path} line {number} must be a JSON object, got {line.strip()[:80]!r}.")
                records.append(record)
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingError(f"Could not read {path}: {exc}. Pass a readable JSON-lines file with --input.") from exc

    df = pd.DataFrame.from_records(records).rename(columns={"timestamp": "event_time"})
    required = [name for name in TRANSACTION_COLUMNS if name not in df.columns]
    if records and required:
        raise TrainingError(
            f"{path} lacks the field(s) {', '.join(required)}; each line must be one producer "
            "message with the fields timestamp, user_id, transaction_id, amount, device, "
            "location, transaction_location and is_fraud."
        )
    if df.empty:
        return pd.DataFrame(columns=list(TRANSACTION_COLUMNS))
    columns = list(TRANSACTION_COLUMNS) + ([OPTIONAL_COLUMN] if OPTIONAL_COLUMN in df.columns else [])
    df = df.loc[:, columns]
    if limit is not None and len(df) > limit:
        times = pd.to_datetime(df["event_time"], utc=True, errors="coerce", format="ISO8601")
        df = df.loc[times.sort_values(kind="stable").index[-limit:]]
    return df.reset_index(drop=True)


def split_by_time(df: pd.DataFrame, holdout: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split transactions into earlier training rows and the latest ``holdout`` share.

    Rows are ordered by ``event_time`` (ties by input order). The hold-out
    gets ``round(holdout * len(df))`` rows, at least one when ``holdout > 0``
    and at most all but one.

    Raises
    ------
    TrainingError
        When ``event_time`` is missing or invalid.
    """
    if "event_time" not in df.columns:
        raise TrainingError("The transactions lack the column event_time, which the time-based hold-out needs.")
    times = pd.to_datetime(df["event_time"], utc=True, errors="coerce", format="ISO8601")
    if times.isna().any():
        bad = df["event_time"][times.isna()].iloc[0]
        raise TrainingError(f"Column event_time must contain ISO 8601 times, got {bad!r}.")
    ordered = df.assign(event_time=times).iloc[times.argsort(kind="stable")].reset_index(drop=True)
    if holdout <= 0:
        return ordered, ordered.iloc[:0]
    n_holdout = min(max(1, round(holdout * len(ordered))), len(ordered) - 1)
    cut = len(ordered) - n_holdout
    return ordered.iloc[:cut], ordered.iloc[cut:]


_TARGET = "SELECT event_time FROM shop.transactions WHERE transaction_id = :transaction_id"

# The transaction and its user's earlier rows since ``since``, newest first,
# so history features see what happened after the training rows.
_USER_CONTEXT = """
    WITH target AS (
        SELECT user_id, event_time FROM shop.transactions WHERE transaction_id = :transaction_id
    )
    SELECT {columns}
    FROM shop.transactions t, target
    WHERE t.user_id = target.user_id
      AND t.event_time <= target.event_time
      AND (CAST(:since AS timestamptz) IS NULL OR t.event_time > CAST(:since AS timestamptz))
    ORDER BY t.event_time DESC, t.transaction_id DESC
    LIMIT :limit
"""


def load_user_context(
    database_url: str, transaction_id: str, since: str | None, limit: int = 10_000
) -> pd.DataFrame:
    """Read a transaction and its user's earlier transactions after ``since``.

    ``since`` is the end of a model's training window, whose user history
    the model already keeps, or None to read the user's newest ``limit``
    transactions up to this one.

    Raises
    ------
    TrainingError
        When the transaction does not exist, is not after ``since``, or the
        database cannot be read.
    """
    connection = connect(database_url)
    try:
        event_time = connection.execute(text(_TARGET), {"transaction_id": transaction_id}).scalar()
        if event_time is None:
            raise TrainingError(
                f"Transaction {transaction_id!r} was not found in shop.transactions. "
                "Check the id on the Fraud queue page."
            )
        if since is not None and pd.Timestamp(event_time) <= _utc(since):
            raise TrainingError(
                f"Transaction {transaction_id!r} at {pd.Timestamp(event_time).isoformat()} is in the "
                f"training window of the model, which ends at {_utc(since).isoformat()}. The model's "
                "saved user history already contains it, so its history features cannot be rebuilt. "
                f"Explain a transaction after {_utc(since).isoformat()}, or use a version trained before it."
            )
        columns = [f"t.{name}" for name in TRANSACTION_COLUMNS]
        if has_fraud_pattern(connection):
            columns.append(f"t.{OPTIONAL_COLUMN}")
        query = text(_USER_CONTEXT.format(columns=", ".join(columns)))
        params = {"transaction_id": transaction_id, "since": since, "limit": limit}
        return pd.read_sql(query, connection, params=params)
    except DBAPIError as exc:
        raise TrainingError(f"Reading transaction {transaction_id!r} failed: {first_line(exc)}.") from exc
    finally:
        connection.close()
        connection.engine.dispose()


def _utc(value: str | datetime) -> pd.Timestamp:
    timestamp = pd.Timestamp(value)
    return timestamp.tz_localize("UTC") if timestamp.tzinfo is None else timestamp.tz_convert("UTC")
