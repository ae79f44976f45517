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
    def train_group(self: Any, batches: Any) -> list[Any]:
        return [train_fn(self, params, instances) for params, instances in batches]

    # select hands CaloTrainer whole groups (train_group), and single models after a group
    # failed (__call__): replace both.
    monkeypatch.setattr(train.CaloTrainer, "__call__", train_fn)
    monkeypatch.setattr(train.CaloTrainer, "train_group", train_group)


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


# -- bad input: one line, exit 2, before any work ---------------------------------------------


def test_cli_robustness_of_an_unknown_study_names_the_studies(
    tmp_path: Path, data_path: Path, capsys: Any
) -> None:
    optuna.create_study(storage=_url(tmp_path), study_name="nas")
    argv = ["robustness", "--storage", _url(tmp_path), "--study", "unknown", "--trial", "0"]
    # Before: a traceback ending in KeyError: 'Record does not exist.'
    line = _one_line_error([*argv, "--data", str(data_path)], capsys)
    assert "no study 'unknown'" in line and "['nas']" in line


def test_cli_simulate_out_a_folder(tmp_path: Path, capsys: Any) -> None:
    argv = ["simulate", "--dataset", "A", "--events", "10", "--out", str(tmp_path)]
    # Before: a traceback ending in IsADirectoryError.
    assert "it is a folder" in _one_line_error(argv, capsys)


@pytest.mark.parametrize("name", ["space.toml", "spaces"])
def test_cli_select_space_a_folder(
    tmp_path: Path, data_path: Path, name: str, capsys: Any
) -> None:
    (tmp_path / name).mkdir()
    argv = _select_argv(tmp_path, data_path, "--space", str(tmp_path / name))
    # Before: a traceback ending in IsADirectoryError for the .toml folder.
    assert "is a folder" in _one_line_error(argv, capsys)


def test_cli_storage_password_is_masked(capsys: Any) -> None:
    argv = ["report", "--storage", "postgresql://nobody:s3cret-pw@127.0.0.1:1/none"]
    line = _one_line_error(argv, capsys)
    # Before: the password was echoed in the error.
    assert "postgresql://nobody:***@127.0.0.1:1/none" in line
    assert "s3cret-pw" not in line


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite://", "sqlite:///:memory:"])
def test_cli_in_memory_sqlite_is_refused(url: str, capsys: Any) -> None:
    # Before: accepted, and every result lost when the command ended.
    line = _one_line_error(["report", "--storage", url], capsys)
    assert "in-memory SQLite database" in line and "sqlite:///robust.db" in line


def test_cli_report_on_a_missing_sqlite_file_creates_nothing(tmp_path: Path, capsys: Any) -> None:
    missing = tmp_path / "typo.db"
    # Before: an empty typo.db was created and an empty report printed.
    line = _one_line_error(["report", "--storage", f"sqlite:///{missing}"], capsys)
    assert f"no storage at '{missing}'" in line
    assert not missing.exists()


@pytest.mark.parametrize(("command", "stored_kind"), [("nas", "selection"), ("select", "nas")])
def test_cli_refuses_a_study_of_the_other_kind_before_writing(
    tmp_path: Path, data_path: Path, command: str, stored_kind: str, capsys: Any
) -> None:
    study = optuna.create_study(storage=_url(tmp_path), study_name="mine")
    study.set_user_attr("kind", stored_kind)
    study.enqueue_trial({"lr": 0.1})
    argv = [command, "--storage", _url(tmp_path), "--study", "mine", "--data", str(data_path)]
    line = _one_line_error([*argv, *TOY], capsys)
    assert f"Study 'mine' holds a {stored_kind} study" in line
    # Before: relabelled as the other kind before failing.
    study = optuna.load_study(study_name="mine", storage=_url(tmp_path))
    assert study.user_attrs == {"kind": stored_kind}
    assert len(study.trials) == 1


def test_cli_select_refuses_another_task_for_a_stored_selection(
    tmp_path: Path, data_path: Path, capsys: Any
) -> None:
    study = optuna.create_study(storage=_url(tmp_path), study_name="robust")
    study.set_user_attr("kind", "selection")
    study.set_user_attr("task", "energy")
    argv = _select_argv(tmp_path, data_path, "--task", "position", "--no-baseline")
    line = _one_line_error(argv, capsys)
    assert "for task 'energy', not 'position'" in line
    assert optuna.load_study(study_name="robust", storage=_url(tmp_path)).user_attrs == {
        "kind": "selection",
        "task": "energy",
    }


def test_cli_statistic_is_checked_before_any_work(tmp_path: Path, capsys: Any) -> None:
    missing = tmp_path / "missing.root"
    argv = _select_argv(tmp_path, missing, "--statistic", "mode")
    # Before: checked only inside the selection, after loading the data for the baseline.
    err = _one_line_error(argv, capsys)
    assert "--statistic" in err and "'mode'" in err
    assert not (tmp_path / "robust.db").exists()


def test_cli_select_checks_the_data_even_without_a_baseline(tmp_path: Path, capsys: Any) -> None:
    broken = tmp_path / "broken.root"
    broken.write_text("not a ROOT file")
    line = _one_line_error(_select_argv(tmp_path, broken, "--no-baseline"), capsys)
    # Before: every model failed with CaloDataError, and a rerun kept the failures.
    assert "broken.root: not a readable ROOT file" in line
    assert optuna.get_all_study_names(_url(tmp_path)) == []


@pytest.mark.parametrize(
    ("argv", "message", "reason"),
    [
        (
            ["simulate", "--dataset", "A", "--events", "20000000"],
            "--events: must be <= 10000000 (",
            "GB",
        ),
        (
            ["select", "--data", "missing.root", "--workers", "100000"],
            "--workers: must be <= ",
            "per CPU",
        ),
    ],
)
def test_cli_counts_have_an_upper_bound_with_the_reason(
    tmp_path: Path, argv: list[str], message: str, reason: str, capsys: Any
) -> None:
    # Should the bound go, these still fail fast: the output folder and the space are missing.
    if argv[0] == "simulate":
        argv = [*argv, "--out", str(tmp_path / "missing" / "x.root")]
    else:
        argv = [*argv, "--storage", _url(tmp_path), "--space", "no-such-space"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    # Before: accepted; 100,000 workers forked about 1,900 processes before failing.
    assert message in err and reason in err


@pytest.mark.postgres
def test_cli_storage_password_is_masked_in_the_servers_own_error(
    postgres_url: str, capsys: Any
) -> None:
    url = postgres_url.replace("postgres@", "postgres:hunter22@").replace("/test", "/no_such_db")
    line = _one_line_error(["report", "--storage", url], capsys)
    assert 'database "no_such_db" does not exist' in line
    assert "postgres:***@127.0.0.1" in line and "hunter22" not in line
