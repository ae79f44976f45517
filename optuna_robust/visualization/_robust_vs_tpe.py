"""plot_robust_vs_tpe: the robust winner beside the models a TPE search picked (Fig. 18)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from optuna_robust.visualization._utils import TPE_COLOR
from optuna_robust.visualization._utils import WINNER_COLOR
from optuna_robust.visualization._utils import LossesLike
from optuna_robust.visualization._utils import baseline_line
from optuna_robust.visualization._utils import boxes
from optuna_robust.visualization._utils import check_baseline
from optuna_robust.visualization._utils import log_scale
from optuna_robust.visualization._utils import losses_of
from optuna_robust.visualization._utils import new_figure
from optuna_robust.visualization._utils import patch
from optuna_robust.visualization._utils import points
from optuna_robust.visualization._utils import resolve_log
from optuna_robust.visualization._utils import spread

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_robust_vs_tpe(
    robust_losses: LossesLike,
    tpe_losses: Mapping[str, LossesLike],
    *,
    robust_label: str = "robust selection",
    log: bool | None = None,
    baseline: float | None = None,
) -> Figure:
    """The robust winner beside the winners of a TPE search, instance by instance (Fig. 18).

    Each box holds the test losses of fresh instances of one model (for trials: their final
    instances when they have some, else all), with every instance drawn as a point.

    Example:

        .. code-block:: python

            import numpy as np
            from optuna_robust.visualization import plot_robust_vs_tpe

            rng = np.random.default_rng(0)
            fig = plot_robust_vs_tpe(
                1.0 + rng.gamma(2, 0.01, size=50),
                {"NAS 1": 1.0 + rng.gamma(1, 0.05, size=50),
                 "NAS 2": 1.0 + rng.gamma(1, 0.08, size=50)},
            )
            fig.savefig("robust_vs_tpe.png")

    Args:
        robust_losses:
            Instance losses of the robust winner, or its trial.
        tpe_losses:
            For each TPE model, a label and its instance losses (or its trial).
        robust_label:
            Label of the robust winner.
        log:
            Use a logarithmic loss axis. ``None``: when the losses span more than a factor
            of 20.
        baseline:
            A reference loss drawn as a horizontal dashed line, or ``None``.

    Returns:
        The figure; one axes.

    Raises:
        ValueError: ``tpe_losses`` is empty, or a model has no losses.
    """
    check_baseline(baseline, log)
    if not isinstance(tpe_losses, Mapping) or not tpe_losses:
        raise ValueError(
            f"tpe_losses must be a non-empty mapping label -> losses but got {tpe_losses!r}."
        )
    groups = {robust_label: losses_of(robust_label, robust_losses)}
    for label, losses in tpe_losses.items():
        groups[str(label)] = losses_of(str(label), losses)
    fig = new_figure(max(4.5, 1.6 * len(groups) + 1.5), 4.5)
    ax = fig.add_subplot()
    positions = np.arange(1, len(groups) + 1, dtype=float)
    colors = [WINNER_COLOR] + [TPE_COLOR] * (len(groups) - 1)
    boxes(ax, list(groups.values()), positions, 0.55, colors, fliers=False)
    points(ax, list(groups.values()), positions)
    ticks = []
    for label, losses in groups.items():
        std = spread(losses)
        # One instance has no spread to show: "–", never a misleading 0.
        ticks.append(f"{label}\nn={losses.size}, std {'–' if std is None else f'{std:.3g}'}")
    ax.set_xticks(positions, ticks)
    ax.set_xlim(0.4, len(groups) + 0.6)
    ax.set_ylabel("test loss")
    handles = [patch(WINNER_COLOR, "robust selection"), patch(TPE_COLOR, "TPE")]
    line = baseline_line(ax, baseline)
    if line is not None:
        handles.append(line)
    if resolve_log(log, np.concatenate(list(groups.values())), baseline):
        log_scale(ax, "y")
    ax.legend(handles=handles, fontsize="small", loc="best")  # where it hides no box
    ax.set_title("Test loss of fresh instances: robust selection vs TPE", fontsize="medium")
    ax.grid(axis="y", alpha=0.3)
    return fig
