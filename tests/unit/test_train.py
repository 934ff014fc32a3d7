import json
import re
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.ensemble import IsolationForest

from models import data, train
from models.artifact import ARTIFACT_KEYS, flag, fraud_score, load_artifact
from models.features import FEATURE_SETS
from models.synthetic import simulate_transactions
from models.train import NO_ROWS_MESSAGE, TrainingError, TrainingParams, fit_and_evaluate, fit_forest, train_model

METRIC_KEYS = {
    "threshold", "rows", "alerts", "alerts_per_1000", "precision", "recall", "f1",
    "confusion_matrix", "notes", "roc_auc", "pr_auc", "frauds", "recall_by_pattern",
    "holdout_rows", "share_flagged", "feature_set", "training_window",
}
RESULT_KEYS = METRIC_KEYS | {"version", "model_path"}
MODEL_NAME = re.compile(r"^isolation_forest_\d{8}T\d{6}Z_[0-9a-f]{8}\.joblib$")
URL = "postgresql://user@127.0.0.1:1/db"


def make_transactions(rows=6000, seed=0):
    """Simulated transactions of 200 users, about 3 % fraud in five patterns."""
    return simulate_transactions(rows=rows, users=200, seed=seed)


@pytest.fixture(scope="module")
def transactions():
    return make_transactions()


@pytest.fixture(scope="module")
def trained(transactions):
    return fit_and_evaluate(transactions, TrainingParams(n_estimators=50, contamination=0.05))


@pytest.fixture
def jsonl(transactions, tmp_path):
    path = tmp_path / "messages.jsonl"
    messages = transactions.rename(columns={"event_time": "timestamp"}).assign(
        timestamp=lambda df: df["timestamp"].map(lambda t: t.isoformat())
    )
    path.write_text(messages.to_json(orient="records", lines=True))
    return path


def test_fit_and_evaluate_quality_floor(trained):
    _, metrics = trained

    assert metrics["roc_auc"] > 0.9
    assert metrics["pr_auc"] > 0.4


def test_fit_and_evaluate_default_beats_seed_baseline(transactions):
    _, seed = fit_and_evaluate(transactions, {"n_estimators": 100, "feature_set": "seed_baseline"})
    _, default = fit_and_evaluate(transactions, {"n_estimators": 100})

    assert seed["pr_auc"] > 0.1
    assert default["pr_auc"] > 0.4
    assert default["pr_auc"] > seed["pr_auc"]


def test_fit_and_evaluate_metric_keys(trained, transactions):
    _, metrics = trained

    assert set(metrics) == METRIC_KEYS
    assert metrics["rows"] + metrics["holdout_rows"] == len(transactions)
    assert metrics["holdout_rows"] == round(0.2 * len(transactions))
    json.dumps(metrics, allow_nan=False)


def test_fit_and_evaluate_recall_by_pattern(trained):
    _, metrics = trained

    assert set(metrics["recall_by_pattern"]) <= {
        "high_amount", "geo_jump", "new_device", "card_testing", "account_takeover"
    }
    assert sum(item["frauds"] for item in metrics["recall_by_pattern"].values()) == metrics["frauds"]


def test_fit_and_evaluate_without_fraud_pattern(transactions):
    _, metrics = fit_and_evaluate(transactions.drop(columns=["fraud_pattern"]), {"n_estimators": 20})

    assert metrics["recall_by_pattern"] is None


def test_fit_and_evaluate_holdout_is_latest(trained, transactions):
    artifact, _ = trained
    cut = pd.Timestamp(artifact["training_window"]["end"])

    held_out = transactions.sort_values("event_time", kind="stable").iloc[-round(0.2 * len(transactions)):]

    assert (held_out["event_time"] >= cut).all()


