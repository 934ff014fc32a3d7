"""Model page with Streamlit's AppTest, and the page's data functions in models.lab.

The first tests point DATABASE_URL at a closed loopback port. The others
replace the registry and the transaction reader with in-memory fakes that
serve one trained model and synthetic transactions, so the evaluation,
threshold, SHAP and registry views run without PostgreSQL.
"""

from __future__ import annotations

import re
import socket
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from models import data, lab, registry, reviewed
from models.artifact import IncompatibleModelError, flag
from models.features import FEATURE_SETS
from models.params import TrainingError
from models.synthetic import simulate_transactions
from models.train import fit_and_evaluate

pytestmark = pytest.mark.timeout(180)

APP = Path(__file__).resolve().parents[2] / "app.py"
PAGE = "pages/model.py"
PASSWORD = "s3cret-pw"
RUN_TIMEOUT_SECONDS = 90

OUTSIDE_VARIABLES = (
    "KAFKA_TOPIC",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "WORKBENCH_KAFKA_PORT",
    "WORKBENCH_KAFKA_CONTROLLER_PORT",
    "WORKBENCH_POSTGRES_PORT",
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def closed_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> int:
    port = closed_port()
    for name in OUTSIDE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://fraud:{PASSWORD}@127.0.0.1:{port}/fraud")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{closed_port()}")
    monkeypatch.setenv("WORKBENCH_STATE_DIR", str(tmp_path / "state"))
    st.cache_data.clear()
    st.cache_resource.clear()
    return port


def open_page() -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_SECONDS).run()
    app.switch_page(PAGE).run()
    return app


def texts(app: AppTest, kind: str) -> list[str]:
    return [str(element.value) for element in getattr(app, kind)]


def submit_training(app: AppTest) -> AppTest:
    next(button for button in app.button if button.label == "Train").click().run()
    return app


# ---- Database closed ----------------------------------------------------------


def test_model_page_form_has_every_parameter(closed_database: int) -> None:
    app = open_page()

    assert not app.exception
    assert texts(app, "title") == ["Model"]
    for key in ("model_max_samples", "model_contamination", "model_max_features", "model_start", "model_end"):
        assert app.text_input(key=key) is not None
    for key in ("model_n_estimators", "model_random_state", "model_limit", "model_holdout"):
        assert app.number_input(key=key) is not None
    assert app.checkbox(key="model_bootstrap").value is False
    assert app.checkbox(key="model_novelty").value is False
    assert app.selectbox(key="model_feature_set").options == list(FEATURE_SETS)


def test_model_page_database_closed_plain_warning(closed_database: int) -> None:
    app = open_page()

    warnings = texts(app, "warning")
    assert warnings
    assert f"127.0.0.1:{closed_database}" in warnings[0]
    assert "Check that PostgreSQL is running" in warnings[0]
    assert PASSWORD not in "\n".join(warnings)
    assert "Traceback" not in "\n".join(warnings)
    assert texts(app, "error") == []


def test_model_page_train_database_closed(closed_database: int) -> None:
    app = submit_training(open_page())

    assert not app.exception
    errors = texts(app, "error")
    assert len(errors) == 1
    assert f"127.0.0.1:{closed_database}" in errors[0]
    assert PASSWORD not in errors[0]


def test_model_page_train_after_module_reload(closed_database: int, monkeypatch: pytest.MonkeyPatch) -> None:
    app = open_page()
    # Streamlit evicts every project module when a source file changes, so
    # the next run imports new classes while callbacks keep the old ones.
    for name in [name for name in sys.modules if name == "models" or name.startswith("models.")]:
        monkeypatch.delitem(sys.modules, name)

    submit_training(app)

    assert not app.exception
    errors = texts(app, "error")
    assert len(errors) == 1
    assert f"Could not connect to the database at postgresql://fraud:***@127.0.0.1:{closed_database}" in errors[0]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("model_contamination", "most", "Contamination must be auto or a share from 0 to 0.5 such as 0.02, got 'most'."),
        ("model_contamination", "0.7", "Contamination must be auto or a share from 0 to 0.5 such as 0.02, got '0.7'."),
        ("model_max_features", "all", "Max features must be a whole number of features >= 1"),
        ("model_max_samples", "0", "Max samples must be auto, a whole number of rows >= 1"),
        ("model_start", "yesterday", "start must be"),
    ],
)
def test_model_page_invalid_input_plain_error(closed_database: int, key: str, value: str, message: str) -> None:
    app = open_page()

    app.text_input(key=key).input(value)
    submit_training(app)

    assert not app.exception
    errors = texts(app, "error")
    assert len(errors) == 1
    assert message in errors[0]


