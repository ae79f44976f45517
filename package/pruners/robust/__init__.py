"""OptunaHub entry of optuna-robust: the pruner and sampler of a robust model selection."""

from __future__ import annotations

from optuna_robust import Instance
from optuna_robust import RobustPruner
from optuna_robust import RobustSampler
from optuna_robust import evaluate_instances
from optuna_robust import instance_losses
from optuna_robust import make_instances
from optuna_robust import robustness_report
from optuna_robust import select

__all__ = [
    "Instance",
    "RobustPruner",
    "RobustSampler",
    "evaluate_instances",
    "instance_losses",
    "make_instances",
    "robustness_report",
    "select",
]
