"""Figures of a robust selection with matplotlib: the paper's boxplots, funnel and loss curves.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global
state, no backend needed); save it with ``fig.savefig("losses.png")``.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
import math
import textwrap
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

import numpy as np
import optuna
from optuna.trial import FrozenTrial
import pandas as pd

from optuna_robust._imports import import_optional
from optuna_robust._records import PHASES
from optuna_robust._records import WINNER_KEY
from optuna_robust._records import instance_losses
from optuna_robust._records import records
from optuna_robust._select import SelectionResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "plot_instance_losses",
    "plot_loss_curves",
    "plot_loss_vs_training_size",
    "plot_robust_vs_tpe",
    "plot_selection_funnel",
]

PhaseArg = Literal["selection", "final", "all"]
LossesLike = Sequence[float] | np.ndarray | FrozenTrial

WINNER_COLOR = "tab:blue"
OTHER_COLOR = "0.75"
TPE_COLOR = "tab:orange"
BASELINE_COLOR = "tab:red"
_ROUNDS_COLUMNS = ("round", "instances_per_model", "models", "instances", "survivors")


def plot_instance_losses(
    trials_or_study: optuna.Study | Iterable[FrozenTrial],
    *,
    phase: PhaseArg = "selection",
    baseline: float | None = None,
    labels: Sequence[str] | Mapping[int, str] | None = None,
    log: bool = False,
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
            from optuna_robust.plots import plot_instance_losses

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
            Use a logarithmic loss axis.
        max_models:
            Show at most this many models. A study's models are ordered by how far they got
            (most instances first), then by mean loss; the same order picks the models kept
            from a longer list of trials (a shorter list keeps its order).

    Returns:
        The figure; one axes.

    Raises:
        ValueError: An argument is out of range, or no trial has instances in ``phase``.
    """
    _check_phase(phase)
    _check_baseline(baseline, log)
    _check_positive_int("max_models", max_models)
    given = _as_trials(trials_or_study)
    label_of = _label_mapping(labels, given)
    losses = {t.number: instance_losses(t, phase=phase) for t in given}
    trials = [t for t in given if losses[t.number].size > 0]
    if not trials:
        raise ValueError(
            f"None of the {len(given)} trials has {phase!r} instances; evaluate them with "
            "optuna_robust.select or evaluate_instances, or pick another phase."
        )
    total = len(trials)
    if isinstance(trials_or_study, optuna.Study) or total > max_models:
        trials = sorted(trials, key=lambda t: _progress_key(losses[t.number]))[:max_models]
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
    fig = _new_figure(min(width, 16.0), 5.0 if many else 4.5)
    ax = fig.add_subplot()
    winner = [WINNER_KEY in t.system_attrs for t in trials]
    colors = [WINNER_COLOR if w else OTHER_COLOR for w in winner]
    positions = np.arange(1, len(trials) + 1, dtype=float)
    _boxes(ax, [losses[t.number] for t in trials], positions, 0.6, colors)
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
        handles += [
            _patch(WINNER_COLOR, "winner"),
            _patch(OTHER_COLOR, "other model"),
        ]
    if baseline is not None:
        handles.append(ax.axhline(baseline, color=BASELINE_COLOR, ls="--", lw=1.2))
        handles[-1].set_label(f"baseline {baseline:.4g}")
    if handles:
        ax.legend(handles=handles, loc="upper left", fontsize="small", framealpha=0.9)
    if log:
        _log_scale(ax, "y")
    shown = f"best {len(trials)} of {total} models" if len(trials) < total else f"{total} models"
    ax.set_title(f"Test loss of each instance: {shown}, {phase} instances", fontsize="medium")
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_selection_funnel(
    result_or_rounds_df: SelectionResult | pd.DataFrame,
    *,
    exhaustive: int | None = None,
) -> Figure:
    """The selection round by round: models left, instances trained, and the budget saved.

    Left: models entering each round and the survivors of its decision (log scale: halving is
    a straight line). Middle: instances trained in each round (and the winners' final
    instances). Right: all instances trained against the exhaustive search with the same
    robustness guarantee (every candidate × the final instances), as in the paper's count of
    41,567 trainings instead of 345,600.

    Example:

        .. code-block:: python

            import pandas as pd
            from optuna_robust.plots import plot_selection_funnel

            rounds = pd.DataFrame({
                "round": [0, 1, 2], "instances_per_model": [1, 2, 4],
                "models": [16, 8, 4], "instances": [16, 8, 8],
                "cumulative": [16, 24, 32], "survivors": [8, 4, 2],
            })
            fig = plot_selection_funnel(rounds, exhaustive=16 * 50)
            fig.savefig("funnel.png")

    Args:
        result_or_rounds_df:
            The :class:`~optuna_robust.SelectionResult` of :func:`~optuna_robust.select`, or its
            ``rounds`` DataFrame.
        exhaustive:
            Instances of the exhaustive search. ``None`` takes it from the result's budget;
            with a bare DataFrame and ``None`` the budget panel is left out.

    Returns:
        The figure; two or three axes.

    Raises:
        ValueError: The DataFrame lacks a column of the rounds table or has no rows, or
            ``exhaustive`` is not a positive integer.
    """
    final = 0
    if isinstance(result_or_rounds_df, SelectionResult):
        rounds = result_or_rounds_df.rounds
        final = result_or_rounds_df.budget.final_instances
        if exhaustive is None and result_or_rounds_df.budget.exhaustive > 0:
            exhaustive = result_or_rounds_df.budget.exhaustive
    elif isinstance(result_or_rounds_df, pd.DataFrame):
        rounds = result_or_rounds_df
    else:
        raise ValueError(
            "result_or_rounds_df must be a SelectionResult or its rounds DataFrame but got "
            f"{type(result_or_rounds_df).__name__}."
        )
    missing = [c for c in _ROUNDS_COLUMNS if c not in rounds.columns]
    if missing:
        raise ValueError(
            f"The rounds DataFrame lacks columns {missing}; pass SelectionResult.rounds "
            f"(columns {list(_ROUNDS_COLUMNS)})."
        )
    if rounds.empty:
        raise ValueError("The rounds DataFrame has no rows: the selection trained nothing.")
    if exhaustive is not None:
        _check_positive_int("exhaustive", exhaustive)
    panels = 3 if exhaustive is not None else 2
    ratios = [3.0, 3.0, 1.6][:panels]
    fig = _new_figure(4.0 * panels, 4.2)
    axes = fig.subplots(1, panels, gridspec_kw={"width_ratios": ratios})
    x = rounds["round"].to_numpy()
    ticks = [f"{r}\n({k})" for r, k in zip(x, rounds["instances_per_model"])]

    ax = axes[0]
    ax.bar(x, rounds["models"], width=0.8, color=OTHER_COLOR, label="models in the round")
    ax.bar(x, rounds["survivors"], width=0.5, color=WINNER_COLOR, label="survivors")
    ax.set_yscale("log")
    ax.set_ylim(0.7, float(rounds["models"].max()) * 2.0)
    _log_scale(ax, "y")
    ax.set_xticks(x, ticks)
    ax.set_xlabel("round (instances per model)")
    ax.set_ylabel("models")
    ax.set_title("Models left after each round", fontsize="medium")
    ax.legend(fontsize="small", loc="upper right")
    ax.grid(axis="y", alpha=0.3)

    ax = axes[1]
    bars = ax.bar(x, rounds["instances"], width=0.7, color=WINNER_COLOR, label="selection")
    ax.bar_label(bars, fmt="{:,.0f}", fontsize="x-small", padding=1)
    tick_positions, tick_labels = list(x), list(ticks)
    tallest = float(rounds["instances"].max())
    if final:
        bars = ax.bar([x[-1] + 1], [final], width=0.7, color=TPE_COLOR, label="final (winners)")
        ax.bar_label(bars, fmt="{:,.0f}", fontsize="x-small", padding=1)
        tick_positions.append(x[-1] + 1)
        tick_labels.append("final")
        tallest = max(tallest, final)
    ax.set_xticks(tick_positions, tick_labels)
    ax.set_ylim(0, tallest * 1.3)  # room for the legend above the bars
    ax.yaxis.set_major_formatter(_thousands())
    ax.set_xlabel("round (instances per model)")
    ax.set_ylabel("instances trained")
    ax.set_title("Instances trained per round", fontsize="medium")
    if final:
        ax.legend(fontsize="small", loc="upper center", ncols=2)
    ax.grid(axis="y", alpha=0.3)

    if exhaustive is not None:
        ax = axes[2]
        selection = int(rounds["instances"].sum())
        spent = selection + final
        ax.bar([0], [selection], width=0.6, color=WINNER_COLOR)
        if final:
            ax.bar([0], [final], bottom=[selection], width=0.6, color=TPE_COLOR)
        ax.bar([1], [exhaustive], width=0.6, color=OTHER_COLOR)
        ax.text(0, spent, f"{spent:,}\n({spent / exhaustive:.1%})", ha="center", va="bottom")
        ax.text(1, exhaustive, f"{exhaustive:,}", ha="center", va="bottom")
        ax.set_xticks([0, 1], ["robust\nselection", "exhaustive"])
        ax.set_xlim(-0.6, 1.6)
        ax.set_ylim(0, exhaustive * 1.22)
        ax.yaxis.set_major_formatter(_thousands())
        ax.set_ylabel("instances trained")
        ax.set_title("Budget", fontsize="medium")
        ax.grid(axis="y", alpha=0.3)
    return fig


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

            from optuna_robust.plots import plot_loss_curves

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
    _check_phase(phase)
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
    fig = _new_figure(5.2 * len(models) + 0.6, 4.2)
    axes = fig.subplots(1, len(models), sharey=True, squeeze=False)[0]
    for ax, (label, curves) in zip(axes, models):
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
                ax.scatter(*zip(*ends), s=9, color="0.35", zorder=3, label="instance stops")
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
        ax.set_title(f"{label}: {len(curves)} instances", fontsize="medium")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if log:
        for ax in axes:
            _log_scale(ax, "y")
    axes[0].set_ylabel("test loss")
    axes[0].legend(fontsize="small", loc="upper right")
    return fig


