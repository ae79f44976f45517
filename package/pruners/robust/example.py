"""Robust model selection with OptunaHub: TPE with RobustPruner, then the same objective on a grid.

A model's robustness is a statistic (here the mean) over the test losses of several instances,
independent trainings that each get their own bootstrap sample (``instance.data_seed``) and
initialisation (``instance.init_seed``). RobustPruner gives the better half of the models more
instances, rung by rung (1, 2, 4, 8).
"""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import optunahub

robust = optunahub.load_module("pruners/robust")


def train_once(lr: float, width: int, instance: robust.Instance) -> float:
    """A stand-in for training one model; a large learning rate makes it erratic."""
    rng = np.random.default_rng([instance.data_seed, instance.init_seed])
    level = 0.1 + 0.02 * (math.log10(lr) + 2) ** 2 + 1.0 / width
    spread = 0.005 + 0.05 * max(math.log10(lr) + 2, 0.0)
    return level + spread * rng.standard_normal()


def objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    width = trial.suggest_int("width", 8, 128, log=True)
    return robust.evaluate_instances(
        trial, lambda instances: [train_once(lr, width, i) for i in instances], seed=0
    )


# Any sampler proposes the models; RobustPruner decides how many instances each one gets.
study = optuna.create_study(
    sampler=optuna.samplers.TPESampler(seed=0),
    pruner=robust.RobustPruner(statistic="mean", max_instances=8),
)
study.optimize(objective, n_trials=30)
print("TPE + RobustPruner:", study.best_params, "mean loss", round(study.best_value, 4))

# The paper's setting: every model of a grid, each tried once; the objective is unchanged.
grid = robust.RobustSampler.from_distributions(
    {"lr": FloatDistribution(1e-4, 1e-1, log=True), "width": IntDistribution(8, 128, log=True)},
    n_points=4,
    seed=0,
)
grid_study = optuna.create_study(
    sampler=grid, pruner=robust.RobustPruner(statistic="mean", max_instances=8)
)
grid_study.optimize(objective)  # stops by itself after the last of the 16 candidates
report = robust.robustness_report(grid_study)
print(report[["trial", "state", "params_lr", "params_width", "instances", "mean", "std"]])
