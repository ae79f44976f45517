"""attach_comparison: the robust winner beside a TPE search's picks, where a user looks for it.

The comparison note and figure go on the TPE study and on the study of the TPE models' fresh
instances; the selection study's note gets the same section, linked to the TPE study's note.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_robust import _optuna_compat as compat
from optuna_robust._imports import import_optional
from optuna_robust._records import WINNER_KEY
from optuna_robust._records import instance_losses
from optuna_robust._records import records
from optuna_robust.visualization._artifacts import ArtifactWriter
from optuna_robust.visualization._note import COMPARISON_HEADING
from optuna_robust.visualization._note import ModelRow
from optuna_robust.visualization._note import artifact_url
from optuna_robust.visualization._note import comparison_section
from optuna_robust.visualization._note import note_page_url
from optuna_robust.visualization._note import replace_section
from optuna_robust.visualization._robust_vs_tpe import plot_robust_vs_tpe
from optuna_robust.visualization._trial_artifacts import check_study
from optuna_robust.visualization._utils import check_positive_int
from optuna_robust.visualization._utils import mean_loss
from optuna_robust.visualization._utils import study_baseline

FIGURE_NAME = "robust-vs-tpe.png"


@dataclasses.dataclass(frozen=True)
class ComparisonArtifacts:
    """What :func:`attach_comparison` attached.

    Attributes:
        note:
            The Markdown section written to the TPE study's note.
        figures:
            Study name -> artifact id of the :func:`plot_robust_vs_tpe` figure it holds.
    """

    note: str
    figures: dict[str, str]


def attach_comparison(
    robust_study: optuna.Study,
    tpe_study: optuna.Study,
    robustness_study: optuna.Study | None = None,
    *,
    artifact_dir: str | os.PathLike[str],
    max_models: int = 3,
) -> ComparisonArtifacts:
    """Show the robust winner beside the models a TPE search picked, on all three studies.

    The robust side is the best winner of :func:`~optuna_robust.select` on ``robust_study``,
    by its final instances. The TPE side is the models of ``robustness_study``, the study of
    fresh instances of TPE's picks (each trial's final instances, labelled with the TPE trial
    of the same params); without it, TPE's ``max_models`` best trials by their own instances.
    A note section (a table of mean, median, std and max; the figure; the params) and the
    :func:`plot_robust_vs_tpe` figure go on the TPE study and the robustness study; the
    selection study's note gets the same section with a link to the TPE study's note. Other
    parts of the notes are kept; calling it again replaces the section and the figures.

    Example:

        .. code-block:: python

            import optuna
            import optuna_dashboard
            import optuna_robust
            from optuna_robust.visualization import attach_comparison

            storage = optuna.storages.InMemoryStorage()
            robust = optuna.create_study(
                storage=storage, study_name="robust",
                sampler=optuna_robust.RobustSampler({"lr": [0.01, 0.1]}, seed=0),
                pruner=optuna_robust.RobustPruner(statistic="mean"),
            )


            def train_fn(params, instances):
                return [params["lr"] + (i.init_seed % 10) / 1000 for i in instances]


            optuna_robust.select(robust, train_fn, final_instances=8)
            tpe = optuna.create_study(
                storage=storage, study_name="tpe",
                pruner=optuna_robust.RobustPruner(max_instances=1),
            )


            def objective(trial):
                lr = trial.suggest_float("lr", 0.001, 1.0, log=True)
                return optuna_robust.evaluate_instances(
                    trial, lambda instances: train_fn({"lr": lr}, instances)
                )


            tpe.optimize(objective, n_trials=5)
            attached = attach_comparison(robust, tpe, artifact_dir="artifacts")
            assert "Robust selection vs TPE" in optuna_dashboard.get_note(tpe)
            assert "Robust selection vs TPE" in optuna_dashboard.get_note(robust)

    Args:
        robust_study:
            The study a robust selection ran on; it must hold a winner.
        tpe_study:
            The TPE search.
        robustness_study:
            The fresh instances of TPE's picks: trials with ``final`` instance records and the
            params of a TPE trial (as ``optuna-robust robustness`` writes them), or ``None``.
        artifact_dir:
            Directory of the :class:`~optuna.artifacts.FileSystemArtifactStore`; created if
            missing.
        max_models:
            At most this many TPE models, best mean loss first.

    Returns:
        The TPE study's note section and the figures' ids.

    Raises:
        ValueError: An argument has the wrong type or range, the selection has no winner, or
            the TPE side has no model with instances.
    """
    check_study(robust_study)
    check_study(tpe_study)
    if robustness_study is not None:
        check_study(robustness_study)
    check_positive_int("max_models", max_models)
    winner = _best_winner(robust_study)
    picks = _tpe_models(tpe_study, robustness_study, max_models)
    baseline = study_baseline(robust_study)
    rows = [
        ModelRow(
            f"robust selection ({robust_study.study_name} #{winner.number})",
            winner.params,
            _fresh_losses(winner),
        ),
        *[ModelRow(label, trial.params, _fresh_losses(trial)) for label, trial in picks],
    ]
    figure = plot_robust_vs_tpe(
        winner, {label: trial for label, trial in picks}, baseline=baseline
    )
    dashboard = import_optional("optuna_dashboard")
    targets = [tpe_study] + ([robustness_study] if robustness_study is not None else [])
    figures: dict[str, str] = {}
    sections: dict[str, str] = {}
    for study in targets:
        figure_id = ArtifactWriter(study, artifact_dir).upload_figure(figure, FIGURE_NAME)
        figures[study.study_name] = figure_id
        others = [s for s in (robust_study, *targets) if s is not study]
        sections[study.study_name] = comparison_section(
            rows,
            figure_url=artifact_url(compat.study_id(study), figure_id),
            baseline=baseline,
            see_also=[(f"{s.study_name} note", note_page_url(compat.study_id(s))) for s in others],
        )
        section = sections[study.study_name]
        dashboard.save_note(
            study, replace_section(dashboard.get_note(study), COMPARISON_HEADING, section)
        )
    selection_section = comparison_section(
        rows,
        figure_url=artifact_url(compat.study_id(tpe_study), figures[tpe_study.study_name]),
        baseline=baseline,
        see_also=[(f"{s.study_name} note", note_page_url(compat.study_id(s))) for s in targets],
    )
    note = dashboard.get_note(robust_study)
    dashboard.save_note(robust_study, replace_section(note, COMPARISON_HEADING, selection_section))
    return ComparisonArtifacts(sections[tpe_study.study_name], figures)


def _best_winner(study: optuna.Study) -> FrozenTrial:
    winners = [t for t in study.get_trials(deepcopy=False) if WINNER_KEY in t.system_attrs]
    if not winners:
        raise ValueError(
            f"Study {study.study_name!r} holds no winner of optuna_robust.select; run the "
            "selection first (or pass the study it ran on)."
        )
    return min(winners, key=lambda t: int(t.system_attrs[WINNER_KEY]))


def _fresh_losses(trial: FrozenTrial) -> np.ndarray:
    """A model's final instances when it has some (fresh ones), else all its instances."""
    return instance_losses(trial, phase="final" if records(trial, "final") else "all")