@pytest.mark.parametrize("contamination", [0.02, 0.05, 0.1, 0.25])
def test_fit_and_evaluate_share_flagged(transactions, contamination):
    _, metrics = fit_and_evaluate(transactions, {"n_estimators": 30, "contamination": contamination})

    assert metrics["share_flagged"] == pytest.approx(contamination, abs=0.005)


def test_fit_and_evaluate_contamination_auto(transactions):
    artifact, _ = fit_and_evaluate(transactions, {"n_estimators": 30, "contamination": "auto"})

    # With "auto", scikit-learn fixes offset_ at -0.5, so the threshold is 0.5.
    assert artifact["threshold"] == pytest.approx(0.5)


@pytest.mark.parametrize("params", [
    {"n_estimators": 23, "contamination": 0.07, "max_features": 0.5, "bootstrap": True, "random_state": 3},
    {"n_estimators": 10, "contamination": "auto", "max_samples": 100, "max_features": 2},
])
def test_fit_forest_equals_single_fit(transactions, params):
    features = pd.DataFrame(np.random.default_rng(0).normal(size=(800, 3)))
    stepped = fit_forest(features, TrainingParams(feature_set="seed_baseline", **params))
    single = IsolationForest(**TrainingParams(feature_set="seed_baseline", **params).estimator_params()).fit(features)

    np.testing.assert_array_equal(stepped.score_samples(features), single.score_samples(features))
    assert stepped.offset_ == single.offset_


def test_fit_forest_reports_progress():
    seen = []
    features = pd.DataFrame(np.random.default_rng(0).normal(size=(300, 2)))

    fit_forest(features, TrainingParams(n_estimators=25), lambda share, message: seen.append(share))

    assert len(seen) == 9
    assert seen == sorted(seen)


def test_fit_and_evaluate_artifact_content(trained):
    artifact, metrics = trained

    assert set(artifact) == set(ARTIFACT_KEYS)
    assert artifact["feature_names"] == list(FEATURE_SETS["user_history"])
    assert artifact["sklearn_version"] == sklearn.__version__
    assert artifact["params"]["max_features"] == 1.0
    assert artifact["metrics"] == metrics
    assert artifact["threshold"] == pytest.approx(-artifact["estimator"].offset_)
    assert datetime.fromisoformat(artifact["trained_at"]).utcoffset() == timezone.utc.utcoffset(None)
    json.dumps(artifact["feature_state"])


def test_fit_and_evaluate_flag_agrees_with_predict(trained, transactions):
    artifact, _ = trained
    from models.artifact import model_features

    features = model_features(artifact, transactions)
    scores = fraud_score(artifact, transactions)

    np.testing.assert_array_equal(flag(scores, artifact["threshold"]), artifact["estimator"].predict(features) == -1)


def test_fit_and_evaluate_novelty_drops_fraud(transactions):
    artifact, metrics = fit_and_evaluate(transactions, {"n_estimators": 20, "novelty": True})

    train_part = transactions.sort_values("event_time", kind="stable").iloc[: -metrics["holdout_rows"]]
    assert metrics["rows"] == int((train_part["is_fraud"] == 0).sum())
    assert artifact["params"]["novelty"] is True


def test_fit_and_evaluate_labels_unused(transactions):
    flipped = transactions.assign(is_fraud=1 - transactions["is_fraud"])

    artifact, _ = fit_and_evaluate(transactions, {"n_estimators": 20})
    flipped_artifact, _ = fit_and_evaluate(flipped, {"n_estimators": 20})

    np.testing.assert_array_equal(fraud_score(artifact, transactions), fraud_score(flipped_artifact, transactions))


@pytest.mark.parametrize("label", [0, 1])
def test_fit_and_evaluate_one_class_labels(transactions, label):
    _, metrics = fit_and_evaluate(transactions.assign(is_fraud=label), {"n_estimators": 20})

    assert metrics["roc_auc"] is None
    assert metrics["pr_auc"] is None
    assert any(f"every transaction has is_fraud = {label}" in note for note in metrics["notes"])