def test_model_page_max_features_above_feature_count(closed_database: int) -> None:
    app = open_page()

    app.selectbox(key="model_feature_set").select("seed_baseline")
    app.text_input(key="model_max_features").input("5")
    submit_training(app)

    assert texts(app, "error") == [
        "max_features must be a whole number from 1 to 3 (the features of seed_baseline) "
        "or a number in (0, 1], got 5."
    ]


# ---- Fake registry and transactions -------------------------------------------


TRAINING_ROWS = 2400


def evaluation_rows(transactions: pd.DataFrame) -> pd.DataFrame:
    """Return the rows after the training rows, which the page evaluates by default."""
    last_training_time = transactions["event_time"].iloc[TRAINING_ROWS - 1]
    return transactions[transactions["event_time"] > last_training_time].reset_index(drop=True)


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    return simulate_transactions(rows=3000, users=100, seed=11)


@pytest.fixture(scope="module")
def artifacts(transactions: pd.DataFrame) -> dict[int, dict]:
    training = transactions.iloc[:TRAINING_ROWS]
    first, _ = fit_and_evaluate(training, {"n_estimators": 20, "feature_set": "seed_baseline", "holdout": 0.0})
    second, _ = fit_and_evaluate(training, {"n_estimators": 20, "holdout": 0.0})
    return {1: first, 2: second}


class FakeRegistry:
    """In-memory stand-in for models.registry with the same functions and errors."""

    def __init__(self, artifacts: dict[int, dict]) -> None:
        self.artifacts = artifacts
        self.promotions: list[int] = [1]
        # Review counts (confirmed fraud, false positive) of each version's alerts.
        self.reviews: dict[int, tuple[int, int]] = {}

    def list_versions(self, database_url: str, limit: int = 100) -> pd.DataFrame:
        production = self.production_version(database_url)
        rows = [
            {
                "version": version,
                "created_at": pd.Timestamp("2026-02-01", tz="UTC"),
                "feature_set": artifact["feature_set"],
                "row_count": artifact["rows"],
                "threshold": artifact["threshold"],
                "training_start": None,
                "training_end": None,
                "sklearn_version": artifact["sklearn_version"],
                "parameters": artifact["params"],
                "metrics": artifact["metrics"],
                "production": version == production,
            }
            for version, artifact in sorted(self.artifacts.items(), reverse=True)
        ]
        return pd.DataFrame(rows)

    def production_version(self, database_url: str) -> int | None:
        return self.promotions[-1] if self.promotions else None

    def load_version(self, database_url: str, version: int | None = None) -> tuple[int, dict]:
        artifact = self.artifacts[version]
        if artifact["sklearn_version"] == "0.24.2":
            raise IncompatibleModelError(
                f"The model was saved with scikit-learn 0.24.2. Retrain the model with `python -m models.train`."
            )
        return version, artifact

    def promote(self, database_url: str, version: int, reason: str = "promote") -> int:
        self.promotions.append(version)
        return version

    def reviewed_precision(self, database_url: str, version: int) -> dict:
        confirmed_fraud, false_positive = self.reviews.get(version, (0, 0))
        return reviewed.reviewed_precision_from_counts(version, confirmed_fraud, false_positive)

    def rollback(self, database_url: str) -> int:
        previous = next((v for v in reversed(self.promotions) if v != self.promotions[-1]), None)
        if previous is None:
            raise registry.RegistryError("There is no earlier production model to roll back to.")
        self.promotions.append(previous)
        return previous


@pytest.fixture
def fake_registry(closed_database, artifacts, transactions, monkeypatch) -> FakeRegistry:
    fake = FakeRegistry(dict(artifacts))
    for name in ("list_versions", "production_version", "load_version", "promote", "rollback"):
        monkeypatch.setattr(registry, name, getattr(fake, name))

    def load_transactions(database_url, limit, start=None, end=None):
        rows = transactions
        if start is not None:
            rows = rows[rows["event_time"] >= pd.Timestamp(start)]
        if end is not None:
            rows = rows[rows["event_time"] < pd.Timestamp(end)]
        return rows.iloc[::-1].head(limit).reset_index(drop=True)

    monkeypatch.setattr(data, "load_transactions", load_transactions)
    monkeypatch.setattr(reviewed, "reviewed_precision", fake.reviewed_precision)
    return fake


