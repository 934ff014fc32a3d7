"""CSV export of the fraud queue under the page's filters and sort order.

The rows stream from a server-side cursor in chunks, so memory keeps one
chunk of rows and the CSV text, never a whole query result. An export
stops at ``max_rows`` rows (:data:`MAX_EXPORT_ROWS` by default).

Spreadsheet programs run a cell that starts with ``=``, ``+``, ``-`` or
``@`` as a formula, and a transaction field such as ``device`` comes from
the producer's messages. Every text cell that starts with one of those, or
with a tab or carriage return, is written with a leading ``'`` (the
OWASP "CSV injection" guard), which spreadsheets show as text. Numbers are
written as numbers, so a negative latency stays a number.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Engine

from pipeline.fraud_queue import FraudFilters, queue_statement

__all__ = [
    "EXPORT_COLUMNS",
    "FORMULA_PREFIXES",
    "MAX_EXPORT_ROWS",
    "ExportResult",
    "csv_cell",
    "export_csv",
    "guard_formula",
    "write_csv",
    "write_rows",
]

MAX_EXPORT_ROWS = 100_000
CHUNK_ROWS = 5_000
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

EXPORT_COLUMNS = (
    "event_time",
    "transaction_id",
    "user_id",
    "first_name",
    "last_name",
    "amount",
    "fraud_score",
    "model_version",
    "source",
    "review_status",
    "fraud_pattern",
    "fraud_reasons",
    "device",
    "location",
    "transaction_location",
    "top_contributions",
    "ingested_at",
    "event_to_queue_seconds",
)


@dataclass(frozen=True)
class ExportResult:
    """Summary of a CSV written by :func:`write_csv`."""

    rows: int
    """Data rows written, without the header."""
    truncated: bool
    """True when more rows matched than the ``max_rows`` that were written."""


def guard_formula(value: str) -> str:
    """Prefix ``value`` with ``'`` when a spreadsheet would read it as a formula."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def csv_cell(value: Any) -> Any:
    """Convert one database value to a CSV cell.

    None becomes an empty cell (an unscored row has an empty fraud_score,
    never 0). Times are ISO 8601 with their UTC offset, a list of reasons is
    joined with ``;``, JSON values are compact JSON, and every text goes
    through :func:`guard_formula`.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return guard_formula(";".join(value))
    if isinstance(value, (list, tuple, dict)):
        return guard_formula(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    return guard_formula(str(value))


def _stream_rows(
    engine: Engine, filters: FraudFilters, sort: str, limit: int, chunk_rows: int
) -> Iterator[tuple]:
    statement, params = queue_statement(filters, sort, None, limit, EXPORT_COLUMNS)
    with engine.connect() as connection:
        # stream_results opens a server-side cursor, so PostgreSQL sends
        # chunk_rows rows at a time instead of the whole result.
        result = connection.execution_options(stream_results=True, max_row_buffer=chunk_rows).execute(
            statement, params
        )
        for chunk in result.partitions(chunk_rows):
            for row in chunk:
                yield tuple(row)[: len(EXPORT_COLUMNS)]


def write_rows(out: io.TextIOBase, rows: Iterable[tuple], max_rows: int) -> ExportResult:
    """Write the header and at most ``max_rows`` of ``rows`` (values in :data:`EXPORT_COLUMNS` order) as CSV."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    written = 0
    for row in rows:
        if written == max_rows:
            return ExportResult(written, truncated=True)
        writer.writerow([csv_cell(value) for value in row])
        written += 1
    return ExportResult(written, truncated=False)


def write_csv(
    engine: Engine,
    filters: FraudFilters,
    sort: str,
    out: io.TextIOBase,
    max_rows: int = MAX_EXPORT_ROWS,
    chunk_rows: int = CHUNK_ROWS,
) -> ExportResult:
    """Write the queue rows matching ``filters``, in the order ``sort``, as CSV to ``out``.

    The first line is the header, :data:`EXPORT_COLUMNS`. At most
    ``max_rows`` data rows are written. The query requests one more, so
    :attr:`ExportResult.truncated` is True when the export stopped at the row limit.

    Raises
    ------
    ValueError
        When ``max_rows`` or ``chunk_rows`` is below 1, or ``sort`` is unknown.
    sqlalchemy.exc.SQLAlchemyError
        When the database cannot be read.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows!r}.")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows!r}.")
    rows = _stream_rows(engine, filters, sort, max_rows + 1, chunk_rows)
    try:
        return write_rows(out, rows, max_rows)
    finally:
        # Returns the connection now, also when the cap stopped the writing early.
        rows.close()


def export_csv(
    engine: Engine, filters: FraudFilters, sort: str, max_rows: int = MAX_EXPORT_ROWS
) -> tuple[bytes, ExportResult]:
    """Return the CSV of :func:`write_csv` as UTF-8 bytes with a byte order mark.

    The byte order mark makes Excel read the file as UTF-8, so names such
    as "Müller" survive. Python reads it with ``encoding="utf-8-sig"``.
    """
    buffer = io.StringIO()
    result = write_csv(engine, filters, sort, buffer, max_rows)
    return buffer.getvalue().encode("utf-8-sig"), result
