"""The calorimeter workflows behind the command line and the studies: select, NAS, robustness.

Each function works on any Optuna storage and study name, so a robust selection, a TPE NAS
baseline and the robustness measurements of both live side by side in one storage.
"""

from __future__ import annotations

from collections.abc import Sequence
import concurrent.futures
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from optuna_robust import RobustPruner
from optuna_robust import RobustSampler
from optuna_robust import SelectionResult
from optuna_robust import evaluate_instances
from optuna_robust import instance_losses
from optuna_robust import make_instances
from optuna_robust import robustness_report
from optuna_robust import select

# No public name stores "final" instance records on a trial made with create_trial, or reads
# their extras back, so robustness() and instance_records() use the core's record format
# directly; these three are the only private imports.
from optuna_robust._records import make_record
from optuna_robust._records import record_attrs
from optuna_robust._records import records
from optuna_robust.calo.baselines import baseline_loss
from optuna_robust.calo.data import CaloData
from optuna_robust.calo.spaces import suggest_nas
from optuna_robust.calo.train import CaloTrainer
from optuna_robust.calo.train import TrainSettings

KIND_KEY = "kind"  # study user attr: "selection", "nas" or "robustness"
SOURCE_KEY = "calo:source"  # robustness trial: "<study>#<trial number>" it measures
# What SOURCE_KEY was called before the robust: prefix was left to the core; still read, so
# robustness studies stored by earlier versions keep naming their models.
_OLD_SOURCE_KEY = "robust:source"


class StorageError(RuntimeError):
    """A storage URL that cannot be opened; the message says which and why."""


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Open an Optuna storage, turning driver errors into one clear :class:`StorageError`."""
    try:
        storage = optuna.storages.get_storage(url)
        storage.get_all_studies()  # touch it: RDB engines connect lazily
    except Exception as error:  # noqa: BLE001 - any driver error means "cannot open"
        text = str(error).strip()
        reason = text.splitlines()[0].rstrip(".") if text else type(error).__name__
        raise StorageError(
            f"Cannot open storage {url!r}: {reason}. Check the URL and that the database "
            "server runs (e.g. sqlite:///robust.db, postgresql://user@host/db)."
        ) from None
    return storage


def parametric_baseline(
    data: CaloData, *, task: str, n_train: int, n_test: int | None, seed: int = 0
) -> float:
    """The parametric baseline's loss on a bootstrap training sample and the test sample."""
    train = data.training_sample(n_train, data_seed=seed)
    test = data.test_sample(n_test, seed=0)
    return baseline_loss("parametric", task, train, test, seed=seed)


def robust_selection(
    *,
    storage: optuna.storages.BaseStorage | str,
    study_name: str,
    data_path: str | Path,
    task: str,
    candidates: Sequence[dict[str, Any]],
    settings: TrainSettings,
    statistic: str = "mean",
    baseline: float | None = None,
    baseline_tolerance: float = 0.2,
    n_keep: int = 1,
    max_instances: int | None = None,
    final_instances: int = 50,
    seed: int = 0,
    executor: concurrent.futures.Executor | None = None,
    artifact_dir: str | Path | None = None,
    show_progress_bar: bool = True,
    threads: int | None = 1,
    pairing: str = "data",
) -> SelectionResult:
    """The paper's robust selection (``select``) with the calorimeter trainer.

    ``threads`` is torch's CPU thread count per training process (``None``: torch's default).
    One thread is the default: these networks are small, and two OpenMP threads on a busy
    2-core machine made training ten times slower here; use an executor for parallelism.
    ``pairing`` is ``select``'s: ``"data"`` (common bootstrap samples across models) or
    ``"none"`` (independent samples, the paper's setting).
    """
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        sampler=RobustSampler(candidates=candidates, seed=seed),
        pruner=RobustPruner(
            statistic=statistic,
            baseline=baseline,
            baseline_tolerance=baseline_tolerance,
            n_keep=n_keep,
            max_instances=max_instances,
        ),
        load_if_exists=True,
    )
    study.set_user_attr(KIND_KEY, "selection")
    study.set_user_attr("task", task)
    if baseline is not None:
        study.set_user_attr("baseline_loss", baseline)
    trainer = CaloTrainer(str(data_path), task=task, settings=settings, num_threads=threads)
    result = select(
        study,
        trainer,
        executor=executor,
        final_instances=final_instances,
        pairing=pairing,
        seed=seed,
        show_progress_bar=show_progress_bar,
    )
    if artifact_dir is not None:
        from optuna_robust.dashboard import attach_selection

        attach_selection(study, result, artifact_dir=artifact_dir)
    return result


