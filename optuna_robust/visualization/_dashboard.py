"""Attach a selection's results to its study, so optuna-dashboard shows them as they are.

``optuna-dashboard sqlite:///robust.db --artifact-dir artifacts`` then shows on the study a
note (rounds, budget, the winners' robustness, the best models linked to their trial pages),
the funnel, the winners' boxplot and two interactive plots; each model's own figure and records
are on its trial page (:class:`TrialArtifactsCallback`).
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from optuna_robust import _optuna_compat as compat
from optuna_robust._imports import import_optional
from optuna_robust._records import WINNER_KEY
from optuna_robust._records import Phase
from optuna_robust._records import instance_losses
from optuna_robust._select import SelectionResult
from optuna_robust.visualization._artifacts import ArtifactWriter
from optuna_robust.visualization._instance_losses import plot_instance_losses
from optuna_robust.visualization._interactive import instance_losses_figure
from optuna_robust.visualization._interactive import statistic_figure
from optuna_robust.visualization._note import COMPARISON_HEADING
from optuna_robust.visualization._note import ModelRow
from optuna_robust.visualization._note import artifact_url
from optuna_robust.visualization._note import section_of
from optuna_robust.visualization._note import selection_note
from optuna_robust.visualization._note import trial_page_url
from optuna_robust.visualization._selection_funnel import plot_selection_funnel
from optuna_robust.visualization._trial_artifacts import TrialArtifacts
from optuna_robust.visualization._trial_artifacts import check_study
from optuna_robust.visualization._trial_artifacts import checked_trial
from optuna_robust.visualization._trial_artifacts import find_trial_artifacts
from optuna_robust.visualization._utils import study_baseline

GRAPH_OBJECT_ID = "robust-instance-losses"
STATISTIC_GRAPH_OBJECT_ID = "robust-statistic-by-instances"


@dataclasses.dataclass(frozen=True)
class SelectionArtifacts:
    """What :func:`attach_selection` attached to the study.

    Attributes:
        note:
            The Markdown of the study note.
        funnel:
            Artifact id of the selection funnel PNG.
        winners_boxplot:
            Artifact id of the PNG of the winners' final instance losses (``""``: no winner).
        trials:
            The artifacts found on each model listed in the note, winners first (those that
            :class:`TrialArtifactsCallback` or :func:`attach_trial` attached).
        graph_object_id:
            Id of the interactive plotly figure of instance losses per model.
        statistic_graph_object_id:
            Id of the interactive plotly figure of each model's statistic over instances.
    """

    note: str
    funnel: str
    winners_boxplot: str
    trials: list[TrialArtifacts]
    graph_object_id: str
    statistic_graph_object_id: str


def attach_selection(
    study: optuna.Study,
    result: SelectionResult,
    *,
    artifact_dir: str | os.PathLike[str],
    max_trials: int = 20,
) -> SelectionArtifacts:
    """Attach a selection's summary, figures and interactive plots to its study.

    Writes the study note (the winners, the budget against the exhaustive search, the round
    table, the winners' robustness and a table of the best models, each linked to its trial
    page and artifacts) and uploads two study artifacts: the funnel and the winners' boxplot.
    Two interactive plotly figures of the ``max_trials`` models that got furthest go on the
    study's main page: their instance losses, and their statistic over instances. Loss axes
    are logarithmic where the losses span decades; the baseline (the study's ``baseline_loss``
    user attr, else its pruner's) is drawn where known. Each model's own figure and records go
    on its trial: pass :class:`TrialArtifactsCallback` to :func:`~optuna_robust.select`.
    Calling it again replaces what it attached before and keeps the note's comparison section
    (:func:`attach_comparison`).

    Example:

        .. code-block:: python

            import optuna
            import optuna_dashboard
            import optuna_robust
            from optuna_robust.visualization import TrialArtifactsCallback
            from optuna_robust.visualization import attach_selection

            study = optuna.create_study(
                sampler=optuna_robust.RobustSampler({"depth": [1, 2, 3, 4]}, seed=0),
                pruner=optuna_robust.RobustPruner(statistic="max", baseline=0.5),
            )
            study.set_user_attr("baseline_loss", 0.5)  # drawn on every figure


            def train(params, instances):
                return [0.1 * params["depth"] + (i.data_seed % 7) / 100 for i in instances]


            callbacks = [TrialArtifactsCallback("artifacts")]
            result = optuna_robust.select(study, train, final_instances=6, callbacks=callbacks)
            attached = attach_selection(study, result, artifact_dir="artifacts", max_trials=3)
            assert "Budget" in optuna_dashboard.get_note(study)
            # then: optuna-dashboard <storage URL> --artifact-dir artifacts

    Args:
        study:
            The study the selection ran on.
        result:
            What :func:`~optuna_robust.select` returned for it.
        artifact_dir:
            Directory of the :class:`~optuna.artifacts.FileSystemArtifactStore`; created if
            missing. Pass the same to ``optuna-dashboard --artifact-dir``.
        max_trials:
            How many models the note's table and the interactive figures show: the winners,
            then the models that got the most instances (ties: the lower statistic).

    Returns:
        The note and the ids of what was attached.

    Raises:
        ValueError: An argument has the wrong type or range, or a winner is not from ``study``.
    """
    check_study(study)
    if not isinstance(result, SelectionResult):
        raise ValueError(
            f"result must be the SelectionResult of optuna_robust.select but got "
            f"{type(result).__name__}."
        )
    if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 0:
        raise ValueError(f"max_trials must be an integer >= 0 but got {max_trials!r}.")
    writer = ArtifactWriter(study, artifact_dir)
    for winner in result.winners:
        checked_trial(study, winner)
    trials = _best_trials(study, result, max_trials)
    baseline = study_baseline(study)
    sid = compat.study_id(study)

    funnel = writer.upload_figure(plot_selection_funnel(result), "selection-funnel.png")
    winner_phase: Phase = "final" if result.budget.final_instances else "selection"
    winners_boxplot = ""
    if result.winners:
        figure = plot_instance_losses(result.winners, phase=winner_phase, baseline=baseline)
        winners_boxplot = writer.upload_figure(figure, "selection-winners.png")
    dashboard = import_optional("optuna_dashboard")
    graph_id = dashboard.save_plotly_graph_object(
        study, instance_losses_figure(trials, baseline), graph_object_id=GRAPH_OBJECT_ID
    )
    statistic_id = dashboard.save_plotly_graph_object(
        study, statistic_figure(trials, baseline), graph_object_id=STATISTIC_GRAPH_OBJECT_ID
    )
    found = {t.number: find_trial_artifacts(writer, t) for t in trials}
    rows = [_model_row(sid, t, found[t.number]) for t in trials]
    note = selection_note(
        result,
        winner_phase=winner_phase,
        funnel_url=artifact_url(sid, funnel),
        winners_url=artifact_url(sid, winners_boxplot) if winners_boxplot else None,
        models=rows,
        baseline=baseline,
    )
    comparison = section_of(dashboard.get_note(study), COMPARISON_HEADING)
    if comparison is not None:
        note = note + "\n" + comparison
    dashboard.save_note(study, note)
    attached = [a for a in found.values() if a is not None]
    return SelectionArtifacts(note, funnel, winners_boxplot, attached, graph_id, statistic_id)


# --- helpers -------------------------------------------------------------------------------


def _best_trials(
    study: optuna.Study, result: SelectionResult, max_trials: int
) -> list[FrozenTrial]:
    """The winners, then the models that went furthest (most instances, lower statistic)."""
    winners = {t.number for t in result.winners}
    all_trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in all_trials}
    candidates = []
    for trial in all_trials:
        if trial.number in winners or not trial.intermediate_values:
            continue
        last = max(trial.intermediate_values)
        value = trial.intermediate_values[last]
        candidates.append((-last, value if math.isfinite(value) else math.inf, trial.number))
    candidates.sort()
    others = [by_number[n] for _, _, n in candidates]
    keep = max(max_trials - len(result.winners), 0)
    return [by_number[t.number] for t in result.winners] + others[:keep]


def _model_row(study_id: int, trial: FrozenTrial, files: TrialArtifacts | None) -> ModelRow:
    links = [("page", trial_page_url(study_id, trial.number))]
    if files is not None:
        trial_id = compat.trial_id(None, trial) if files.on_trial else None
        for text, artifact_id in (
            ("PNG", files.boxplot),
            ("CSV", files.records_csv),
            ("JSON", files.records_json),
        ):
            links.append((text, artifact_url(study_id, artifact_id, trial_id)))
    state = trial.state.name + (" (winner)" if WINNER_KEY in trial.system_attrs else "")
    losses = np.asarray(instance_losses(trial, phase="all"), dtype=float)
    return ModelRow(str(trial.number), trial.params, losses, links, state)