def test_fit_and_evaluate_holdout_zero_note(transactions):
    _, metrics = fit_and_evaluate(transactions, {"n_estimators": 20, "holdout": 0.0})

    assert metrics["holdout_rows"] == 0
    assert any("describe fit only" in note for note in metrics["notes"])


def test_fit_and_evaluate_empty_frame(transactions):
    with pytest.raises(TrainingError, match="Cannot train on 0 transactions"):
        fit_and_evaluate(transactions.iloc[:0], TrainingParams())


def test_fit_and_evaluate_missing_label(transactions):
    with pytest.raises(TrainingError, match="missing the column is_fraud"):
        fit_and_evaluate(transactions.drop(columns=["is_fraud"]), TrainingParams())


def test_fit_and_evaluate_invalid_label(transactions):
    labels = transactions["is_fraud"].copy()
    labels.iloc[3] = 2

    with pytest.raises(TrainingError, match=r"only 0 and 1, got 2 in 1 row\(s\)"):
        fit_and_evaluate(transactions.assign(is_fraud=labels), TrainingParams())


def test_fit_and_evaluate_missing_feature_column(transactions):
    with pytest.raises(TrainingError, match=r"missing the column\(s\) device\."):
        fit_and_evaluate(transactions.drop(columns=["device"]), TrainingParams())


def test_fit_and_evaluate_unknown_param(transactions):
    with pytest.raises(TrainingError, match=r"Unknown training parameter\(s\) n_trees\."):
        fit_and_evaluate(transactions, {"n_trees": 10})


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("contamination", 0.0, r"contamination must be 'auto' or a number in \(0, 0.5\], got 0.0\."),
        ("contamination", 0.51, r"contamination must be 'auto' or a number in \(0, 0.5\], got 0.51\."),
        ("contamination", float("nan"), r"contamination must be .*, got nan\."),
        ("contamination", "0.1", r"contamination must be .*, got '0.1'\."),
        ("n_estimators", 0, r"n_estimators must be a whole number from 1 to 10000, got 0\."),
        ("n_estimators", True, r"n_estimators must be a whole number .*, got True\."),
        ("limit", 0, r"limit must be a whole number from 1 to 10000000, got 0\."),
        ("random_state", -1, r"random_state must be a whole number from 0 to 4294967295, got -1\."),
        ("max_samples", 0, r"max_samples must be 'auto', .* got 0\."),
        ("max_samples", 1.5, r"max_samples must be 'auto', .* got 1.5\."),
        ("max_features", 0, r"max_features must be a whole number from 1 to 8 .* got 0\."),
        ("max_features", 9, r"max_features must be a whole number from 1 to 8 .* got 9\."),
        ("max_features", 1.5, r"max_features must be .* got 1.5\."),
        ("bootstrap", "yes", r"bootstrap must be True or False, got 'yes'\."),
        ("feature_set", "fancy", r"feature_set must be one of seed_baseline, user_history, all, got 'fancy'\."),
        ("holdout", 0.95, r"holdout must be a number in \[0, 0.9\], got 0.95\."),
        ("start", "yesterday", r"start must be an ISO 8601 time .* got 'yesterday'\."),
    ],
)
def test_training_params_invalid(name, value, match):
    with pytest.raises(TrainingError, match=match):
        TrainingParams(**{name: value})


def test_training_params_window_order():
    with pytest.raises(TrainingError, match="start must be before end"):
        TrainingParams(start="2026-02-01T00:00:00Z", end="2026-01-01T00:00:00Z")


def test_training_error_is_value_error():
    assert issubclass(TrainingError, ValueError)


def test_train_model_no_rows(monkeypatch, transactions, tmp_path):
    monkeypatch.setattr(data, "load_transactions", lambda *args: transactions.iloc[:0])

    with pytest.raises(TrainingError, match=re.escape(NO_ROWS_MESSAGE)):
        train_model(URL, output_dir=tmp_path, register=False)

    assert list(tmp_path.iterdir()) == []