def plot_loss_vs_training_size(
    data: Mapping[int, Sequence[float] | np.ndarray] | pd.DataFrame,
    *,
    log_x: bool | None = None,
    log_y: bool = False,
    baseline: float | None = None,
) -> Figure:
    """Boxplots of test losses against the training sample size, as in Figs. 4–10.

    Example:

        .. code-block:: python

            import numpy as np
            import pandas as pd
            from optuna_robust.plots import plot_loss_vs_training_size

            rng = np.random.default_rng(0)
            sizes = [100, 300, 1000, 3000, 10000]
            frame = pd.DataFrame(
                [{"n_train": n, "model": m, "loss": s / np.sqrt(n) * rng.lognormal(0, 0.3)}
                 for n in sizes for m, s in [("Model 1", 2.0), ("Model 2", 1.0)]
                 for _ in range(20)]
            )
            fig = plot_loss_vs_training_size(frame, log_y=True)
            fig.savefig("loss_vs_size.png")

    Args:
        data:
            A mapping from training sample size to the test losses of the instances trained on
            that many examples, or a DataFrame with columns ``n_train``, ``loss`` and
            optionally ``model`` (one box per model and size, side by side).
        log_x:
            Logarithmic size axis. ``None``: when the sizes span a factor of 10 or more (the
            paper's 100 to 32,000 examples).
        log_y:
            Logarithmic loss axis.
        baseline:
            A reference loss drawn as a horizontal dashed line, or ``None``.

    Returns:
        The figure; one axes.

    Raises:
        ValueError: The data is empty, a size is not a positive integer, or a column is
            missing.
    """
    _check_baseline(baseline, log_y)
    groups = _size_groups(data)
    sizes = sorted({size for model in groups.values() for size in model})
    if log_x is None:
        log_x = sizes[-1] / sizes[0] >= 10
    fig = _new_figure(8.0, 4.5)
    ax = fig.add_subplot()
    n_models = len(groups)
    if log_x:
        # Boxes a fixed share of the narrowest gap between sizes, in log space.
        gaps = np.diff(np.log10(sizes)) if len(sizes) > 1 else np.array([0.5])
        step = min(float(gaps.min()), 0.5) * 0.8 / n_models
    else:
        gaps = np.diff(sizes) if len(sizes) > 1 else np.array([max(sizes[0], 1)])
        step = float(gaps.min()) * 0.8 / n_models
    handles = []
    for k, (model, by_size) in enumerate(groups.items()):
        color = f"C{k % 10}" if n_models > 1 else WINNER_COLOR
        offset = (k - (n_models - 1) / 2) * step
        model_sizes = sorted(by_size)
        if log_x:
            centers = np.log10(model_sizes) + offset
            positions = 10.0**centers
            widths = 10.0 ** (centers + step * 0.42) - 10.0 ** (centers - step * 0.42)
        else:
            positions = np.asarray(model_sizes, dtype=float) + offset
            widths = np.full(len(model_sizes), step * 0.84)
        _boxes(ax, [by_size[s] for s in model_sizes], positions, widths, [color] * len(positions))
        if n_models > 1:
            handles.append(_patch(color, str(model)))
    if log_x:
        low, high = np.log10(sizes[0]) - 1.5 * step * n_models, np.log10(sizes[-1])
        ax.set_xscale("log")
        ax.set_xlim(10.0**low, 10.0 ** (high + 1.5 * step * n_models))
        _log_scale(ax, "x")
    else:
        pad = step * n_models
        ax.set_xlim(sizes[0] - pad, sizes[-1] + pad)
        if len(sizes) <= 12:
            ax.set_xticks(sizes)
        ax.xaxis.set_major_formatter(_thousands())
        ax.tick_params(axis="x", labelrotation=0)
    if baseline is not None:
        line = ax.axhline(baseline, color=BASELINE_COLOR, ls="--", lw=1.2)
        line.set_label(f"baseline {baseline:.4g}")
        handles.append(line)
    if log_y:
        _log_scale(ax, "y")
    if handles:
        ax.legend(handles=handles, fontsize="small", loc="upper right")
    ax.set_xlabel("training examples")
    ax.set_ylabel("test loss")
    ax.set_title("Test loss of instances against the training sample size", fontsize="medium")
    ax.grid(alpha=0.3)
    return fig