def nas(
    *,
    storage: optuna.storages.BaseStorage | str,
    study_name: str,
    data_path: str | Path,
    task: str,
    n_trials: int,
    settings: TrainSettings,
    seed: int = 0,
    show_progress_bar: bool = True,
    threads: int | None = 1,
) -> optuna.Study:
    """The paper's NAS baseline (section 7): TPE, one instance per trial, in the same storage."""
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=RobustPruner(max_instances=1),  # one instance, stored like every other
        load_if_exists=True,
    )
    study.set_user_attr(KIND_KEY, "nas")
    study.set_user_attr("task", task)
    trainer = CaloTrainer(str(data_path), task=task, settings=settings, num_threads=threads)

    def objective(trial: optuna.Trial) -> float:
        config = suggest_nas(trial)
        trial.set_user_attr("config", config)
        return evaluate_instances(
            trial, lambda instances: trainer(config, instances), pairing="data", seed=seed
        )

    done = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    study.optimize(
        objective, n_trials=max(n_trials - done, 0), show_progress_bar=show_progress_bar
    )
    return study


def model_config(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The trainer configuration of a trial: its params, or the full config a NAS trial kept."""
    return dict(trial.user_attrs.get("config", trial.params))


def robustness(
    *,
    storage: optuna.storages.BaseStorage | str,
    study_name: str,
    trial_number: int,
    data_path: str | Path,
    task: str,
    n_instances: int,
    settings: TrainSettings,
    seed: int = 0,
    threads: int | None = 1,
    pairing: str = "data",
) -> optuna.trial.FrozenTrial:
    """Train fresh instances of one model and store them in ``<study>:robustness``.

    The instances are the ``final`` instances that ``select`` would train for the same params,
    seed and ``pairing``, so a TPE winner and the robust winner are measured exactly the same
    way.
    """
    source = optuna.load_study(storage=storage, study_name=study_name)
    matches = [t for t in source.get_trials(deepcopy=False) if t.number == trial_number]
    if not matches:
        raise ValueError(
            f"Study {study_name!r} has no trial {trial_number}; it has "
            f"{len(source.trials)} trials (0..{len(source.trials) - 1})."
        )
    trial = matches[0]
    config = model_config(trial)
    instances = make_instances(config, n_instances, seed=seed, phase="final", pairing=pairing)
    trainer = CaloTrainer(str(data_path), task=task, settings=settings, num_threads=threads)
    results = trainer(config, instances)
    batch = {i.index: make_record(i, r) for i, r in zip(instances, results)}
    records, series = record_attrs("final", batch)  # curves stay out of the user attrs
    losses = np.array([float(r["loss"]) for r in batch.values()])
    target = optuna.create_study(
        storage=storage, study_name=f"{study_name}:robustness", load_if_exists=True
    )
    target.set_user_attr(KIND_KEY, "robustness")
    frozen = optuna.trial.create_trial(
        params=trial.params,
        distributions=trial.distributions,
        value=float(np.mean(np.where(np.isfinite(losses), losses, np.inf))),
        user_attrs=records,
        system_attrs={SOURCE_KEY: f"{study_name}#{trial_number}", **series},
    )
    target.add_trial(frozen)
    return target.trials[-1]


def instance_records(
    trial: optuna.trial.FrozenTrial, phase: str = "final"
) -> list[dict[str, Any]]:
    """A trial's stored instance records, by index: loss, seeds and the trainer's extras
    (``epochs``, ``seconds``, ``stop_reason``)."""
    if phase not in ("selection", "final"):
        raise ValueError(f"phase must be 'selection' or 'final' but got {phase!r}.")
    return records(trial, phase)  # type: ignore[arg-type]


def summarise(storage: optuna.storages.BaseStorage | str) -> pd.DataFrame:
    """One row per study in the storage: its kind, trials, trainings spent and best trial."""
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(storage=storage, study_name=summary.study_name)
        trials = study.get_trials(deepcopy=False)
        trainings = sum(len(instance_losses(t, phase="all")) for t in trials)
        complete = [t for t in trials if t.value is not None and t.state.is_finished()]
        best = min(complete, key=lambda t: t.value) if complete else None  # type: ignore[arg-type, return-value]
        kind = study.user_attrs.get(KIND_KEY, "optuna")
        rows.append(
            {
                "name": summary.study_name,
                "kind": kind,
                "trials": len(trials),
                "trainings": trainings,
                "best_trial": None if best is None else best.number,
                "best_value": None if best is None else best.value,
            }
        )
    return pd.DataFrame(rows)


def robustness_table(storage: optuna.storages.BaseStorage | str) -> pd.DataFrame:
    """Every model measured on fresh instances, from selections and robustness studies alike."""
    frames = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(storage=storage, study_name=summary.study_name)
        report = robustness_report(study, phase="final")
        if report.empty:
            continue
        sources = {
            t.number: _source(t, summary.study_name) for t in study.get_trials(deepcopy=False)
        }
        report.insert(0, "model", [sources[n] for n in report["trial"]])
        frames.append(report)
    if not frames:
        return pd.DataFrame()
    columns = ["model", "instances", "mean", "median", "std", "iqr", "min", "max"]
    return pd.concat(frames, ignore_index=True)[columns].sort_values("mean", ignore_index=True)


def _source(trial: optuna.trial.FrozenTrial, study_name: str) -> str:
    """The model a trial measures: ``SOURCE_KEY`` of a robustness trial, else the trial itself."""
    attrs = trial.system_attrs
    return str(attrs.get(SOURCE_KEY, attrs.get(_OLD_SOURCE_KEY, f"{study_name}#{trial.number}")))
