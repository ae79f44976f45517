"""plot_trial: one model's instance losses, a box per phase, beside its loss curves."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import numpy as np
from optuna.trial import FrozenTrial

from optuna_robust._records import PHASES
from optuna_robust._records import WINNER_KEY
from optuna_robust._records import instance_losses
from optuna_robust.visualization._loss_curves import draw_curves
from optuna_robust.visualization._loss_curves import trial_curves
from optuna_robust.visualization._utils import OTHER_COLOR
from optuna_robust.visualization._utils import WINNER_COLOR
from optuna_robust.visualization._utils import baseline_line
from optuna_robust.visualization._utils import boxes
from optuna_robust.visualization._utils import check_baseline
from optuna_robust.visualization._utils import format_value
from optuna_robust.visualization._utils import log_scale
from optuna_robust.visualization._utils import new_figure
from optuna_robust.visualization._utils import points
from optuna_robust.visualization._utils import resolve_log

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_trial(
    trial: FrozenTrial,
    *,
    baseline: float | None = None,
    log: bool | None = None,
) -> Figure:
    """One model at a glance: its instance losses per phase and, if recorded, its loss curves.

    Left, a box per phase (``selection``, ``final``) with every instance as a point; right,
    when the instances carry a ``"curve"`` extra, the test loss over epochs of each instance
    with the median. This is the figure :class:`TrialArtifactsCallback` puts on each trial's
    page in optuna-dashboard.

    Example:

        .. code-block:: python

            import optuna
            import optuna_robust
            from optuna_robust.visualization import plot_trial

            study = optuna.create_study(
                sampler=optuna_robust.RobustSampler({"lr": [0.01, 0.1]}, seed=0),
                pruner=optuna_robust.RobustPruner(statistic="mean"),
            )


            def train_fn(params, instances):
                return [
                    {"loss": params["lr"] + i.index / 100,
                     "curve": [1.0 / (e + 1) + params["lr"] for e in range(20)]}
                    for i in instances
                ]


            result = optuna_robust.select(study, train_fn, final_instances=8)
            fig = plot_trial(result.winners[0], baseline=0.05)
            assert [ax.get_xlabel() for ax in fig.axes] == ["instances", "epoch"]

    Args:
        trial:
            A trial evaluated by :func:`~optuna_robust.select` or
            :func:`~optuna_robust.evaluate_instances`.
        baseline:
            A reference loss drawn as a horizontal dashed line, or ``None``.
        log:
            Use a logarithmic loss axis. ``None``: when the losses span more than a factor
            of 20. The loss curves always use one (losses fall by decades in the first epochs).

    Returns:
        The figure; one axes, or two with loss curves.

    Raises:
        ValueError: The trial has no instance records, or ``baseline`` is not a finite loss.
    """
    if not isinstance(trial, FrozenTrial):
        raise ValueError(f"trial must be a FrozenTrial but got {type(trial).__name__}.")
    check_baseline(baseline, log)
    groups = {p: instance_losses(trial, phase=p) for p in PHASES}
    groups = {p: losses for p, losses in groups.items() if losses.size}
    if not groups:
        raise ValueError(
            f"Trial {trial.number} has no instance records; evaluate it with "
            "optuna_robust.select or evaluate_instances first."
        )
    curves = trial_curves(trial, "all")
    box_width = 2.2 + 1.7 * len(groups)
    fig = new_figure(box_width + (5.0 if curves else 0.0), 4.2)
    if curves:
        ax, curve_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [box_width, 5.0]})
    else:
        ax = fig.add_subplot()
    positions = np.arange(1, len(groups) + 1, dtype=float)
    colors = [WINNER_COLOR if p == "final" else OTHER_COLOR for p in groups]
    boxes(ax, list(groups.values()), positions, 0.55, colors, fliers=False)
    points(ax, list(groups.values()), positions)
    ax.set_xticks(positions, [f"{p}\nn={losses.size}" for p, losses in groups.items()])
    ax.set_xlim(0.4, len(groups) + 0.6)
    ax.set_xlabel("instances")
    ax.set_ylabel("test loss")
    line = baseline_line(ax, baseline)
    if line is not None:
        ax.legend(handles=[line], fontsize="small", loc="best")
    if resolve_log(log, np.concatenate(list(groups.values())), baseline):
        log_scale(ax, "y")
    ax.grid(axis="y", alpha=0.3)
    # A callback sees the trial just before it finishes: RUNNING would mislead, so the state is
    # named only once it is final; a winner is marked by select before that.
    status = [trial.state.name] if trial.state.is_finished() else []
    status += ["winner"] if WINNER_KEY in trial.system_attrs else []
    params = ", ".join(f"{k}={format_value(v)}" for k, v in trial.params.items())
    state = f" ({', '.join(status)})" if status else ""
    title = f"Trial #{trial.number}{state}: {params}"
    # Across both panels: a model's params can run to a dozen names.
    width = max(48, round(12 * fig.get_figwidth()))
    fig.suptitle(textwrap.fill(title, width=width), fontsize="small")
    ax.set_title("Test loss of each instance", fontsize="small")
    if curves:
        draw_curves(curve_ax, curves, band=(0.1, 0.9), show_instances=True)
        baseline_line(curve_ax, baseline)
        log_scale(curve_ax, "y")
        curve_ax.set_title(f"Test loss per epoch: {len(curves)} instances", fontsize="small")
        curve_ax.legend(fontsize="x-small", loc="upper right")
    return fig
