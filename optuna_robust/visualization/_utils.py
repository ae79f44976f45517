"""Input coercion, argument checks and drawing helpers shared by the figures of this package.

matplotlib is imported lazily here, with the command that installs it when it is missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
import math
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from optuna_robust._imports import import_optional
from optuna_robust._pruner import RobustPruner
from optuna_robust._records import instance_losses
from optuna_robust._records import records

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PhaseArg = Literal["selection", "final", "all"]
LossesLike = Sequence[float] | np.ndarray | FrozenTrial

WINNER_COLOR = "tab:blue"
OTHER_COLOR = "0.75"
TPE_COLOR = "tab:orange"
BASELINE_COLOR = "tab:red"
# Losses whose largest / smallest exceeds this get a log axis when the caller leaves it open:
# one diverging model at 0.8 beside winners at 0.02 would otherwise flatten the winners' boxes.
LOG_RATIO = 20.0
# A study user attr that workflows (such as optuna_robust.calo) set to the baseline model's loss.
BASELINE_ATTR = "baseline_loss"
NO_SPREAD = "–"  # the spread of a single instance is unknown, not zero


def wide_range(values: Iterable[float]) -> bool:
    """Whether positive finite ``values`` span more than :data:`LOG_RATIO` (a log axis helps).

    Non-finite values are ignored; any value at or below zero rules a log axis out.
    """
    array = np.asarray(list(values), dtype=float)
    finite = array[np.isfinite(array)]
    if finite.size < 2 or finite.min() <= 0:
        return False
    return bool(finite.max() / finite.min() > LOG_RATIO)


def resolve_log(log: bool | None, values: Iterable[float], baseline: float | None) -> bool:
    """``log`` as given, or for ``None`` whether the losses (and baseline) span decades."""
    if log is not None:
        if not isinstance(log, bool):
            raise ValueError(f"log must be True, False or None but got {log!r}.")
        return log
    shown = list(values) + ([] if baseline is None else [baseline])
    return wide_range(shown)


def spread(losses: np.ndarray) -> float | None:
    """The sample std of the finite losses, or ``None`` for fewer than two of them."""
    finite = losses[np.isfinite(losses)]
    return float(np.std(finite, ddof=1)) if finite.size > 1 else None


def mean_loss(losses: np.ndarray) -> float:
    """The mean loss, ``inf`` as soon as one instance diverged (the robustness convention)."""
    return float(np.mean(losses)) if np.isfinite(losses).all() else math.inf


def format_value(value: Any) -> str:
    """A param value as a short text: ``0.001``, not ``0.0010000``."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def format_number(value: float | None) -> str:
    """A loss or statistic with 4 significant digits; ``inf`` as ∞, ``None`` or NaN as –.

    NaN means "no value" here: the statistics of diverged instances are ``inf``, never NaN.
    """
    if value is None or math.isnan(value):
        return NO_SPREAD
    return "∞" if not math.isfinite(value) else f"{value:.4g}"


def varying_params(params: Sequence[Mapping[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """The param names whose values differ between models, and the ones they all share.

    Args:
        params:
            The params of each model (``[trial.params for trial in trials]``).

    Returns:
        ``(varying, shared)``: sorted names of the params that vary (or that some model
        lacks), and ``{name: value}`` of those every model holds with one value.
    """
    names = sorted({name for p in params for name in p})
    varying, shared = [], {}
    for name in names:
        values = {repr(p.get(name)) for p in params}
        if len(values) > 1 or not all(name in p for p in params):
            varying.append(name)
        else:
            shared[name] = params[0][name]
    return varying, shared


def study_baseline(study: optuna.Study) -> float | None:
    """A study's baseline loss: its ``baseline_loss`` user attr, else its RobustPruner's."""
    value = study.user_attrs.get(BASELINE_ATTR)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return study.pruner.baseline if isinstance(study.pruner, RobustPruner) else None


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure with constrained layout (labels never overlap the axes)."""
    figure = import_optional("matplotlib.figure")
    fig: Figure = figure.Figure(figsize=(width, height), layout="constrained")
    return fig


def patch(color: str, label: str) -> Any:
    """A legend patch of ``color``."""
    patches = import_optional("matplotlib.patches")
    return patches.Patch(facecolor=color, edgecolor="0.2", label=label)


def thousands() -> Any:
    """Tick labels as plain numbers with thousands separators (1,000 rather than 10^3)."""
    ticker = import_optional("matplotlib.ticker")
    return ticker.FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}")


def log_scale(ax: Axes, which: Literal["x", "y"]) -> None:
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


def baseline_line(ax: Axes, baseline: float | None) -> Any:
    """Draw ``baseline`` as a dashed horizontal line labelled with its value; ``None``: none."""
    if baseline is None:
        return None
    line = ax.axhline(baseline, color=BASELINE_COLOR, ls="--", lw=1.2)
    line.set_label(f"baseline {baseline:.4g}")
    return line


def boxes(
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


def points(ax: Axes, groups: Sequence[np.ndarray], positions: np.ndarray) -> None:
    """Every finite loss of each group as a point, with a fixed jitter (same data, same image)."""
    rng = np.random.default_rng(0)
    for position, losses in zip(positions, groups):
        finite = losses[np.isfinite(losses)]
        jitter = rng.uniform(-0.12, 0.12, size=finite.size)
        ax.scatter(position + jitter, finite, s=8, color="0.2", alpha=0.6, zorder=3, lw=0)


def as_trials(trials_or_study: optuna.Study | Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The trials of a study, or a checked list of the given trials."""
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


def progress_key(losses: np.ndarray) -> tuple[int, float]:
    """Sort key of a model: most instances first, then the lower mean loss."""
    return (-losses.size, mean_loss(losses))


def check_phase(phase: str) -> None:
    if phase not in ("selection", "final", "all"):
        raise ValueError(f"phase must be 'selection', 'final' or 'all' but got {phase!r}.")


def check_baseline(baseline: float | None, log: bool | None) -> None:
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


def check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer but got {value!r}.")


def losses_of(label: str, losses: LossesLike) -> np.ndarray:
    """Instance losses from numbers, or a trial's final instances (all when it has none)."""
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


def label_mapping(
    labels: Sequence[str] | Mapping[int, str] | None, trials: list[FrozenTrial]
) -> dict[int, str]:
    """Trial number -> label, from one label per trial or a mapping."""
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
