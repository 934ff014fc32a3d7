"""Train an Isolation Forest on transactions, evaluate it on a time hold-out and save it.

Usage::

    python -m models.train [--input FILE] [--start ISO] [--end ISO] [--limit ROWS]
        [--feature-set NAME] [--novelty] [--holdout 0.2]
        [--n-estimators 100] [--max-samples auto|INT|FLOAT]
        [--contamination auto|FLOAT] [--max-features INT|FLOAT] [--bootstrap]
        [--random-state 42] [--output-dir DIR] [--no-register]

Transactions come from ``shop.transactions`` (the newest ``--limit`` rows in
the window) or, with ``--input``, from a JSON-lines file of producer
messages. The latest ``--holdout`` share of them in ``event_time`` is kept
out of fitting and the model is evaluated on it with
:func:`models.metrics.evaluate_scores`. The model is saved as a new file
and, unless ``--no-register``, stored in the model registry as a new version.

The last line the command writes to stdout is one JSON object with
``version`` (None when not registered), ``model_path``, the evaluation
metrics (``roc_auc``, ``pr_auc``, ``precision``, ``recall``, ``f1``,
``alerts_per_1000``, ``confusion_matrix``, ``recall_by_pattern``), and
``rows``, ``holdout_rows``, ``feature_set``, ``threshold``,
``training_window`` and ``notes``. Logs go to stderr. Invalid parameters,
no rows and an unreachable database end the command with exit status 2 and
a message on stderr that names the problem and the fix, without a traceback.

The ``fraud_score`` convention, the ``threshold`` and the model file are
defined in :mod:`models.artifact`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import IsolationForest

from models import data
from models.artifact import FORMAT_VERSION, QUANTILE_LEVELS, flag, save_artifact
from models.features import FEATURE_SETS, FeatureState, build_features
from models.metrics import evaluate_scores
from models.params import TrainingError, TrainingParams, as_params
from pipeline.settings import SettingsError, get_settings, redact_url

__all__ = ["TrainingError", "TrainingParams", "fit_and_evaluate", "fit_forest", "train_model", "main"]

logger = logging.getLogger(__name__)

LABEL_COLUMN = "is_fraud"

NO_ROWS_MESSAGE = (
    "No transactions to train on: shop.transactions has no rows in the requested window. "
    "Start the producer and the transactions consumer, or widen --start/--end, then train again."
)

# Progress callback: a share done in [0, 1] and a sentence for the user.
Progress = Callable[[float, str], None]

# Trees are grown in this many steps so that a long fit can report progress.
PROGRESS_STEPS = 10


def _no_progress(share: float, message: str) -> None:
    logger.debug("Training %.0f%%: %s", 100 * share, message)


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


def fit_forest(features: pd.DataFrame, params: TrainingParams, progress: Progress = _no_progress) -> IsolationForest:
    """Fit an Isolation Forest in :data:`PROGRESS_STEPS` steps, reporting progress after each.

    The trees are added with ``warm_start``, which draws the same tree seeds
    as one fit, and ``offset_`` is then set with scikit-learn's own rule
    (the ``contamination`` percentile of ``score_samples`` on the training
    rows). The result therefore equals ``IsolationForest(**params).fit(X)``.
    """
    estimator = IsolationForest(**{**params.estimator_params(), "contamination": "auto"}, warm_start=True)
    step = math.ceil(params.n_estimators / PROGRESS_STEPS)
    for n_trees in range(step, params.n_estimators + step, step):
        n_trees = min(n_trees, params.n_estimators)
        estimator.set_params(n_estimators=n_trees)
        estimator.fit(features)
        progress(0.2 + 0.7 * n_trees / params.n_estimators, f"Fitted {n_trees} of {params.n_estimators} trees")

    estimator.set_params(contamination=params.contamination, warm_start=False)
    if params.contamination != "auto":
        estimator.offset_ = np.percentile(estimator.score_samples(features), 100.0 * params.contamination)
    return estimator


def _window(times: pd.Series) -> dict[str, str] | None:
    if times.empty:
        return None
    times = pd.to_datetime(times, utc=True)
    return {"start": times.min().isoformat(), "end": times.max().isoformat()}


def fit_and_evaluate(
    df: pd.DataFrame,
    params: TrainingParams | Mapping[str, Any],
    progress: Progress = _no_progress,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit the features and an Isolation Forest, then evaluate on the time hold-out.

    Parameters
    ----------
    df
        Transactions with ``event_time``, ``is_fraud`` and the columns the
        feature set reads; ``fraud_pattern`` is optional. The labels are used
        only for evaluation and, with ``novelty``, to drop fraud from the
        training rows.
    params
        A :class:`TrainingParams` or a mapping of its fields. ``limit``,
        ``start`` and ``end`` are only recorded, since ``df`` is already
        selected.
    progress
        Called with the share done and a sentence as training advances.

    Returns
    -------
    artifact : dict
        The content of a model file, with the keys of
        :data:`models.artifact.ARTIFACT_KEYS`.
    metrics : dict
        The output of :func:`models.metrics.evaluate_scores` on the hold-out
        (on the training rows when ``holdout`` is 0, with a note), plus
        ``rows`` (training rows), ``holdout_rows``, ``share_flagged`` (on
        the training rows), ``feature_set`` and ``training_window``.

    Raises
    ------
    TrainingError
        When ``df`` is empty, lacks a column, has invalid values, leaves no
        training rows, or a parameter is invalid.
    """
    params = as_params(params)
    if len(df) == 0:
        raise TrainingError("Cannot train on 0 transactions. Pass at least one row.")
    _labels(df)
    progress(0.0, f"Splitting {len(df):,} transactions by time")
    train_df, holdout_df = data.split_by_time(df, params.holdout)
    notes: list[str] = []
    if params.novelty:
        train_df = train_df[_labels(train_df) == 0]
        if len(train_df) == 0:
            raise TrainingError("novelty keeps only is_fraud = 0 rows, and the training part has none.")
    if len(holdout_df) == 0:
        holdout_df = train_df
        notes.append("holdout is 0, so the metrics are measured on the training rows and describe fit only.")

    progress(0.05, f"Building the {params.feature_set} features")
    try:
        state = FeatureState.fit(train_df, params.feature_set)
        train_features = build_features(train_df, state.without_history())
        holdout_features = build_features(holdout_df, state)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc

    estimator = fit_forest(train_features, params, progress)
    threshold = float(-estimator.offset_)
    train_scores = -estimator.score_samples(train_features)
    progress(0.95, f"Evaluating on {len(holdout_df):,} held-out transactions")
    scores = -estimator.score_samples(holdout_features)
    patterns = holdout_df["fraud_pattern"] if "fraud_pattern" in holdout_df.columns else None
    evaluation = evaluate_scores(_labels(holdout_df), scores, threshold, patterns)
    metrics = {
        **evaluation,
        "rows": int(len(train_df)),
        "holdout_rows": int(len(holdout_df)) if params.holdout > 0 else 0,
        "share_flagged": float(flag(train_scores, threshold).mean()),
        "feature_set": params.feature_set,
        "training_window": _window(train_df["event_time"]),
        "notes": notes + evaluation["notes"],
    }

    artifact = {
        "estimator": estimator,
        "feature_state": state.to_dict(),
        "feature_set": params.feature_set,
        "feature_names": list(FEATURE_SETS[params.feature_set]),
        "threshold": threshold,
        "score_quantiles": np.quantile(train_scores, QUANTILE_LEVELS),
        "params": dataclasses.asdict(params),
        "metrics": metrics,
        "rows": metrics["rows"],
        "training_window": metrics["training_window"],
        "sklearn_version": sklearn.__version__,
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "format_version": FORMAT_VERSION,
    }
    progress(1.0, "Training finished")
    return artifact, metrics


