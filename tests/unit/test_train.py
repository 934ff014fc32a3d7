import json
import re
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
import sklearn

from models import train
from models.artifact import ARTIFACT_KEYS, fraud_score, load_artifact
from models.features import FEATURE_NAMES
from models.train import (
    NO_ROWS_MESSAGE,
    TrainingError,
    TrainingParams,
    fit_and_evaluate,
    train_model,
)

RESULT_KEYS = {"model_path", "rows", "share_flagged", "precision", "recall", "roc_auc", "notes"}
MODEL_NAME = re.compile(r"^isolation_forest_\d{8}T\d{6}Z_[0-9a-f]{8}\.joblib$")


def make_transactions(rows=4000, fraud_share=0.05, seed=0):
    """Build transactions where fraud has larger amounts, rarer devices and a location change.

    The classes overlap: some fraud is small and local, some normal
    transactions are large or abroad, so a perfect score is not guaranteed.
    """
    rng = np.random.default_rng(seed)
    is_fraud = rng.random(rows) < fraud_share

    home = rng.choice(["Paris", "Berlin", "Rome", "Madrid", "Lisbon"], rows)
    abroad = rng.choice(["Lagos", "Minsk", "Lima", "Hanoi"], rows)
    normal_travels = rng.random(rows) < 0.03
    fraud_travels = rng.random(rows) < 0.8
    transaction_location = np.where(
        np.where(is_fraud, fraud_travels, normal_travels), abroad, home
    )

    normal_device = rng.choice(
        ["iPhone 15", "Pixel 8", "Galaxy S24", "MacBook", "ThinkPad"],
        rows,
        p=[0.3, 0.25, 0.2, 0.15, 0.1],
    )
    fraud_device = rng.choice(["Emulator", "Unknown Android", "iPhone 15"], rows, p=[0.4, 0.4, 0.2])
    device = np.where(is_fraud, fraud_device, normal_device)

    normal_amount = rng.gamma(2.0, 40.0, rows)
    fraud_amount = np.where(rng.random(rows) < 0.85, rng.uniform(1500, 9000, rows), normal_amount)
    amount = np.round(np.where(is_fraud, fraud_amount, normal_amount), 2)

    return pd.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(rows)],
            "amount": amount,
            "device": device,
            "location": home,
            "transaction_location": transaction_location,
            "is_fraud": is_fraud.astype(int),
        }
    )


@pytest.fixture(scope="module")
def transactions():
    return make_transactions()


@pytest.fixture(scope="module")
def trained(transactions):
    return fit_and_evaluate(transactions, TrainingParams(n_estimators=50, contamination=0.05))


def test_fit_and_evaluate_quality_floor(trained):
    _, metrics = trained

    assert metrics["roc_auc"] > 0.9
    assert metrics["precision"] > 0.6
    assert metrics["recall"] > 0.6
    assert metrics["notes"] == []


def test_fit_and_evaluate_metric_keys(trained, transactions):
    _, metrics = trained

    assert set(metrics) == RESULT_KEYS - {"model_path"}
    assert metrics["rows"] == len(transactions)
    json.dumps(metrics, allow_nan=False)


@pytest.mark.parametrize("contamination", [0.02, 0.05, 0.1, 0.25, 0.5])
def test_fit_and_evaluate_share_flagged(transactions, contamination):
    _, metrics = fit_and_evaluate(
        transactions, {"n_estimators": 30, "contamination": contamination}
    )

    assert metrics["share_flagged"] == pytest.approx(contamination, abs=0.005)


def test_fit_and_evaluate_contamination_auto(transactions):
    artifact, metrics = fit_and_evaluate(
        transactions, {"n_estimators": 30, "contamination": "auto"}
    )

    # With "auto", scikit-learn fixes offset_ at -0.5, so the threshold is 0.5.
    assert artifact["threshold"] == pytest.approx(0.5)
    assert 0.0 < metrics["share_flagged"] < 1.0


def test_fit_and_evaluate_artifact_content(trained):
    artifact, metrics = trained

    assert set(artifact) == set(ARTIFACT_KEYS)
    assert artifact["feature_names"] == list(FEATURE_NAMES)
    assert artifact["sklearn_version"] == sklearn.__version__
    assert artifact["params"] == {
        "n_estimators": 50,
        "contamination": 0.05,
        "random_state": 42,
        "max_samples": "auto",
        "limit": 200_000,
    }
    assert artifact["metrics"] == metrics
    assert artifact["threshold"] == pytest.approx(-artifact["estimator"].offset_)
    assert artifact["estimator"].n_estimators == 50
    trained_at = datetime.fromisoformat(artifact["trained_at"])
    assert trained_at.utcoffset() == timezone.utc.utcoffset(None)
    json.dumps(artifact["feature_state"])


