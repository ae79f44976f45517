"""optuna-robust: select robust models with Optuna.

A model is robust when its loss stays close to the same value whatever training sample it gets
and whatever seed initialised it. Robustness is a statistic over the test losses of many
*instances* (independent trainings), and the selection is successive halving where the
resource is the number of instances.
"""

from __future__ import annotations

from optuna_robust._evaluate import evaluate_instances
from optuna_robust._execution import SelectionStopped
from optuna_robust._instances import Instance
from optuna_robust._lease import LeaseError
from optuna_robust._pruner import PlannedRung
from optuna_robust._pruner import RobustPruner
from optuna_robust._records import instance_losses
from optuna_robust._records import make_instances
from optuna_robust._report import robustness_report
from optuna_robust._result import SelectionBudget
from optuna_robust._result import SelectionResult
from optuna_robust._sampler import RobustSampler
from optuna_robust._select import select

__version__ = "0.1.0"

__all__ = [
    "Instance",
    "LeaseError",
    "PlannedRung",
    "RobustPruner",
    "RobustSampler",
    "SelectionBudget",
    "SelectionResult",
    "SelectionStopped",
    "evaluate_instances",
    "instance_losses",
    "make_instances",
    "robustness_report",
    "select",
]