def _write_error(folder: Path, exc: OSError) -> TrainingError:
    return TrainingError(
        f"Could not write the model file to {folder}: {exc.strerror or exc}. "
        "Pass a writable folder with --output-dir, or set WORKBENCH_STATE_DIR to one."
    )


def train_model(
    database_url: str | None,
    params: TrainingParams | Mapping[str, Any] | None = None,
    *,
    input_path: str | os.PathLike[str] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    register: bool = True,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Read transactions, train and evaluate a model, save it and register it.

    Parameters
    ----------
    database_url
        PostgreSQL URL to read from (unless ``input_path``) and to register in.
    params
        :class:`TrainingParams` or a mapping of its fields; defaults when None.
    input_path
        A JSON-lines file of producer messages to read instead of the database.
    output_dir
        Folder of the model file; ``models_dir`` of the settings when None.
    register
        Store the model in ``shop.model_versions`` as a new version.
    progress
        Called with the share done and a sentence as training advances.

    Returns
    -------
    dict
        ``version`` (None when not registered), ``model_path`` and the
        metrics of :func:`fit_and_evaluate`.

    Raises
    ------
    TrainingError
        When a parameter is invalid, there are no rows, or the file or
        database cannot be read or written.
    """
    params = as_params(params or {})
    folder = Path(output_dir) if output_dir is not None else get_settings().models_dir

    logger.info("Training started: %s", params)
    progress(0.0, "Reading transactions")
    if input_path is not None:
        df = data.read_jsonl(input_path, limit=params.limit)
        source = str(input_path)
    else:
        df = data.load_transactions(database_url, params.limit, params.start, params.end)
        source = redact_url(database_url)
    if len(df) == 0:
        raise TrainingError(NO_ROWS_MESSAGE)
    logger.info("Read %d transactions from %s", len(df), source)

    artifact, metrics = fit_and_evaluate(df, params, progress)
    for note in metrics["notes"]:
        logger.warning("%s", note)
    try:
        path = save_artifact(artifact, folder)
    except OSError as exc:
        raise _write_error(folder, exc) from exc

    version = None
    if register:
        from models import registry

        version = registry.register_model(database_url, artifact)
    logger.info(
        "Training finished: version %s, model %s, %d rows, roc_auc %s, pr_auc %s",
        version,
        path,
        metrics["rows"],
        metrics["roc_auc"],
        metrics["pr_auc"],
    )
    return {"version": version, "model_path": str(path), **metrics}


def parse_contamination(value: str) -> float | str:
    """Parse ``auto`` or a number, for argparse."""
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a number in (0, 0.5], got {value!r}") from None


def parse_share_or_count(value: str) -> int | float | str:
    """Parse ``auto``, a whole number or a share, for argparse."""
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
            "Train an Isolation Forest on transactions, evaluate it on the latest part of "
            "them, save and register it, and print the result as one JSON line."
        ),
    )
    source = parser.add_argument_group("data")
    source.add_argument("--input", type=Path, default=None, help="JSON-lines file of producer messages to read instead of PostgreSQL")
    source.add_argument("--start", default=None, help="read rows with event_time >= START (ISO 8601, UTC)")
    source.add_argument("--end", default=None, help="read rows with event_time < END (ISO 8601, UTC)")
    source.add_argument("--limit", type=int, default=200_000, help="number of newest transactions to read (default: 200000)")
    source.add_argument("--holdout", type=float, default=0.2, help="latest share of rows kept for evaluation, in [0, 0.9] (default: 0.2)")
    source.add_argument("--novelty", action="store_true", help="fit only on training rows with is_fraud = 0")
    source.add_argument("--feature-set", default="user_history", help=f"one of {', '.join(FEATURE_SETS)} (default: user_history)")

    forest = parser.add_argument_group("IsolationForest")
    forest.add_argument("--n-estimators", type=int, default=100, help="number of trees (default: 100)")
    forest.add_argument("--max-samples", type=parse_share_or_count, default="auto", help="rows per tree: 'auto', a count, or a share in (0, 1] (default: auto)")
    forest.add_argument("--contamination", type=parse_contamination, default=0.1, help="expected share of fraud in (0, 0.5], or 'auto' (default: 0.1)")
    forest.add_argument("--max-features", type=parse_share_or_count, default=1.0, help="features per tree: a count, or a share in (0, 1] (default: 1.0)")
    forest.add_argument("--bootstrap", action="store_true", help="draw each tree's rows with replacement")
    forest.add_argument("--random-state", type=int, default=42, help="seed of the estimator (default: 42)")

    output = parser.add_argument_group("output")
    output.add_argument("--output-dir", type=Path, default=None, help="folder for the new model file (default: models/ under WORKBENCH_STATE_DIR)")
    output.add_argument("--no-register", action="store_true", help="do not store the model in shop.model_versions")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, train a model and return the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)

    try:
        params = TrainingParams(
            n_estimators=args.n_estimators,
            contamination=args.contamination,
            random_state=args.random_state,
            max_samples=args.max_samples,
            max_features=args.max_features,
            bootstrap=args.bootstrap,
            feature_set=args.feature_set,
            novelty=args.novelty,
            holdout=args.holdout,
            limit=args.limit,
            start=args.start,
            end=args.end,
        )
        settings = get_settings()
        result = train_model(
            settings.database_url,
            params,
            input_path=args.input,
            output_dir=args.output_dir if args.output_dir is not None else settings.models_dir,
            register=not args.no_register,
        )
    except (TrainingError, SettingsError) as exc:
        print(exc, file=sys.stderr)
        return 2

    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
