"""optuna_robust.visualization figures on a real small selection, checked by what they draw."""

from __future__ import annotations

import io
import math
from typing import Any

from matplotlib.collections import PathCollection
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch
import numpy as np
import optuna
import pandas as pd
import pytest

import optuna_robust
from optuna_robust import visualization
from tests.visualization._selection import FINAL_INSTANCES
from tests.visualization._selection import N_CANDIDATES
from tests.visualization._selection import run_selection


@pytest.fixture(scope="module")
def selection() -> tuple[optuna.Study, optuna_robust.SelectionResult]:
    return run_selection()


def boxes(fig: Figure, axes: int = 0) -> list[PathPatch]:
    ax = fig.axes[axes]
    return [p for p in ax.patches if isinstance(p, PathPatch) and p.get_gid() == "robust-box"]


def tick_texts(fig: Figure, axes: int = 0) -> list[str]:
    return [t.get_text() for t in fig.axes[axes].get_xticklabels()]


def test_plot_instance_losses_draws_one_box_per_model(
    selection: tuple[optuna.Study, optuna_robust.SelectionResult],
) -> None:
    study, result = selection
    fig = visualization.plot_instance_losses(study, phase="selection", baseline=0.03)
    ax = fig.axes[0]
    # One box per model, except the model whose only instance diverged: it gets "1×∞".
    assert len(ax.get_xticklabels()) == N_CANDIDATES
    assert len(boxes(fig)) == N_CANDIDATES - 1
    assert [t.get_text() for t in ax.texts if t.get_gid() == "robust-diverged"] == ["1×∞"]
    assert ax.get_ylabel() == "test loss"
    assert "model" in ax.get_xlabel()
    labels = tick_texts(fig)
    # Ordered by how far each model got: the winners (most instances) come first.
    winners = {f"#{t.number}" for t in result.winners}
    assert {label.split()[0] for label in labels[:2]} == winners
    assert all("lr=" in label and "w" in label for label in labels)  # learning_rate abbreviated
    assert all(label.endswith(")") and "(n=" in label for label in labels)
    for text in ax.get_xticklabels():
        assert text.get_rotation() == pytest.approx(40)
    blue = [
        b
        for b in boxes(fig)
        if b.get_facecolor()[:3] == pytest.approx((0.12, 0.47, 0.71), abs=0.01)
    ]
    assert len(blue) == 2
    baseline = [line for line in ax.get_lines() if line.get_label() == "baseline 0.03"]
    assert len(baseline) == 1 and baseline[0].get_ydata()[0] == pytest.approx(0.03)
    assert fig.canvas.manager is None  # built without pyplot


def test_plot_instance_losses_few_models_stack_params_and_log_axis(
    selection: tuple[optuna.Study, optuna_robust.SelectionResult],
) -> None:
    _, result = selection
    fig = visualization.plot_instance_losses(result.winners, phase="final", log=True)
    assert len(boxes(fig)) == 2
    assert fig.axes[0].get_yscale() == "log"
    labels = tick_texts(fig)
    assert labels[0].splitlines()[0] == f"#{result.winners[0].number}"
    assert labels[0].splitlines()[-1] == f"n={FINAL_INSTANCES}"
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_instance_losses_counts_diverged_instances(
    selection: tuple[optuna.Study, optuna_robust.SelectionResult],
) -> None:
    study, _ = selection
    diverging = [t for t in study.trials if t.params == {"width": 8, "learning_rate": 0.1}]
    losses = optuna_robust.instance_losses(diverging[0], phase="selection")
    assert np.isinf(losses).any()  # the fixture's premise
    fig = visualization.plot_instance_losses(diverging, labels=["wide lr"])
    texts = [t.get_text() for t in fig.axes[0].texts if t.get_gid() == "robust-diverged"]
    assert texts == [f"{int(np.isinf(losses).sum())}×∞"]
    assert tick_texts(fig)[0].splitlines()[0] == "wide lr"