def test_train_model_passes_window(monkeypatch, transactions, tmp_path):
    requested = {}

    def load(url, limit, start, end):
        requested.update(limit=limit, start=start, end=end)
        return transactions.head(limit)

    monkeypatch.setattr(data, "load_transactions", load)
    params = {"n_estimators": 10, "limit": 2000, "start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}

    result = train_model(URL, params, output_dir=tmp_path, register=False)

    assert requested == {"limit": 2000, "start": params["start"], "end": params["end"]}
    assert set(result) == RESULT_KEYS
    assert result["version"] is None
    assert MODEL_NAME.match(result["model_path"].rsplit("/", 1)[1])


def test_train_model_progress(monkeypatch, transactions, tmp_path):
    monkeypatch.setattr(data, "load_transactions", lambda *args: transactions)
    seen = []

    train_model(URL, {"n_estimators": 10}, output_dir=tmp_path, register=False, progress=lambda s, m: seen.append(s))

    assert seen[0] == 0.0
    assert seen[-1] == 1.0


def test_train_model_unwritable_folder(monkeypatch, transactions, tmp_path):
    monkeypatch.setattr(data, "load_transactions", lambda *args: transactions)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")

    with pytest.raises(TrainingError, match="Could not write the model file to .*not-a-folder"):
        train_model(URL, {"n_estimators": 5}, output_dir=blocker / "models", register=False)


def test_main_input_file_json_last_line(capsys, jsonl, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_STATE_DIR", str(tmp_path))

    status = train.main(["--input", str(jsonl), "--n-estimators", "20", "--no-register", "--max-features", "0.5"])

    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status == 0
    assert set(result) == RESULT_KEYS
    assert result["roc_auc"] > 0.8
    assert result["model_path"].startswith(str(tmp_path / "models"))
    assert load_artifact(result["model_path"])["params"]["max_features"] == 0.5


def test_main_feature_set_seed_baseline(capsys, jsonl, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_STATE_DIR", str(tmp_path))

    status = train.main(["--input", str(jsonl), "--n-estimators", "10", "--no-register", "--feature-set", "seed_baseline"])

    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status == 0
    assert result["feature_set"] == "seed_baseline"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--contamination", "0.9"], "contamination must be 'auto' or a number in (0, 0.5], got 0.9."),
        (["--n-estimators", "0"], "n_estimators must be a whole number from 1 to 10000, got 0."),
        (["--feature-set", "fancy"], "feature_set must be one of seed_baseline, user_history, all"),
    ],
)
def test_main_invalid_param_exit_2(monkeypatch, capsys, tmp_path, argv, message):
    monkeypatch.setenv("WORKBENCH_STATE_DIR", str(tmp_path))

    status = train.main(argv)

    captured = capsys.readouterr()
    assert status == 2
    assert message in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_main_invalid_input_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_STATE_DIR", str(tmp_path))
    path = tmp_path / "bad.jsonl"
    path.write_text('{"user_id": "a"}\nnot json\n')

    status = train.main(["--input", str(path), "--no-register"])

    assert status == 2
    assert "bad.jsonl line 2 is not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize(("value", "parsed"), [("auto", "auto"), ("256", 256), ("0.5", 0.5)])
def test_cli_max_samples_parsing(value, parsed):
    args = train._parser().parse_args(["--max-samples", value])

    assert args.max_samples == parsed
    assert type(args.max_samples) is type(parsed)


@pytest.mark.parametrize("url", ["mysql://user@127.0.0.1/db", "not a url", "postgresql://user:secret@127.0.0.1:port/db"])
def test_load_transactions_invalid_url(url):
    with pytest.raises(TrainingError, match="DATABASE_URL") as raised:
        data.load_transactions(url, 10)

    assert "secret" not in str(raised.value)
