"""Plotly figures of the Model page, built from arrays and DataFrames.

Every function here is pure: it takes data and returns a
:class:`plotly.graph_objects.Figure`, with no Streamlit and no I/O, so tests
can inspect the traces. Scores are ``fraud_score`` values (higher is more
suspicious, see :mod:`models.artifact`), and a transaction is flagged when
``fraud_score > threshold``, the rule of :func:`models.artifact.flag`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sklearn.metrics import precision_recall_curve, roc_curve

from models.artifact import flag

__all__ = [
    "confusion_matrix_figure",
    "precision_recall_figure",
    "roc_figure",
    "score_histogram",
    "shap_beeswarm",
    "shap_importance",
    "waterfall",
]

SCORE_AXIS = "fraud_score (higher is more suspicious)"
LEGITIMATE_COLOR = "#4c78a8"
FRAUD_COLOR = "#e45756"
THRESHOLD_COLOR = "#333333"

# Sum mismatch above which waterfall() rejects an explanation, in
# fraud_score units. models.explain keeps it below 1e-12 in its tests.
WATERFALL_TOLERANCE = 1e-6


def _labels_and_scores(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape:
        raise ValueError(f"Got {labels.size} labels but {scores.size} scores. Pass one of each per row.")
    return labels, scores


def _message_figure(title: str, message: str) -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    figure.update_layout(title=title, xaxis_visible=False, yaxis_visible=False)
    return figure


def score_histogram(labels: np.ndarray, scores: np.ndarray, threshold: float, bins: int = 60) -> go.Figure:
    """Draw the fraud_score histogram of each class with a vertical line at ``threshold``.

    Both classes share the same bins. Each bar is a share of its class, so
    a few hundred frauds stay visible next to many legitimate rows.
    """
    labels, scores = _labels_and_scores(labels, scores)
    low = float(min(scores.min(initial=threshold), threshold))
    high = float(max(scores.max(initial=threshold), threshold))
    size = (high - low) / bins if high > low else 1.0
    figure = go.Figure()
    for value, name, color in ((0, "Legitimate (is_fraud = 0)", LEGITIMATE_COLOR), (1, "Fraud (is_fraud = 1)", FRAUD_COLOR)):
        figure.add_trace(
            go.Histogram(
                x=scores[labels == value],
                name=name,
                marker_color=color,
                opacity=0.65,
                histnorm="probability",
                xbins={"start": low, "end": high + size, "size": size},
            )
        )
    figure.add_vline(
        x=threshold,
        line_color=THRESHOLD_COLOR,
        line_dash="dash",
        annotation_text=f"threshold {threshold:.4f}",
        annotation_position="top",
    )
    figure.update_layout(
        barmode="overlay",
        title="Score distribution by class",
        xaxis_title=SCORE_AXIS,
        yaxis_title="Share of the class",
        legend={"orientation": "h", "y": -0.25},
    )
    return figure


def roc_figure(labels: np.ndarray, scores: np.ndarray, threshold: float | None = None) -> go.Figure:
    """Draw the ROC curve, the chance diagonal and the point that ``threshold`` selects.

    With only one class in ``labels`` the curve is undefined, and the figure
    shows that sentence instead.
    """
    labels, scores = _labels_and_scores(labels, scores)
    if labels.min(initial=0) == labels.max(initial=0):
        return _message_figure("ROC curve", "The ROC curve needs both is_fraud = 0 and is_fraud = 1 rows.")
    false_positive_rate, true_positive_rate, _ = roc_curve(labels, scores)
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=false_positive_rate, y=true_positive_rate, mode="lines", name="ROC curve"))
    figure.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="Chance", line={"dash": "dot", "color": "grey"})
    )
    if threshold is not None:
        flagged = flag(scores, threshold)
        point_fpr = float(flagged[labels == 0].mean())
        point_tpr = float(flagged[labels == 1].mean())
        figure.add_trace(
            go.Scatter(
                x=[point_fpr], y=[point_tpr], mode="markers", name=f"threshold {threshold:.4f}",
                marker={"size": 11, "color": THRESHOLD_COLOR},
            )
        )
    figure.update_layout(
        title="ROC curve", xaxis_title="False positive rate", yaxis_title="True positive rate (recall)"
    )
    return figure


def precision_recall_figure(labels: np.ndarray, scores: np.ndarray, threshold: float | None = None) -> go.Figure:
    """Draw the precision-recall curve and the point that ``threshold`` selects.

    The point is left out when the threshold flags no row, since precision
    is then undefined.
    """
    labels, scores = _labels_and_scores(labels, scores)
    if labels.sum() == 0:
        return _message_figure(
            "Precision-recall curve", "The precision-recall curve needs at least one is_fraud = 1 row."
        )
    precision, recall, _ = precision_recall_curve(labels, scores)
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=recall, y=precision, mode="lines", name="Precision-recall curve"))
    figure.add_hline(y=float(labels.mean()), line_dash="dot", line_color="grey", annotation_text="fraud share")
    if threshold is not None:
        flagged = flag(scores, threshold)
        if flagged.any():
            true_positives = float(np.sum(flagged & (labels == 1)))
            figure.add_trace(
                go.Scatter(
                    x=[true_positives / labels.sum()], y=[true_positives / flagged.sum()], mode="markers",
                    name=f"threshold {threshold:.4f}", marker={"size": 11, "color": THRESHOLD_COLOR},
                )
            )
    figure.update_layout(
        title="Precision-recall curve", xaxis_title="Recall", yaxis_title="Precision", yaxis_range=[0, 1.05]
    )
    return figure


def confusion_matrix_figure(matrix: Mapping[str, int]) -> go.Figure:
    """Draw a confusion matrix given as ``tn``, ``fp``, ``fn``, ``tp`` counts (see :mod:`models.metrics`)."""
    counts = [[matrix["tn"], matrix["fp"]], [matrix["fn"], matrix["tp"]]]
    figure = go.Figure(
        go.Heatmap(
            z=counts,
            x=["Predicted legitimate", "Predicted fraud"],
            y=["is_fraud = 0", "is_fraud = 1"],
            text=[[f"{value:,}" for value in row] for row in counts],
            texttemplate="%{text}",
            colorscale="Blues",
            showscale=False,
        )
    )
    figure.update_layout(title="Confusion matrix", yaxis_autorange="reversed")
    return figure


def shap_importance(contributions: pd.DataFrame) -> go.Figure:
    """Draw the mean |SHAP value| of each feature in fraud_score units, the largest on top."""
    importance = contributions.abs().mean(axis=0).sort_values()
    figure = go.Figure(go.Bar(x=importance.to_numpy(), y=list(importance.index), orientation="h", name="mean |SHAP|"))
    figure.update_layout(
        title="Global feature importance",
        xaxis_title="Mean |SHAP value| (fraud_score units)",
        yaxis_title=None,
    )
    return figure


def shap_beeswarm(contributions: pd.DataFrame, features: pd.DataFrame, seed: int = 0) -> go.Figure:
    """Draw one dot per row and feature: its SHAP value, coloured by the feature value.

    Features are ordered by mean |SHAP value|, the largest on top. The
    colour is the rank of the feature value within its feature, from 0
    (lowest) to 1 (highest), so features of any unit share one scale. Rows
    get a small random vertical jitter drawn with ``seed``.
    """
    if list(contributions.columns) != list(features.columns) or len(contributions) != len(features):
        raise ValueError("contributions and features must have the same rows and columns.")
    order = list(contributions.abs().mean(axis=0).sort_values().index)
    rng = np.random.default_rng(seed)
    x_parts, y_parts, color_parts, value_parts = [], [], [], []
    for position, name in enumerate(order):
        values = features[name].to_numpy(dtype=np.float64)
        ranks = pd.Series(values).rank(pct=True, method="average").to_numpy()
        x_parts.append(contributions[name].to_numpy(dtype=np.float64))
        y_parts.append(position + rng.uniform(-0.3, 0.3, len(values)))
        color_parts.append(ranks)
        value_parts.append(values)
    figure = go.Figure(
        go.Scattergl(
            x=np.concatenate(x_parts) if x_parts else [],
            y=np.concatenate(y_parts) if y_parts else [],
            mode="markers",
            marker={
                "size": 5,
                "color": np.concatenate(color_parts) if color_parts else [],
                "colorscale": "RdBu_r",
                "cmin": 0,
                "cmax": 1,
                "colorbar": {"title": "Feature value rank", "tickvals": [0, 1], "ticktext": ["low", "high"]},
            },
            customdata=np.concatenate(value_parts) if value_parts else [],
            hovertemplate="SHAP %{x:.4f}<br>feature value %{customdata:.4g}<extra></extra>",
            name="SHAP values",
        )
    )
    figure.add_vline(x=0, line_color="grey", line_width=1)
    figure.update_layout(
        title="SHAP values per transaction",
        xaxis_title="SHAP value (fraud_score units)",
        yaxis={"tickmode": "array", "tickvals": list(range(len(order))), "ticktext": order},
    )
    return figure


def waterfall(
    base_value: float,
    contributions: Mapping[str, float],
    fraud_score: float,
    threshold: float | None = None,
    features: Mapping[str, float] | None = None,
) -> go.Figure:
    """Draw one transaction's explanation: base value, each feature's SHAP value, fraud_score.

    Features are ordered by |SHAP value|, the largest first. The last bar is
    a plotly ``total`` bar, which plotly computes as the base value plus the
    contributions.

    Raises
    ------
    ValueError
        When ``base_value`` plus the contributions differs from
        ``fraud_score`` by more than :data:`WATERFALL_TOLERANCE`, which means
        the explanation belongs to another score.
    """
    total = base_value + float(sum(contributions.values()))
    if abs(total - fraud_score) > WATERFALL_TOLERANCE:
        raise ValueError(
            f"The base value {base_value:.6f} plus the SHAP values gives {total:.6f}, "
            f"but the fraud_score is {fraud_score:.6f}. Explain the transaction again with the same model."
        )
    ordered = sorted(contributions.items(), key=lambda item: abs(item[1]), reverse=True)
    names = ["Base value"]
    for name, _ in ordered:
        if features is not None and name in features:
            names.append(f"{name} = {features[name]:.4g}")
        else:
            names.append(name)
    names.append("fraud_score")
    values = [float(base_value), *(float(value) for _, value in ordered), 0.0]
    figure = go.Figure(
        go.Waterfall(
            orientation="v",
            measure=["absolute", *(["relative"] * len(ordered)), "total"],
            x=names,
            y=values,
            text=[f"{base_value:.4f}", *(f"{value:+.4f}" for _, value in ordered), f"{fraud_score:.4f}"],
            textposition="outside",
            increasing={"marker": {"color": FRAUD_COLOR}},
            decreasing={"marker": {"color": LEGITIMATE_COLOR}},
            totals={"marker": {"color": THRESHOLD_COLOR}},
            name="SHAP waterfall",
        )
    )
    if threshold is not None:
        figure.add_hline(y=threshold, line_dash="dash", line_color=THRESHOLD_COLOR, annotation_text=f"threshold {threshold:.4f}")

    # Zoom the y axis on the running total, since the bars start at 0 and the
    # contributions are small next to the base value.
    levels = np.cumsum(values[:-1])
    if threshold is not None:
        levels = np.append(levels, threshold)
    margin = max(float(levels.max() - levels.min()) * 0.15, 0.01)
    figure.update_layout(
        title="Why this fraud_score",
        yaxis_title=SCORE_AXIS,
        yaxis_range=[max(float(levels.min()) - margin, 0.0), float(levels.max()) + margin],
        showlegend=False,
    )
    return figure