def test_plot_instance_losses_max_models_keeps_the_furthest(
    selection: tuple[optuna.Study, optuna_robust.SelectionResult],
) -> None:
    study, result = selection
    fig = visualization.plot_instance_losses(
        study, phase="all", max_models=3, labels={result.winners[0].number: "champion"}
    )
    assert len(boxes(fig)) == 3
    assert "best 3 of 12 models" in fig.axes[0].get_title()
    assert any(label.startswith("champion") for label in tick_texts(fig))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"phase": "test"}, "phase must be"),
        ({"max_models": 0}, "max_models must be a positive integer"),
        ({"baseline": math.inf}, "baseline must be a finite loss"),
        ({"baseline": -1.0, "log": True}, "baseline must be positive"),
        ({"labels": ["a", "b"]}, "labels must have one entry per trial"),
    ],
)
def test_plot_instance_losses_rejects_bad_arguments(
    selection: tuple[optuna.Study, optuna_robust.SelectionResult],
    kwargs: dict[str, Any],
    match: str,
) -> None:
    study, _ = selection
    with pytest.raises(ValueError, match=match):
        visualization.plot_instance_losses(study.trials[:3], **kwargs)


def test_plot_instance_losses_without_instances_says_so() -> None:
    trial = optuna.trial.create_trial(value=1.0)
    with pytest.raises(ValueError, match="has 'final' instances"):
        visualization.plot_instance_losses([trial], phase="final")
    with pytest.raises(ValueError, match="wrap a single trial in a list"):
        visualization.plot_instance_losses(trial)  # type: ignore[arg-type]


def test_plot_selection_funnel_from_a_result(
    selection: tuple[optuna.Study, optuna_robust.SelectionResult],
) -> None:
    _, result = selection
    rounds = result.rounds
    fig = visualization.plot_selection_funnel(result)
    models_ax, trainings_ax, budget_ax = fig.axes
    assert len(models_ax.patches) == 2 * len(rounds)  # models in the round + survivors
    heights = [p.get_height() for p in models_ax.patches]
    assert heights == rounds["models"].tolist() + rounds["survivors"].tolist()
    assert models_ax.get_yscale() == "log"
    assert models_ax.get_ylabel() == "models"
    assert len(trainings_ax.patches) == len(rounds) + 1  # rounds + the final instances
    assert trainings_ax.patches[-1].get_height() == result.budget.final_instances
    assert trainings_ax.get_ylabel() == "instances trained"
    assert tick_texts(fig, 1)[-1] == "final"
    budget = result.budget
    texts = [t.get_text() for t in budget_ax.texts]
    assert f"{budget.instances:,}\n({budget.fraction:.1%})" in texts
    assert f"{budget.exhaustive:,}" in texts
    assert budget.exhaustive == N_CANDIDATES * FINAL_INSTANCES


def test_plot_selection_funnel_from_the_rounds_table(
    selection: tuple[optuna.Study, optuna_robust.SelectionResult],
) -> None:
    _, result = selection
    assert len(visualization.plot_selection_funnel(result.rounds).axes) == 2
    fig = visualization.plot_selection_funnel(result.rounds, exhaustive=1000)
    assert len(fig.axes) == 3
    assert "1,000" in [t.get_text() for t in fig.axes[2].texts]
    with pytest.raises(ValueError, match="lacks columns \\['survivors'\\]"):
        visualization.plot_selection_funnel(result.rounds.drop(columns="survivors"))
    with pytest.raises(ValueError, match="exhaustive must be a positive integer"):
        visualization.plot_selection_funnel(result.rounds, exhaustive=0)
    with pytest.raises(ValueError, match="SelectionResult or its rounds DataFrame"):
        visualization.plot_selection_funnel([1, 2])  # type: ignore[arg-type]


def test_plot_loss_curves_of_a_winner(
    selection: tuple[optuna.Study, optuna_robust.SelectionResult],
) -> None:
    _, result = selection
    winner = result.winners[0]
    fig = visualization.plot_loss_curves(winner, phase="final")
    (ax,) = fig.axes
    thin = [line for line in ax.get_lines() if line.get_linewidth() < 1]
    median = [line for line in ax.get_lines() if line.get_label() == "median"]
    assert len(thin) == FINAL_INSTANCES
    assert len(median) == 1
    curves = [r["curve"] for r in optuna_robust._records.records(winner, "final", extras=True)]
    longest = max(len(c) for c in curves)
    assert len(median[0].get_xdata()) == longest
    # A stopped instance keeps its last loss: the last median is the median of final losses.
    finals = [c[-1] for c in curves]
    assert median[0].get_ydata()[-1] == pytest.approx(np.median(finals))
    assert any(isinstance(c, PolyCollection) for c in ax.collections)  # the 10–90 % band
    stops = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(stops[0].get_offsets()) == FINAL_INSTANCES
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "test loss"
    assert ax.get_title() == f"trial #{winner.number}: {FINAL_INSTANCES} instances"


