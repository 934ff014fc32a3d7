"""The workbench with an invalid setting shows one plain message and no other page."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "app.py"


def test_app_invalid_setting_shows_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_KAFKA_PORT", "abc")

    app = AppTest.from_file(str(APP), default_timeout=30).run()

    assert not app.exception
    assert len(app.error) == 1
    assert "WORKBENCH_KAFKA_PORT must be a whole number" in app.error[0].value
    assert "'abc'" in app.error[0].value


def test_app_invalid_setting_registers_no_other_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_KAFKA_PORT", "abc")
    app = AppTest.from_file(str(APP), default_timeout=30).run()

    # Pages that would read the same setting are not reachable at all.
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        app.switch_page("pages/frauds.py")