def test_fit_and_evaluate_labels_unused(transactions):
    flipped = transactions.assign(is_fraud=1 - transactions["is_fraud"])

    artifact, _ = fit_and_evaluate(transactions, {"n_estimators": 20})
    flipped_artifact, _ = fit_and_evaluate(flipped, {"n_estimators": 20})

    np.testing.assert_array_equal(
        fraud_score(artifact, transactions), fraud_score(flipped_artifact, transactions)
    )


def test_fit_and_evaluate_seed_reproducible(transactions):
    first, _ = fit_and_evaluate(transactions, {"n_estimators": 20, "random_state": 7})
    second, _ = fit_and_evaluate(transactions, {"n_estimators": 20, "random_state": 7})

    np.testing.assert_array_equal(
        fraud_score(first, transactions), fraud_score(second, transactions)
    )


@pytest.mark.parametrize("label", [0, 1])
def test_fit_and_evaluate_one_class_labels(transactions, label):
    _, metrics = fit_and_evaluate(transactions.assign(is_fraud=label), {"n_estimators": 20})

    assert metrics["roc_auc"] is None
    assert any(
        note.startswith(f"roc_auc is null because every transaction has is_fraud = {label}")
        for note in metrics["notes"]
    )
    json.dumps(metrics, allow_nan=False)


def test_fit_and_evaluate_no_fraud_recall_null(transactions):
    _, metrics = fit_and_evaluate(transactions.assign(is_fraud=0), {"n_estimators": 20})

    assert metrics["recall"] is None
    assert metrics["precision"] == 0.0
    assert "recall is null because no transaction has is_fraud = 1." in metrics["notes"]


def test_max_samples_above_rows_warns(transactions):
    with pytest.warns(UserWarning, match="max_samples"):
        fit_and_evaluate(transactions.head(50), {"n_estimators": 5, "max_samples": 1000})


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
    with pytest.raises(TrainingError, match="Unknown training parameter\\(s\\) n_trees\\."):
        fit_and_evaluate(transactions, {"n_trees": 10})


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("contamination", 0.0, r"contamination must be 'auto' or a number in \(0, 0.5\], got 0.0\."),
        ("contamination", 0.51, r"contamination must be 'auto' or a number in \(0, 0.5\], got 0.51\."),
        ("contamination", -0.1, r"contamination must be 'auto' or a number in \(0, 0.5\], got -0.1\."),
        ("contamination", float("nan"), r"contamination must be .*, got nan\."),
        ("contamination", "0.1", r"contamination must be .*, got '0.1'\."),
        ("contamination", True, r"contamination must be .*, got True\."),
        ("n_estimators", 0, r"n_estimators must be a whole number from 1 to 10000, got 0\."),
        ("n_estimators", 10_001, r"n_estimators must be a whole number from 1 to 10000, got 10001\."),
        ("n_estimators", 2.5, r"n_estimators must be a whole number .*, got 2.5\."),
        ("n_estimators", True, r"n_estimators must be a whole number .*, got True\."),
        ("limit", 0, r"limit must be a whole number from 1 to 10000000, got 0\."),
        ("random_state", -1, r"random_state must be a whole number from 0 to 4294967295, got -1\."),
        ("max_samples", 0, r"max_samples must be 'auto', .* got 0\."),
        ("max_samples", 0.0, r"max_samples must be 'auto', .* got 0.0\."),
        ("max_samples", 1.5, r"max_samples must be 'auto', .* got 1.5\."),
        ("max_samples", "all", r"max_samples must be 'auto', .* got 'all'\."),
    ],
)
def test_training_params_invalid(name, value, match):
    with pytest.raises(TrainingError, match=match):
        TrainingParams(**{name: value})


@pytest.mark.parametrize(
    "params",
    [
        {"contamination": "auto"},
        {"contamination": 0.5},
        {"contamination": np.float64(0.2)},
        {"n_estimators": np.int64(3)},
        {"random_state": None},
        {"max_samples": 1},
        {"max_samples": 1.0},
        {"max_samples": 0.25},
    ],
)
def test_training_params_valid(params):
    TrainingParams(**params)