def test_plot_loss_curves_side_by_side_and_diverged(
    selection: tuple[optuna.Study, optuna_robust.SelectionResult],
) -> None:
    study, result = selection
    diverging = next(t for t in study.trials if t.params == {"width": 8, "learning_rate": 0.1})
    fig = visualization.plot_loss_curves(
        {"winner": result.winners[0], "diverging": diverging}, log=False, show_instances=False
    )
    assert len(fig.axes) == 2
    assert fig.axes[0].get_shared_y_axes().joined(fig.axes[0], fig.axes[1])
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "linear"]
    assert fig.axes[1].get_title().startswith("diverging")
    for ax in fig.axes:
        (median,) = ax.get_lines()
        assert np.isfinite(median.get_ydata()).all()


def test_plot_loss_curves_needs_curves() -> None:
    with pytest.raises(ValueError, match="has a 'curve' extra"):
        visualization.plot_loss_curves([{"loss": 1.0}])
    with pytest.raises(ValueError, match="band must be a pair"):
        visualization.plot_loss_curves([{"loss": 1.0, "curve": [1.0]}], band=(0.9, 0.1))


def test_plot_loss_vs_training_size_log_axis_for_a_wide_range() -> None:
    rng = np.random.default_rng(0)
    sizes = [100, 300, 1000, 3000, 10000, 32000]
    data = {n: 1.0 / np.sqrt(n) * rng.lognormal(0, 0.3, size=20) for n in sizes}
    fig = visualization.plot_loss_vs_training_size(data)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert len(boxes(fig)) == len(sizes)
    medians = [line for line in ax.get_lines() if line.get_gid() == "robust-median"]
    assert [np.mean(m.get_xdata()) for m in medians] == pytest.approx(sizes, rel=0.05)
    assert ax.get_xlabel() == "training examples"
    assert ax.get_ylabel() == "test loss"


def test_plot_loss_vs_training_size_groups_models_from_a_frame() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        [
            {"n_train": n, "model": model, "loss": scale * rng.gamma(2.0, 0.01)}
            for n in [8000, 16000, 24000, 32000]
            for model, scale in [("Model 2", 1.0), ("parametric", 1.2), ("XGBoost", 1.1)]
            for _ in range(10)
        ]
    )
    fig = visualization.plot_loss_vs_training_size(frame, baseline=0.02, log_y=True)
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear"  # 8,000 to 32,000: linear, as in the paper's Fig. 6
    assert ax.get_yscale() == "log"
    assert len(boxes(fig)) == 12
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "Model 2",
        "parametric",
        "XGBoost",
        "baseline 0.02",
    ]
    assert list(ax.get_xticks()) == [8000, 16000, 24000, 32000]
    with pytest.raises(ValueError, match="lacks columns \\['loss'\\]"):
        visualization.plot_loss_vs_training_size(frame.drop(columns="loss"))
    with pytest.raises(ValueError, match="positive integer"):
        visualization.plot_loss_vs_training_size({0: [1.0]})


def test_plot_robust_vs_tpe_side_by_side(
    selection: tuple[optuna.Study, optuna_robust.SelectionResult],
) -> None:
    _, result = selection
    rng = np.random.default_rng(2)
    tpe = {"NAS 1": 0.03 + rng.gamma(1, 0.004, 50), "NAS 2": [0.031, 0.04, np.inf]}
    fig = visualization.plot_robust_vs_tpe(result.winners[0], tpe)
    ax = fig.axes[0]
    assert len(boxes(fig)) == 3
    labels = tick_texts(fig)
    assert labels[0].startswith(f"robust selection\nn={FINAL_INSTANCES}, std ")
    assert labels[1].startswith("NAS 1\nn=50")
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert [len(p.get_offsets()) for p in points] == [FINAL_INSTANCES, 50, 2]
    assert [t.get_text() for t in ax.texts] == ["1×∞"]
    assert ax.get_ylabel() == "test loss"
    with pytest.raises(ValueError, match="non-empty mapping"):
        visualization.plot_robust_vs_tpe([1.0], {})
    with pytest.raises(ValueError, match="has no instance losses"):
        visualization.plot_robust_vs_tpe([1.0], {"NAS": []})


