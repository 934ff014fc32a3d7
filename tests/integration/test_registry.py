"""Model registry against the real PostgreSQL of the ``stack`` fixture.

The tests promote versions, and the transactions consumer of other tests
scores with the production version, so this module uses its own database
on the stack's server (the ``own_database`` fixture).
"""

import json
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from models import registry
from models.artifact import IncompatibleModelError
from models.evaluate import compare_models
from models.synthetic import simulate_transactions
from models.train import fit_and_evaluate

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def transactions():
    return simulate_transactions(rows=3000, users=100, seed=9)


@pytest.fixture(scope="module")
def database_url(own_database):
    return own_database


@pytest.fixture(scope="module")
def versions(database_url, transactions):
    first, _ = fit_and_evaluate(transactions, {"n_estimators": 10, "feature_set": "seed_baseline"})
    second, _ = fit_and_evaluate(transactions, {"n_estimators": 10})
    return (
        registry.register_model(database_url, first),
        registry.register_model(database_url, second),
    )


def run_cli(stack, database_url, module, *args):
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT, env=stack.env_with(DATABASE_URL=database_url), capture_output=True, text=True, timeout=300,
    )


def test_registry_promote_and_rollback(database_url, versions):
    first, second = versions

    registry.promote(database_url, first)
    registry.promote(database_url, second)
    rolled_back = registry.rollback(database_url)

    assert rolled_back == first
    assert registry.production_version(database_url) == first


def test_registry_list_marks_production(database_url, versions):
    registry.promote(database_url, versions[1])

    listed = registry.list_versions(database_url)

    production = listed.loc[listed["production"], "version"].tolist()
    assert production == [versions[1]]


def test_registry_load_version_artifact(database_url, versions, transactions):
    version, artifact = registry.load_version(database_url, versions[1])

    assert version == versions[1]
    assert artifact["feature_set"] == "user_history"


def test_registry_unknown_version(database_url, versions):
    with pytest.raises(registry.RegistryError, match="Model version 999999 does not exist"):
        registry.promote(database_url, 999_999)


def test_registry_other_sklearn_version_rejected(database_url, transactions):
    artifact, _ = fit_and_evaluate(transactions, {"n_estimators": 5})
    version = registry.register_model(database_url, dict(artifact, sklearn_version="0.24.2"))

    with pytest.raises(IncompatibleModelError, match="scikit-learn 0.24.2.*Retrain the model"):
        registry.load_version(database_url, version)


def test_registry_compare_same_window(database_url, versions, transactions):
    loaded = {v: registry.load_version(database_url, v)[1] for v in versions}

    comparison = compare_models(loaded, transactions.tail(600))

    assert comparison["rows"] == 600
    assert set(comparison["versions"]) == {str(v) for v in versions}


def test_promote_cli_json_last_line(stack, database_url, versions):
    completed = run_cli(stack, database_url, "models.promote", "--version", str(versions[0]))

    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["production_version"] == versions[0]
    assert result["action"] == "promote"


def test_promote_cli_same_version_changes_nothing(stack, database_url, versions):
    run_cli(stack, database_url, "models.promote", "--version", str(versions[1]))
    promotions = _promotions(database_url)

    completed = run_cli(stack, database_url, "models.promote", "--version", str(versions[1]))

    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == {
        "production_version": versions[1], "action": "promote", "changed": False
    }
    assert f"Model version {versions[1]} was already in production; nothing changed." in completed.stderr
    assert _promotions(database_url) == promotions


def _promotions(database_url: str) -> int:
    connection = psycopg2.connect(database_url, connect_timeout=5)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM shop.model_promotions")
            return cursor.fetchone()[0]
    finally:
        connection.close()


def test_evaluate_cli_input_file(stack, database_url, versions, transactions, tmp_path):
    path = tmp_path / "eval.jsonl"
    messages = transactions.tail(500).rename(columns={"event_time": "timestamp"})
    path.write_text(messages.assign(timestamp=messages["timestamp"].map(str)).to_json(orient="records", lines=True))

    completed = run_cli(stack, database_url, "models.evaluate", "--version", str(versions[1]), "--input", str(path))

    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["version"] == versions[1]
    assert result["rows"] == 500
