"""plot_loss_curves: test loss over epochs of every instance of a model (Figs. 15-17)."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial

from optuna_robust._imports import import_optional
from optuna_robust._records import PHASES
from optuna_robust._records import records
from optuna_robust.visualization._utils import WINNER_COLOR
from optuna_robust.visualization._utils import PhaseArg
from optuna_robust.visualization._utils import check_phase
from optuna_robust.visualization._utils import log_scale
from optuna_robust.visualization._utils import new_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def plot_loss_curves(
    trial_or_records: FrozenTrial
    | Sequence[Mapping[str, Any]]
    | Sequence[FrozenTrial]
    | Mapping[str, FrozenTrial | Sequence[Mapping[str, Any]]],
    *,
    phase: PhaseArg = "all",
    band: tuple[float, float] = (0.1, 0.9),
    log: bool = True,
    show_instances: bool = True,
) -> Figure:
    """Test loss over epochs of every instance of a model, with their spread (Figs. 15–17).

    Uses the ``"curve"`` extra of each instance record (a list of per-epoch test losses that
    ``train_fn`` returned with the loss). Thin lines are instances, ending with a dot where
    early stopping ended them; the bold line is the median over instances and the band holds
    the middle ``band`` share of them. An instance that stopped keeps its last loss in the
    median and band (that is the loss it reports).

    Example:

        .. code-block:: python

            from optuna_robust.visualization import plot_loss_curves

            records = []
            for k in range(8):
                curve = [1.0 / (epoch + 1) + 0.1 + k / 100 for epoch in range(30 + 2 * k)]
                records.append({"loss": curve[-1], "curve": curve})
            fig = plot_loss_curves({"Model 2": records})
            fig.savefig("curves.png")

    Args:
        trial_or_records:
            One model: a trial, or its instance records (dicts with ``"curve"``). Several
            models side by side: a list of trials, or a mapping from label to a trial or
            records; one panel each, sharing the loss axis.
        phase:
            For trials: which instances, ``"selection"``, ``"final"`` or ``"all"``.
        band:
            Lower and upper quantiles of the shaded band.
        log:
            Use a logarithmic loss axis (losses fall by decades in the first epochs).
        show_instances:
            Draw each instance's curve as a thin line.

    Returns:
        The figure; one axes per model.

    Raises:
        ValueError: An argument is out of range, or a model has no instance with a curve.
    """
    check_phase(phase)
    if (
        not isinstance(band, tuple)
        or len(band) != 2
        or not all(isinstance(q, float | int) for q in band)
        or not 0.0 <= band[0] < band[1] <= 1.0
    ):
        raise ValueError(
            f"band must be a pair of quantiles 0 <= low < high <= 1 but got {band!r}."
        )
    models = _curve_models(trial_or_records, phase)
    fig = new_figure(5.2 * len(models) + 0.6, 4.2)
    axes = fig.subplots(1, len(models), sharey=True, squeeze=False)[0]
    for ax, (label, curves) in zip(axes, models):
        draw_curves(ax, curves, band=band, show_instances=show_instances)
        ax.set_title(f"{label}: {len(curves)} instances", fontsize="medium")
    if log:
        for ax in axes:
            log_scale(ax, "y")
    axes[0].set_ylabel("test loss")
    axes[0].legend(fontsize="small", loc="upper right")
    return fig


def draw_curves(
    ax: Axes, curves: list[np.ndarray], *, band: tuple[float, float], show_instances: bool
) -> None:
    """Each instance's test loss per epoch, their median and the ``band`` quantiles."""
    length = max(len(c) for c in curves)
    epochs = np.arange(1, length + 1)
    # A stopped instance keeps its last loss: that is the loss it reports.
    grid = np.array([np.pad(c, (0, length - len(c)), mode="edge") for c in curves])
    grid = np.where(np.isfinite(grid), grid, np.inf)
    if show_instances:
        for curve in curves:
            finite = np.isfinite(curve)
            ax.plot(
                np.arange(1, len(curve) + 1)[finite],
                curve[finite],
                color="0.6",
                lw=0.6,
                alpha=0.5,
            )
        ends = [(len(c), c[-1]) for c in curves if np.isfinite(c[-1])]
        if ends:
            stop_epochs, stop_losses = zip(*ends)
            ax.scatter(
                stop_epochs, stop_losses, s=9, color="0.35", zorder=3, label="instance stops"
            )
    with np.errstate(invalid="ignore"):  # inf - inf between diverged instances: NaN, hidden
        low, median, high = np.quantile(grid, [band[0], 0.5, band[1]], axis=0)
    shown = np.isfinite(low) & np.isfinite(high)
    ax.fill_between(
        epochs[shown],
        low[shown],
        high[shown],
        color=WINNER_COLOR,
        alpha=0.25,
        lw=0,
        label=f"{band[0]:.0%}–{band[1]:.0%} of instances",
    )
    finite = np.isfinite(median)
    ax.plot(epochs[finite], median[finite], color=WINNER_COLOR, lw=2.0, label="median")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(import_optional("matplotlib.ticker").MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def trial_curves(trial: FrozenTrial, phase: PhaseArg) -> list[np.ndarray]:
    """The ``"curve"`` series of a trial's instances in ``phase``, skipping those without."""
    return _curves_from(_phase_records(trial, phase))


def _phase_records(trial: FrozenTrial, phase: PhaseArg) -> list[Any]:
    phases = PHASES if phase == "all" else (phase,)
    return [r for p in phases for r in records(trial, p, extras=True)]


def _curves_from(model_records: Sequence[object]) -> list[np.ndarray]:
    curves = []
    for record in model_records:
        curve = record.get("curve") if isinstance(record, Mapping) else None
        if curve is not None and len(curve) > 0:
            curves.append(np.array([float(v) for v in curve], dtype=float))
    return curves


def _curves_of(label: str, source: object, phase: PhaseArg) -> list[np.ndarray]:
    if isinstance(source, FrozenTrial):
        model_records: list[Any] = _phase_records(source, phase)
    elif isinstance(source, Sequence) and not isinstance(source, str):
        model_records = list(source)
    else:
        raise ValueError(
            f"Model {label!r} must be a trial or a list of instance records but got "
            f"{type(source).__name__}."
        )
    for record in model_records:
        if not isinstance(record, Mapping):
            raise ValueError(f"Instance records of {label!r} must be mappings but got {record!r}.")
    curves = _curves_from(model_records)
    if not curves:
        raise ValueError(
            f"No instance of {label!r} has a 'curve' extra; return "
            "{'loss': ..., 'curve': [test loss per epoch]} from train_fn to plot loss curves."
        )
    return curves


def _curve_models(source: object, phase: PhaseArg) -> list[tuple[str, list[np.ndarray]]]:
    if isinstance(source, FrozenTrial):
        return [(f"trial #{source.number}", _curves_of("trial", source, phase))]
    if isinstance(source, Mapping):
        if not source:
            raise ValueError("trial_or_records is an empty mapping; give at least one model.")
        return [(str(k), _curves_of(str(k), v, phase)) for k, v in source.items()]
    if isinstance(source, Sequence) and not isinstance(source, str) and len(source) > 0:
        if all(isinstance(t, FrozenTrial) for t in source):
            return [(f"trial #{t.number}", _curves_of(f"#{t.number}", t, phase)) for t in source]
        return [("model", _curves_of("model", source, phase))]
    raise ValueError(
        "trial_or_records must be a trial, instance records, a list of trials or a mapping "
        f"label -> trial, but got {source!r}."
    )
