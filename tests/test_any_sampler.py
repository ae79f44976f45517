"""The asynchronous workflow with Optuna's own samplers, and the same objective on a grid.

An objective written for TPE (``suggest_float(..., log=True)``, ``suggest_int``,
``suggest_categorical``) ends with ``evaluate_instances``; RobustPruner prunes it by instances
whatever sampler proposes the params, in either direction.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.trial import TrialState
import pytest

import optuna_robust
from optuna_robust import Instance
from optuna_robust import RobustPruner
from optuna_robust import RobustSampler

MAX_INSTANCES = 8


def _true_loss(params: dict[str, Any]) -> float:
    """The loss a model has on average: best at lr = 1e-2, depth = 4, kind = "gbt"."""
    lr_term = 0.1 * (math.log10(params["lr"]) + 2) ** 2
    kind_term = {"gbt": 0.0, "rf": 0.1, "linear": 0.5}[params["kind"]]
    return 1.0 + lr_term + 0.05 * abs(params["depth"] - 4) + kind_term


def _objective(direction: str) -> Any:
    sign = 1.0 if direction == "minimize" else -1.0  # a maximising study gets scores

    def objective(trial: optuna.Trial) -> float:
        params = {
            "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
            "depth": trial.suggest_int("depth", 1, 8),
            "kind": trial.suggest_categorical("kind", ["gbt", "rf", "linear"]),
        }

        def train_fn(instances: list[Instance]) -> list[float]:
            # Large learning rates scatter: a robust selection must see it.
            spread = 0.02 + 0.3 * max(math.log10(params["lr"]) + 2, 0.0)
            rngs = [np.random.default_rng([i.data_seed, i.init_seed]) for i in instances]
            return [sign * (_true_loss(params) + spread * rng.standard_normal()) for rng in rngs]

        return optuna_robust.evaluate_instances(trial, train_fn, seed=0)

    return objective


SAMPLERS = {
    "tpe": lambda: optuna.samplers.TPESampler(seed=0, n_startup_trials=8),
    "random": lambda: optuna.samplers.RandomSampler(seed=0),
    "qmc": lambda: optuna.samplers.QMCSampler(seed=0, warn_independent_sampling=False),
}


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_builtin_sampler_and_robust_pruner_select_by_instances(name: str, direction: str) -> None:
    study = optuna.create_study(
        direction=direction,
        sampler=SAMPLERS[name](),
        pruner=RobustPruner(statistic="mean", max_instances=MAX_INSTANCES),
    )
    study.optimize(_objective(direction), n_trials=40)

    completed = study.get_trials(states=(TrialState.COMPLETE,))
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert len(completed) + len(pruned) == 40 and len(pruned) >= 10
    for trial in study.trials:  # the user's own distributions, as TPE needs them
        assert isinstance(trial.distributions["lr"], FloatDistribution)
        assert trial.distributions["lr"].log
        assert isinstance(trial.distributions["depth"], IntDistribution)
        assert isinstance(trial.distributions["kind"], CategoricalDistribution)
    for trial in completed:
        losses = optuna_robust.instance_losses(trial)
        assert losses.size == MAX_INSTANCES
        assert trial.value == pytest.approx(losses.mean())
        assert sorted(trial.intermediate_values) == [1, 2, 4, 8]
    # Pruning dropped the worse models: the completed ones are better on average, and the
    # winner is close to the best model of the space (true loss 1.0; the worst is about 2.4).
    true = {t.number: _true_loss(t.params) for t in study.trials}
    assert np.mean([true[t.number] for t in completed]) < np.mean([true[t.number] for t in pruned])
    assert true[study.best_trial.number] < 1.25
    # The report ranks the way the study does: its first row is the study's best trial.
    report = optuna_robust.robustness_report(study)
    assert report["trial"].iloc[0] == study.best_trial.number


def test_the_same_objective_runs_unchanged_on_a_robust_grid() -> None:
    sampler = RobustSampler.from_distributions(
        {
            "lr": FloatDistribution(1e-4, 1e-1, log=True),
            "depth": IntDistribution(1, 8),
            "kind": CategoricalDistribution(["gbt", "rf", "linear"]),
        },
        n_points=4,
        seed=0,
    )
    study = optuna.create_study(
        sampler=sampler, pruner=RobustPruner(statistic="mean", max_instances=MAX_INSTANCES)
    )
    study.optimize(_objective("minimize"))  # stops by itself after the last candidate
    assert len(study.trials) == len(sampler.candidates) == 4 * 4 * 3
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == len(study.trials)
    assert study.best_params == {"lr": 1e-2, "depth": 3, "kind": "gbt"}  # 4 is off the grid