def metric_values(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def test_model_page_evaluates_production_version(fake_registry: FakeRegistry, transactions: pd.DataFrame) -> None:
    app = open_page()

    assert not app.exception
    assert texts(app, "error") == []
    assert app.selectbox(key="model_version").value == 1
    metrics = metric_values(app)
    for label in ("Precision", "Recall", "F1", "Alerts", "Alerts per 1,000"):
        assert label in metrics
    caption = next(text for text in texts(app, "caption") if text.startswith("Version 1"))
    assert f"on {len(evaluation_rows(transactions)):,} transactions" in caption


def test_model_page_threshold_slider_updates_metrics(fake_registry: FakeRegistry, artifacts, transactions) -> None:
    app = open_page()
    before = metric_values(app)["Alerts"]

    slider = app.slider(key="model_threshold_1")
    slider.set_value(slider.min).run()

    threshold = float(re.search(r"Threshold in use: \*\*([0-9.]+)\*\*", "\n".join(texts(app, "markdown"))).group(1))
    scores, _ = lab.score_window(artifacts[1], evaluation_rows(transactions))
    expected = int(flag(scores, threshold).sum())
    assert metric_values(app)["Alerts"] == f"{expected:,}"
    assert metric_values(app)["Alerts"] != before
    table = app.dataframe[0].value
    assert (table["predicted_fraud"] == (table["fraud_score"] > threshold)).all()


def test_model_page_contamination_mode(fake_registry: FakeRegistry) -> None:
    app = open_page()

    app.radio(key="model_threshold_mode").set_value("contamination").run()
    app.slider(key="model_contamination_1").set_value(0.5).run()

    assert not app.exception
    alerts_per_1000 = float(metric_values(app)["Alerts per 1,000"])
    # Half of the training rows score above this threshold, and the later
    # window has a similar distribution.
    assert 300 < alerts_per_1000 < 700


def test_model_page_waterfall_for_picked_transaction(fake_registry: FakeRegistry) -> None:
    app = open_page()

    picked = app.selectbox(key="model_explain_pick").value

    assert not app.exception
    assert any(f"Transaction `{picked}`" in text for text in texts(app, "markdown"))
    assert texts(app, "error") == []


def test_model_page_unknown_typed_transaction(fake_registry: FakeRegistry) -> None:
    app = open_page()

    app.text_input(key="model_explain_id").input("no-such-id").run()

    errors = texts(app, "error")
    assert len(errors) == 1
    assert "127.0.0.1" in errors[0]


def test_model_page_promote_and_rollback(fake_registry: FakeRegistry) -> None:
    app = open_page()
    app.selectbox(key="model_version").select(2).run()

    app.button(key="model_promote").click().run()

    assert fake_registry.promotions[-1] == 2
    assert "Version 2 is now in production." in texts(app, "success")
    assert app.button(key="model_promote").disabled

    app.button(key="model_rollback").click().run()

    assert fake_registry.promotions[-1] == 1
    assert "Rolled back: version 1 is in production again." in texts(app, "success")


def test_model_page_compares_on_same_window(fake_registry: FakeRegistry, transactions) -> None:
    app = open_page()

    table = next(frame.value for frame in app.dataframe if "version 1" in frame.value.columns)

    assert list(table.columns) == ["version 1", "version 2"]
    assert table.loc["rows", "version 1"] == f"{len(evaluation_rows(transactions)):,}"
    assert table.loc["rows", "version 2"] == f"{len(evaluation_rows(transactions)):,}"


def test_model_page_other_sklearn_offers_retrain(fake_registry: FakeRegistry, artifacts) -> None:
    fake_registry.artifacts[3] = dict(artifacts[2], sklearn_version="0.24.2")
    app = open_page()

    app.selectbox(key="model_version").select(3).run()

    assert not app.exception
    assert any("scikit-learn 0.24.2" in text and "Retrain" in text for text in texts(app, "warning"))
    assert app.button(key="model_retrain").label == "Retrain with the parameters of version 3"


# ---- models.lab ---------------------------------------------------------------


FORM = {
    "n_estimators": 50, "max_samples": "256", "contamination": "auto", "max_features": "0.5",
    "bootstrap": True, "random_state": 7, "feature_set": "all", "novelty": True, "holdout": 0.3,
    "limit": 1000, "start": " ", "end": "2026-02-01T00:00:00Z",
}


def test_training_params_from_form() -> None:
    params = lab.training_params(FORM)

    assert params.max_samples == 256
    assert params.contamination == "auto"
    assert params.max_features == 0.5
    assert params.bootstrap is True
    assert params.novelty is True
    assert params.start is None
    assert params.end == "2026-02-01T00:00:00Z"


def test_training_params_invalid_holdout() -> None:
    with pytest.raises(TrainingError, match=r"holdout must be a number in \[0, 0.9\], got 0.95"):
        lab.training_params(dict(FORM, holdout=0.95))


def test_evaluation_start_after_training_end() -> None:
    start = lab.evaluation_start({"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-24T10:00:00+00:00"})

    assert start == "2026-01-24T10:00:00.000001+00:00"
    assert lab.evaluation_start(None) is None


def test_threshold_for_contamination_matches_share(artifacts) -> None:
    artifact = artifacts[2]

    threshold = lab.threshold_for(artifact, "contamination", 0.1)

    assert lab.share_above(artifact, threshold) == pytest.approx(0.1, abs=1e-3)
    assert lab.threshold_for(artifact, "threshold", 0.61) == 0.61
    with pytest.raises(ValueError, match="mode must be"):
        lab.threshold_for(artifact, "quantile", 0.1)


def test_comparison_table_same_rows(artifacts, transactions) -> None:
    table = lab.comparison_table(artifacts, transactions.iloc[TRAINING_ROWS:])

    assert list(table.columns) == ["version 1", "version 2"]
    assert table.loc["rows"].tolist() == [len(transactions) - TRAINING_ROWS] * 2
    assert table.loc["threshold", "version 1"] == pytest.approx(artifacts[1]["threshold"])


def test_explain_in_window_sums_to_score(artifacts, transactions) -> None:
    from models.explain import ModelExplainer

    window = transactions.iloc[TRAINING_ROWS:].reset_index(drop=True)
    scores, features = lab.score_window(artifacts[2], window)
    transaction_id = window["transaction_id"].iloc[10]

    result = lab.explain_in_window(ModelExplainer(artifacts[2]), features, window, transaction_id)

    assert result["fraud_score"] == pytest.approx(scores[10])
    assert result["base_value"] + sum(result["contributions"].values()) == pytest.approx(scores[10], abs=1e-9)
    assert lab.explain_in_window(ModelExplainer(artifacts[2]), features, window, "missing") is None


def test_load_evaluation_window_empty(monkeypatch) -> None:
    monkeypatch.setattr(data, "load_transactions", lambda *args: pd.DataFrame(columns=list(data.TRANSACTION_COLUMNS)))

    with pytest.raises(TrainingError, match="No transactions in the evaluation window from 2026-03-01"):
        lab.load_evaluation_window("postgresql://unused@127.0.0.1:1/x", "2026-03-01", None, 100)


def shown_threshold(app: AppTest) -> float:
    markdown = "\n".join(texts(app, "markdown"))
    return float(re.search(r"Threshold in use: \*\*([0-9.]+)\*\*", markdown).group(1))


def narrower_window(artifact: dict, transactions: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Return evaluation rows, and their scores, without the lowest and highest scores of the default window."""
    rows = evaluation_rows(transactions)
    scores, _ = lab.score_window(artifact, rows)
    extremes = np.flatnonzero((scores == scores.min()) | (scores == scores.max()))
    before, after = slice(0, extremes[0]), slice(extremes[-1] + 1, len(rows))
    block = max(before, after, key=lambda part: len(range(len(rows))[part]))
    return rows.iloc[block], scores[block]


def set_evaluation_window(app: AppTest, window: pd.DataFrame) -> None:
    app.text_input(key="model_eval_start").input(window["event_time"].iloc[0].isoformat())
    end = window["event_time"].iloc[-1] + pd.Timedelta(microseconds=1)
    app.text_input(key="model_eval_end").input(end.isoformat()).run()


@pytest.mark.parametrize("end", ["min", "max"])
def test_model_page_threshold_clamped_after_window_change(fake_registry: FakeRegistry, artifacts, transactions, end: str) -> None:
    app = open_page()
    slider = app.slider(key="model_threshold_1")
    slider.set_value(getattr(slider, end)).run()
    window, window_scores = narrower_window(artifacts[1], transactions)
    low, high = lab.threshold_range(window_scores, artifacts[1]["threshold"])
    assert len(window) >= 20
    # The old value is outside the new range.
    assert not low <= slider.value <= high

    set_evaluation_window(app, window)

    assert not app.exception
    assert texts(app, "error") == []
    slider = app.slider(key="model_threshold_1")
    assert (slider.min, slider.max) == (low, high)
    assert slider.min <= window_scores.min()
    assert slider.max >= window_scores.max()
    assert slider.value == (low if end == "min" else high)
    threshold = shown_threshold(app)
    assert threshold == pytest.approx(slider.value, abs=5e-7)
    assert metric_values(app)["Alerts"] == f"{int(flag(window_scores, threshold).sum()):,}"
    table = app.dataframe[0].value
    assert (table["predicted_fraud"] == (table["fraud_score"] > threshold)).all()


def test_model_page_threshold_kept_after_window_change(fake_registry: FakeRegistry, artifacts, transactions) -> None:
    app = open_page()
    window, window_scores = narrower_window(artifacts[1], transactions)
    chosen = round(float(np.median(window_scores)), 4)
    app.slider(key="model_threshold_1").set_value(chosen).run()

    set_evaluation_window(app, window)

    assert not app.exception
    assert app.slider(key="model_threshold_1").value == chosen
    assert shown_threshold(app) == pytest.approx(chosen, abs=5e-7)
    assert metric_values(app)["Alerts"] == f"{int(flag(window_scores, chosen).sum()):,}"


def test_threshold_range_contains_scores() -> None:
    assert lab.threshold_range(np.array([0.38985, 0.61234]), 0.5) == (0.3898, 0.6124)
    assert lab.threshold_range(np.array([0.4, 0.45]), 0.71236) == (0.4, 0.7124)
    assert lab.threshold_range(np.array([0.55]), 0.21) == (0.21, 0.55)


def test_model_page_reviewed_precision(fake_registry: FakeRegistry) -> None:
    fake_registry.reviews[1] = (3, 1)
    app = open_page()

    assert not app.exception
    metrics = metric_values(app)
    assert metrics["Precision on reviewed alerts"] == "0.750"
    assert metrics["Reviewed: confirmed fraud"] == "3"
    assert metrics["Reviewed: false positive"] == "1"


def test_model_page_no_reviews_sentence(fake_registry: FakeRegistry) -> None:
    app = open_page()

    assert not app.exception
    assert metric_values(app)["Precision on reviewed alerts"] == "n/a"
    assert any(text.startswith("No alert of model version 1 has been reviewed") for text in texts(app, "info"))
    assert texts(app, "error") == []


def test_model_page_starts_at_model_threshold(fake_registry: FakeRegistry, artifacts, transactions) -> None:
    app = open_page()

    threshold = artifacts[1]["threshold"]
    assert app.slider(key="model_threshold_1").value == threshold
    assert shown_threshold(app) == pytest.approx(threshold, abs=5e-7)
    scores, _ = lab.score_window(artifacts[1], evaluation_rows(transactions))
    assert metric_values(app)["Alerts"] == f"{int(flag(scores, threshold).sum()):,}"


def test_model_page_compare_incompatible_warning(fake_registry: FakeRegistry, artifacts) -> None:
    fake_registry.artifacts[3] = dict(artifacts[2], sklearn_version="0.24.2")
    app = open_page()

    app.selectbox(key="model_compare_right").select(3).run()

    assert not app.exception
    assert texts(app, "error") == []
    assert any(text.startswith("Versions 1 and 3 cannot be compared.") and "scikit-learn 0.24.2" in text for text in texts(app, "warning"))


def test_format_comparison_counts_and_ratios() -> None:
    table = pd.DataFrame({"version 1": [0.54021, 11835.0, 1200.0, float("nan")]}, index=["threshold", "rows", "alerts", "pr_auc"])

    formatted = lab.format_comparison(table)

    assert formatted["version 1"].tolist() == ["0.5402", "11,835", "1,200", "–"]
