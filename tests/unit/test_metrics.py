import json

import numpy as np
import pytest

from models.artifact import QUANTILE_LEVELS, threshold_for_contamination
from models.metrics import evaluate_scores, metrics_at_threshold

LABELS = np.array([0, 0, 0, 0, 1, 1, 0, 1])
SCORES = np.array([0.30, 0.40, 0.35, 0.62, 0.70, 0.58, 0.45, 0.80])
PATTERNS = [None, None, None, None, "geo_jump", "card_testing", None, "geo_jump"]


def test_metrics_at_threshold_confusion_matrix():
    result = metrics_at_threshold(LABELS, SCORES, 0.6)

    assert result["confusion_matrix"] == {"tn": 4, "fp": 1, "fn": 1, "tp": 2}
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["alerts_per_1000"] == pytest.approx(375.0)


def test_metrics_at_threshold_strict_inequality():
    result = metrics_at_threshold(LABELS, SCORES, 0.62)

    assert result["alerts"] == 2


def test_metrics_threshold_moves_alert_rate():
    rates = [metrics_at_threshold(LABELS, SCORES, t)["alerts_per_1000"] for t in (0.3, 0.5, 0.7, 0.9)]

    assert rates == sorted(rates, reverse=True)
    assert rates[-1] == 0.0


def test_evaluate_scores_recall_by_pattern():
    result = evaluate_scores(LABELS, SCORES, 0.6, PATTERNS)

    assert result["recall_by_pattern"] == {
        "card_testing": {"frauds": 1, "detected": 0, "recall": 0.0},
        "geo_jump": {"frauds": 2, "detected": 2, "recall": 1.0},
    }
    assert result["roc_auc"] == pytest.approx(14 / 15)
    json.dumps(result, allow_nan=False)


def test_evaluate_scores_no_alerts_note():
    result = evaluate_scores(LABELS, SCORES, 1.0)

    assert result["precision"] is None
    assert "precision is null because the threshold flags no transactions." in result["notes"]


def test_evaluate_scores_invalid_label():
    with pytest.raises(ValueError, match="Labels must be 0 or 1, got 2"):
        evaluate_scores(np.array([0, 2]), np.array([0.1, 0.2]), 0.5)


def test_threshold_for_contamination_matches_percentile():
    scores = np.random.default_rng(0).random(5000)

    threshold = threshold_for_contamination(np.quantile(scores, QUANTILE_LEVELS), 0.1)

    assert threshold == pytest.approx(np.percentile(scores, 90), abs=1e-3)
    assert np.mean(scores > threshold) == pytest.approx(0.1, abs=0.002)


@pytest.mark.parametrize("contamination", [0.0, 0.6])
def test_threshold_for_contamination_invalid(contamination):
    with pytest.raises(ValueError, match=rf"contamination must be in \(0, 0.5\], got {contamination}"):
        threshold_for_contamination(np.zeros(len(QUANTILE_LEVELS)), contamination)


def test_drift_notes_short_window_and_rate() -> None:
    import pandas as pd

    from models.fit import drift_notes

    short = pd.Series(pd.date_range("2026-01-01", periods=10, freq="1min", tz="UTC"))
    long = pd.Series(pd.date_range("2026-01-01", periods=10, freq="10min", tz="UTC"))

    notes = drift_notes(short, "user_history", 0.10, 0.40)
    assert len(notes) == 2
    assert notes[0].startswith("The training rows span 9.0 minutes")
    assert notes[1].startswith("The model flags 40.0% of the held-out transactions but 10.0%")
    assert drift_notes(short, "seed_baseline", 0.10, 0.12) == []
    assert drift_notes(long, "user_history", 0.10, 0.15) == []
