"""plot_instance_losses: a box of instance test losses per model (the paper's Figs. 2 and 3)."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from optuna_robust._records import WINNER_KEY
from optuna_robust._records import instance_losses
from optuna_robust.visualization._utils import OTHER_COLOR
from optuna_robust.visualization._utils import WINNER_COLOR
from optuna_robust.visualization._utils import PhaseArg
from optuna_robust.visualization._utils import as_trials
from optuna_robust.visualization._utils import baseline_line
from optuna_robust.visualization._utils import boxes
from optuna_robust.visualization._utils import check_baseline
from optuna_robust.visualization._utils import check_phase
from optuna_robust.visualization._utils import check_positive_int
from optuna_robust.visualization._utils import format_value
from optuna_robust.visualization._utils import label_mapping
from optuna_robust.visualization._utils import log_scale
from optuna_robust.visualization._utils import new_figure
from optuna_robust.visualization._utils import patch
from optuna_robust.visualization._utils import progress_key
from optuna_robust.visualization._utils import resolve_log
from optuna_robust.visualization._utils import varying_params

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_instance_losses(
    trials_or_study: optuna.Study | Iterable[FrozenTrial],
    *,
    phase: PhaseArg = "selection",
    baseline: float | None = None,
    labels: Sequence[str] | Mapping[int, str] | None = None,
    log: bool | None = None,
    max_models: int = 30,
) -> Figure:
    """Boxplots of the instance test losses of each model, as in the paper's Figs. 2 and 3.

    Each box is one model (one trial): the spread of the test losses of its instances
    (independent trainings). Winners of :func:`~optuna_robust.select` are blue, other models
    grey. Boxes span the quartiles, whiskers 1.5 IQR, points beyond are outliers; diverged
    (infinite) instances are counted at the top of their box.

    Example:

        .. code-block:: python

            import optuna
            import optuna_robust
            from optuna_robust.visualization import plot_instance_losses

            space = {"width": [8, 16, 32], "lr": [0.001, 0.01]}
            study = optuna.create_study(
                sampler=optuna_robust.RobustSampler(space, seed=0),
                pruner=optuna_robust.RobustPruner(statistic="mean"),
            )


            def train_fn(params, instances):
                return [params["lr"] * 10 + 1 / params["width"] + (i.init_seed % 9) / 300
                        for i in instances]


            result = optuna_robust.select(study, train_fn, final_instances=10)
            fig = plot_instance_losses(study, phase="all", baseline=0.2)
            fig.savefig("instance_losses.png")

    Args:
        trials_or_study:
            A study, or trials evaluated by :func:`~optuna_robust.evaluate_instances` or
            :func:`~optuna_robust.select`. Trials without instances in ``phase`` are left out.
        phase:
            Which instances to show: ``"selection"``, ``"final"`` or ``"all"``.
        baseline:
            A reference loss drawn as a horizontal dashed line (the paper: the parametric
            model), or ``None``.
        labels:
            Box labels: one per given trial, in order, or a mapping from trial number to label.
            ``None`` labels each box with its trial number and the params that differ between
            the models shown.
        log:
            Use a logarithmic loss axis. ``None``: when the losses shown span more than a
            factor of 20 (a diverging model beside good ones).
        max_models:
            Show at most this many models. A study's models are ordered by how far they got
            (most instances first), then by mean loss; the same order picks the models kept
            from a longer list of trials (a shorter list keeps its order).

    Returns:
        The figure; one axes.

    Raises:
        ValueError: An argument is out of range, or no trial has instances in ``phase``.
    """
    check_phase(phase)
    check_baseline(baseline, log)
    check_positive_int("max_models", max_models)
    given = as_trials(trials_or_study)
    label_of = label_mapping(labels, given)
    losses = {t.number: instance_losses(t, phase=phase) for t in given}
    trials = [t for t in given if losses[t.number].size > 0]
    if not trials:
        raise ValueError(
            f"None of the {len(given)} trials has {phase!r} instances; evaluate them with "
            "optuna_robust.select or evaluate_instances, or pick another phase."
        )
    total = len(trials)
    if isinstance(trials_or_study, optuna.Study) or total > max_models:
        trials = sorted(trials, key=lambda t: progress_key(losses[t.number]))[:max_models]
    many = len(trials) > 6
    tick_labels = []
    for trial, parts in zip(trials, _model_label_parts(trials)):
        if trial.number in label_of:
            parts = [label_of[trial.number]]
        count = f"n={losses[trial.number].size}"
        # Few boxes: one param per line. Many: one rotated line each.
        tick_labels.append(
            "\n".join([*parts, count]) if not many else f"{' '.join(parts)} ({count})"
        )
    width = max(5.0, 1.0 + 0.42 * len(trials)) if many else max(4.5, 1.2 + 1.1 * len(trials))
    fig = new_figure(min(width, 16.0), 5.0 if many else 4.5)
    ax = fig.add_subplot()
    winner = [WINNER_KEY in t.system_attrs for t in trials]
    colors = [WINNER_COLOR if w else OTHER_COLOR for w in winner]
    positions = np.arange(1, len(trials) + 1, dtype=float)
    shown = [losses[t.number] for t in trials]
    boxes(ax, shown, positions, 0.6, colors)
    ax.set_xticks(positions, tick_labels)
    if many:
        ax.tick_params(axis="x", labelrotation=40)
        for text in ax.get_xticklabels():
            text.set_horizontalalignment("right")
            text.set_rotation_mode("anchor")
    ax.set_xlim(0.4, len(trials) + 0.6)
    ax.set_xlabel("model (trial, instances)")
    ax.set_ylabel("test loss")
    handles = []
    if any(winner) and not all(winner):
        handles += [patch(WINNER_COLOR, "winner"), patch(OTHER_COLOR, "other model")]
    line = baseline_line(ax, baseline)
    if line is not None:
        handles.append(line)
    if handles:
        ax.legend(handles=handles, loc="upper left", fontsize="small", framealpha=0.9)
    if resolve_log(log, np.concatenate(shown), baseline):
        log_scale(ax, "y")
    count = f"best {len(trials)} of {total} models" if len(trials) < total else f"{total} models"
    count = "1 model" if total == 1 else count
    ax.set_title(f"Test loss of each instance: {count}, {phase} instances", fontsize="medium")
    ax.grid(axis="y", alpha=0.3)
    return fig


def _abbreviation(name: str) -> str:
    parts = [p for p in name.split("_") if p]
    return "".join(p[0] for p in parts) if len(parts) > 1 else name


def _model_label_parts(trials: Sequence[FrozenTrial]) -> list[list[str]]:
    """``["#12", "w=64", "lr=0.001"]``: trial number and the params that differ between trials."""
    varying, _ = varying_params([t.params for t in trials])
    short = {n: _abbreviation(n) for n in varying}
    if len(set(short.values())) < len(short):
        short = {n: n for n in varying}  # abbreviations collide: keep the full names
    return [
        [f"#{t.number}"]
        + [f"{short[n]}={format_value(t.params[n])}" for n in varying if n in t.params]
        for t in trials
    ]
