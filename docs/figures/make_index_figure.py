"""Draw docs/figures/index_instance_losses.png: a robust selection on a synthetic problem.

Run from the repository root: ``python docs/figures/make_index_figure.py [output.png]``.
"""

from __future__ import annotations

import math
from pathlib import Path
import sys
from typing import Any

import numpy as np
import optuna

import optuna_robust
from optuna_robust.visualization import plot_instance_losses

SPACE = {
    "width": [16, 32, 64, 128],
    "learning_rate": [0.0001, 0.001, 0.01, 0.1],
    "batch_size": [16, 32, 64, 128],
}
BASELINE = 0.012  # a parametric model's loss, as in the paper's gate


def train_fn(params: dict[str, Any], instances: list[optuna_robust.Instance]) -> list[float]:
    """Stand-in for training: large learning rates with small batches are good but erratic."""
    log_lr = math.log10(params["learning_rate"])
    level = 0.0095 + 0.0006 * (log_lr + 2.0) ** 2 + 0.02 / params["width"]
    spread = 0.0002 + 0.0015 * max(log_lr + 3.0, 0.0) ** 2 * 16 / params["batch_size"]
    losses = []
    for instance in instances:
        rng = np.random.default_rng([instance.data_seed, instance.init_seed])
        losses.append(level - spread + spread * rng.gamma(1.2, 1.0))
    return losses


def main(output: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="index-figure",
        sampler=optuna_robust.RobustSampler(SPACE, seed=0),
        pruner=optuna_robust.RobustPruner(statistic="mean", baseline=BASELINE, n_keep=2),
    )
    result = optuna_robust.select(study, train_fn, final_instances=50, seed=0)
    fig = plot_instance_losses(study, phase="all", baseline=BASELINE, max_models=12)
    fig.set_size_inches(9.0, 5.0)
    candidates = len(SPACE["width"]) * len(SPACE["learning_rate"]) * len(SPACE["batch_size"])
    fig.axes[0].set_title(
        f"{candidates} candidates, {len(result.rounds)} rounds, {result.budget.instances:,} "
        f"trainings ({result.budget.fraction:.0%} of exhaustive): the 12 models that got furthest",
        fontsize="medium",
    )
    fig.savefig(output, dpi=80)


if __name__ == "__main__":
    main(
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).with_name("index_instance_losses.png")
    )
