"""optuna-dashboard in a real headless Chromium shows what a user must see of a selection.

The winner's trial page lists its artifacts, the TPE study's note holds the comparison, and no
page is wider than a 1280 px window. Screenshots land in the test's tmp_path.
"""

from __future__ import annotations

from collections.abc import Iterator
import dataclasses
import json
import os
from pathlib import Path
import socket
import subprocess
import sys
import time
from typing import Any
import urllib.error
import urllib.request

import optuna
import pytest

from optuna_robust.visualization import TrialArtifactsCallback
from optuna_robust.visualization import attach_comparison
from optuna_robust.visualization import attach_selection
from tests.visualization._selection import run_selection
from tests.visualization._selection import run_tpe_and_robustness

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
VIEWPORT = {"width": 1280, "height": 800}
# A note that a user reads in a few screens; the one that sent every model's files to the study
# was 9,246 px tall.
MAX_NOTE_HEIGHT = 6_000

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


@dataclasses.dataclass(frozen=True)
class Served:
    url: str
    folder: Path
    robust: optuna.Study
    tpe: optuna.Study
    winner: optuna.trial.FrozenTrial


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A selection, a TPE search and its robustness study on SQLite, all attached, served by
    optuna-dashboard on loopback."""
    _require_chromium()
    tmp_path = tmp_path_factory.mktemp("dashboard")
    storage = f"sqlite:///{tmp_path / 'robust.db'}"
    artifact_dir = tmp_path / "artifacts"
    # Small, as SQLite writes are slow: 6 models, 2 winners; batch_size is the same for all,
    # as the many constant params of a real search are.
    space = {"width": [8, 16, 32], "learning_rate": [0.001, 0.01], "batch_size": [64]}
    robust, result = run_selection(
        storage,
        space=space,
        final_instances=4,
        study_name="demo-robust",
        callbacks=[TrialArtifactsCallback(artifact_dir)],
    )
    attach_selection(robust, result, artifact_dir=artifact_dir, max_trials=4)
    tpe, robustness = run_tpe_and_robustness(storage, prefix="demo", n_trials=4, fresh_instances=4)
    attach_comparison(robust, tpe, robustness, artifact_dir=artifact_dir)
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
        yield Served(url, tmp_path, robust, tpe, result.winners[0])
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
        log.close()


# The page's own width; the right edge of what the notes hold (Markdown tables, artifact
# images), since a table in a scrolling box would hide cut-off columns from scrollWidth; and
# the height of the longest scrolling panel (the dashboard scrolls inside its panels).
_MEASURE = """() => {
    const ours = document.querySelectorAll('table:not(.MuiTable-root), img[src*="/artifacts/"]');
    const panels = [...document.querySelectorAll('*')].filter((el) =>
        ['auto', 'scroll'].includes(getComputedStyle(el).overflowY));
    return {
        scrollWidth: document.documentElement.scrollWidth,
        rightmost: Math.max(0, ...[...ours].map((el) => el.getBoundingClientRect().right)),
        tallest: Math.max(document.documentElement.scrollHeight,
                          ...panels.map((el) => el.scrollHeight)),
    };
}"""


def _measure(page: Any, name: str, folder: Path) -> dict[str, int]:
    """The page's sizes, recorded in page-sizes.json, and a screenshot of all of it."""
    measured: dict[str, int] = page.evaluate(_MEASURE)
    sizes_file = folder / "page-sizes.json"
    sizes = json.loads(sizes_file.read_text()) if sizes_file.exists() else {}
    sizes_file.write_text(json.dumps({**sizes, name: measured}, indent=1))
    # The dashboard scrolls inside its own panels, so a full-page screenshot would cut them:
    # a window as tall as the tallest panel shows everything.
    page.set_viewport_size({"width": VIEWPORT["width"], "height": measured["tallest"] + 200})
    page.screenshot(path=str(folder / f"dashboard-{name}.png"))
    page.set_viewport_size(VIEWPORT)
    return measured


def _fits(page: Any, name: str, folder: Path) -> dict[str, int]:
    """Measure and screenshot the page, and check that nothing reaches past 1280 px."""
    measured = _measure(page, name, folder)
    assert measured["scrollWidth"] <= VIEWPORT["width"], (name, measured)
    assert measured["rightmost"] <= VIEWPORT["width"], (name, measured)
    return measured


