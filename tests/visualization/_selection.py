"""A real small selection with per-epoch curves, shared by the visualization tests."""

from __future__ import annotations

from collections.abc import Sequence
import math
from typing import Any

import numpy as np
import optuna

import optuna_robust

SPACE = {"width": [8, 16, 32, 64], "learning_rate": [0.001, 0.01, 0.1]}
N_CANDIDATES = 12
FINAL_INSTANCES = 6


def curve_train(params: dict[str, Any], instances: list[optuna_robust.Instance]) -> list[object]:
    """Synthetic training with per-epoch test-loss curves; width 8 at lr 0.1 diverges at times."""
    results: list[object] = []
    log_lr = math.log10(params["learning_rate"])
    level = 0.02 * (1.0 + 0.2 * (log_lr + 2.0) ** 2 + 1.0 / params["width"])
    spread = 0.001 + 0.004 * max(log_lr + 2.0, 0.0)
    for instance in instances:
        rng = np.random.default_rng([instance.data_seed, instance.init_seed])
        epochs = int(rng.integers(12, 30))
        decay = np.exp(-np.arange(1, epochs + 1) / 3.0)
        curve = level + spread * rng.lognormal(0.0, 0.5) + 0.5 * decay
        if params["width"] == 8 and params["learning_rate"] == 0.1 and instance.index % 2 == 0:
            curve[-3:] = np.inf
        results.append(
            {"loss": float(curve[-1]), "epochs": epochs, "seconds": 0.01, "curve": curve}
        )
    return results


def run_selection(
    storage: str | None = None,
    *,
    space: dict[str, list[Any]] | None = None,
    final_instances: int = FINAL_INSTANCES,
    callbacks: Sequence[Any] = (),
    study_name: str | None = None,
) -> tuple[optuna.Study, optuna_robust.SelectionResult]:
    """A real selection with two winners; in memory unless a storage URL is given."""
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        sampler=optuna_robust.RobustSampler(SPACE if space is None else space, seed=0),
        pruner=optuna_robust.RobustPruner(statistic="mean", n_keep=2),
    )
    result = optuna_robust.select(
        study, curve_train, final_instances=final_instances, seed=0, callbacks=callbacks
    )
    return study, result


def run_tpe_and_robustness(
    storage: optuna.storages.BaseStorage | str,
    *,
    prefix: str,
    n_trials: int = 6,
    fresh_instances: int = FINAL_INSTANCES,
) -> tuple[optuna.Study, optuna.Study]:
    """A TPE search over the same space, and fresh instances of its best model in
    ``<prefix>-tpe:robustness``, as ``optuna-robust nas`` and ``robustness`` store them."""
    from optuna_robust._records import make_instances
    from optuna_robust._records import make_record
    from optuna_robust._records import record_attrs

    tpe = optuna.create_study(
        storage=storage,
        study_name=f"{prefix}-tpe",
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna_robust.RobustPruner(max_instances=1),
    )

    def objective(trial: optuna.Trial) -> float:
        params = {
            name: trial.suggest_categorical(name, choices) for name, choices in SPACE.items()
        }
        return optuna_robust.evaluate_instances(
            trial, lambda instances: curve_train(params, instances), seed=0
        )

    tpe.optimize(objective, n_trials=n_trials)
    best = tpe.best_trial
    instances = make_instances(best.params, fresh_instances, seed=0, phase="final")
    results = curve_train(best.params, instances)
    user_attrs, _ = record_attrs(
        "final", {i.index: make_record(i, r) for i, r in zip(instances, results)}
    )
    robustness = optuna.create_study(storage=storage, study_name=f"{prefix}-tpe:robustness")
    losses = [float(r["loss"]) for r in user_attrs.values()]
    robustness.add_trial(
        optuna.trial.create_trial(
            params=best.params,
            distributions=best.distributions,
            value=float(np.mean(losses)),
            user_attrs=user_attrs,
        )
    )
    return tpe, robustness
