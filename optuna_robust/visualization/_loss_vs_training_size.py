"""plot_loss_vs_training_size: boxes of test losses per training sample size (Figs. 4-10)."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from optuna_robust.visualization._utils import WINNER_COLOR
from optuna_robust.visualization._utils import baseline_line
from optuna_robust.visualization._utils import boxes
from optuna_robust.visualization._utils import check_baseline
from optuna_robust.visualization._utils import log_scale
from optuna_robust.visualization._utils import new_figure
from optuna_robust.visualization._utils import patch
from optuna_robust.visualization._utils import resolve_log
from optuna_robust.visualization._utils import thousands

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_loss_vs_training_size(
    data: Mapping[int, Sequence[float] | np.ndarray] | pd.DataFrame,
    *,
    log_x: bool | None = None,
    log_y: bool | None = None,
    baseline: float | None = None,
) -> Figure:
    """Boxplots of test losses against the training sample size, as in Figs. 4–10.

    Example:

        .. code-block:: python

            import numpy as np
            import pandas as pd
            from optuna_robust.visualization import plot_loss_vs_training_size

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
            Logarithmic loss axis. ``None``: when the losses span more than a factor of 20.
        baseline:
            A reference loss drawn as a horizontal dashed line, or ``None``.

    Returns:
        The figure; one axes.

    Raises:
        ValueError: The data is empty, a size is not a positive integer, or a column is
            missing.
    """
    check_baseline(baseline, log_y)
    groups = _size_groups(data)
    sizes = sorted({size for model in groups.values() for size in model})
    if log_x is None:
        log_x = sizes[-1] / sizes[0] >= 10
    fig = new_figure(8.0, 4.5)
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
        boxes(ax, [by_size[s] for s in model_sizes], positions, widths, [color] * len(positions))
        if n_models > 1:
            handles.append(patch(color, str(model)))
    if log_x:
        low, high = np.log10(sizes[0]) - 1.5 * step * n_models, np.log10(sizes[-1])
        ax.set_xscale("log")
        ax.set_xlim(10.0**low, 10.0 ** (high + 1.5 * step * n_models))
        log_scale(ax, "x")
    else:
        pad = step * n_models
        ax.set_xlim(sizes[0] - pad, sizes[-1] + pad)
        if len(sizes) <= 12:
            ax.set_xticks(sizes)
        ax.xaxis.set_major_formatter(thousands())
        ax.tick_params(axis="x", labelrotation=0)
    line = baseline_line(ax, baseline)
    if line is not None:
        handles.append(line)
    all_losses = [v for by_size in groups.values() for losses in by_size.values() for v in losses]
    if resolve_log(log_y, all_losses, baseline):
        log_scale(ax, "y")
    if handles:
        ax.legend(handles=handles, fontsize="small", loc="upper right")
    ax.set_xlabel("training examples")
    ax.set_ylabel("test loss")
    ax.set_title("Test loss of instances against the training sample size", fontsize="medium")
    ax.grid(alpha=0.3)
    return fig


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
