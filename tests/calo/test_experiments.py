"""The calorimeter workflows (select, NAS, robustness, the summaries) on one tiny storage."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from optuna_robust import SelectionResult
from optuna_robust import instance_losses
from optuna_robust import make_instances
from optuna_robust._records import records
from optuna_robust.calo import experiments
from optuna_robust.calo.data import CaloData
from optuna_robust.calo.simulate import simulate
from optuna_robust.calo.spaces import tiny_space
from optuna_robust.calo.train import TrainSettings

# Toy training: seconds for the whole module, numbers that mean nothing.
SETTINGS = TrainSettings(min_epochs=1, window=1, max_epochs=2, n_train=64, n_test=128)
SEED = 5
FINAL = 2


@pytest.fixture(scope="module")
def data_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("experiments") / "a.root"
    return simulate(dataset="A", n_events=800, seed=3, out=out, progress_bar=False)


def _select(storage: str, data_path: Path, **options: Any) -> SelectionResult:
    options = {"settings": SETTINGS, **options}
    return experiments.robust_selection(
        storage=storage,
        study_name="sel",
        data_path=data_path,
        task="energy",
        candidates=tiny_space(),
        final_instances=FINAL,
        seed=SEED,
        show_progress_bar=False,
        **options,
    )


def _measure(
    storage: str, data_path: Path, trial_number: int, n_instances: int, seed: int = SEED
) -> optuna.trial.FrozenTrial:
    return experiments.robustness(
        storage=storage,
        study_name="sel",
        trial_number=trial_number,
        data_path=data_path,
        task="energy",
        n_instances=n_instances,
        settings=SETTINGS,
        seed=seed,
    )


@pytest.fixture(scope="module")
def selected(
    tmp_path_factory: pytest.TempPathFactory, data_path: Path
) -> tuple[str, SelectionResult]:
    """A storage holding the robust selection over the tiny space, and its result."""
    storage = f"sqlite:///{tmp_path_factory.mktemp('storage') / 'robust.db'}"
    return storage, _select(storage, data_path)


def test_robust_selection_runs_the_tiny_space_end_to_end(
    selected: tuple[str, SelectionResult],
) -> None:
    storage, result = selected
    study = optuna.load_study(study_name="sel", storage=storage)
    assert study.user_attrs == {"kind": "selection", "task": "energy"}
    assert len(study.trials) == len(tiny_space())
    (winner,) = result.winners
    assert winner.state == optuna.trial.TrialState.COMPLETE
    assert winner.params in tiny_space()
    final = instance_losses(winner, phase="final")
    assert final.size == FINAL and np.isfinite(final).all()
    # Two candidates: one instance each, halved to the winner, then its final instances.
    assert result.budget.selection_instances == len(tiny_space())
    assert result.budget.instances == len(tiny_space()) + FINAL
    assert result.rounds["survivors"].iloc[-1] == 1


def test_robust_selection_gate_drops_every_model_worse_than_the_baseline(
    tmp_path: Path, data_path: Path
) -> None:
    data = CaloData.from_root(data_path)
    baseline = experiments.parametric_baseline(data, task="energy", n_train=64, n_test=128)
    assert 0 < baseline < 1  # the scaled sum: about the calorimeter's resolution squared
    storage = f"sqlite:///{tmp_path / 'gated.db'}"
    # Toy networks are far worse than the baseline, so the paper's 20 % gate drops them all.
    result = _select(storage, data_path, baseline=baseline, baseline_tolerance=0.2)
    assert result.winners == []
    study = optuna.load_study(study_name="sel", storage=storage)
    assert study.user_attrs["baseline_loss"] == baseline
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.PRUNED}


def test_robustness_trains_the_final_instances_select_would_train(
    selected: tuple[str, SelectionResult], data_path: Path
) -> None:
    storage, result = selected
    (winner,) = result.winners
    measured = _measure(storage, data_path, winner.number, FINAL)
    expected = make_instances(winner.params, FINAL, seed=SEED, phase="final")
    stored = records(measured, "final")
    assert [(r["data_seed"], r["init_seed"]) for r in stored] == [
        (i.data_seed, i.init_seed) for i in expected
    ]
    # The same instances as select's own final ones: the same losses.
    losses = instance_losses(measured, phase="final")
    np.testing.assert_allclose(losses, instance_losses(winner, phase="final"), rtol=1e-5)
    assert measured.value == pytest.approx(float(np.mean(losses)))
    assert measured.params == winner.params
    assert measured.system_attrs[experiments.SOURCE_KEY] == f"sel#{winner.number}"
    target = optuna.load_study(study_name="sel:robustness", storage=storage)
    assert target.user_attrs == {"kind": "robustness"}
    assert [t.number for t in target.trials] == [measured.number]


def test_robustness_names_the_trials_a_study_has(
    selected: tuple[str, SelectionResult], data_path: Path
) -> None:
    storage, _ = selected
    with pytest.raises(
        ValueError, match=r"Study 'sel' has no trial 7; it has 2 trials \(0\.\.1\)"
    ):
        _measure(storage, data_path, trial_number=7, n_instances=1)


def test_nas_trains_one_instance_per_trial_and_resumes(tmp_path: Path, data_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    options = {
        "storage": storage,
        "study_name": "nas",
        "data_path": data_path,
        "task": "energy",
        "settings": SETTINGS,
        "seed": SEED,
        "show_progress_bar": False,
    }
    study = experiments.nas(n_trials=2, **options)
    assert study.user_attrs == {"kind": "nas", "task": "energy"}
    assert [instance_losses(t).size for t in study.trials] == [1, 1]
    for trial in study.trials:
        config = experiments.model_config(trial)
        assert config == trial.user_attrs["config"] and config["fc1_units"] == 128
    study = experiments.nas(n_trials=3, **options)
    assert len(study.trials) == 3  # two were done: one more


def test_summarise_and_robustness_table_cover_every_study_of_the_storage(
    tmp_path: Path, data_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'summary.db'}"
    result = _select(storage, data_path)
    (winner,) = result.winners
    measured = _measure(storage, data_path, winner.number, 3, seed=SEED + 1)
    optuna.create_study(storage=storage, study_name="plain")  # made by `optuna create-study`
    # A robustness trial stored before the source key was renamed still names its model.
    old = optuna.create_study(storage=storage, study_name="old:robustness")
    old.add_trial(
        optuna.trial.create_trial(
            value=9.0,
            user_attrs={"robust:final:000000": {"loss": 9.0}},
            system_attrs={"robust:source": "old#4"},
        )
    )

    summary = experiments.summarise(storage).set_index("name")
    assert summary.loc["sel"].to_dict() == {
        "kind": "selection",
        "trials": 2,
        "trainings": result.budget.instances,
        "best_trial": winner.number,
        "best_value": winner.value,
    }
    assert summary.loc["sel:robustness", ["kind", "trials", "trainings"]].tolist() == [
        "robustness",
        1,
        3,
    ]
    assert summary.loc["plain", ["kind", "trials", "trainings"]].tolist() == ["optuna", 0, 0]

    table = experiments.robustness_table(storage)
    assert table.columns.tolist() == [
        "model",
        "instances",
        "mean",
        "median",
        "std",
        "iqr",
        "min",
        "max",
    ]
    assert sorted(zip(table["model"], table["instances"])) == [
        ("old#4", 1),
        (f"sel#{winner.number}", FINAL),  # select's own final instances
        (f"sel#{winner.number}", 3),  # the robustness study's
    ]
    assert table["mean"].is_monotonic_increasing
    row = table[table["instances"] == 3].iloc[0]
    assert row["mean"] == pytest.approx(measured.value)


@pytest.mark.parametrize(
    "url",
    ["notadb://nowhere", "postgresql://nobody@127.0.0.1:1/none"],
)
def test_open_storage_names_a_url_it_cannot_open(url: str) -> None:
    with pytest.raises(experiments.StorageError) as error:
        experiments.open_storage(url)
    message = str(error.value)
    assert message.startswith(f"Cannot open storage {url!r}: ")
    assert message.endswith("(e.g. sqlite:///robust.db, postgresql://user@host/db).")


def test_open_storage_opens_a_new_sqlite_file(tmp_path: Path) -> None:
    storage = experiments.open_storage(f"sqlite:///{tmp_path / 'new.db'}")
    assert storage.get_all_studies() == []
    assert (tmp_path / "new.db").is_file()


def test_summarise_names_the_best_complete_trial_in_the_studys_direction(tmp_path: Path) -> None:
    """A pruned model with one lucky instance is no best trial, and a score is best highest."""
    storage = f"sqlite:///{tmp_path / 'best.db'}"
    for direction, values in (("minimize", [0.5, 0.1]), ("maximize", [0.4, 0.9])):
        study = optuna.create_study(storage=storage, study_name=direction, direction=direction)
        study.add_trial(optuna.trial.create_trial(value=values[0]))
        study.add_trial(optuna.trial.create_trial(value=values[0] - 0.2))
        # A model pruned after one lucky instance: its value beats both of the complete ones.
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.PRUNED,
                value=values[1] if direction == "minimize" else 2.0,
                intermediate_values={1: values[1]},
            )
        )
        summary = experiments.summarise(storage).set_index("name").loc[direction]
        expected = 0 if direction == "maximize" else 1
        assert summary["best_trial"] == expected, direction
        assert summary["best_value"] == study.best_value


def test_a_rerun_with_other_training_settings_or_data_is_refused(
    tmp_path: Path, data_path: Path
) -> None:
    """Resuming with another epoch count or data file would mix two trainings in one table."""
    storage = f"sqlite:///{tmp_path / 'resume.db'}"
    result = _select(storage, data_path)
    again = _select(storage, data_path)  # the same inputs: the stored run, nothing retrained
    assert again.winners[0].number == result.winners[0].number
    longer = dataclasses.replace(SETTINGS, max_epochs=SETTINGS.max_epochs + 1)
    with pytest.raises(ValueError, match=r"train_fn differs: settings\.max_epochs was \d+, now"):
        _select(storage, data_path, settings=longer)
    other = tmp_path / "moved" / data_path.name  # the same name and size, another content
    other.parent.mkdir()
    content = bytearray(data_path.read_bytes())
    content[-1] ^= 1
    other.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=r"train_fn differs: data\.blake2b was '\w+', now"):
        _select(storage, other)
    # What changes only the speed, or the file's place, is no difference.
    _select(storage, data_path, threads=2)
    moved = tmp_path / "elsewhere.root"
    moved.write_bytes(data_path.read_bytes())
    _select(storage, moved)
