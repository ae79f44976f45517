"""The simulation's output is atomic: a killed or interrupted writer leaves the old file alone.

Each test runs a real ``optuna-robust simulate`` process and stops it midway, once the first
basket of events is on disk (a truncated file would load as a smaller dataset).
"""

from __future__ import annotations

from pathlib import Path
import re
import signal
import subprocess
import sys
import time

import pytest

from optuna_robust.calo.data import CaloData
from optuna_robust.calo.data import CaloDataError
from optuna_robust.calo.simulate import simulate

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 400_000
# simulate writes a basket every 50,176 events; two more blocks of 256 make sure one is out.
PROGRESS_AT_STOP = 50_176 + 2 * 256


def _events_done(log: Path) -> int:
    counts = re.findall(rf"(\d+)/{EVENTS} \[", log.read_text(errors="replace"))
    return int(counts[-1]) if counts else 0


def _default_signals() -> None:
    """In the child: Ctrl-C and SIGTERM as in a terminal, even where a shell that started the
    tests in the background ignores SIGINT (Python then keeps ignoring it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop_midway(out: Path, sig: signal.Signals) -> tuple[int, str]:
    """Run ``optuna-robust simulate`` over ``out`` and send it ``sig`` midway."""
    log = out.parent / "simulate.log"
    command = [sys.executable, "-m", "optuna_robust.calo.cli", "simulate", "--dataset", "A"]
    command += ["--events", str(EVENTS), "--seed", "1", "--out", str(out)]
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=_default_signals,
        )
        try:
            deadline = time.monotonic() + 240
            while _events_done(log) < PROGRESS_AT_STOP:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the simulation never got going"
                time.sleep(0.05)
            process.send_signal(sig)
            returncode = process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    log_text = log.read_text(errors="replace")
    log.unlink()
    return returncode, log_text


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["ctrl-c", "term", "kill"]
)
def test_a_stopped_simulate_leaves_the_old_file_and_nothing_loadable(
    tmp_path: Path, sig: signal.Signals
) -> None:
    out = simulate(dataset="A", n_events=500, seed=0, out=tmp_path / "A.root", progress_bar=False)
    old = out.read_bytes()
    returncode, log = _stop_midway(out, sig)
    # Before: the old file was gone and a truncated one with 50,176 events loaded silently.
    assert out.read_bytes() == old
    assert CaloData.from_root(out).n_events == 500
    leftovers = sorted(path for path in tmp_path.iterdir() if path != out)
    if sig != signal.SIGKILL:
        assert returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig]
        assert log.strip().splitlines()[-1] == (
            "optuna-robust simulate: interrupted; the --out file is as it was."
        )
        assert leftovers == []  # the partial file is cleaned up
    else:
        assert returncode == -signal.SIGKILL
        assert len(leftovers) == 1  # SIGKILL leaves no chance to clean up ...
        with pytest.raises(
            CaloDataError, match=f"holds [0-9]+ events but was written for {EVENTS}"
        ):
            CaloData.from_root(leftovers[0])  # ... but what is left cannot be used


def test_simulate_refuses_an_output_path_that_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match="is a folder"):
        simulate(dataset="A", n_events=10, seed=0, out=tmp_path, progress_bar=False)


def test_simulate_records_the_events_it_was_asked_for(tmp_path: Path) -> None:
    out = simulate(dataset="A", n_events=300, seed=0, out=tmp_path / "a.root", progress_bar=False)
    import uproot

    with uproot.open(out) as root_file:
        assert "[expected_events=300]" in root_file["events"].title
    assert [path.name for path in tmp_path.iterdir()] == ["a.root"]