def plot_robust_vs_tpe(
    robust_losses: LossesLike,
    tpe_losses: Mapping[str, LossesLike],
    *,
    robust_label: str = "robust selection",
    log: bool = False,
    baseline: float | None = None,
) -> Figure:
    """The robust winner beside the winners of a TPE search, instance by instance (Fig. 18).

    Each box holds the test losses of fresh instances of one model (for trials: their final
    instances when they have some, else all), with every instance drawn as a point.

    Example:

        .. code-block:: python

            import numpy as np
            from optuna_robust.plots import plot_robust_vs_tpe

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
            Use a logarithmic loss axis.
        baseline:
            A reference loss drawn as a horizontal dashed line, or ``None``.

    Returns:
        The figure; one axes.

    Raises:
        ValueError: ``tpe_losses`` is empty, or a model has no losses.
    """
    _check_baseline(baseline, log)
    if not isinstance(tpe_losses, Mapping) or not tpe_losses:
        raise ValueError(
            f"tpe_losses must be a non-empty mapping label -> losses but got {tpe_losses!r}."
        )
    groups = {robust_label: _losses_of(robust_label, robust_losses)}
    for label, losses in tpe_losses.items():
        groups[str(label)] = _losses_of(str(label), losses)
    fig = _new_figure(max(4.5, 1.6 * len(groups) + 1.5), 4.5)
    ax = fig.add_subplot()
    positions = np.arange(1, len(groups) + 1, dtype=float)
    colors = [WINNER_COLOR] + [TPE_COLOR] * (len(groups) - 1)
    _boxes(ax, list(groups.values()), positions, 0.55, colors, fliers=False)
    rng = np.random.default_rng(0)  # fixed jitter: the same data gives the same figure
    for position, losses in zip(positions, groups.values()):
        finite = losses[np.isfinite(losses)]
        jitter = rng.uniform(-0.12, 0.12, size=finite.size)
        ax.scatter(position + jitter, finite, s=8, color="0.2", alpha=0.6, zorder=3, lw=0)
    ticks = []
    for label, losses in groups.items():
        finite = losses[np.isfinite(losses)]
        spread = float(np.std(finite, ddof=1)) if finite.size > 1 else 0.0
        ticks.append(f"{label}\nn={losses.size}, std {spread:.3g}")
    ax.set_xticks(positions, ticks)
    ax.set_xlim(0.4, len(groups) + 0.6)
    ax.set_ylabel("test loss")
    handles = [_patch(WINNER_COLOR, "robust selection"), _patch(TPE_COLOR, "TPE")]
    if baseline is not None:
        line = ax.axhline(baseline, color=BASELINE_COLOR, ls="--", lw=1.2)
        line.set_label(f"baseline {baseline:.4g}")
        handles.append(line)
    if log:
        _log_scale(ax, "y")
    ax.legend(handles=handles, fontsize="small", loc="upper left")
    ax.set_title("Test loss of fresh instances: robust selection vs TPE", fontsize="medium")
    ax.grid(axis="y", alpha=0.3)
    return fig


