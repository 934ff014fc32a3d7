"""Data functions of the Model page: form parsing, evaluation windows, scores and comparisons.

Nothing here imports Streamlit: ``pages/model.py`` caches and shows what
these functions return, and tests call them directly. Scores follow the
convention of :mod:`models.artifact` (``fraud_score``, higher is more
suspicious, flagged when ``fraud_score > threshold``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from models import data
from models.artifact import QUANTILE_LEVELS, model_features, threshold_for_contamination
from models.evaluate import evaluate_model
from models.explain import history_since
from models.params import TrainingError, TrainingParams

__all__ = [
    "COMPARED_METRICS",
    "comparison_table",
    "evaluation_start",
    "explain_in_window",
    "explain_stored",
    "load_evaluation_window",
    "parse_contamination",
    "parse_max_features",
    "parse_max_samples",
    "score_window",
    "share_above",
    "threshold_for",
    "threshold_range",
    "training_params",
    "versions_table",
]

# Metrics shown side by side when two versions are compared, in display order.
COMPARED_METRICS = (
    "threshold", "rows", "frauds", "alerts", "alerts_per_1000", "precision", "recall", "f1", "roc_auc", "pr_auc",
)
# The compared metrics that are counts, shown without decimals.
COUNT_METRICS = ("rows", "frauds", "alerts")


def parse_max_samples(raw: str) -> str | int | float:
    """Parse the max_samples input: ``auto``, a row count, or a share of rows in (0, 1]."""
    value = raw.strip().lower()
    if value == "auto":
        return "auto"
    if value.isdigit() and int(value) >= 1:
        return int(value)
    try:
        share = float(value)
    except ValueError:
        share = math.nan
    if 0 < share <= 1:
        return share
    raise ValueError(
        f"Max samples must be auto, a whole number of rows >= 1, or a share of rows "
        f"from 0 to 1, got {raw!r}."
    )


def parse_contamination(raw: str) -> str | float:
    """Parse the contamination input: ``auto`` or a share in (0, 0.5]."""
    value = raw.strip().lower()
    if value == "auto":
        return "auto"
    try:
        share = float(value)
    except ValueError:
        share = math.nan
    if 0 < share <= 0.5:
        return share
    raise ValueError(f"Contamination must be auto or a share from 0 to 0.5 such as 0.02, got {raw!r}.")


def parse_max_features(raw: str) -> int | float:
    """Parse the max_features input: a feature count such as 3, or a share in (0, 1] such as 0.5."""
    value = raw.strip()
    if value.isdigit() and int(value) >= 1:
        return int(value)
    try:
        share = float(value)
    except ValueError:
        share = math.nan
    if 0 < share <= 1:
        return share
    raise ValueError(
        f"Max features must be a whole number of features >= 1, or a share of them from 0 to 1, got {raw!r}."
    )


def training_params(form: Mapping[str, Any]) -> TrainingParams:
    """Build validated training parameters from the Model page's form values.

    ``max_samples``, ``contamination`` and ``max_features`` are the raw
    text inputs, and ``start`` and ``end`` are ISO 8601 strings or blank.

    Raises
    ------
    ValueError
        When a value is invalid; :class:`models.params.TrainingError` is one.
        The message names the value and the allowed range.
    """
    return TrainingParams(
        n_estimators=int(form["n_estimators"]),
        max_samples=parse_max_samples(str(form["max_samples"])),
        contamination=parse_contamination(str(form["contamination"])),
        max_features=parse_max_features(str(form["max_features"])),
        bootstrap=bool(form["bootstrap"]),
        random_state=int(form["random_state"]),
        feature_set=str(form["feature_set"]),
        novelty=bool(form["novelty"]),
        holdout=float(form["holdout"]),
        limit=int(form["limit"]),
        start=str(form["start"]).strip() or None,
        end=str(form["end"]).strip() or None,
    )


def evaluation_start(training_window: Mapping[str, str] | None) -> str | None:
    """Return the first moment after a training window, as ISO 8601, or None without a window.

    ``shop.transactions`` stores microseconds, so one microsecond after the
    last training row excludes every training row.
    """
    if not training_window or not training_window.get("end"):
        return None
    end = pd.Timestamp(training_window["end"])
    if end.tzinfo is None:
        end = end.tz_localize("UTC")
    return (end + timedelta(microseconds=1)).isoformat()


def load_evaluation_window(database_url: str, start: str | None, end: str | None, limit: int) -> pd.DataFrame:
    """Read up to ``limit`` of the newest transactions in ``[start, end)``, oldest first.

    Raises
    ------
    TrainingError
        When the database cannot be read, or the window has no rows.
    """
    df = data.load_transactions(database_url, limit, start, end)
    if len(df) == 0:
        window = f"from {start or 'the first row'} to {end or 'the last row'}"
        raise TrainingError(
            f"No transactions in the evaluation window {window}. Clear the start and end "
            "fields, or train with a hold-out so that newer rows exist."
        )
    df["event_time"] = pd.to_datetime(df["event_time"], utc=True)
    return df.sort_values(["event_time", "transaction_id"], kind="stable", ignore_index=True)


def score_window(artifact: Mapping[str, Any], df: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Build a window's features with the model's state, and score them.

    Returns
    -------
    scores : numpy.ndarray
        ``fraud_score`` of each row of ``df``.
    features : pandas.DataFrame
        The feature matrix, indexed like ``df``, for SHAP.
    """
    features = model_features(artifact, df)
    return -artifact["estimator"].score_samples(features), features


