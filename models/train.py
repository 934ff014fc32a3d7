"""Train an Isolation Forest on ``shop.transactions`` and save it as a new model file.

Usage::

    python -m models.train [--n-estimators 100] [--contamination 0.1|auto]
        [--random-state 42] [--max-samples auto|INT|FLOAT] [--limit ROWS]
        [--output-dir DIR]

The last line the command writes to stdout is one JSON object with the keys
``model_path``, ``rows``, ``share_flagged``, ``precision``, ``recall``,
``roc_auc`` and ``notes``. Logs go to stderr. Invalid parameters or
settings, a missing or empty table and an unreachable database end the
command with exit status 2 and a message on stderr that names the problem
and the fix, without a traceback.

The ``fraud_score`` convention, the ``threshold`` and the content and name
of the model file are defined in :mod:`models.artifact`, which also loads
model files and scores transactions without this training code.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sqlalchemy import URL, create_engine, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError

from models.artifact import FORMAT_VERSION, save_artifact
from models.features import FEATURE_NAMES, FeatureState, build_features
from pipeline.settings import SettingsError, get_settings, redact_url

__all__ = [
    "TrainingError",
    "TrainingParams",
    "fit_and_evaluate",
    "load_transactions",
    "train_model",
    "main",
]

logger = logging.getLogger(__name__)

LABEL_COLUMN = "is_fraud"

# Upper bounds that keep one request from the Model page from running for
# hours or filling memory, because every row read becomes a pandas row.
MAX_N_ESTIMATORS = 10_000
MAX_LIMIT = 10_000_000
MAX_RANDOM_STATE = 2**32 - 1

NO_ROWS_MESSAGE = (
    "shop.transactions has no rows yet. "
    "Start the producer and the transactions consumer, then train again."
)

# Newest rows first. transaction_id breaks ties so that the same table and
# limit always select the same rows.
TRANSACTIONS_QUERY = text(
    """
    SELECT transaction_id, event_time, amount, device, location,
           transaction_location, is_fraud
    FROM shop.transactions
    ORDER BY event_time DESC, transaction_id DESC
    LIMIT :limit
    """
)


class TrainingError(ValueError):
    """Error raised when training cannot run, with the cause and the next step in its message."""


@dataclasses.dataclass(frozen=True)
class TrainingParams:
    """Validated training parameters.

    Parameters
    ----------
    n_estimators
        Number of trees, from 1 to :data:`MAX_N_ESTIMATORS`.
    contamination
        ``"auto"`` or the expected share of fraud, in (0, 0.5]. It sets the
        ``threshold`` that decides which transactions are flagged.
    random_state
        Seed of the estimator, from 0 to 2**32 - 1, or None for a random one.
    max_samples
        Rows drawn for each tree: ``"auto"`` (min(256, rows)), an int of at
        least 1, or a float in (0, 1] as a share of the rows.
    limit
        Number of newest transactions to read, from 1 to :data:`MAX_LIMIT`.

    Raises
    ------
    TrainingError
        When a value is invalid. The message names the parameter, the allowed
        values and the value received.
    """

    n_estimators: int = 100
    contamination: float | str = 0.1
    random_state: int | None = 42
    max_samples: int | float | str = "auto"
    limit: int = 200_000

    def __post_init__(self) -> None:
        _check_int("n_estimators", self.n_estimators, 1, MAX_N_ESTIMATORS)
        _check_int("limit", self.limit, 1, MAX_LIMIT)
        if self.random_state is not None:
            _check_int("random_state", self.random_state, 0, MAX_RANDOM_STATE)

        contamination = self.contamination
        if contamination != "auto" and not (
            _is_real(contamination) and 0.0 < float(contamination) <= 0.5
        ):
            raise TrainingError(
                f"contamination must be 'auto' or a number in (0, 0.5], got {contamination!r}."
            )

        max_samples = self.max_samples
        valid_max_samples = (
            max_samples == "auto"
            or (_is_int(max_samples) and max_samples >= 1)
            or (_is_real(max_samples) and not _is_int(max_samples) and 0.0 < max_samples <= 1.0)
        )
        if not valid_max_samples:
            raise TrainingError(
                "max_samples must be 'auto', a whole number of at least 1 or a number "
                f"in (0, 1], got {max_samples!r}."
            )

    def estimator_params(self) -> dict[str, Any]:
        """Return the keyword arguments of :class:`~sklearn.ensemble.IsolationForest`."""
        return {
            "n_estimators": self.n_estimators,
            "contamination": self.contamination,
            "random_state": self.random_state,
            "max_samples": self.max_samples,
        }


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and bool(np.isfinite(value))


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if not _is_int(value) or not low <= value <= high:
        raise TrainingError(f"{name} must be a whole number from {low} to {high}, got {value!r}.")


def _as_params(params: TrainingParams | Mapping[str, Any]) -> TrainingParams:
    if isinstance(params, TrainingParams):
        return params
    known = [item.name for item in dataclasses.fields(TrainingParams)]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise TrainingError(
            f"Unknown training parameter(s) {', '.join(unknown)}. "
            f"Known ones are {', '.join(known)}."
        )
    return TrainingParams(**params)


def _labels(df: pd.DataFrame) -> np.ndarray:
    if LABEL_COLUMN not in df.columns:
        raise TrainingError(
            f"The transactions are missing the column {LABEL_COLUMN}, which the "
            "evaluation compares the flagged transactions with."
        )
    labels = pd.to_numeric(df[LABEL_COLUMN], errors="coerce")
    invalid = ~labels.isin([0, 1])
    if invalid.any():
        bad = df[LABEL_COLUMN][invalid].iloc[0]
        if isinstance(bad, np.generic):
            bad = bad.item()
        raise TrainingError(
            f"Column {LABEL_COLUMN} must contain only 0 and 1, got {bad!r} "
            f"in {int(invalid.sum())} row(s)."
        )
    return labels.to_numpy(dtype=np.int64)


def _evaluate(labels: np.ndarray, scores: np.ndarray, flagged: np.ndarray) -> dict[str, Any]:
    """Compare the flagged transactions and the fraud scores with the labels.

    A metric that is undefined for these labels is None, with the reason in ``notes``.
    """
    notes: list[str] = []
    true_positives = int(np.sum(flagged & (labels == 1)))
    n_flagged = int(flagged.sum())
    n_fraud = int(labels.sum())

    precision = None
    if n_flagged:
        precision = true_positives / n_flagged
    else:
        notes.append("precision is null because the model flagged no transactions.")

    recall = None
    if n_fraud:
        recall = true_positives / n_fraud
    else:
        notes.append("recall is null because no transaction has is_fraud = 1.")

    roc_auc = None
    if 0 < n_fraud < len(labels):
        roc_auc = float(roc_auc_score(labels, scores))
    else:
        notes.append(
            f"roc_auc is null because every transaction has is_fraud = {int(labels[0])}, "
            "and it needs both labels."
        )

    return {
        "rows": int(len(labels)),
        "share_flagged": n_flagged / len(labels),
        "precision": precision,
        "recall": recall,
        "roc_auc": roc_auc,
        "notes": notes,
    }


def fit_and_evaluate(
    df: pd.DataFrame, params: TrainingParams | Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit the features and an Isolation Forest on transactions, then evaluate them.

    Parameters
    ----------
    df
        Transactions with the columns of :data:`models.features.INPUT_COLUMNS`
        and ``is_fraud``. The labels are used only for the metrics, never for
        fitting.
    params
        A :class:`TrainingParams` or a mapping of its fields. ``limit`` is
        only recorded, since ``df`` is already selected.

    Returns
    -------
    artifact : dict
        The content of a model file, with the keys of
        :data:`models.artifact.ARTIFACT_KEYS`.
    metrics : dict
        ``rows``, ``share_flagged``, ``precision``, ``recall``, ``roc_auc``
        and ``notes``. Precision and recall compare the flagged transactions
        with ``is_fraud``. ``roc_auc`` ranks by ``fraud_score``. A metric that
        the labels leave undefined is None, with a sentence in ``notes``.

    Raises
    ------
    TrainingError
        When ``df`` is empty, lacks a column or has invalid values, or when a
        parameter is invalid.

    Notes
    -----
    The metrics are computed on the training rows themselves, which is
    possible because the labels play no part in fitting. They are not a
    held-out estimate and may be higher than on new transactions.
    """
    params = _as_params(params)
    if len(df) == 0:
        raise TrainingError("Cannot train on 0 transactions. Pass at least one row.")

    labels = _labels(df)
    try:
        state = FeatureState.fit(df)
        features = build_features(df, state)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc

    estimator = IsolationForest(**params.estimator_params())
    estimator.fit(features)
    # fraud_score and threshold follow the score convention of models.artifact.
    scores = -estimator.score_samples(features)
    flagged = estimator.predict(features) == -1
    metrics = _evaluate(labels, scores, flagged)

    artifact = {
        "estimator": estimator,
        "feature_state": state.to_dict(),
        "feature_names": list(FEATURE_NAMES),
        "threshold": float(-estimator.offset_),
        "params": dataclasses.asdict(params),
        "metrics": {**metrics, "notes": list(metrics["notes"])},
        "rows": metrics["rows"],
        "sklearn_version": sklearn.__version__,
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "format_version": FORMAT_VERSION,
    }
    return artifact, metrics


