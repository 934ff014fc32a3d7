"""Plotly figure builders of models.charts, on small arrays and one trained model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import charts
from models.explain import ModelExplainer
from models.synthetic import simulate_transactions
from models.train import fit_and_evaluate

LABELS = np.array([0, 0, 0, 0, 0, 0, 1, 1])
SCORES = np.array([0.40, 0.42, 0.45, 0.47, 0.50, 0.61, 0.58, 0.70])


def test_score_histogram_one_trace_per_class():
    figure = charts.score_histogram(LABELS, SCORES, threshold=0.55)

    assert [trace.type for trace in figure.data] == ["histogram", "histogram"]
    assert list(figure.data[0].x) == list(SCORES[LABELS == 0])
    assert list(figure.data[1].x) == list(SCORES[LABELS == 1])
    assert figure.data[0].xbins.size == figure.data[1].xbins.size


def test_score_histogram_threshold_line_position():
    figure = charts.score_histogram(LABELS, SCORES, threshold=0.55)

    lines = [shape for shape in figure.layout.shapes if shape.type == "line"]
    assert len(lines) == 1
    assert lines[0].x0 == 0.55
    assert lines[0].x1 == 0.55


def test_score_histogram_threshold_outside_scores():
    figure = charts.score_histogram(LABELS, SCORES, threshold=0.9)

    assert figure.data[0].xbins.end >= 0.9
    assert figure.layout.shapes[0].x0 == 0.9


def test_score_histogram_length_mismatch():
    with pytest.raises(ValueError, match="Got 8 labels but 3 scores"):
        charts.score_histogram(LABELS, SCORES[:3], threshold=0.5)


def test_roc_figure_curve_and_point():
    figure = charts.roc_figure(LABELS, SCORES, threshold=0.55)

    curve, chance, point = figure.data
    assert curve.x[0] == 0.0
    assert curve.x[-1] == 1.0
    assert list(chance.x) == [0, 1]
    # 0.61 is the only legitimate row above 0.55, and 0.58 and 0.70 are both frauds.
    assert point.x[0] == pytest.approx(1 / 6)
    assert point.y[0] == pytest.approx(1.0)


def test_roc_figure_one_class_message():
    figure = charts.roc_figure(np.zeros(5), np.linspace(0.3, 0.6, 5))

    assert len(figure.data) == 0
    assert "needs both" in figure.layout.annotations[0].text


def test_precision_recall_point_matches_threshold():
    figure = charts.precision_recall_figure(LABELS, SCORES, threshold=0.55)

    assert figure.data[0].name == "Precision-recall curve"
    point = figure.data[1]
    assert point.x[0] == pytest.approx(1.0)
    assert point.y[0] == pytest.approx(2 / 3)


def test_precision_recall_no_point_when_nothing_flagged():
    figure = charts.precision_recall_figure(LABELS, SCORES, threshold=0.99)

    assert len(figure.data) == 1


def test_precision_recall_no_fraud_message():
    figure = charts.precision_recall_figure(np.zeros(4), SCORES[:4], threshold=0.5)

    assert "at least one is_fraud = 1" in figure.layout.annotations[0].text


def test_confusion_matrix_cells():
    figure = charts.confusion_matrix_figure({"tn": 5, "fp": 1, "fn": 0, "tp": 2})

    assert [list(row) for row in figure.data[0].z] == [[5, 1], [0, 2]]


@pytest.fixture(scope="module")
def explanation():
    transactions = simulate_transactions(rows=2000, users=80, seed=3)
    artifact, _ = fit_and_evaluate(transactions, {"n_estimators": 20})
    return artifact, ModelExplainer(artifact).explain(transactions.tail(200))


def test_shap_importance_sorted_mean_abs(explanation):
    _, result = explanation

    figure = charts.shap_importance(result.contributions)

    bar = figure.data[0]
    expected = result.contributions.abs().mean().sort_values()
    assert list(bar.y) == list(expected.index)
    np.testing.assert_allclose(bar.x, expected.to_numpy())


def test_shap_beeswarm_one_dot_per_value(explanation):
    _, result = explanation

    figure = charts.shap_beeswarm(result.contributions, result.features)

    dots = figure.data[0]
    assert len(dots.x) == result.contributions.size
    assert sorted(dots.x) == pytest.approx(sorted(result.contributions.to_numpy().ravel()))
    assert list(figure.layout.yaxis.ticktext)[-1] == result.contributions.abs().mean().idxmax()
    assert 0.0 <= min(dots.marker.color)
    assert max(dots.marker.color) <= 1.0


def test_shap_beeswarm_mismatched_columns(explanation):
    _, result = explanation

    with pytest.raises(ValueError, match="same rows and columns"):
        charts.shap_beeswarm(result.contributions, result.features.iloc[:, :2])


def test_waterfall_total_equals_score(explanation):
    artifact, result = explanation
    row = result.contributions.iloc[0]
    score = float(result.fraud_score[0])

    figure = charts.waterfall(
        result.base_value, row.to_dict(), score, artifact["threshold"], result.features.iloc[0].to_dict()
    )

    bars = figure.data[0]
    assert list(bars.measure) == ["absolute", *["relative"] * len(row), "total"]
    assert bars.x[0] == "Base value"
    assert bars.x[-1] == "fraud_score"
    assert sum(bars.y[:-1]) == pytest.approx(score, abs=1e-9)
    assert bars.text[-1] == f"{score:.4f}"
    assert figure.layout.shapes[0].y0 == artifact["threshold"]


def test_waterfall_orders_by_absolute_value():
    figure = charts.waterfall(0.5, {"a": 0.01, "b": -0.05, "c": 0.02}, 0.48)

    assert list(figure.data[0].x) == ["Base value", "b", "c", "a", "fraud_score"]


def test_waterfall_rejects_mismatched_score():
    with pytest.raises(ValueError, match="gives 0.530000, but the fraud_score is 0.600000"):
        charts.waterfall(0.5, {"a": 0.01, "b": 0.02}, 0.6)


def test_waterfall_features_in_labels():
    figure = charts.waterfall(0.5, {"amount": 0.1}, 0.6, features=pd.Series({"amount": 812.5}).to_dict())

    assert figure.data[0].x[1] == "amount = 812.5"
