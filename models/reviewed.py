"""Precision of a model version on the alerts that analysts reviewed.

Live scoring writes each transaction that a model flags to
``shop.fraud_transactions`` with ``model_flagged`` and ``model_version``,
and an analyst's latest decision on it is in ``review_status``
(``sql/004_live_scoring.sql``). The precision on reviewed alerts is

    confirmed_fraud / (confirmed_fraud + false_positive)

over that version's flagged rows with one of these two decisive statuses.
Rows that are ``unreviewed`` or ``needs_info`` are left out, and so are
rows that only the producer's rules flagged. Unlike the evaluation metrics,
which compare scores with the simulator's ``is_fraud`` labels, this figure
uses the analysts' judgement.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from models.data import connect, first_line
from models.params import TrainingError
from pipeline.settings import redact_url

__all__ = ["REVIEWED_KEYS", "reviewed_precision", "reviewed_precision_from_counts"]

# The keys that reviewed_precision returns, also used in the JSON output of
# python -m models.evaluate.
REVIEWED_KEYS = ("reviewed_precision", "reviewed_confirmed_fraud", "reviewed_false_positive", "reviewed_note")

REVIEW_COUNTS = text(
    """
    SELECT count(*) FILTER (WHERE review_status = 'confirmed_fraud'),
           count(*) FILTER (WHERE review_status = 'false_positive')
    FROM shop.fraud_transactions
    WHERE model_flagged
      AND model_version = :version
      AND review_status IN ('confirmed_fraud', 'false_positive')
    """
)


def reviewed_precision_from_counts(version: int, confirmed_fraud: int, false_positive: int) -> dict[str, Any]:
    """Compute the precision on reviewed alerts from the two review counts.

    Returns
    -------
    dict
        ``reviewed_precision`` (None without decisive reviews),
        ``reviewed_confirmed_fraud``, ``reviewed_false_positive`` and
        ``reviewed_note``, a sentence that explains a None precision, else None.
    """
    decisive = confirmed_fraud + false_positive
    if decisive == 0:
        return {
            "reviewed_precision": None,
            "reviewed_confirmed_fraud": 0,
            "reviewed_false_positive": 0,
            "reviewed_note": (
                f"No alert of model version {version} has been reviewed as confirmed fraud or "
                "false positive yet, so its precision on reviewed alerts is not defined. "
                "Review its alerts on the Fraud queue page."
            ),
        }
    return {
        "reviewed_precision": confirmed_fraud / decisive,
        "reviewed_confirmed_fraud": int(confirmed_fraud),
        "reviewed_false_positive": int(false_positive),
        "reviewed_note": None,
    }


def reviewed_precision(database_url: str, version: int) -> dict[str, Any]:
    """Read the review counts of a model version's alerts and compute its precision on them.

    Returns
    -------
    dict
        The output of :func:`reviewed_precision_from_counts`.

    Raises
    ------
    TrainingError
        When the database cannot be reached, or its fraud table lacks the
        review columns because a migration has not run.
    """
    connection = connect(database_url)
    try:
        confirmed_fraud, false_positive = connection.execute(REVIEW_COUNTS, {"version": version}).one()
    except DBAPIError as exc:
        # SQLSTATE 3F000 and 42P01: no schema or table. 42703 (undefined_column):
        # the table predates the review columns of sql/004_live_scoring.sql.
        if getattr(exc.orig, "pgcode", None) in ("3F000", "42P01", "42703"):
            raise TrainingError(
                f"shop.fraud_transactions in {redact_url(database_url)} does not exist or lacks "
                "the review columns. Run `python -m pipeline.migrate` to add them."
            ) from exc
        raise TrainingError(
            f"Reading the reviews of model version {version} from {redact_url(database_url)} "
            f"failed: {first_line(exc)}."
        ) from exc
    finally:
        connection.close()
        connection.engine.dispose()
    return reviewed_precision_from_counts(version, int(confirmed_fraud), int(false_positive))
