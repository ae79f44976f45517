"""The command line on a dead study or bad input: one line on stderr, a non-zero exit status.

Exit status 2: bad input, or a run that stopped for a reason that is not a model's fault.
Exit status 1: a selection that ran to its end without a winner; the line names the cause.
"""

from __future__ import annotations

from collections.abc import Sequence
import concurrent.futures
from pathlib import Path
import time
from typing import Any

import optuna
import pytest

from optuna_robust import Instance
from optuna_robust._lease import driver_lease
from optuna_robust.calo import cli
from optuna_robust.calo import experiments
from optuna_robust.calo import train
from optuna_robust.calo.simulate import simulate

TOY = ["--n-train", "64", "--n-test", "128", "--min-epochs", "1", "--window", "1"]
TOY += ["--max-epochs", "2"]


@pytest.fixture(scope="module")
def data_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "a.root"
    return simulate(dataset="A", n_events=800, seed=3, out=out, progress_bar=False)


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'robust.db'}"


def _select_argv(tmp_path: Path, data_path: Path, *extra: str) -> list[str]:
    argv = ["select", "--storage", _url(tmp_path), "--data", str(data_path), *TOY]
    return [*argv, "--space", "tiny", "--final-instances", "1", *extra]


def _one_line_error(
    argv: list[str], capsys: pytest.CaptureFixture[str], *, status: int = 2
) -> str:
    """Run the command line; check the exit status and that stderr ends in one plain line."""
    try:
        returned = cli.main(argv)
    except SystemExit as exit_info:
        returned = exit_info.code  # type: ignore[assignment]
    assert returned == status
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"optuna-robust {argv[0]}: ")
    return last


def _trains_with(monkeypatch: pytest.MonkeyPatch, train_fn: Any) -> None:
    monkeypatch.setattr(train.CaloTrainer, "__call__", train_fn)


def _trains_raising(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    def raises(self: Any, params: Any, instances: Sequence[Instance]) -> list[float]:
        raise error

    _trains_with(monkeypatch, raises)


# -- the run stops for a reason that is not a model's fault: exit 2, nothing failed ----------


def test_cli_select_stopped_by_unreadable_data_is_one_line_exit_2(
    tmp_path: Path, data_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _trains_raising(monkeypatch, OSError("[Errno 5] Input/output error: 'a.root'"))
    # Before: a traceback ending in SelectionStopped, exit status 1.
    line = _one_line_error(_select_argv(tmp_path, data_path, "--no-baseline"), capsys)
    assert "select stopped: OSError: [Errno 5] Input/output error" in line
    study = optuna.load_study(study_name="robust", storage=_url(tmp_path))
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.RUNNING}


def test_cli_select_while_another_driver_holds_the_study_is_one_line_exit_2(
    tmp_path: Path, data_path: Path, capsys: Any
) -> None:
    study = optuna.create_study(storage=_url(tmp_path), study_name="robust")
    with driver_lease(study):
        # Before: a traceback ending in LeaseError, exit status 1.
        line = _one_line_error(_select_argv(tmp_path, data_path, "--no-baseline"), capsys)
    assert "is being driven by select in process" in line


def test_cli_select_rerun_with_other_settings_names_the_difference(
    tmp_path: Path, data_path: Path, capsys: Any
) -> None:
    assert cli.main(_select_argv(tmp_path, data_path, "--no-baseline")) == 0
    argv = _select_argv(tmp_path, data_path, "--no-baseline", "--statistic", "max")
    line = _one_line_error(argv, capsys)
    assert "statistic was 'mean', now 'max'" in line


def test_cli_shuts_its_process_pool_down_without_waiting_for_queued_work(
    tmp_path: Path, data_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    submitted: list[concurrent.futures.Future[None]] = []

    def stops_with_work_queued(**options: Any) -> None:
        submitted.extend(options["executor"].submit(time.sleep, 1.0) for _ in range(20))
        raise experiments.StorageError("the database went away")

    monkeypatch.setattr(experiments, "robust_selection", stops_with_work_queued)
    started = time.monotonic()
    _one_line_error(_select_argv(tmp_path, data_path, "--no-baseline", "--workers", "2"), capsys)
    # Before: shutdown() waited for all 20 queued sleeps (10 s) before the error came out.
    assert submitted[-1].cancelled()
    assert time.monotonic() - started < 6


# -- a selection that ends without a winner: exit 1 and the real cause ----------------------


def test_cli_select_where_every_model_failed_names_the_error(
    tmp_path: Path, data_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _trains_raising(monkeypatch, RuntimeError("CUDA out of memory"))
    # Before: exit status 0 and "No model passed the baseline gate" (there was no gate).
    line = _one_line_error(_select_argv(tmp_path, data_path, "--no-baseline"), capsys, status=1)
    assert line == (
        "optuna-robust select: no winner: every model failed (2 of 2); 2 with: train_fn "
        "raised RuntimeError: CUDA out of memory"
    )


def test_cli_select_where_no_model_passed_the_gate_names_the_gate(
    tmp_path: Path, data_path: Path, capsys: Any
) -> None:
    # Toy networks are far worse than the parametric baseline: the 20 % gate drops them all.
    line = _one_line_error(_select_argv(tmp_path, data_path), capsys, status=1)
    assert line.startswith("optuna-robust select: no winner: no model passed the baseline gate")
    assert "the best of 2 models had " in line and "loosen --tolerance-gate" in line


@pytest.mark.parametrize(("final", "phase"), [("1", "final"), ("0", "selection")])
def test_cli_select_where_every_winner_diverged_says_so(
    tmp_path: Path,
    data_path: Path,
    final: str,
    phase: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    def diverges(self: Any, params: Any, instances: Sequence[Instance]) -> list[float]:
        return [float("nan")] * len(instances)

    _trains_with(monkeypatch, diverges)
    argv = [*_select_argv(tmp_path, data_path, "--no-baseline"), "--final-instances", final]
    line = _one_line_error(argv, capsys, status=1)
    assert "no winner: every winner diverged: trial " in line
    assert f"all 1 of its {phase} instances have a NaN or infinite loss" in line
