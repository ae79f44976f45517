"""The calorimeter workflows behind the command line and the studies: select, NAS, robustness.

Each function works on any Optuna storage and study name, so a robust selection, a TPE NAS
baseline and the robustness measurements of both live side by side in one storage.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
import concurrent.futures
import math
from pathlib import Path
import re
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
# directly; and no_winner_reason() reads the error select keeps on a failed trial.
from optuna_robust._records import ERROR_KEY
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


class NoWinner(RuntimeError):
    """A selection ran to its end without a winner; the message names the cause."""


# scheme://user:password@ in any text: the password part, up to the "@".
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^\s:/@'\"]*:)[^\s@'\"]*@")


def hide_password(text: str, url: str) -> str:
    """``text`` with the password of the storage ``url``, and of any URL in it, as ``***``.

    Example: ``postgresql://user:secret@host/db`` becomes ``postgresql://user:***@host/db``.
    """
    text = _URL_PASSWORD.sub(r"\1***@", text)
    match = _URL_PASSWORD.search(url)
    password = url[match.end(1) : match.end() - 1] if match else ""
    if len(password) >= 4:  # a driver may echo it bare; shorter ones would mask common words
        text = text.replace(password, "***")
    return text


def open_storage(url: str, *, must_exist: bool = False) -> optuna.storages.BaseStorage:
    """Open an Optuna storage, turning driver errors into one clear :class:`StorageError`.

    Args:
        url:
            An RDB storage URL, e.g. ``sqlite:///robust.db`` or ``postgresql://user@host/db``.
            In-memory SQLite (``sqlite:///``, ``sqlite:///:memory:``) is refused: the
            results would be lost when the process ends.
        must_exist:
            Refuse a SQLite file that does not exist instead of creating it (for commands
            that only read, where a new file means a mistyped path).

    Raises:
        StorageError: The storage cannot be opened; the message (password masked) says why.
    """
    shown = hide_password(url, url)
    database = _sqlite_database(url)
    if database is not None and database in ("", ":memory:"):
        raise StorageError(
            f"Storage {shown!r} is an in-memory SQLite database: every result would be lost "
            "when the command ends. Name a file instead, e.g. sqlite:///robust.db."
        )
    if must_exist and database is not None and not Path(database).is_file():
        raise StorageError(
            f"There is no storage at {database!r} (from {shown!r}): the SQLite file does not "
            "exist. Check the path; this command reads a storage and creates none."
        )
    try:
        storage = optuna.storages.get_storage(url)
        storage.get_all_studies()  # touch it: RDB engines connect lazily
    except Exception as error:  # noqa: BLE001 - any driver error means "cannot open"
        text = str(error).strip()
        reason = text.splitlines()[0].rstrip(".") if text else type(error).__name__
        raise StorageError(
            hide_password(
                f"Cannot open storage {shown!r}: {reason}. Check the URL and that the database "
                "server runs (e.g. sqlite:///robust.db, postgresql://user@host/db).",
                url,
            )
        ) from None
    return storage


def _sqlite_database(url: str) -> str | None:
    """The database path of a SQLite URL (``""`` for an in-memory one); ``None`` for others."""
    if not url.startswith("sqlite:"):
        return None
    import sqlalchemy.engine

    try:
        return sqlalchemy.engine.make_url(url).database or ""
    except sqlalchemy.exc.ArgumentError:
        return None  # get_storage names the problem


def check_study(
    storage: optuna.storages.BaseStorage | str,
    study_name: str,
    *,
    kind: str,
    task: str | None = None,
) -> None:
    """Refuse to write ``kind`` work into a study that holds other work, before writing to it.

    A new study, or an empty one made beforehand (``optuna create-study``), is fine.

    Args:
        storage:
            The storage, or its URL.
        study_name:
            The study to write to.
        kind:
            ``"selection"``, ``"nas"`` or ``"robustness"``.
        task:
            The task the work is for; a study that stores another task is refused.

    Raises:
        ValueError: The study holds another kind of study, trials of a plain Optuna study,
            or the same kind for another task.
    """
    if isinstance(storage, str):
        storage = optuna.storages.get_storage(storage)
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return
    attrs = storage.get_study_user_attrs(study_id)
    stored_kind = attrs.get(KIND_KEY)
    n_trials = len(storage.get_all_trials(study_id, deepcopy=False))
    if stored_kind is None and n_trials == 0:
        return
    if stored_kind != kind:
        what = (
            f"a {stored_kind} study"
            if stored_kind is not None
            else f"a plain Optuna study ({n_trials} trials)"
        )
        raise ValueError(
            f"Study {study_name!r} holds {what}, not a {kind} study; writing {kind} trials "
            "into it would mix the two. Use another study name (--study)."
        )
    stored_task = attrs.get("task")
    if task is not None and stored_task is not None and stored_task != task:
        raise ValueError(
            f"Study {study_name!r} holds a {kind} for task {stored_task!r}, not {task!r}; "
            f"continue it with task {stored_task!r}, or use another study name for {task!r}."
        )


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
    max_trainings: int | None = None,
    final_instances: int = 50,
    seed: int = 0,
    executor: concurrent.futures.Executor | None = None,
    artifact_dir: str | Path | None = None,
    show_progress_bar: bool = True,
    threads: int | None = 1,
    pairing: str = "data",
    retry_failed: bool = False,
) -> SelectionResult:
    """The paper's robust selection (``select``) with the calorimeter trainer.

    ``max_trainings`` gives it a budget of trainings instead of the paper's schedule
    (``RobustPruner(max_trainings=...)``, budget-planned halving); ``retry_failed`` is
    ``select``'s (retry the models that failed in an earlier run).

    ``threads`` is torch's CPU thread count per training process (``None``: torch's default).
    One thread is the default: these networks are small, and two OpenMP threads on a busy
    2-core machine made training ten times slower here; use an executor for parallelism.
    ``pairing`` is ``select``'s: ``"data"`` (common bootstrap samples across models) or
    ``"none"`` (independent samples, the paper's setting).

    Raises:
        ValueError: The study holds another kind of study or another task (see
            :func:`check_study`), or ``select`` refused the run.
    """
    check_study(storage, study_name, kind="selection", task=task)
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
            max_trainings=max_trainings,
        ),
        load_if_exists=True,
    )
    study.set_user_attr(KIND_KEY, "selection")
    study.set_user_attr("task", task)
    if baseline is not None:
        study.set_user_attr("baseline_loss", baseline)
    trainer = CaloTrainer(str(data_path), task=task, settings=settings, num_threads=threads)
    callbacks = []
    if artifact_dir is not None:
        from optuna_robust.visualization import TrialArtifactsCallback

        # Each model with two or more instances gets its figure and records on its own page.
        callbacks.append(TrialArtifactsCallback(artifact_dir, baseline=baseline))
    result = select(
        study,
        trainer,
        executor=executor,
        final_instances=final_instances,
        pairing=pairing,
        seed=seed,
        show_progress_bar=show_progress_bar,
        callbacks=callbacks,
        retry_failed=retry_failed,
    )
    if artifact_dir is not None:
        from optuna_robust.visualization import attach_selection

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
    """The paper's NAS baseline (section 7): TPE, one instance per trial, in the same storage.

    Raises:
        ValueError: The study holds another kind of study or another task (see
            :func:`check_study`).
    """
    check_study(storage, study_name, kind="nas", task=task)
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

    Raises:
        ValueError: No such study or trial, or ``<study>:robustness`` holds other work.
    """
    try:
        source = optuna.load_study(storage=storage, study_name=study_name)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        raise ValueError(
            f"The storage has no study {study_name!r}; its studies are {names}."
        ) from None
    check_study(storage, f"{study_name}:robustness", kind="robustness")
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


def no_winner_reason(
    storage: optuna.storages.BaseStorage | str,
    study_name: str,
    *,
    baseline: float | None = None,
    baseline_tolerance: float = 0.2,
) -> str:
    """Why the selection in a study ended without a winner, in one line, from its trials.

    Args:
        storage:
            The storage, or its URL.
        study_name:
            The selection's study.
        baseline:
            The baseline loss of the selection's gate (``None``: it had no gate).
        baseline_tolerance:
            The gate's tolerance, as given to :func:`robust_selection`.

    Returns:
        The cause: every model failed (with the most common error), no model passed the
        gate (with the best value seen), or every model left at the end diverged.
    """
    trials = optuna.load_study(storage=storage, study_name=study_name).get_trials(deepcopy=False)
    pruner = RobustPruner(baseline=baseline, baseline_tolerance=baseline_tolerance)
    gate = pruner.gate_limit()
    state = optuna.trial.TrialState
    failed = [t for t in trials if t.state == state.FAIL]
    errors = Counter(str(t.system_attrs.get(ERROR_KEY, "no error was stored")) for t in failed)
    failures = ""
    if errors:
        error, count = errors.most_common(1)[0]
        failures = f"{count} with: {error}"
    if failed and len(failed) == len(trials):
        return f"every model failed ({len(failed)} of {len(trials)}); {failures}"
    if failures:
        failures = f"; besides, {len(failed)} models failed, {failures}"
    diverged = _diverged_winners(trials)
    if diverged:
        trial, phase, n = diverged[0]
        return (
            f"every winner diverged: trial {trial.number} ({model_config(trial)}) was left at "
            f"the end, but all {n} of its {phase} instances have a NaN or infinite loss"
            f"{failures}"
        )
    first_values = [
        t.intermediate_values[min(t.intermediate_values)]
        for t in trials
        if t.state != state.FAIL and t.intermediate_values
    ]
    if gate is not None and first_values and all(not v <= gate for v in first_values):
        best = min(first_values, key=lambda v: v if math.isfinite(v) else math.inf)
        return (
            f"no model passed the baseline gate at {gate:.6g}: the best of "
            f"{len(first_values)} models had {best:.6g} after its first instances; loosen "
            f"--tolerance-gate or train longer{failures}"
        )
    if first_values and all(not math.isfinite(v) for v in first_values):
        return f"every model diverged: all their losses are NaN or infinite{failures}"
    counts = Counter(t.state.name for t in trials)
    return f"no model completed (trials by state: {dict(counts)}){failures}"


def _diverged_winners(
    trials: Sequence[optuna.trial.FrozenTrial],
) -> list[tuple[optuna.trial.FrozenTrial, str, int]]:
    """``(trial, phase, instances)`` of each model left at the end whose losses all diverged.

    ``select`` prunes such a model instead of completing it. The models left at the end are
    those with final instances, or (without final instances) those with the most instances.
    """
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    final = {t.number: instance_losses(t, phase="final") for t in pruned}
    selection = {t.number: instance_losses(t) for t in pruned}
    reach = max((losses.size for losses in selection.values()), default=0)
    found = []
    for trial in pruned:
        phase = "final" if final[trial.number].size else "selection"
        losses = final[trial.number] if phase == "final" else selection[trial.number]
        if phase == "selection" and (any(f.size for f in final.values()) or losses.size < reach):
            continue
        if losses.size and not np.isfinite(losses).any():
            found.append((trial, phase, int(losses.size)))
    return found


_LEASE_STUDY = re.compile(r":select-lease:\d+$")


def instance_records(
    trial: optuna.trial.FrozenTrial, phase: str = "final"
) -> list[dict[str, Any]]:
    """A trial's stored instance records, by index: loss, seeds and the trainer's extras
    (``epochs``, ``seconds``, ``stop_reason``)."""
    if phase not in ("selection", "final"):
        raise ValueError(f"phase must be 'selection' or 'final' but got {phase!r}.")
    return records(trial, phase, extras=True)  # type: ignore[arg-type]


def summarise(storage: optuna.storages.BaseStorage | str) -> pd.DataFrame:
    """One row per study in the storage: its kind, trials, trainings spent and best trial."""
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if _LEASE_STUDY.search(summary.study_name):
            continue  # the lease of a select driver (live, or left by a killed one)
        study = optuna.load_study(storage=storage, study_name=summary.study_name)
        trials = study.get_trials(deepcopy=False)
        trainings = sum(len(instance_losses(t, phase="all")) for t in trials)
        best = _best_trial(study)
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


def _best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """``study.best_trial`` (the best COMPLETE trial in the study's direction), or ``None``.

    Not the best finished value: a pruned trial's value is the statistic over its few
    instances, so it is no best.
    """
    if len(study.directions) > 1:
        return None
    try:
        return study.best_trial
    except ValueError:  # no trial is complete
        return None


def robustness_table(storage: optuna.storages.BaseStorage | str) -> pd.DataFrame:
    """Every model measured on fresh instances, from selections and robustness studies alike."""
    frames = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if _LEASE_STUDY.search(summary.study_name):
            continue  # the lease of a select driver (live, or left by a killed one)
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
