"""Each model's figure and instance records as artifacts of its own trial in optuna-dashboard.

A running trial accepts artifacts, so ``select`` callbacks and objectives attach there; a
finished trial does not, and :func:`attach_trial` then attaches to the study instead.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial
import pandas as pd

from optuna_robust import _optuna_compat as compat
from optuna_robust._imports import import_optional
from optuna_robust._records import PHASES
from optuna_robust._records import WINNER_KEY
from optuna_robust._records import instance_losses
from optuna_robust._records import records
from optuna_robust.visualization._artifacts import ArtifactWriter
from optuna_robust.visualization._note import artifact_url
from optuna_robust.visualization._note import trial_note
from optuna_robust.visualization._trial import plot_trial
from optuna_robust.visualization._utils import check_baseline
from optuna_robust.visualization._utils import check_positive_int
from optuna_robust.visualization._utils import study_baseline


@dataclasses.dataclass(frozen=True)
class TrialArtifacts:
    """The artifacts of one model: its figure and instance records.

    Attributes:
        trial:
            The trial number.
        boxplot:
            Artifact id of the PNG of its instance losses (a box per phase) and loss curves.
        records_csv:
            Artifact id of its instance records as a table: phase, index, loss, seeds and
            scalar extras.
        records_json:
            Artifact id of its params and full instance records, per-epoch curves included.
        on_trial:
            ``True`` when the artifacts belong to the trial (its page in optuna-dashboard lists
            them); ``False`` when they belong to the study, as for a trial that had finished.
    """

    trial: int
    boxplot: str
    records_csv: str
    records_json: str
    on_trial: bool = True


class TrialArtifactsCallback:
    """Put each model's figure and instance records on its own trial page in optuna-dashboard.

    Pass it to :func:`~optuna_robust.select` as ``callbacks=[TrialArtifactsCallback(...)]``:
    every model that reached ``min_instances`` instances gets, just before ``select`` finishes
    its trial, three trial artifacts: its :func:`plot_trial` figure
    (``trial-00042-instances.png``) and its records as CSV and JSON (curves included). Models
    with fewer instances get nothing, so thousands of models dropped after one instance do not
    each render a figure. With ``study.optimize``, call it at the end of the objective, while
    the trial still accepts artifacts (Optuna's own ``optimize(callbacks=...)`` run too late)::

        attach = TrialArtifactsCallback("artifacts")

        def objective(trial):
            ...
            try:
                return optuna_robust.evaluate_instances(trial, train_fn)
            finally:  # pruned or complete
                attach(trial.study, trial)

    Example:

        .. code-block:: python

            import optuna
            import optuna_robust
            from optuna_robust.visualization import TrialArtifactsCallback

            study = optuna.create_study(
                sampler=optuna_robust.RobustSampler({"lr": [0.001, 0.01, 0.1, 1.0]}, seed=0),
                pruner=optuna_robust.RobustPruner(statistic="mean"),
            )


            def train_fn(params, instances):
                return [params["lr"] + i.index / 100 for i in instances]


            attach = TrialArtifactsCallback("artifacts", min_instances=2)
            result = optuna_robust.select(study, train_fn, final_instances=4, callbacks=[attach])
            winner = result.winners[0]
            metas = optuna.artifacts.get_all_artifact_meta(winner, storage=study._storage)
            assert len(metas) == 3  # the figure, the CSV and the JSON

    Args:
        artifact_dir:
            Directory of the :class:`~optuna.artifacts.FileSystemArtifactStore`; created if
            missing. Pass the same to ``optuna-dashboard --artifact-dir``.
        min_instances:
            Attach only models with at least this many instances (all phases).
        baseline:
            A reference loss drawn as a dashed line. ``None``: the study's ``baseline_loss``
            user attr, else its :class:`~optuna_robust.RobustPruner`'s baseline, if any.

    Raises:
        ValueError: An argument has the wrong type or range.
    """

    def __init__(
        self,
        artifact_dir: str | os.PathLike[str],
        *,
        min_instances: int = 2,
        baseline: float | None = None,
    ) -> None:
        if not isinstance(artifact_dir, str | os.PathLike):
            raise ValueError(f"artifact_dir must be a directory path but got {artifact_dir!r}.")
        check_positive_int("min_instances", min_instances)
        check_baseline(baseline, None)
        self.artifact_dir = artifact_dir
        self.min_instances = min_instances
        self.baseline = baseline

    def __call__(self, study: optuna.Study, trial: FrozenTrial | optuna.Trial) -> None:
        frozen = _frozen(study, trial)
        if instance_losses(frozen, phase="all").size < self.min_instances:
            return
        if frozen.state.is_finished():
            raise ValueError(
                f"Trial {frozen.number} is already {frozen.state.name} and Optuna accepts "
                "artifacts only on a running trial: pass TrialArtifactsCallback to "
                "optuna_robust.select(callbacks=...), or call it in the objective before it "
                "returns (attach_trial attaches a finished trial's files to the study)."
            )
        baseline = study_baseline(study) if self.baseline is None else self.baseline
        _attach_trial(ArtifactWriter(study, self.artifact_dir), frozen, baseline, on_trial=True)


def attach_trial(
    study: optuna.Study,
    trial: FrozenTrial | optuna.Trial | int,
    *,
    artifact_dir: str | os.PathLike[str],
    baseline: float | None = None,
) -> TrialArtifacts:
    """Upload one model's figure and instance records, to its trial if it is still running.

    A running trial (inside the objective, or in a ``select`` callback) gets the artifacts
    itself, so its page in optuna-dashboard lists them. A finished trial no longer accepts
    artifacts: they go to the study instead, named after the trial
    (``trial-00042-instances.png``, ``.csv`` and ``.json``). Calling it again replaces them.

    Example:

        .. code-block:: python

            import optuna
            import optuna_robust
            from optuna_robust.visualization import attach_trial

            study = optuna.create_study(
                sampler=optuna_robust.RobustSampler({"lr": [0.01, 0.1]}, seed=0),
                pruner=optuna_robust.RobustPruner(max_instances=4),
            )


            def objective(trial):
                lr = trial.suggest_categorical("lr", [0.01, 0.1])
                value = optuna_robust.evaluate_instances(
                    trial, lambda instances: [lr + i.index / 100 for i in instances]
                )
                attach_trial(trial.study, trial, artifact_dir="artifacts")  # still running
                return value


            study.optimize(objective)
            metas = optuna.artifacts.get_all_artifact_meta(study.trials[0], storage=study._storage)
            names = {m.filename for m in metas}
            assert names == {f"trial-00000-instances.{ext}" for ext in ("png", "csv", "json")}

    Args:
        study:
            The study of the trial.
        trial:
            The trial (a running :class:`optuna.Trial`, or a frozen one), or its number.
        artifact_dir:
            Directory of the :class:`~optuna.artifacts.FileSystemArtifactStore`; created if
            missing.
        baseline:
            A reference loss drawn as a dashed line. ``None``: the study's ``baseline_loss``
            user attr, else its :class:`~optuna_robust.RobustPruner`'s baseline, if any.

    Returns:
        The ids of the uploaded artifacts.

    Raises:
        ValueError: The trial is not from ``study`` or has no instance records.
    """
    check_study(study)
    check_baseline(baseline, None)
    if isinstance(trial, int) and not isinstance(trial, bool):
        try:
            trial_id = compat.storage_of(study).get_trial_id_from_study_id_trial_number(
                compat.study_id(study), trial
            )
        except KeyError:
            raise ValueError(f"Study {study.study_name!r} has no trial number {trial}.") from None
        trial = compat.storage_of(study).get_trial(trial_id)
    frozen = checked_trial(study, _frozen(study, trial))
    writer = ArtifactWriter(study, artifact_dir)
    baseline = study_baseline(study) if baseline is None else baseline
    return _attach_trial(writer, frozen, baseline, on_trial=not frozen.state.is_finished())


# --- helpers -------------------------------------------------------------------------------


def check_study(study: object) -> None:
    if not isinstance(study, optuna.Study):
        raise ValueError(f"study must be an optuna.Study but got {type(study).__name__}.")


def _frozen(study: optuna.Study, trial: object) -> FrozenTrial:
    """The frozen state of ``trial``; a running ``optuna.Trial`` is read from the storage."""
    if isinstance(trial, optuna.Trial):
        # Study ids repeat across storages (every in-memory study is 0): the name tells apart.
        same = (trial.study.study_name, compat.study_id(trial.study))
        if same != (study.study_name, compat.study_id(study)):
            raise ValueError(
                f"Trial {trial.number} belongs to study {trial.study.study_name!r}, not to "
                f"{study.study_name!r}."
            )
        return compat.storage_of(study).get_trial(compat.trial_id(study, trial))
    if not isinstance(trial, FrozenTrial):
        raise ValueError(f"trial must be a trial or a trial number but got {trial!r}.")
    return trial


def checked_trial(study: optuna.Study, trial: FrozenTrial) -> FrozenTrial:
    try:
        trial_id = compat.storage_of(study).get_trial_id_from_study_id_trial_number(
            compat.study_id(study), trial.number
        )
    except KeyError:
        trial_id = None
    # Ids alone can coincide across storages: the start time and params pin the trial down.
    stored = None if trial_id is None else compat.storage_of(study).get_trial(trial_id)
    if (
        stored is None
        or trial_id != compat.trial_id(study, trial)
        or stored.datetime_start != trial.datetime_start
        or stored.params != trial.params
    ):
        raise ValueError(
            f"Trial {trial.number} (id {compat.trial_id(study, trial)}) is not a trial of study "
            f"{study.study_name!r}; pass the study the selection ran on."
        )
    return trial


def _stem(number: int) -> str:
    return f"trial-{number:05d}-instances"


def _records_table(trial: FrozenTrial) -> pd.DataFrame:
    rows = []
    for phase in PHASES:
        for index, record in enumerate(records(trial, phase, extras=True)):
            scalars = {k: v for k, v in record.items() if not isinstance(v, list | dict)}
            rows.append({"phase": phase, "index": index, **scalars})
    return pd.DataFrame(rows)


@dataclasses.dataclass(frozen=True)
class _NoteTarget:
    """What ``optuna_dashboard.save_note`` reads of a trial, for a frozen one: building an
    ``optuna.Trial`` here instead would run the sampler's ``before_trial`` hook."""

    study: optuna.Study
    storage: BaseStorage
    _trial_id: int


def _attach_trial(
    writer: ArtifactWriter, trial: FrozenTrial, baseline: float | None, *, on_trial: bool
) -> TrialArtifacts:
    target = trial if on_trial else None
    stem = _stem(trial.number)
    boxplot = writer.upload_figure(plot_trial(trial, baseline=baseline), f"{stem}.png", target)
    table = _records_table(trial).to_csv(index=False).encode()
    records_csv = writer.upload(table, f"{stem}.csv", target)
    document: dict[str, Any] = {
        "trial": trial.number,
        "params": trial.params,
        "winner": WINNER_KEY in trial.system_attrs,
        **{phase: records(trial, phase, extras=True) for phase in PHASES},
    }
    content = json.dumps(document, indent=1, default=str).encode()
    records_json = writer.upload(content, f"{stem}.json", target)
    # The trial page shows artifacts as thumbnails: its note shows the figure at full width.
    study = writer.study
    sid = compat.study_id(study)
    trial_id = compat.trial_id(study, trial) if on_trial else None
    note = trial_note(
        trial,
        figure_url=artifact_url(sid, boxplot, trial_id),
        links=[
            ("CSV", artifact_url(sid, records_csv, trial_id)),
            ("JSON, curves included", artifact_url(sid, records_json, trial_id)),
        ],
        baseline=baseline,
    )
    dashboard = import_optional("optuna_dashboard")
    dashboard.save_note(
        _NoteTarget(study, compat.storage_of(study), compat.trial_id(study, trial)), note
    )
    return TrialArtifacts(trial.number, boxplot, records_csv, records_json, on_trial)


def find_trial_artifacts(writer: ArtifactWriter, trial: FrozenTrial) -> TrialArtifacts | None:
    """The artifacts attached to ``trial`` (on it, else on the study by its name), if all."""
    stem = _stem(trial.number)
    for on_trial in (True, False):
        names = writer.existing(trial if on_trial else None)
        png, csv, json_ = (names.get(f"{stem}.{ext}") for ext in ("png", "csv", "json"))
        if png and csv and json_:
            return TrialArtifacts(trial.number, png, csv, json_, on_trial=on_trial)
    return None
