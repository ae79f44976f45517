"""plot_selection_funnel: models left and instances trained per round, and the budget saved."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from optuna_robust._select import SelectionResult
from optuna_robust.visualization._utils import OTHER_COLOR
from optuna_robust.visualization._utils import TPE_COLOR
from optuna_robust.visualization._utils import WINNER_COLOR
from optuna_robust.visualization._utils import check_positive_int
from optuna_robust.visualization._utils import log_scale
from optuna_robust.visualization._utils import new_figure
from optuna_robust.visualization._utils import thousands

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_ROUNDS_COLUMNS = ("round", "instances_per_model", "models", "instances", "survivors")


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
            from optuna_robust.visualization import plot_selection_funnel

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
        check_positive_int("exhaustive", exhaustive)
    panels = 3 if exhaustive is not None else 2
    ratios = [3.0, 3.0, 1.6][:panels]
    fig = new_figure(4.0 * panels, 4.2)
    axes = fig.subplots(1, panels, gridspec_kw={"width_ratios": ratios})
    x = rounds["round"].to_numpy()
    ticks = [f"{r}\n({k})" for r, k in zip(x, rounds["instances_per_model"])]

    ax = axes[0]
    ax.bar(x, rounds["models"], width=0.8, color=OTHER_COLOR, label="models in the round")
    ax.bar(x, rounds["survivors"], width=0.5, color=WINNER_COLOR, label="survivors")
    ax.set_yscale("log")
    ax.set_ylim(0.7, float(rounds["models"].max()) * 2.0)
    log_scale(ax, "y")
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
    ax.yaxis.set_major_formatter(thousands())
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
        ax.yaxis.set_major_formatter(thousands())
        ax.set_ylabel("instances trained")
        ax.set_title("Budget", fontsize="medium")
        ax.grid(axis="y", alpha=0.3)
    return fig
