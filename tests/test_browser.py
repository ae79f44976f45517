"""optuna-dashboard in a real headless Chromium shows what attach_selection left on a study."""

from __future__ import annotations

from collections.abc import Iterator
import os
from pathlib import Path
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import optuna
import pytest

from optuna_robust.dashboard import attach_selection
from tests.test_plots import run_selection

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_TIMEOUT_S = 20.0
PAGE_TIMEOUT_MS = 15_000

pytestmark = pytest.mark.browser


def _require_chromium() -> None:
    """Skip where Debian's chromium is missing, except under CI=true, where it must run."""
    reason = None
    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} is missing (install it with: apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ModuleNotFoundError:
            reason = "the playwright package is missing (pip install playwright)"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires the browser test to run, but {reason}.")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[str, optuna.Study, dict[str, str]]]:
    """A selection on SQLite with attached results, served by optuna-dashboard on loopback."""
    _require_chromium()
    storage = f"sqlite:///{tmp_path / 'robust.db'}"
    artifact_dir = tmp_path / "artifacts"
    # Small, as SQLite writes are slow: 6 models, the 2 winners attached.
    space = {"width": [8, 16, 32], "learning_rate": [0.001, 0.01]}
    study, result = run_selection(storage, space=space, final_instances=4)
    attached = attach_selection(study, result, artifact_dir=artifact_dir, max_trials=2)
    port = _free_port()
    command = [
        str(Path(sys.executable).with_name("optuna-dashboard")),
        storage,
        "--artifact-dir",
        str(artifact_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    log = (tmp_path / "dashboard.log").open("wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(
                    f"optuna-dashboard exited with {server.returncode}: "
                    f"{(tmp_path / 'dashboard.log').read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{url}/api/studies", timeout=1.0):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"optuna-dashboard did not answer on {url} within 20 s.")
                time.sleep(0.1)
        yield url, study, {"funnel": attached.funnel, "winners": attached.winners_boxplot}
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
        log.close()


def test_dashboard_renders_the_note_figures_and_plot(
    dashboard: tuple[str, optuna.Study, dict[str, str]], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    url, study, artifacts = dashboard
    study_id = study._study_id
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(f"{url}/dashboard/studies/{study_id}/note")
            page.get_by_role("heading", name="Robust selection").wait_for()
            page.get_by_role("heading", name="Budget").wait_for()
            assert page.get_by_text("trainings", exact=False).first.is_visible()
            # Both embedded figures load from /artifacts/ and decode as images.
            sources = [f"/artifacts/{study_id}/{artifacts[k]}" for k in ("funnel", "winners")]
            for source in sources:
                page.wait_for_function(
                    """(src) => [...document.images].some(
                        (img) => img.src.endsWith(src) && img.complete && img.naturalWidth > 0)""",
                    arg=source,
                )
            widths = page.evaluate(
                """() => [...document.images]
                    .filter((img) => new URL(img.src).pathname.startsWith('/artifacts/'))
                    .map((img) => img.naturalWidth)"""
            )
            assert len(widths) == 2 and min(widths) > 100
            page.screenshot(path=str(tmp_path / "dashboard-note.png"), full_page=True)

            # The study's main page shows the interactive plot of instance losses per model.
            page.goto(f"{url}/dashboard/studies/{study_id}")
            page.get_by_text("Instance losses per model").first.wait_for()
            page.screenshot(path=str(tmp_path / "dashboard-study.png"))
        finally:
            browser.close()
    assert (tmp_path / "dashboard-note.png").stat().st_size > 10_000
