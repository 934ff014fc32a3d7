"""Fit the features and an Isolation Forest on transactions, and evaluate on a time hold-out.

:func:`fit_and_evaluate` is the whole of training once the transactions are
read: it splits them by time, fits :class:`models.features.FeatureState`
and the forest, and evaluates the model on the held-out rows. It reads and
writes nothing, so tests, benchmarks and :mod:`models.train` (which reads
the rows, saves the model file and registers it) call it alike.

The ``fraud_score`` convention, the ``threshold`` and the model dict are
defined in :mod:`models.artifact`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import IsolationForest

from models import data
from models.artifact import FORMAT_VERSION, QUANTILE_LEVELS, flag
from models.features import FEATURE_SETS, VELOCITY_WINDOW, FeatureState, build_features
from models.metrics import evaluate_scores
from models.params import TrainingError, TrainingParams, as_params

__all__ = ["PROGRESS_STEPS", "Progress", "fit_and_evaluate", "fit_forest", "log_progress"]

logger = logging.getLogger(__name__)

LABEL_COLUMN = "is_fraud"

# Progress callback: a share done in [0, 1] and a sentence for the user.
Progress = Callable[[float, str], None]

# Trees are grown in this many steps so that a long fit can report progress.
PROGRESS_STEPS = 10


def log_progress(share: float, message: str) -> None:
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


def fit_forest(features: pd.DataFrame, params: TrainingParams, progress: Progress = log_progress) -> IsolationForest:
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


# Below this many velocity windows of training data, a user's velocity in
# training is cut short compared with a stream that has run for longer.
MIN_VELOCITY_WINDOWS = 2
# Flagging more than this many times the training share on held-out rows
# means that they differ from the training rows.
MAX_FLAGGED_RATIO = 2.0


def drift_notes(times: pd.Series, feature_set: str, train_flagged: float, holdout_flagged: float) -> list[str]:
    """Return sentences that warn when the model will likely flag far more in use than in training."""
    notes = []
    times = pd.to_datetime(times, utc=True)
    span = times.max() - times.min() if len(times) else pd.Timedelta(0)
    if "velocity_10m" in FEATURE_SETS[feature_set] and span < MIN_VELOCITY_WINDOWS * VELOCITY_WINDOW:
        minutes = span.total_seconds() / 60
        notes.append(
            f"The training rows span {minutes:.1f} minutes, less than {MIN_VELOCITY_WINDOWS} velocity windows "
            f"of {VELOCITY_WINDOW.total_seconds() / 60:.0f} minutes, so users have less history in training "
            "than in a longer stream and the model may flag more and more transactions. "
            f"Train on at least {MIN_VELOCITY_WINDOWS * VELOCITY_WINDOW.total_seconds() / 60:.0f} minutes of transactions."
        )
    if train_flagged > 0 and holdout_flagged > MAX_FLAGGED_RATIO * train_flagged:
        notes.append(
            f"The model flags {holdout_flagged:.1%} of the held-out transactions but {train_flagged:.1%} of "
            "the training ones, so the later data differs from the training data. Expect a similar alert "
            "rate in the stream; train on a longer or more recent window."
        )
    return notes


def fit_and_evaluate(
    df: pd.DataFrame,
    params: TrainingParams | Mapping[str, Any],
    progress: Progress = log_progress,
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
    notes += drift_notes(train_df["event_time"], params.feature_set, flag(train_scores, threshold).mean(), flag(scores, threshold).mean())
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