def test_training_error_is_value_error():
    assert issubclass(TrainingError, ValueError)


def test_train_model_no_rows(monkeypatch, transactions, tmp_path):
    monkeypatch.setattr(train, "load_transactions", lambda url, limit: transactions.iloc[:0])

    with pytest.raises(TrainingError, match=re.escape(NO_ROWS_MESSAGE)):
        train_model("postgresql://user@127.0.0.1:1/db", output_dir=tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_train_model_validates_before_reading(monkeypatch, tmp_path):
    def fail(url, limit):
        raise AssertionError("read the database despite invalid parameters")

    monkeypatch.setattr(train, "load_transactions", fail)

    with pytest.raises(TrainingError, match="contamination must be"):
        train_model("postgresql://user@127.0.0.1:1/db", contamination=0.9, output_dir=tmp_path)


def test_train_model_result(monkeypatch, transactions, tmp_path):
    requested = {}

    def load(url, limit):
        requested["limit"] = limit
        return transactions.head(limit)

    monkeypatch.setattr(train, "load_transactions", load)

    result = train_model(
        "postgresql://user@127.0.0.1:1/db", n_estimators=20, limit=1000, output_dir=tmp_path
    )

    assert set(result) == RESULT_KEYS
    assert requested["limit"] == 1000
    assert result["rows"] == 1000
    assert load_artifact(result["model_path"])["rows"] == 1000
    assert MODEL_NAME.match(result["model_path"].rsplit("/", 1)[1])


def test_train_model_unwritable_folder(monkeypatch, transactions, tmp_path):
    monkeypatch.setattr(train, "load_transactions", lambda url, limit: transactions.head(limit))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")

    match = "Could not write the model file to .*not-a-folder"
    with pytest.raises(TrainingError, match=match) as raised:
        train_model(
            "postgresql://user@127.0.0.1:1/db",
            n_estimators=5,
            limit=200,
            output_dir=blocker / "models",
        )

    assert "Pass a writable folder with --output-dir" in str(raised.value)
    assert isinstance(raised.value.__cause__, OSError)


def test_main_prints_json_last_line(monkeypatch, capsys, transactions, tmp_path):
    monkeypatch.setenv("WORKBENCH_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(train, "load_transactions", lambda url, limit: transactions.head(limit))

    status = train.main(["--n-estimators", "10", "--limit", "500", "--max-samples", "0.5"])

    output = capsys.readouterr().out.strip().splitlines()
    result = json.loads(output[-1])
    assert status == 0
    assert set(result) == RESULT_KEYS
    assert result["rows"] == 500
    assert result["model_path"].startswith(str(tmp_path / "models"))
    assert load_artifact(result["model_path"])["params"]["max_samples"] == 0.5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--contamination", "0.9"], "contamination must be 'auto' or a number in (0, 0.5], got 0.9."),
        (["--n-estimators", "0"], "n_estimators must be a whole number from 1 to 10000, got 0."),
        (["--max-samples", "2.5"], "max_samples must be 'auto', a whole number of at least 1"),
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


def test_main_no_rows_exit_2(monkeypatch, capsys, transactions, tmp_path):
    monkeypatch.setenv("WORKBENCH_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(train, "load_transactions", lambda url, limit: transactions.iloc[:0])

    status = train.main([])

    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.strip().splitlines()[-1] == NO_ROWS_MESSAGE


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("auto", "auto"), ("256", 256), ("0.5", 0.5), ("1.0", 1.0)],
)
def test_cli_max_samples_parsing(value, parsed):
    args = train._parser().parse_args(["--max-samples", value])

    assert args.max_samples == parsed
    assert type(args.max_samples) is type(parsed)


@pytest.mark.parametrize("value", ["lots", "abc"])
def test_cli_contamination_parse_error(capsys, value):
    with pytest.raises(SystemExit) as raised:
        train._parser().parse_args(["--contamination", value])

    assert raised.value.code == 2
    assert f"must be 'auto' or a number in (0, 0.5], got '{value}'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url",
    ["mysql://user@127.0.0.1/db", "not a url", "postgresql://user:secret@127.0.0.1:port/db"],
)
def test_load_transactions_invalid_url(url):
    with pytest.raises(TrainingError, match="DATABASE_URL") as raised:
        train.load_transactions(url, 10)

    assert "secret" not in str(raised.value)