def _trial_with_losses(
    number: int, losses: list[float], **params: Any
) -> optuna.trial.FrozenTrial:
    records = {f"robust:selection:{i:06d}": {"loss": x} for i, x in enumerate(losses)}
    choices = {
        name: optuna.distributions.CategoricalDistribution([v]) for name, v in params.items()
    }
    trial = optuna.trial.create_trial(
        value=float(np.mean(losses)), params=params, distributions=choices, user_attrs=records
    )
    trial.number = number
    return trial


@pytest.mark.parametrize(
    ("losses", "expected"),
    [
        ([[0.02, 0.021, 0.019], [0.8, 0.75]], "log"),  # a diverging model beside good ones
        ([[0.02, 0.021, 0.019], [0.03, 0.035]], "linear"),
        ([[-0.1, 0.5], [2.0, 3.0]], "linear"),  # no log axis for losses at or below zero
    ],
)
def test_loss_axis_is_logarithmic_only_where_losses_span_decades(
    losses: list[list[float]], expected: str
) -> None:
    trials = [_trial_with_losses(k, group, width=8 * (k + 1)) for k, group in enumerate(losses)]
    assert visualization.plot_instance_losses(trials).axes[0].get_yscale() == expected
    tpe = {"TPE": losses[1]}
    assert visualization.plot_robust_vs_tpe(losses[0], tpe).axes[0].get_yscale() == expected
    # An explicit choice wins over the data.
    forced = visualization.plot_instance_losses(trials, log=False)
    assert forced.axes[0].get_yscale() == "linear"


def test_plot_robust_vs_tpe_shows_no_spread_for_one_instance() -> None:
    fig = visualization.plot_robust_vs_tpe([0.02, 0.021, 0.025], {"TPE #4": [0.03]})
    labels = tick_texts(fig)
    assert labels[1] == "TPE #4\nn=1, std –"
    assert labels[0].startswith("robust selection\nn=3, std 0.0026")


def test_plot_trial_shows_boxes_per_phase_and_curves(
    selection: tuple[optuna.Study, optuna_robust.SelectionResult],
) -> None:
    _, result = selection
    winner = result.winners[0]
    fig = visualization.plot_trial(winner, baseline=0.03)
    box_ax, curve_ax = fig.axes
    assert len(boxes(fig)) == 2  # selection and final
    assert tick_texts(fig)[1] == f"final\nn={FINAL_INSTANCES}"
    assert box_ax.get_xlabel() == "instances" and box_ax.get_ylabel() == "test loss"
    title = fig.get_suptitle()
    assert title.startswith(f"Trial #{winner.number} (COMPLETE, winner): width=")
    assert "learning_rate=" in title
    for ax in (box_ax, curve_ax):
        baseline = [line for line in ax.get_lines() if line.get_label() == "baseline 0.03"]
        assert len(baseline) == 1
    thin = [line for line in curve_ax.get_lines() if line.get_linewidth() < 1]
    assert len(thin) == len(optuna_robust.instance_losses(winner, phase="all"))
    assert curve_ax.get_xlabel() == "epoch" and curve_ax.get_yscale() == "log"


def test_plot_trial_without_curves_has_one_panel_and_needs_records() -> None:
    trial = _trial_with_losses(3, [0.02, 0.03], width=8)
    fig = visualization.plot_trial(trial)
    assert len(fig.axes) == 1 and len(boxes(fig)) == 1
    assert fig.get_suptitle() == "Trial #3 (COMPLETE): width=8"
    # A select callback sees the trial just before it finishes: no misleading RUNNING.
    trial.state = optuna.trial.TrialState.RUNNING
    assert visualization.plot_trial(trial).get_suptitle() == "Trial #3: width=8"
    with pytest.raises(ValueError, match="has no instance records"):
        visualization.plot_trial(optuna.trial.create_trial(value=1.0))
    with pytest.raises(ValueError, match="must be a FrozenTrial"):
        visualization.plot_trial(0.5)  # type: ignore[arg-type]
