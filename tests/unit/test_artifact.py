import errno
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import sklearn

from models import artifact as artifact_module
from models.artifact import ARTIFACT_KEYS, FORMAT_VERSION, fraud_score, load_artifact, save_artifact
from models.features import FeatureState, build_features
from models.train import TrainingParams, fit_and_evaluate
from tests.unit.test_train import MODEL_NAME, make_transactions

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def transactions():
    return make_transactions()


@pytest.fixture(scope="module")
def trained(transactions):
    return fit_and_evaluate(transactions, TrainingParams(n_estimators=50, contamination=0.05))


def test_artifact_import_without_training_code():
    # Scoring code imports models.artifact alone, without training or database packages.
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, models.artifact; "
            "print(' '.join(sorted(name for name in sys.modules "
            "if name in ('models.train', 'pipeline', 'sqlalchemy', 'psycopg2'))))",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )

    assert loaded.stdout.strip() == ""


def test_save_artifact_new_file_each_run(trained, tmp_path):
    artifact, _ = trained

    first = save_artifact(artifact, tmp_path / "models")
    second = save_artifact(artifact, tmp_path / "models")

    assert first != second
    assert first.is_file()
    assert second.is_file()
    assert MODEL_NAME.match(first.name)
    assert MODEL_NAME.match(second.name)
    assert sorted(path.name for path in (tmp_path / "models").iterdir()) == sorted(
        [first.name, second.name]
    )


def test_save_artifact_unwritable_folder(trained, tmp_path):
    artifact, _ = trained
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")

    with pytest.raises(OSError, match="not-a-folder"):
        save_artifact(artifact, blocker / "models")


def test_save_artifact_link_failure_cleans_up(trained, tmp_path, monkeypatch):
    artifact, _ = trained

    def fail_link(source, target):
        raise OSError(errno.EPERM, "Operation not permitted", str(source))

    monkeypatch.setattr(artifact_module.os, "link", fail_link)

    with pytest.raises(OSError, match="Operation not permitted"):
        save_artifact(artifact, tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_saved_model_loads_and_scores(trained, transactions, tmp_path):
    artifact, _ = trained
    path = save_artifact(artifact, tmp_path)

    loaded = load_artifact(path)
    scores = fraud_score(loaded, transactions)
    features = build_features(transactions, FeatureState.from_dict(loaded["feature_state"]))
    flagged = loaded["estimator"].predict(features) == -1

    assert set(loaded) == set(ARTIFACT_KEYS)
    assert scores.shape == (len(transactions),)
    np.testing.assert_allclose(scores, fraud_score(artifact, transactions))
    np.testing.assert_array_equal(scores > loaded["threshold"], flagged)


def test_fraud_score_higher_for_fraud(trained, transactions):
    artifact, _ = trained

    scores = fraud_score(artifact, transactions)
    labels = transactions["is_fraud"].to_numpy() == 1

    assert scores[labels].mean() > scores[~labels].mean()


def test_fraud_score_feature_mismatch(trained, transactions):
    artifact, _ = trained
    changed = dict(artifact, feature_names=["amount", "device_freq"])

    with pytest.raises(ValueError, match="trained on the features amount, device_freq, but"):
        fraud_score(changed, transactions)


def test_load_artifact_missing_keys(tmp_path):
    path = tmp_path / "broken.joblib"
    joblib.dump({"estimator": None, "format_version": FORMAT_VERSION, "sklearn_version": sklearn.__version__}, path)

    with pytest.raises(ValueError, match=r"is missing the key\(s\) feature_state, "):
        load_artifact(path)


def test_load_artifact_not_dict(tmp_path):
    path = tmp_path / "list.joblib"
    joblib.dump([1, 2], path)

    with pytest.raises(ValueError, match="does not contain a model dict, got list"):
        load_artifact(path)