# --- helpers -------------------------------------------------------------------------------


def _plot_trial(trial: FrozenTrial, *, baseline: float | None = None) -> Figure:
    """One model's instance losses, a box per phase with every instance as a point."""
    groups = {p: instance_losses(trial, phase=p) for p in PHASES}
    groups = {p: losses for p, losses in groups.items() if losses.size}
    if not groups:
        raise ValueError(
            f"Trial {trial.number} has no instance records; evaluate it with "
            "optuna_robust.select or evaluate_instances first."
        )
    fig = _new_figure(2.2 + 1.7 * len(groups), 4.2)
    ax = fig.add_subplot()
    positions = np.arange(1, len(groups) + 1, dtype=float)
    colors = [WINNER_COLOR if p == "final" else OTHER_COLOR for p in groups]
    _boxes(ax, list(groups.values()), positions, 0.55, colors, fliers=False)
    rng = np.random.default_rng(0)  # fixed jitter: the same data gives the same figure
    for position, losses in zip(positions, groups.values()):
        finite = losses[np.isfinite(losses)]
        jitter = rng.uniform(-0.12, 0.12, size=finite.size)
        ax.scatter(position + jitter, finite, s=8, color="0.2", alpha=0.6, zorder=3, lw=0)
    ax.set_xticks(positions, [f"{p}\nn={losses.size}" for p, losses in groups.items()])
    ax.set_xlim(0.4, len(groups) + 0.6)
    ax.set_xlabel("instances")
    ax.set_ylabel("test loss")
    if baseline is not None:
        line = ax.axhline(baseline, color=BASELINE_COLOR, ls="--", lw=1.2)
        ax.legend([line], [f"baseline {baseline:.4g}"], fontsize="small", loc="upper left")
    params = ", ".join(f"{k}={_format_value(v)}" for k, v in trial.params.items())
    title = textwrap.fill(f"Trial #{trial.number} ({trial.state.name}): {params}", width=48)
    ax.set_title(title, fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return fig


def _new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure with constrained layout (labels never overlap the axes)."""
    figure = import_optional("matplotlib.figure")
    fig: Figure = figure.Figure(figsize=(width, height), layout="constrained")
    return fig


def _patch(color: str, label: str) -> Any:
    """A legend patch of ``color``."""
    patches = import_optional("matplotlib.patches")
    return patches.Patch(facecolor=color, edgecolor="0.2", label=label)


def _thousands() -> Any:
    """Tick labels as plain numbers with thousands separators (1,000 rather than 10^3)."""
    ticker = import_optional("matplotlib.ticker")
    return ticker.FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}")


def _log_scale(ax: Axes, which: Literal["x", "y"]) -> None:
    """A log axis labelled with plain numbers (0.02, not 2 x 10^-2), dense enough to read."""
    ticker = import_optional("matplotlib.ticker")
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    low, high = ax.get_xlim() if which == "x" else ax.get_ylim()
    decades = math.log10(high / low) if low > 0 and high > low else math.inf

    def plain(value: float, _: object) -> str:
        return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"

    def some(value: float, _: object) -> str:
        mantissa = round(value / 10 ** math.floor(math.log10(value)), 6) if value > 0 else 0
        return plain(value, _) if mantissa in (2.0, 5.0) else ""

    axis.set_major_formatter(ticker.FuncFormatter(plain))
    if decades < 1.0:
        axis.set_minor_formatter(ticker.FuncFormatter(plain))
    elif decades < 2.5:
        axis.set_minor_formatter(ticker.FuncFormatter(some))
    else:
        axis.set_minor_formatter(ticker.NullFormatter())


def _boxes(
    ax: Axes,
    groups: Sequence[np.ndarray],
    positions: np.ndarray,
    widths: float | np.ndarray,
    colors: Sequence[str],
    *,
    fliers: bool = True,
) -> None:
    """Draw one box per group (finite losses), counting diverged instances at the top."""
    widths_array = np.broadcast_to(np.asarray(widths, dtype=float), (len(groups),))
    finite = [np.asarray(g, dtype=float)[np.isfinite(g)] for g in groups]
    drawn = [k for k, values in enumerate(finite) if values.size > 0]
    if drawn:
        parts = ax.boxplot(
            [finite[k] for k in drawn],
            positions=positions[drawn],
            widths=widths_array[drawn],
            patch_artist=True,
            showfliers=fliers,
            manage_ticks=False,
            medianprops={"color": "black", "lw": 1.4},
            flierprops={"marker": ".", "markersize": 4, "alpha": 0.6},
        )
        for box, k in zip(parts["boxes"], drawn):
            box.set_facecolor(colors[k])
            box.set_edgecolor("0.2")
            box.set_gid("robust-box")
        for median in parts["medians"]:
            median.set_gid("robust-median")
    transform = ax.get_xaxis_transform()
    for k, group in enumerate(groups):
        diverged = int(np.sum(~np.isfinite(np.asarray(group, dtype=float))))
        if diverged:
            ax.text(
                positions[k],
                0.99,
                f"{diverged}×∞",
                transform=transform,
                ha="center",
                va="top",
                fontsize="x-small",
                color=BASELINE_COLOR,
                gid="robust-diverged",
            )


def _as_trials(trials_or_study: optuna.Study | Iterable[FrozenTrial]) -> list[FrozenTrial]:
    if isinstance(trials_or_study, optuna.Study):
        return trials_or_study.get_trials(deepcopy=False)
    if isinstance(trials_or_study, FrozenTrial) or not isinstance(trials_or_study, Iterable):
        raise ValueError(
            "trials_or_study must be a study or an iterable of trials but got "
            f"{type(trials_or_study).__name__}; wrap a single trial in a list."
        )
    trials = list(trials_or_study)
    for trial in trials:
        if not isinstance(trial, FrozenTrial):
            raise ValueError(f"Expected FrozenTrial items but got {type(trial).__name__}.")
    return trials


def _label_mapping(
    labels: Sequence[str] | Mapping[int, str] | None, trials: list[FrozenTrial]
) -> dict[int, str]:
    if labels is None:
        return {}
    if isinstance(labels, Mapping):
        return {int(k): str(v) for k, v in labels.items()}
    if isinstance(labels, str) or len(labels) != len(trials):
        raise ValueError(
            f"labels must have one entry per trial ({len(trials)}) or map trial numbers to "
            f"labels, but got {labels!r}."
        )
    return {t.number: str(label) for t, label in zip(trials, labels)}


def _progress_key(losses: np.ndarray) -> tuple[int, float]:
    finite = losses[np.isfinite(losses)]
    mean = float(np.mean(losses)) if finite.size == losses.size else math.inf
    return (-losses.size, mean)


def _abbreviation(name: str) -> str:
    parts = [p for p in name.split("_") if p]
    return "".join(p[0] for p in parts) if len(parts) > 1 else name


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _model_label_parts(trials: Sequence[FrozenTrial]) -> list[list[str]]:
    """``["#12", "w=64", "lr=0.001"]``: trial number and the params that differ between trials."""
    names = sorted({name for t in trials for name in t.params})
    varying = [n for n in names if len({repr(t.params.get(n)) for t in trials}) > 1]
    short = {n: _abbreviation(n) for n in varying}
    if len(set(short.values())) < len(short):
        short = {n: n for n in varying}  # abbreviations collide: keep the full names
    return [
        [f"#{t.number}"]
        + [f"{short[n]}={_format_value(t.params[n])}" for n in varying if n in t.params]
        for t in trials
    ]


def _check_phase(phase: str) -> None:
    if phase not in ("selection", "final", "all"):
        raise ValueError(f"phase must be 'selection', 'final' or 'all' but got {phase!r}.")


def _check_baseline(baseline: float | None, log: bool) -> None:
    if baseline is None:
        return
    if (
        isinstance(baseline, bool)
        or not isinstance(baseline, int | float)
        or not math.isfinite(baseline)
    ):
        raise ValueError(f"baseline must be a finite loss or None but got {baseline!r}.")
    if log and baseline <= 0:
        raise ValueError(f"baseline must be positive on a log loss axis but got {baseline!r}.")


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer but got {value!r}.")


def _losses_of(label: str, losses: LossesLike) -> np.ndarray:
    if isinstance(losses, FrozenTrial):
        phase: PhaseArg = "final" if records(losses, "final") else "all"
        array = instance_losses(losses, phase=phase)
    else:
        try:
            array = np.asarray(losses, dtype=float).ravel()
        except (TypeError, ValueError):
            raise ValueError(
                f"The losses of {label!r} must be numbers or a trial but got {losses!r}."
            ) from None
    if array.size == 0:
        raise ValueError(f"Model {label!r} has no instance losses to plot.")
    return array


def _curves_of(label: str, source: object, phase: PhaseArg) -> list[np.ndarray]:
    if isinstance(source, FrozenTrial):
        phases = PHASES if phase == "all" else (phase,)
        model_records: list[Any] = [r for p in phases for r in records(source, p, series=True)]
    elif isinstance(source, Sequence) and not isinstance(source, str):
        model_records = list(source)
    else:
        raise ValueError(
            f"Model {label!r} must be a trial or a list of instance records but got "
            f"{type(source).__name__}."
        )
    curves = []
    for record in model_records:
        if not isinstance(record, Mapping):
            raise ValueError(f"Instance records of {label!r} must be mappings but got {record!r}.")
        curve = record.get("curve")
        if curve is not None and len(curve) > 0:
            curves.append(np.array([float(v) for v in curve], dtype=float))
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


def _size_groups(
    data: Mapping[int, Sequence[float] | np.ndarray] | pd.DataFrame,
) -> dict[str, dict[int, np.ndarray]]:
    groups: dict[str, dict[int, np.ndarray]] = {}
    if isinstance(data, pd.DataFrame):
        missing = [c for c in ("n_train", "loss") if c not in data.columns]
        if missing:
            raise ValueError(
                f"The DataFrame lacks columns {missing}; it needs n_train, loss and "
                f"optionally model (got {list(data.columns)})."
            )
        model_column = data["model"] if "model" in data.columns else pd.Series("", data.index)
        for model, frame in data.groupby(model_column, sort=False):
            groups[str(model)] = {
                _size(n): frame.loc[frame["n_train"] == n, "loss"].to_numpy(dtype=float)
                for n in frame["n_train"].unique()
            }
    elif isinstance(data, Mapping):
        groups[""] = {_size(n): np.asarray(v, dtype=float).ravel() for n, v in data.items()}
    else:
        raise ValueError(
            "data must be a mapping n_train -> losses or a DataFrame with columns n_train and "
            f"loss but got {type(data).__name__}."
        )
    if not any(groups.values()):
        raise ValueError("data holds no losses; give at least one training size.")
    for model, by_size in groups.items():
        for size, losses in by_size.items():
            if losses.size == 0:
                raise ValueError(f"No losses for n_train={size} of model {model!r}.")
    return groups


def _size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer | float | np.floating):
        raise ValueError(f"A training size must be a positive integer but got {value!r}.")
    if not float(value).is_integer() or value < 1:
        raise ValueError(f"A training size must be a positive integer but got {value!r}.")
    return int(value)