def _write_error(folder: Path, exc: OSError) -> TrainingError:
    return TrainingError(
        f"Could not write the model file to {folder}: {exc.strerror or exc}. "
        "Pass a writable folder with --output-dir, or set WORKBENCH_STATE_DIR to one."
    )


def _engine_url(database_url: str) -> URL:
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
        raise TrainingError(
            f"DATABASE_URL must start with postgresql://, got {shown_url!r}."
        )
    return url


def load_transactions(database_url: str, limit: int) -> pd.DataFrame:
    """Read the newest ``limit`` rows of ``shop.transactions``.

    Raises
    ------
    TrainingError
        When the URL is invalid, the database cannot be reached or the table
        does not exist. The message shows the URL without its password.
    """
    shown_url = redact_url(database_url)
    engine = create_engine(_engine_url(database_url), connect_args={"connect_timeout": 10})

    try:
        try:
            connection = engine.connect()
        except DBAPIError as exc:
            raise TrainingError(
                f"Could not connect to the database at {shown_url}: {_first_line(exc)}. "
                "Check that PostgreSQL is running and that DATABASE_URL points at it."
            ) from exc

        with connection:
            try:
                return pd.read_sql(TRANSACTIONS_QUERY, connection, params={"limit": limit})
            except DBAPIError as exc:
                # SQLSTATE 3F000 (invalid_schema_name) and 42P01 (undefined_table)
                # mean that the migration has not run on this database.
                if getattr(exc.orig, "pgcode", None) in ("3F000", "42P01"):
                    raise TrainingError(
                        f"Table shop.transactions does not exist in {shown_url}. "
                        "Run `python -m pipeline.migrate` to create it, then train again."
                    ) from exc
                raise TrainingError(
                    f"Reading shop.transactions from {shown_url} failed: {_first_line(exc)}."
                ) from exc
    finally:
        engine.dispose()


