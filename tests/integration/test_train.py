"""Training against the real PostgreSQL of the ``stack`` fixture.

The rows inserted here have event times in 2099, so they are the newest in
``shop.transactions`` and ``--limit`` selects exactly them even when other
tests left rows behind. The fixture deletes them afterwards.
"""

import json
import socket
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import psycopg2
import psycopg2.extras
import pytest

from models.artifact import ARTIFACT_KEYS, load_artifact
from models.train import train_model
from tests.unit.test_train import RESULT_KEYS
from pipeline.settings import get_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
ROWS = 3000
FUTURE_START = datetime(2099, 1, 1, tzinfo=timezone.utc)


def make_rows(prefix, rows, seed=0):
    rng = np.random.default_rng(seed)
    cities = ["Paris", "Berlin", "Rome", "Madrid"]
    devices = ["iPhone 15", "Pixel 8", "Galaxy S24", "MacBook"]
    result = []
    for i in range(rows):
        is_fraud = int(rng.random() < 0.05)
        home = str(rng.choice(cities))
        if is_fraud:
            place, device, amount = "Lagos", "Emulator", rng.uniform(2000, 9000)
        else:
            place, device, amount = home, str(rng.choice(devices)), rng.gamma(2.0, 40.0)
        result.append(
            (
                f"{prefix}{i:06d}",
                f"user-{i % 200}",
                FUTURE_START + timedelta(seconds=i),
                "Test",
                "User",
                home,
                place,
                round(float(amount), 2),
                device,
                is_fraud,
                ["test"] if is_fraud else [],
                "test-train",
                0,
                i,
            )
        )
    return result


@pytest.fixture(scope="module")
def inserted(stack):
    prefix = f"test-train-{uuid.uuid4().hex[:8]}-"
    rows = make_rows(prefix, ROWS)
    connection = psycopg2.connect(stack.database_url, connect_timeout=10)
    try:
        with connection, connection.cursor() as cursor:
            psycopg2.extras.execute_values(
                cursor,
                """
                INSERT INTO shop.transactions (
                    transaction_id, user_id, event_time, first_name, last_name, location,
                    transaction_location, amount, device, is_fraud, fraud_reasons,
                    kafka_topic, kafka_partition, kafka_offset
                ) VALUES %s
                """,
                rows,
                page_size=1000,
            )
        yield rows
    finally:
        with connection, connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM shop.transactions WHERE transaction_id LIKE %s", (prefix + "%",)
            )
        connection.close()


def run_train(stack, *args):
    return subprocess.run(
        [sys.executable, "-m", "models.train", *args],
        cwd=REPO_ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_train_cli_prints_result(stack, inserted, tmp_path):
    completed = run_train(
        stack, "--limit", str(ROWS), "--n-estimators", "50", "--output-dir", str(tmp_path),
        "--feature-set", "seed_baseline",
    )

    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert set(result) == RESULT_KEYS
    assert result["rows"] + result["holdout_rows"] == ROWS
    assert result["share_flagged"] == pytest.approx(0.1, abs=0.01)
    assert result["roc_auc"] > 0.9
    assert result["pr_auc"] > 0.5
    assert isinstance(result["version"], int)
    assert 0.0 <= result["precision"] <= 1.0
    assert 0.0 <= result["recall"] <= 1.0

    path = Path(result["model_path"])
    assert path.is_file()
    assert path.parent == tmp_path
    artifact = load_artifact(path)
    assert set(artifact) == set(ARTIFACT_KEYS)
    assert artifact["params"]["limit"] == ROWS
    assert stack.scalar("SELECT row_count FROM shop.model_versions WHERE version = %s", (result["version"],)) == result["rows"]


def test_train_cli_default_folder(stack, inserted):
    completed = run_train(stack, "--limit", "500", "--n-estimators", "10")

    assert completed.returncode == 0, completed.stderr
    path = Path(json.loads(completed.stdout.strip().splitlines()[-1])["model_path"])
    try:
        assert path.is_file()
        assert path.parent == get_settings(stack.env).models_dir
    finally:
        path.unlink(missing_ok=True)


def test_train_model_new_file_each_run(stack, inserted, tmp_path):
    params = {"n_estimators": 10, "limit": 500}
    first = train_model(stack.database_url, params, output_dir=tmp_path)
    second = train_model(stack.database_url, params, output_dir=tmp_path)

    assert first["model_path"] != second["model_path"]
    assert Path(first["model_path"]).is_file()
    assert Path(second["model_path"]).is_file()
    assert first["rows"] + first["holdout_rows"] == 500
    assert second["version"] == first["version"] + 1


def test_train_cli_unreachable_database(stack, tmp_path):
    # A bound socket that never listens makes the port refuse connections
    # for as long as the socket stays open.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        port = blocker.getsockname()[1]
        env = dict(stack.env, DATABASE_URL=f"postgresql://fraud:secret@127.0.0.1:{port}/fraud")

        completed = subprocess.run(
            [sys.executable, "-m", "models.train", "--output-dir", str(tmp_path)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert completed.returncode == 2
    expected = "Could not connect to the database at postgresql://fraud:***@127.0.0.1"
    assert expected in completed.stderr
    assert "secret" not in completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""
    assert list(tmp_path.iterdir()) == []
