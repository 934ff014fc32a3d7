"""The Model page in a real browser: ``streamlit run app.py`` and headless Chromium.

The fixture starts Streamlit on a free loopback port with the ``stack``
environment, and Playwright drives Debian's ``/usr/bin/chromium`` (Playwright
downloads no browser of its own here). The browser may only reach
127.0.0.1: every other request is aborted, and host names do not resolve.
The test inserts its own transactions, trains on them from the page and
deletes the rows and the version it registered afterwards.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.integration.conftest import wait_for
from tests.integration.test_model_explain_cli import delete_marked_transactions, insert_marked_transactions

pytestmark = pytest.mark.timeout(420)

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
# Playwright waits at most this long for one element, in milliseconds.
ELEMENT_TIMEOUT_MS = 60_000
# Training runs in the page's script, so its result can take longer.
TRAINING_TIMEOUT_MS = 180_000
# How long an input may take to start a script run before the run counts as already over.
RUN_START_TIMEOUT_MS = 2_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def workbench(stack, tmp_path: Path) -> Iterator[str]:
    """Run ``streamlit run app.py`` against the stack and yield its loopback URL."""
    port = free_port()
    log_path = tmp_path / "streamlit.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "app.py",
                "--server.headless", "true",
                "--server.address", "127.0.0.1",
                "--server.port", str(port),
                "--browser.gatherUsageStats", "false",
            ],
            cwd=REPO_ROOT, env=stack.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: healthy(url) or process.poll() is not None, 60, f"Streamlit to answer on {url}"
        )
        assert process.poll() is None, f"Streamlit exited with {process.returncode}:\n{log_path.read_text()}"
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def block_outside_loopback(route: Route) -> None:
    if urlsplit(route.request.url).hostname in LOOPBACK_HOSTS:
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def page() -> Iterator[Page]:
    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing. Run scripts/setup.sh, which installs the Debian package chromium."
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            # Host names do not resolve, so Chromium's background services cannot reach their servers.
            args=["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"],
        )
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 1200})
            context.route("**/*", block_outside_loopback)
            browser_page = context.new_page()
            browser_page.set_default_timeout(ELEMENT_TIMEOUT_MS)
            yield browser_page
        finally:
            browser.close()


@pytest.fixture
def marked_rows(stack):
    rows = insert_marked_transactions(stack.database_url, first_year=2081, seed=12)
    registered_before = stack.scalar("SELECT coalesce(max(version), 0) FROM shop.model_versions")
    yield rows
    delete_marked_transactions(stack, rows)
    stack.query("DELETE FROM shop.model_promotions WHERE version > %s", (registered_before,))
    stack.query("DELETE FROM shop.model_versions WHERE version > %s", (registered_before,))


def wait_for_rerun(page: Page) -> None:
    """Wait until the script run that an input started has ended and replaced every element."""
    try:
        page.locator("[data-test-script-state='running']").wait_for(state="attached", timeout=RUN_START_TIMEOUT_MS)
    except PlaywrightTimeoutError:
        pass  # A short run can end before the check starts.
    expect(page.locator("[data-test-script-state='notRunning']")).to_have_count(1, timeout=TRAINING_TIMEOUT_MS)
    expect(page.locator("[data-stale='true']")).to_have_count(0, timeout=TRAINING_TIMEOUT_MS)


def fill(page: Page, label: str, value: str) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(value)
    field.press("Tab")
    wait_for_rerun(page)


def assert_no_exception(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)
    text = page.locator("body").inner_text()
    assert "Traceback" not in text
    assert "Error:" not in text


def test_model_page_train_evaluate_explain(workbench: str, page: Page, marked_rows) -> None:
    page.goto(workbench)
    # app.py's own sidebar, so the pages run through its st.navigation.
    expect(page.get_by_test_id("stSidebar").get_by_text("Settings", exact=True)).to_be_visible()
    page.get_by_test_id("stSidebarNavLink").filter(has_text="Model").click()
    expect(page.get_by_role("heading", name="Model")).to_be_visible()

    fill(page, "Trees (n_estimators)", "20")
    fill(page, "Sample size (rows)", str(len(marked_rows.frame)))
    fill(page, "Window start (UTC)", marked_rows.start)
    fill(page, "Window end (UTC)", marked_rows.end)
    page.get_by_role("button", name="Train").click()
    wait_for_rerun(page)

    # The hold-out metrics of the new version appear in the Train tab.
    expect(page.get_by_text("Trained and registered version")).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
    roc_auc = page.get_by_test_id("stMetric").filter(has_text="ROC AUC")
    expect(roc_auc).to_be_visible()
    assert float(roc_auc.get_by_test_id("stMetricValue").inner_text()) > 0.5
    assert_no_exception(page)

    # The Evaluate tab scores the held-out rows of this window, and stays
    # selected while its inputs change.
    page.get_by_role("tab", name="Evaluate").click()
    fill(page, "Evaluation end (UTC)", marked_rows.end)
    expect(page.get_by_role("tab", name="Evaluate")).to_have_attribute("aria-selected", "true")
    holdout = round(0.2 * len(marked_rows.frame))
    expect(page.get_by_text(f"on {holdout:,} transactions", exact=False)).to_be_visible()
    # The slider starts at the model's own threshold, which the page prints too.
    sentence = page.get_by_text("Threshold in use:", exact=False).inner_text()
    in_use, own = re.search(r"Threshold in use: ([0-9.]+)\..*own threshold is ([0-9.]+)\.", sentence).groups()
    assert in_use == own
    assert_no_exception(page)

    # The Explain tab draws the SHAP charts and a waterfall.
    page.get_by_role("tab", name="Explain").click()
    charts = page.get_by_role("tabpanel", name="Explain").locator(".js-plotly-plot")
    expect(charts.first).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
    # The mean |SHAP| bars, the beeswarm and the waterfall of one transaction.
    expect(charts).to_have_count(3, timeout=TRAINING_TIMEOUT_MS)
    assert_no_exception(page)



PAGE_TITLES = ("Overview", "Pipeline", "Fraud queue", "Model")


@pytest.mark.parametrize("path, title", [("model", "Model"), ("queue", "Fraud queue")])
def test_page_address_as_first_request(workbench: str, page: Page, path: str, title: str) -> None:
    # The first request of a fresh server: Streamlit would run the page
    # without app.py, unless the page hands over to it.
    page.goto(f"{workbench}/{path}")

    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=ELEMENT_TIMEOUT_MS)
    expect(page.get_by_test_id("stSidebar").get_by_text("Settings", exact=True)).to_be_visible()
    links = page.get_by_test_id("stSidebarNavLink")
    expect(links).to_have_count(len(PAGE_TITLES))
    for name in PAGE_TITLES:
        expect(links.filter(has_text=name)).to_have_count(1)
    assert page.url.rstrip("/").endswith(f"/{path}")
    assert_no_exception(page)


def test_every_page_opens_without_error(workbench: str, page: Page) -> None:
    page.goto(workbench)
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible(timeout=ELEMENT_TIMEOUT_MS)
    for title in PAGE_TITLES:
        page.get_by_test_id("stSidebarNavLink").filter(has_text=title).click()
        expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=ELEMENT_TIMEOUT_MS)
        assert_no_exception(page)