def _first_line(exc: DBAPIError) -> str:
    message = str(exc.orig if exc.orig is not None else exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def train_model(
    database_url: str,
    *,
    n_estimators: int = 100,
    contamination: float | str = 0.1,
    random_state: int | None = 42,
    max_samples: int | float | str = "auto",
    limit: int = 200_000,
    output_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train a model on the newest transactions and save it as a new file.

    Parameters are those of :class:`TrainingParams`. ``output_dir`` defaults
    to ``models_dir`` of :func:`pipeline.settings.get_settings`.

    Returns
    -------
    dict
        ``model_path`` (str) and the metrics of :func:`fit_and_evaluate`.

    Raises
    ------
    TrainingError
        When a parameter is invalid, the table is empty or missing, or the
        database cannot be reached.
    """
    params = TrainingParams(
        n_estimators=n_estimators,
        contamination=contamination,
        random_state=random_state,
        max_samples=max_samples,
        limit=limit,
    )
    folder = Path(output_dir) if output_dir is not None else get_settings().models_dir

    logger.info("Training started: %s", params)
    df = load_transactions(database_url, params.limit)
    if len(df) == 0:
        raise TrainingError(NO_ROWS_MESSAGE)
    logger.info("Read %d transactions from %s", len(df), redact_url(database_url))

    artifact, metrics = fit_and_evaluate(df, params)
    for note in metrics["notes"]:
        logger.warning("%s", note)
    try:
        path = save_artifact(artifact, folder)
    except OSError as exc:
        raise _write_error(folder, exc) from exc
    logger.info(
        "Training finished: model %s, %d rows, share_flagged %.4f, roc_auc %s",
        path,
        metrics["rows"],
        metrics["share_flagged"],
        metrics["roc_auc"],
    )
    return {"model_path": str(path), **metrics}


def _parse_contamination(value: str) -> float | str:
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be 'auto' or a number in (0, 0.5], got {value!r}"
        ) from None


def _parse_max_samples(value: str) -> int | float | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be 'auto', a whole number or a number in (0, 1], got {value!r}"
        ) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models.train",
        description=(
            "Train an Isolation Forest on the newest rows of shop.transactions, save it "
            "as a new model file and print its metrics as one JSON line."
        ),
    )
    parser.add_argument(
        "--n-estimators", type=int, default=100, help="number of trees (default: 100)"
    )
    parser.add_argument(
        "--contamination",
        type=_parse_contamination,
        default=0.1,
        help="expected share of fraud in (0, 0.5], or 'auto' (default: 0.1)",
    )
    parser.add_argument(
        "--random-state", type=int, default=42, help="seed of the estimator (default: 42)"
    )
    parser.add_argument(
        "--max-samples",
        type=_parse_max_samples,
        default="auto",
        help="rows per tree: 'auto', a count, or a share in (0, 1] (default: auto)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=200_000,
        help="number of newest transactions to train on (default: 200000)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="folder for the new model file (default: models/ under WORKBENCH_STATE_DIR)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, train a model and return the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.captureWarnings(True)

    try:
        settings = get_settings()
        result = train_model(
            settings.database_url,
            n_estimators=args.n_estimators,
            contamination=args.contamination,
            random_state=args.random_state,
            max_samples=args.max_samples,
            limit=args.limit,
            output_dir=args.output_dir if args.output_dir is not None else settings.models_dir,
        )
    except (TrainingError, SettingsError) as exc:
        print(exc, file=sys.stderr)
        return 2

    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
