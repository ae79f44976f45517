"""TrialArtifactsCallback and attach_trial: each model's files on its own trial page."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

import optuna_robust
from optuna_robust.visualization import TrialArtifactsCallback
from optuna_robust.visualization import attach_selection
from optuna_robust.visualization import attach_trial
from tests.visualization._selection import curve_train
from tests.visualization._selection import run_selection

NAMES = ("png", "csv", "json")


def _names(study: optuna.Study, trial: optuna.trial.FrozenTrial | None = None) -> set[str]:
    target = study if trial is None else trial
    return {
        m.filename for m in optuna.artifacts.get_all_artifact_meta(target, storage=study._storage)
    }


def test_attach_trial_of_a_finished_trial_goes_to_the_study(tmp_path: Path) -> None:
    study, result = run_selection()
    winner = result.winners[0]
    by_trial = attach_trial(study, winner, artifact_dir=tmp_path)
    by_number = attach_trial(study, winner.number, artifact_dir=tmp_path)
    assert by_trial == by_number  # replaced in place: the same ids
    assert by_trial.trial == winner.number and not by_trial.on_trial
    names = {m.filename for m in optuna.artifacts.get_all_artifact_meta(study)}
    assert names == {
        f"trial-{winner.number:05d}-instances.{ext}" for ext in ("png", "csv", "json")
    }
    with pytest.raises(ValueError, match="has no trial number 999"):
        attach_trial(study, 999, artifact_dir=tmp_path)
    other = optuna.create_study()
    other.add_trial(optuna.trial.create_trial(value=1.0))
    with pytest.raises(ValueError, match="no instance records"):
        attach_trial(other, 0, artifact_dir=tmp_path)


def test_callback_attaches_to_each_trial_that_reached_min_instances(tmp_path: Path) -> None:
    study, result = run_selection(callbacks=[TrialArtifactsCallback(tmp_path, min_instances=4)])
    attached = []
    for trial in study.trials:
        instances = optuna_robust.instance_losses(trial, phase="all").size
        expected = {f"trial-{trial.number:05d}-instances.{ext}" for ext in NAMES}
        assert _names(study, trial) == (expected if instances >= 4 else set())
        attached += [trial.number] if instances >= 4 else []
    assert set(attached) >= {w.number for w in result.winners}
    assert len(attached) < len(study.trials)  # premise: some models stopped below 4
    assert _names(study) == set()  # nothing on the study itself


def test_callback_in_the_objective_attaches_pruned_and_complete_trials(tmp_path: Path) -> None:
    study = optuna.create_study(
        sampler=optuna_robust.RobustSampler({"lr": [0.001, 0.01, 0.1, 1.0]}, seed=0),
        pruner=optuna_robust.RobustPruner(statistic="mean", max_instances=4),
    )
    attach = TrialArtifactsCallback(tmp_path, min_instances=1)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_categorical("lr", [0.001, 0.01, 0.1, 1.0])
        try:
            return optuna_robust.evaluate_instances(
                trial, lambda instances: [lr + i.index / 100 for i in instances]
            )
        finally:
            attach(trial.study, trial)

    study.optimize(objective)
    states = {t.state for t in study.trials}
    assert states == {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    for trial in study.trials:
        assert _names(study, trial) == {f"trial-{trial.number:05d}-instances.{e}" for e in NAMES}


def test_callback_refuses_a_finished_trial_with_what_to_do(tmp_path: Path) -> None:
    study, result = run_selection()
    with pytest.raises(ValueError, match="already COMPLETE.*select\\(callbacks=...\\)"):
        TrialArtifactsCallback(tmp_path)(study, result.winners[0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_instances": 0}, "min_instances must be a positive integer but got 0"),
        ({"min_instances": 1.5}, "min_instances must be a positive integer"),
        ({"baseline": float("nan")}, "baseline must be a finite loss"),
    ],
)
def test_callback_rejects_bad_arguments(
    tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        TrialArtifactsCallback(tmp_path, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="artifact_dir must be a directory path"):
        TrialArtifactsCallback(3)  # type: ignore[arg-type]


def test_attach_trial_of_a_running_trial_goes_to_the_trial(tmp_path: Path) -> None:
    study = optuna.create_study(
        sampler=optuna_robust.RobustSampler({"lr": [0.01]}, seed=0),
        pruner=optuna_robust.RobustPruner(max_instances=2),
    )
    study.set_user_attr("baseline_loss", 0.5)
    attached = []

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_categorical("lr", [0.01])
        value = optuna_robust.evaluate_instances(trial, lambda instances: [0.1 for _ in instances])
        attached.append(attach_trial(study, trial, artifact_dir=tmp_path))
        return value

    study.optimize(objective)
    (files,) = attached
    assert files.on_trial
    assert _names(study, study.trials[0]) == {f"trial-00000-instances.{e}" for e in NAMES}
    document = json.loads((tmp_path / files.records_json).read_text())
    assert [r["loss"] for r in document["selection"]] == [0.1, 0.1]
    other = optuna.create_study()
    trial = other.ask()
    with pytest.raises(ValueError, match=f"belongs to study '{other.study_name}'"):
        attach_trial(study, trial, artifact_dir=tmp_path)


def test_an_artifact_id_that_is_not_a_plain_id_is_refused(tmp_path: Path) -> None:
    study, result = run_selection()
    # An older Optuna, or a tampered storage, could hand back any id: it must never become a
    # path such as ../outside in the artifact directory.
    meta = {"artifact_id": "../outside", "filename": "selection-funnel.png"}
    meta |= {"mimetype": "image/png", "encoding": None}
    study._storage.set_study_system_attr(study._study_id, "artifacts:x", json.dumps(meta))
    with pytest.raises(ValueError, match="artifact id '../outside'.*not a plain id"):
        attach_selection(study, result, artifact_dir=tmp_path / "artifacts")
    assert not (tmp_path / "outside").exists()


def test_an_artifact_deleted_in_the_dashboard_is_reported_clearly(tmp_path: Path) -> None:
    study, result = run_selection()
    attached = attach_selection(study, result, artifact_dir=tmp_path)
    # What optuna-dashboard's delete button leaves behind.
    key = f"artifacts:{attached.funnel}"
    study._storage.set_study_system_attr(study._study_id, key, json.dumps(None))
    with pytest.raises(ValueError, match="deleted in optuna-dashboard"):
        attach_selection(study, result, artifact_dir=tmp_path)


def test_callback_baseline_comes_from_the_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = optuna.create_study(
        sampler=optuna_robust.RobustSampler({"width": [8, 16], "learning_rate": [0.01]}, seed=0),
        pruner=optuna_robust.RobustPruner(statistic="mean"),
    )
    study.set_user_attr("baseline_loss", 0.05)
    from optuna_robust.visualization import _trial_artifacts

    drawn: list[float | None] = []
    original = _trial_artifacts.plot_trial

    def spy(trial: optuna.trial.FrozenTrial, *, baseline: float | None = None) -> object:
        drawn.append(baseline)
        return original(trial, baseline=baseline)

    monkeypatch.setattr(_trial_artifacts, "plot_trial", spy)
    callbacks = [TrialArtifactsCallback(tmp_path)]
    optuna_robust.select(study, curve_train, final_instances=2, callbacks=callbacks)
    assert drawn and set(drawn) == {0.05}  # the study's baseline_loss user attr
    drawn.clear()
    again = optuna.create_study(sampler=study.sampler, pruner=study.pruner)
    again.set_user_attr("baseline_loss", 0.05)
    callbacks = [TrialArtifactsCallback(tmp_path, baseline=0.07)]
    optuna_robust.select(again, curve_train, final_instances=2, callbacks=callbacks)
    assert set(drawn) == {0.07}  # an explicit baseline wins
