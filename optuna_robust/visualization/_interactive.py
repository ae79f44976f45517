"""The interactive plotly figures of a selection for optuna-dashboard's study page.

Pure functions of the trials: saving them to the study is the caller's part. plotly is
imported lazily, with the command that installs it when it is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
import math
from typing import Any

from optuna.trial import FrozenTrial

from optuna_robust._imports import import_optional
from optuna_robust._records import PHASES
from optuna_robust._records import WINNER_KEY
from optuna_robust._records import records
from optuna_robust.visualization._note import INSTANCE_GRAPH_TITLE
from optuna_robust.visualization._note import STATISTIC_GRAPH_TITLE
from optuna_robust.visualization._utils import format_value
from optuna_robust.visualization._utils import wide_range

_BLUE = "rgb(31,119,180)"
_GREY = "rgb(110,110,110)"
_RED = "rgb(214,39,40)"


def instance_losses_figure(trials: Sequence[FrozenTrial], baseline: float | None) -> Any:
    """A box per model with every instance as a point; hover shows the model's params."""
    go = import_optional("plotly.graph_objects")
    figure = go.Figure()
    shown: list[float] = []
    for trial in trials:
        winner = WINNER_KEY in trial.system_attrs
        losses, custom = [], []
        for phase in PHASES:
            for index, record in enumerate(records(trial, phase)):
                loss = float(record["loss"])
                if math.isfinite(loss):
                    losses.append(loss)
                    custom.append([phase, index])
        shown += losses
        figure.add_trace(
            go.Box(
                y=losses,
                name=f"#{trial.number}",
                customdata=custom,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker={"size": 4},
                line={"width": 1},
                fillcolor="rgba(31,119,180,0.35)" if winner else "rgba(160,160,160,0.35)",
                marker_color=_BLUE if winner else _GREY,
                hoveron="points",
                hovertemplate=(
                    f"<b>trial {trial.number}</b> ({trial.state.name}"
                    f"{', winner' if winner else ''})<br>{_hover_params(trial)}<br>"
                    "%{customdata[0]} instance %{customdata[1]}<br>"
                    "test loss %{y:.5g}<extra></extra>"
                ),
            )
        )
    _layout(figure, INSTANCE_GRAPH_TITLE, "model (trial)", shown, baseline)
    return figure


def statistic_figure(trials: Sequence[FrozenTrial], baseline: float | None) -> Any:
    """Each model's statistic after 1, 2, 4, ... instances: the halving, instance by instance.

    What optuna-dashboard's intermediate-values plot shows, on an axis named "instances" and
    with a log loss axis when the values span decades.
    """
    go = import_optional("plotly.graph_objects")
    figure = go.Figure()
    shown: list[float] = []
    steps: set[int] = set()
    for trial in trials:
        values = sorted(trial.intermediate_values.items())
        finite = [(step, value) for step, value in values if math.isfinite(value)]
        if not finite:
            continue
        winner = WINNER_KEY in trial.system_attrs
        shown += [value for _, value in finite]
        steps |= {step for step, _ in finite}
        figure.add_trace(
            go.Scatter(
                x=[step for step, _ in finite],
                y=[value for _, value in finite],
                mode="lines+markers",
                name=f"#{trial.number}",
                line={"color": _BLUE if winner else _GREY, "width": 2 if winner else 1},
                marker={"size": 5},
                hovertemplate=(
                    f"<b>trial {trial.number}</b><br>{_hover_params(trial)}<br>"
                    "%{x} instances: %{y:.5g}<extra></extra>"
                ),
            )
        )
    _layout(figure, STATISTIC_GRAPH_TITLE, "instances", shown, baseline)
    ticks = sorted(steps)
    figure.update_xaxes(type="log", tickvals=ticks, ticktext=[str(t) for t in ticks])
    figure.update_yaxes(title_text="statistic over the instances so far")
    return figure


def _hover_params(trial: FrozenTrial) -> str:
    return "<br>".join(f"{k}={format_value(v)}" for k, v in trial.params.items())


def _layout(
    figure: Any, title: str, x_title: str, shown: list[float], baseline: float | None
) -> None:
    log = wide_range(shown + ([] if baseline is None else [baseline]))
    if baseline is not None:
        figure.add_hline(y=baseline, line={"color": _RED, "dash": "dash", "width": 1.5})
        # Plotly places annotations on a log axis by log10 of the value (add_hline's own
        # annotation lands at 10**baseline, the top of the plot).
        figure.add_annotation(
            text=f"baseline {baseline:.4g}",
            x=0,
            xref="paper",
            xanchor="left",
            y=math.log10(baseline) if log else baseline,
            yanchor="bottom",
            showarrow=False,
            font={"color": _RED},
        )
    figure.update_layout(
        title={"text": f"{title} (hover for params)"},
        xaxis_title=x_title,
        yaxis_title="test loss",
        yaxis_type="log" if log else "linear",
        showlegend=False,
        template="plotly_white",
        height=450,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
    )