def _wait_for_images(page: Any, prefix: str, count: int) -> None:
    """Wait until ``count`` images served under ``prefix`` have loaded and decoded."""
    page.wait_for_function(
        """([prefix, count]) => [...document.images].filter((img) =>
            new URL(img.src).pathname.startsWith(prefix) && img.complete && img.naturalWidth > 0
        ).length >= count""",
        arg=[prefix, count],
    )


def _open(playwright: Any) -> tuple[Any, Any]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    return browser, page


def test_dashboard_shows_trial_artifacts_notes_and_the_comparison(dashboard: Served) -> None:
    from playwright.sync_api import sync_playwright

    url, folder, robust, tpe = dashboard.url, dashboard.folder, dashboard.robust, dashboard.tpe
    winner = dashboard.winner
    with sync_playwright() as playwright:
        browser, page = _open(playwright)
        try:
            # The winner's own page lists its figure and records, and its note shows the
            # figure at full width (the artifact list shows only a thumbnail).
            page.goto(f"{url}/dashboard/studies/{robust._study_id}/trials?numbers={winner.number}")
            stem = f"trial-{winner.number:05d}-instances"
            for ext in ("png", "csv", "json"):
                page.get_by_text(f"{stem}.{ext}").first.wait_for()
            page.get_by_role("heading", name=f"Instances of trial {winner.number}").wait_for()
            _wait_for_images(page, f"/artifacts/{robust._study_id}/{winner._trial_id}/", 2)
            widths = page.evaluate(
                "() => [...document.images].map((img) => img.getBoundingClientRect().width)"
            )
            assert max(widths) > 600, widths  # the note's copy, readable
            _measure(page, "trial", folder)  # its width: see the test below

            # The selection's note: headings, both figures, and the comparison section.
            page.goto(f"{url}/dashboard/studies/{robust._study_id}/note")
            page.get_by_role("heading", name="Robust selection", exact=True).wait_for()
            page.get_by_role("heading", name="Budget").wait_for()
            page.get_by_role("heading", name="Robust selection vs TPE").wait_for()
            assert page.get_by_text("Shared by every model below: batch_size=64").is_visible()
            _wait_for_images(page, "/artifacts/", 3)  # funnel, winners, comparison
            note = _fits(page, "note", folder)
            assert note["tallest"] <= MAX_NOTE_HEIGHT, note

            # The TPE study's note is where a user of the TPE search finds the comparison.
            page.goto(f"{url}/dashboard/studies/{tpe._study_id}/note")
            page.get_by_role("heading", name="Robust selection vs TPE").wait_for()
            label = f"robust selection (demo-robust #{winner.number})"
            assert page.get_by_role("cell", name=label).is_visible()
            _wait_for_images(page, f"/artifacts/{tpe._study_id}/", 1)
            _fits(page, "tpe-note", folder)

            # The study's main page: the interactive plots, and only two study artifacts.
            page.goto(f"{url}/dashboard/studies/{robust._study_id}")
            page.get_by_text("Instance losses per model").first.wait_for()
            page.get_by_text("Statistic over instances per model").first.wait_for()
            _fits(page, "study", folder)
        finally:
            browser.close()
    assert (folder / "dashboard-note.png").stat().st_size > 10_000


@pytest.mark.xfail(
    strict=True,
    reason="optuna-dashboard prints each instance record (one user attr: the loss and two "
    "seeds, 17-digit losses) on one unwrapped line: 1,303 px here, over the 1,280 px window "
    "(was 1,689 px with the extras in the record, 5,706 px with curves)",
)
def test_trial_page_fits_the_window(dashboard: Served) -> None:
    from playwright.sync_api import sync_playwright

    url, robust, winner = dashboard.url, dashboard.robust, dashboard.winner
    with sync_playwright() as playwright:
        browser, page = _open(playwright)
        try:
            page.goto(f"{url}/dashboard/studies/{robust._study_id}/trials?numbers={winner.number}")
            page.get_by_text(f"trial-{winner.number:05d}-instances.png").first.wait_for()
            _fits(page, "trial-width", dashboard.folder)
        finally:
            browser.close()
