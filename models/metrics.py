"""Evaluation metrics of fraud scores against the ``is_fraud`` labels.

Pure functions on arrays: they take labels, ``fraud_score`` values (higher
is more suspicious, see :mod:`models.artifact`) and a threshold, and do no
I/O. A transaction counts as an alert exactly when ``fraud_score >
threshold``, the rule of :func:`models.artifact.flag`, so moving the
threshold changes every metric here without retraining.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from models.artifact import flag

__all__ = ["evaluate_scores", "metrics_at_threshold", "ranking_metrics", "recall_by_pattern"]


def _labels(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    array = np.asarray(labels)
    if array.size and not np.isin(array, (0, 1)).all():
        bad = array[~np.isin(array, (0, 1))][0].item()
        raise ValueError(f"Labels must be 0 or 1, got {bad!r}. Pass the is_fraud column.")
    return array.astype(np.int64)


def ranking_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Compute ROC-AUC and PR-AUC of the scores; both need both labels present.

    PR-AUC is the average precision of :func:`sklearn.metrics.average_precision_score`.
    A metric that is undefined is None, with the reason in ``notes``.
    """
    labels = _labels(labels)
    n_fraud = int(labels.sum())
    if 0 < n_fraud < len(labels):
        return {
            "roc_auc": float(roc_auc_score(labels, scores)),
            "pr_auc": float(average_precision_score(labels, scores)),
            "notes": [],
        }
    shown = "no rows" if len(labels) == 0 else f"every transaction has is_fraud = {int(labels[0])}"
    return {
        "roc_auc": None,
        "pr_auc": None,
        "notes": [f"roc_auc and pr_auc are null because {shown}, and they need both labels."],
    }


def metrics_at_threshold(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Compute the alert metrics of flagging ``fraud_score > threshold``.

    Returns
    -------
    dict
        ``threshold``, ``rows``, ``alerts``, ``alerts_per_1000``,
        ``precision``, ``recall``, ``f1``, ``confusion_matrix`` (``tn``,
        ``fp``, ``fn``, ``tp``) and ``notes``. Precision, recall or F1 is
        None when undefined, with the reason in ``notes``.
    """
    labels = _labels(labels)
    flagged = flag(scores, threshold)
    fraud = labels == 1
    tp = int(np.sum(flagged & fraud))
    fp = int(np.sum(flagged & ~fraud))
    fn = int(np.sum(~flagged & fraud))
    tn = int(np.sum(~flagged & ~fraud))
    notes: list[str] = []

    precision = tp / (tp + fp) if tp + fp else None
    if precision is None:
        notes.append("precision is null because the threshold flags no transactions.")
    recall = tp / (tp + fn) if tp + fn else None
    if recall is None:
        notes.append("recall is null because no transaction has is_fraud = 1.")
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    rows = len(labels)
    return {
        "threshold": float(threshold),
        "rows": rows,
        "alerts": tp + fp,
        "alerts_per_1000": 1000.0 * (tp + fp) / rows if rows else None,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "notes": notes,
    }


def recall_by_pattern(
    patterns: Sequence[object] | np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, dict[str, float | int]]:
    """Compute the recall of each fraud pattern at the threshold.

    Parameters
    ----------
    patterns
        The ``fraud_pattern`` of each row; None or NaN for legitimate rows.

    Returns
    -------
    dict
        For each pattern, sorted by name: ``frauds`` (rows), ``detected``
        (flagged rows) and ``recall``.
    """
    series = pd.Series(np.asarray(patterns, dtype=object))
    flagged = pd.Series(flag(scores, threshold))
    known = series.notna()
    grouped = flagged[known].groupby(series[known].astype(str))
    result = {}
    for name, values in grouped:
        result[str(name)] = {
            "frauds": int(values.size),
            "detected": int(values.sum()),
            "recall": float(values.mean()),
        }
    return dict(sorted(result.items()))


def evaluate_scores(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    patterns: Sequence[object] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Compute every evaluation metric of fraud scores against labels.

    Parameters
    ----------
    labels
        ``is_fraud`` of each row, 0 or 1.
    scores
        ``fraud_score`` of each row.
    threshold
        Rows with ``fraud_score > threshold`` are alerts.
    patterns
        ``fraud_pattern`` of each row, or None when the data has no such
        column; ``recall_by_pattern`` is then None.

    Returns
    -------
    dict
        The keys of :func:`ranking_metrics` and :func:`metrics_at_threshold`,
        ``frauds`` and ``recall_by_pattern``. ``notes`` combines both lists.
        Every value is a JSON type.

    Raises
    ------
    ValueError
        When a label is not 0 or 1, or the arrays differ in length.
    """
    labels = _labels(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) != len(labels):
        raise ValueError(f"Got {len(labels)} labels but {len(scores)} scores; pass one of each per row.")
    ranking = ranking_metrics(labels, scores)
    alerting = metrics_at_threshold(labels, scores, threshold)
    by_pattern = None if patterns is None else recall_by_pattern(patterns, scores, threshold)
    return {
        **alerting,
        "roc_auc": ranking["roc_auc"],
        "pr_auc": ranking["pr_auc"],
        "frauds": int(labels.sum()),
        "recall_by_pattern": by_pattern,
        "notes": ranking["notes"] + alerting["notes"],
    }
