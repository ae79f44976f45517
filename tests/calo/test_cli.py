"""The command line: clear errors on bad input, and the whole workflow on a tiny dataset."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np
import optuna
import pytest

from optuna_robust import instance_losses
from optuna_robust.calo import cli


def test_console_script_is_the_calo_command_line() -> None:
    (script,) = metadata.entry_points(group="console_scripts", name="optuna-robust")
    assert script.load() is cli.main


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["simulate", "--dataset", "A", "--events", "0", "--out", "x.root"],
            "--events: must be >= 1, got 0",
        ),
        (
            ["simulate", "--dataset", "C", "--events", "5", "--out", "x.root"],
            "invalid choice: 'C'",
        ),
        (
            ["simulate", "--dataset", "A", "--events", "ten", "--out", "x.root"],
            "expected a int, got 'ten'",
        ),
        (["nas", "--data", "x.root", "--trials", "-3"], "--trials: must be >= 1, got -3"),
        (["select", "--data", "x.root", "--tolerance", "-0.1"], "--tolerance: must be >= 0.0"),
    ],
)
def test_cli_argument_out_of_range(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in _fails(argv, capsys)


def test_cli_unreachable_storage(capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails(["report", "--storage", "postgresql://nobody@127.0.0.1:1/none"], capsys)
    assert "Cannot open storage 'postgresql://nobody@127.0.0.1:1/none'" in err
    assert "Traceback" not in err


def test_cli_space_file_typo_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.toml"
    space.write_text("[fixed]\nn_conv = 1\n\n[space]\nlearning_rate = [0.001, 0.01]\n")
    argv = ["select", "--storage", f"sqlite:///{tmp_path / 'r.db'}", "--data", "x.root"]
    err = _fails([*argv, "--space", str(space), "--no-baseline"], capsys)
    assert "unknown key 'learning_rate' in [space]; did you mean 'lr'?" in err
    assert optuna.get_all_study_names(f"sqlite:///{tmp_path / 'r.db'}") == []  # nothing written


def test_cli_space_file_invalid_value_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tmp_path / "space.toml"
    space.write_text("[space]\nconv1_kernel = [3, 4]\n")
    argv = ["select", "--storage", f"sqlite:///{tmp_path / 'r.db'}", "--data", "x.root"]
    err = _fails([*argv, "--space", str(space), "--no-baseline"], capsys)
    assert "conv1_kernel" in err and "4" in err


def test_cli_missing_data_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["select", "--storage", f"sqlite:///{tmp_path / 'r.db'}", "--space", "tiny"]
    err = _fails([*argv, "--data", str(tmp_path / "missing.root")], capsys)
    assert "missing.root" in err and "Traceback" not in err


def test_cli_workflow_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """simulate -> select -> nas -> robustness -> report, on one storage, at toy scale."""
    data = tmp_path / "a.root"
    storage = f"sqlite:///{tmp_path / 'robust.db'}"
    assert cli.main(["simulate", "--dataset", "A", "--events", "800", "--out", str(data)]) == 0
    tiny = ["--storage", storage, "--data", str(data), "--n-train", "64", "--n-test", "128"]
    tiny += ["--min-epochs", "1", "--window", "1", "--max-epochs", "2"]
    assert (
        cli.main(["select", *tiny, "--space", "tiny", "--no-baseline", "--final-instances", "2"])
        == 0
    )
    assert cli.main(["nas", *tiny, "--trials", "2"]) == 0
    assert (
        cli.main(["robustness", *tiny, "--study", "nas", "--trial", "0", "--instances", "2"]) == 0
    )
    capsys.readouterr()
    assert cli.main(["report", "--storage", storage]) == 0
    out = capsys.readouterr().out
    for line in ("robust  selection", "nas        nas", "nas:robustness robustness", "nas#0"):
        assert line.split()[0] in out
    names = set(optuna.get_all_study_names(storage))
    assert names == {"robust", "nas", "nas:robustness"}
    selection = optuna.load_study(study_name="robust", storage=storage)
    winner = selection.best_trial
    assert len([k for k in winner.user_attrs if k.startswith("robust:final:")]) == 2
    measured = optuna.load_study(study_name="nas:robustness", storage=storage).trials[0]
    assert measured.system_attrs["calo:source"] == "nas#0"


def test_demo_runs_end_to_end_at_toy_scale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from optuna_robust.calo import demo
    from optuna_robust.calo.spaces import tiny_space
    from optuna_robust.calo.train import TrainSettings

    monkeypatch.setattr(demo, "EVENTS", 600)
    monkeypatch.setattr(demo, "FINAL_INSTANCES", 2)
    monkeypatch.setattr(demo, "GATE_TOLERANCE", 1e6)  # toy training never nears the baseline
    monkeypatch.setattr(
        demo,
        "SETTINGS",
        TrainSettings(min_epochs=1, window=1, max_epochs=1, n_train=32, n_test=64),
    )
    monkeypatch.setattr(demo, "small_space", tiny_space)
    storage = f"sqlite:///{tmp_path / 'robust.db'}"
    table = demo.run_demo(storage=storage, study_prefix="demo", seed=0, workdir=tmp_path)
    assert table["model"].tolist() == ["robust selection", "TPE NAS"]
    assert (table["trainings"] > 0).all()
    out = capsys.readouterr().out
    assert f"optuna-dashboard {storage} --artifact-dir" in out
    # The table ends with what it shows, from its numbers: two instances cannot tell spreads
    # apart (Brown-Forsythe needs three), and the toy nets lose to the baseline.
    assert "Steadier by std:" in out and "Steadier by max:" in out
    assert "Beyond the noise of 2 instances? No" in out
    assert "Against the parametric baseline: both nets are worse" in out
    assert set(optuna.get_all_study_names(storage)) == {
        "demo-robust",
        "demo-tpe",
        "demo-tpe:robustness",
    }


def _measured(losses: list[float], stop_reason: str) -> optuna.trial.FrozenTrial:
    records = {
        f"robust:final:{i:06d}": {"loss": loss, "stop_reason": stop_reason}
        for i, loss in enumerate(losses)
    }
    return optuna.trial.create_trial(value=max(losses), user_attrs=records)


def test_demo_says_which_winner_is_steadier_and_whether_beyond_the_noise() -> None:
    from optuna_robust.calo import demo

    rng = np.random.default_rng(0)
    steady = _measured(list(0.02 + 0.001 * rng.standard_normal(12)), "converged")
    wild = _measured(list(0.05 + 0.01 * rng.standard_normal(12)), "max_epochs")
    lines = demo.what_it_shows({"robust selection": steady, "TPE NAS": wild}, 0.01, demo.SETTINGS)
    assert lines[0].startswith("Steadier by std: robust selection")
    assert lines[1].startswith("Steadier by max: robust selection")
    assert lines[2].startswith("Beyond the noise of 12 instances? Yes")
    assert "both nets are worse" in lines[3] and "12 of 24 instances were stopped" in lines[3]
    close = _measured(list(0.02 + 0.01 * rng.standard_normal(12) ** 2), "converged")
    lines = demo.what_it_shows({"robust selection": wild, "TPE NAS": close}, 0.05, demo.SETTINGS)
    assert "? No" in lines[2]
    assert lines[3].startswith("Against the parametric baseline: robust selection")


def test_the_demo_prints_storage_urls_without_their_password() -> None:
    from optuna_robust.calo.demo import without_password

    shown = without_password("postgresql://robust:s3cret@db.example:5432/robust")
    assert "s3cret" not in shown and shown.startswith("postgresql://robust:***@db.example")
    assert without_password("sqlite:///robust.db") == "sqlite:///robust.db"


def test_cli_select_takes_a_budget_and_retries_failed_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "a.root"
    storage = f"sqlite:///{tmp_path / 'robust.db'}"
    assert cli.main(["simulate", "--dataset", "A", "--events", "800", "--out", str(data)]) == 0
    tiny = ["--storage", storage, "--data", str(data), "--n-train", "64", "--n-test", "128"]
    tiny += ["--min-epochs", "1", "--window", "1", "--max-epochs", "2", "--space", "tiny"]
    argv = ["select", *tiny, "--no-baseline", "--final-instances", "0", "--max-trainings", "9"]
    assert cli.main(argv) == 0
    study = optuna.load_study(study_name="robust", storage=storage)
    trained = sum(len(instance_losses(t)) for t in study.trials)
    assert len(study.trials) < trained <= 9  # more than one instance each, within the budget
    stored = study._storage.get_study_system_attrs(study._study_id)
    assert stored["robust:select_run"]["max_trainings"] == 9

    from optuna_robust.calo import experiments

    seen: dict[str, object] = {}

    def capture(**kwargs: object) -> None:
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(experiments, "robust_selection", capture)
    with pytest.raises(SystemExit):
        cli.main(["select", *tiny, "--no-baseline", "--retry-failed"])
    assert seen["retry_failed"] is True and seen["max_trainings"] is None
