"""A synthetic robust selection: the demo until the calorimeter application is wired in."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna

from optuna_robust._instances import Instance
from optuna_robust._pruner import RobustPruner
from optuna_robust._report import robustness_report
from optuna_robust._sampler import RobustSampler
from optuna_robust._select import select

SPACE = {
    "width": [8, 16, 32, 64],
    "lr": [0.0001, 0.001, 0.01, 0.1],
    "batch_size": [16, 32, 64, 128],
    "weight_decay": [0.001, 0.01, 0.1],
}


def synthetic_train(params: dict[str, Any], instances: list[Instance]) -> list[float]:
    """A stand-in for training: big learning rates are fast but erratic, tiny ones underfit."""
    log_lr = np.log10(params["lr"])
    level = 1.0 + 0.05 * (log_lr + 2.5) ** 2 + 2.0 / params["width"] + params["weight_decay"]
    spread = 0.02 + 0.5 * max(log_lr + 2.0, 0.0) ** 2 * 32 / params["batch_size"]
    losses = []
    for instance in instances:
        rng = np.random.default_rng([instance.data_seed, instance.init_seed])
        losses.append(level + spread * rng.lognormal(0.0, 1.0))
    return losses


def run_synthetic_demo(*, storage: str, study_name: str, seed: int = 0) -> None:
    study = optuna.create_study(
        storage=storage,
        study_name=f"{study_name}-synthetic",
        sampler=RobustSampler(SPACE, seed=seed),
        pruner=RobustPruner(statistic="mean", n_keep=2),
        load_if_exists=True,
    )
    result = select(study, synthetic_train, final_instances=50, seed=seed, show_progress_bar=True)
    print(result.rounds.to_string(index=False))
    budget = result.budget
    print(
        f"\nTrainings: {budget.instances} instead of {budget.exhaustive} for an exhaustive "
        f"search ({budget.fraction:.1%})."
    )
    print("\nWinners, measured on 50 fresh instances each:")
    report = robustness_report(result.winners, phase="final")
    print(report.drop(columns=["statistic"]).to_string(index=False))
    print(f"\nOpen the results with:  optuna-dashboard {storage}")