def threshold_range(scores: np.ndarray, model_threshold: float, decimals: int = 4) -> tuple[float, float]:
    """Return the bounds of the threshold slider for a window's scores, on a grid of ``decimals``.

    The bounds are rounded outwards, so every score and the model's own
    threshold lie inside them, and the highest bound flags nothing.
    """
    scale = 10.0**decimals
    low = min(float(np.min(scores)), model_threshold)
    high = max(float(np.max(scores)), model_threshold)
    return math.floor(low * scale) / scale, math.ceil(high * scale) / scale


def threshold_for(artifact: Mapping[str, Any], mode: str, value: float) -> float:
    """Convert the threshold control to a fraud_score threshold.

    ``mode`` is ``"threshold"`` (``value`` is the threshold itself) or
    ``"contamination"`` (``value`` is the share of the training rows to
    flag, converted with the model's stored training score quantiles).
    """
    if mode == "threshold":
        return float(value)
    if mode == "contamination":
        return threshold_for_contamination(artifact["score_quantiles"], float(value))
    raise ValueError(f"mode must be 'threshold' or 'contamination', got {mode!r}.")


def explain_in_window(explainer: Any, features: pd.DataFrame, window: pd.DataFrame, transaction_id: str) -> dict[str, Any] | None:
    """Explain a transaction of the evaluation window, or return None when it is not there.

    ``explainer`` is a :class:`models.explain.ModelExplainer`, and
    ``features`` the window's feature matrix from :func:`score_window`.
    The result has the keys ``fraud_score``, ``base_value``,
    ``contributions`` and ``features`` (dicts by feature name).
    """
    positions = np.flatnonzero(window["transaction_id"].astype(str).to_numpy() == transaction_id)
    if positions.size == 0:
        return None
    return _one_row(explainer.explain_features(features.iloc[positions[:1]]))


def explain_stored(database_url: str, explainer: Any, transaction_id: str) -> dict[str, Any]:
    """Explain any transaction of ``shop.transactions`` with its user's history since training.

    Raises
    ------
    TrainingError
        When the transaction does not exist or the database cannot be read.
    """
    context = data.load_user_context(database_url, transaction_id, history_since(explainer.artifact))
    features = model_features(explainer.artifact, context)
    position = int(np.flatnonzero(context["transaction_id"].to_numpy() == transaction_id)[0])
    return _one_row(explainer.explain_features(features.iloc[[position]]))


def _one_row(explanation: Any) -> dict[str, Any]:
    return {
        "fraud_score": float(explanation.fraud_score[0]),
        "base_value": float(explanation.base_value),
        "contributions": {name: float(value) for name, value in explanation.contributions.iloc[0].items()},
        "features": {name: float(value) for name, value in explanation.features.iloc[0].items()},
    }


def share_above(artifact: Mapping[str, Any], threshold: float) -> float:
    """Return the share of the training rows with ``fraud_score > threshold``, from the stored quantiles."""
    return float(1.0 - np.interp(threshold, np.asarray(artifact["score_quantiles"]), QUANTILE_LEVELS))


def versions_table(versions: pd.DataFrame) -> pd.DataFrame:
    """Turn :func:`models.registry.list_versions` output into the registry table of the page."""
    table = pd.DataFrame(
        {
            "version": versions["version"].astype(int),
            "production": versions["production"].eq(True),
            "created_at": versions["created_at"],
            "feature_set": versions["feature_set"],
            "rows": versions["row_count"],
            "threshold": versions["threshold"],
            "roc_auc": [(metrics or {}).get("roc_auc") for metrics in versions["metrics"]],
            "pr_auc": [(metrics or {}).get("pr_auc") for metrics in versions["metrics"]],
            "sklearn_version": versions["sklearn_version"],
        }
    )
    return table.reset_index(drop=True)


def comparison_table(artifacts: Mapping[int, Mapping[str, Any]], df: pd.DataFrame) -> pd.DataFrame:
    """Evaluate models on the same rows, each at its own threshold, one column per version.

    Raises
    ------
    ValueError
        As :func:`models.evaluate.evaluate_model`.
    """
    columns = {}
    for version, artifact in artifacts.items():
        metrics, _ = evaluate_model(artifact, df)
        columns[f"version {version}"] = [metrics.get(name) for name in COMPARED_METRICS]
    return pd.DataFrame(columns, index=list(COMPARED_METRICS))


def format_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """Return :func:`comparison_table` as text: counts with thousands separators, other figures to 4 decimals."""

    def show(metric: str, value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        return f"{value:,.0f}" if metric in COUNT_METRICS else f"{value:.4f}"

    return pd.DataFrame(
        {column: [show(metric, value) for metric, value in table[column].items()] for column in table.columns},
        index=table.index,
    )
