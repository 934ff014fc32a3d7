"""The local stack's life cycle and the migration step, on real services."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg2
import pytest

from pipeline.migrate import MigrationError, migrate
from pipeline.processes import is_running
from pipeline.settings import get_settings
from tests.integration.conftest import PROJECT_ROOT, LocalStack, _free_ports

pytestmark = pytest.mark.timeout(600)


def _stack_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.stack", *args],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture
def second_stack_env(stack: LocalStack):
    """Environment for a second stack with its own ports and state folder."""
    state_dir = Path(tempfile.mkdtemp(prefix="workbench-stack-test-"))
    state_dir.chmod(0o755)
    kafka_port, controller_port, postgres_port = _free_ports(3)
    env = stack.env_with(
        WORKBENCH_STATE_DIR=str(state_dir),
        WORKBENCH_KAFKA_PORT=str(kafka_port),
        WORKBENCH_KAFKA_CONTROLLER_PORT=str(controller_port),
        WORKBENCH_POSTGRES_PORT=str(postgres_port),
    )
    yield env
    _stack_command(env, "down")
    shutil.rmtree(state_dir, ignore_errors=True)


def test_stack_up_twice_then_down(second_stack_env: dict[str, str]) -> None:
    first = _stack_command(second_stack_env, "up")
    assert first.returncode == 0, first.stderr[-3000:]
    status = json.loads(_stack_command(second_stack_env, "status", "--json").stdout)
    assert status["kafka"]["running"] is True
    assert status["postgres"]["running"] is True
    assert status["kafka"]["bootstrap_servers"] == (
        f"127.0.0.1:{second_stack_env['WORKBENCH_KAFKA_PORT']}"
    )
    assert status["postgres"]["url"].startswith("postgresql://fraud:***@127.0.0.1:")
    pids = (status["kafka"]["pid"], status["postgres"]["pid"])

    second = _stack_command(second_stack_env, "up")
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads(_stack_command(second_stack_env, "status", "--json").stdout)
    assert (again["kafka"]["pid"], again["postgres"]["pid"]) == pids

    down = _stack_command(second_stack_env, "down")
    assert down.returncode == 0, down.stderr[-3000:]
    for pid in pids:
        assert not is_running(pid)
    stopped = json.loads(_stack_command(second_stack_env, "status", "--json").stdout)
    assert stopped["kafka"]["running"] is False
    assert stopped["postgres"]["running"] is False


def test_stack_port_taken_gives_clear_error(stack: LocalStack, second_stack_env: dict[str, str]) -> None:
    env = dict(second_stack_env, WORKBENCH_POSTGRES_PORT=str(stack.settings.postgres_port))

    result = _stack_command(env, "up")

    assert result.returncode == 1
    assert f"Port {stack.settings.postgres_port} on 127.0.0.1 is taken" in result.stderr
    assert "Traceback" not in result.stderr


def test_migrate_twice_changes_nothing(stack: LocalStack) -> None:
    assert migrate(stack.database_url) == []

    result = subprocess.run(
        [sys.executable, "-m", "pipeline.migrate"],
        cwd=PROJECT_ROOT, env=stack.env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "schema is current" in result.stdout
    applied = stack.query("SELECT filename FROM shop.schema_migrations ORDER BY filename")
    assert [row[0] for row in applied] == sorted(path.name for path in (PROJECT_ROOT / "sql").glob("*.sql"))


def test_migrate_rejects_changed_file(stack: LocalStack, tmp_path: Path) -> None:
    for path in (PROJECT_ROOT / "sql").glob("*.sql"):
        (tmp_path / path.name).write_text(path.read_text() + "\n-- edited\n")

    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(stack.database_url, sql_dir=tmp_path)


def test_migrate_applies_new_file_once(stack: LocalStack, tmp_path: Path) -> None:
    for path in (PROJECT_ROOT / "sql").glob("*.sql"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "999_test_extra.sql").write_text("CREATE TABLE IF NOT EXISTS shop.test_extra (id int);")
    try:
        assert migrate(stack.database_url, sql_dir=tmp_path) == ["999_test_extra.sql"]
        assert migrate(stack.database_url, sql_dir=tmp_path) == []
    finally:
        stack.query("DROP TABLE IF EXISTS shop.test_extra")
        stack.query("DELETE FROM shop.schema_migrations WHERE filename = '999_test_extra.sql'")


def test_migrate_unreachable_database_message(stack: LocalStack) -> None:
    (closed_port,) = _free_ports(1)
    env = stack.env_with(DATABASE_URL=f"postgresql://fraud:secret@127.0.0.1:{closed_port}/fraud")

    result = subprocess.run(
        [sys.executable, "-m", "pipeline.migrate"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 1
    assert "Could not connect to PostgreSQL" in result.stderr
    assert "secret" not in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_rejects_invalid_label(stack: LocalStack) -> None:
    with pytest.raises(psycopg2.errors.CheckViolation):
        stack.query(
            "INSERT INTO shop.transactions (transaction_id, user_id, event_time, first_name, last_name,"
            " location, transaction_location, amount, device, is_fraud, kafka_topic, kafka_partition,"
            " kafka_offset) VALUES ('schema-test', 'u', now(), 'a', 'b', 'x', 'y', 1, 'd', 5, 't', 0, 0)"
        )