def _tpe_models(
    tpe_study: optuna.Study, robustness_study: optuna.Study | None, max_models: int
) -> list[tuple[str, FrozenTrial]]:
    """``(label, trial)`` of the TPE models to show, best mean loss over fresh instances first."""
    tpe_trials = [
        t
        for t in tpe_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if instance_losses(t, phase="all").size
    ]
    measured = []
    if robustness_study is not None:
        measured = [t for t in robustness_study.get_trials(deepcopy=False) if records(t, "final")]
    if measured:
        picks: list[tuple[str, FrozenTrial]] = []
        for trial in measured:
            same = [t for t in tpe_trials if t.params == trial.params]
            label = f"TPE #{min(t.number for t in same)}" if same else "TPE pick"
            if not same or any(label == taken for taken, _ in picks):
                label += f" (measured as #{trial.number})"  # labels key the figure's boxes
            picks.append((label, trial))
    else:
        picks = [(f"TPE #{t.number}", t) for t in tpe_trials]
    if not picks:
        raise ValueError(
            f"Neither TPE study {tpe_study.study_name!r} nor the robustness study holds a "
            "complete model with instance losses; run the TPE search (and measure its picks) "
            "first."
        )
    picks.sort(key=lambda pick: (mean_loss(_fresh_losses(pick[1])), pick[1].number))
    return picks[:max_models]
