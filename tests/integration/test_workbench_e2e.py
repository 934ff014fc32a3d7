"""A person's first run: start both consumers and the producer from the Pipeline page, watch frauds arrive, stop."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from pipeline.settings import get_settings
from pipeline.supervisor import default_supervisor
from tests.integration.conftest import LocalStack, wait_for

pytestmark = pytest.mark.timeout(900)

APP = Path(__file__).resolve().parents[2] / "app.py"
JOBS = ("consumer-transactions", "consumer-frauds", "producer")


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


@pytest.fixture
def workbench_env(stack: LocalStack, monkeypatch, tmp_path: Path) -> dict[str, str]:
    topic = f"workbench-{uuid.uuid4().hex[:8]}"
    env = stack.env_with(
        KAFKA_TOPIC=topic,
        SPARK_CHECKPOINT_DIR=str(tmp_path / "checkpoints"),
        WORKBENCH_STATE_DIR=str(tmp_path / "state"),
    )
    # The jobs need the stack's ports but their own state folder, so that
    # job files of this test start empty.
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    st.cache_data.clear()
    yield env
    supervisor = default_supervisor(get_settings(env))
    for name in JOBS:
        supervisor.stop(name)


def test_workbench_runs_pipeline_end_to_end(stack: LocalStack, workbench_env: dict[str, str]) -> None:
    topic = workbench_env["KAFKA_TOPIC"]
    app = AppTest.from_file(str(APP), default_timeout=60).run()
    app.switch_page("pages/pipeline.py").run()
    assert not app.exception

    app.number_input(key="producer_rate").set_value(100.0)
    app.number_input(key="producer_seed").set_value(3)
    for name in JOBS:
        app.button(key=f"start-{name}").click().run()
        assert not app.exception
        assert not app.error, [error.value for error in app.error]

    # A second start from another session (a second tab) does not start a second copy.
    other_tab = AppTest.from_file(str(APP), default_timeout=60).run()
    other_tab.switch_page("pages/pipeline.py").run()
    supervisor = default_supervisor(get_settings(workbench_env))
    pids = {name: supervisor.status(name).pid for name in JOBS}
    assert all(pids.values()), pids
    for name in JOBS:
        assert other_tab.button(key=f"start-{name}").disabled

    wait_for(
        lambda: stack.scalar(
            "SELECT count(*) FROM shop.fraud_transactions WHERE kafka_topic = %s", (topic,)
        ) >= 3,
        600,
        "frauds to arrive from the workbench's pipeline",
    )
    wait_for(
        lambda: stack.scalar(
            "SELECT count(*) FROM shop.transactions WHERE kafka_topic = %s", (topic,)
        ) >= 3,
        600,
        "ledger rows to arrive from the workbench's pipeline",
    )
    wait_for(lambda: supervisor.status("consumer-frauds").metrics.get("rows_written", 0) > 0, 60,
             "the frauds consumer to report rows written")

    for name in JOBS:
        status = supervisor.status(name)
        assert status.running, f"{name} stopped on its own:\n" + "\n".join(status.log_tail)

    app.run()
    for name in JOBS:
        app.button(key=f"stop-{name}").click().run()
        assert not app.exception
        status = supervisor.status(name)
        assert not status.running
        assert _group_members(pids[name]) == [], f"{name} left processes behind"
