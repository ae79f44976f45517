"""Maximising studies: "worse" follows the direction in select, evaluate_instances and ASHA."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import pytest

import optuna_robust
from optuna_robust import Instance
from optuna_robust import RobustPruner
from optuna_robust import RobustSampler

# Accuracy-like scores: model q has true mean score 0.5 + q / 20; model 9 is the truly best.
QUALITIES = list(range(10))


def _score(quality: int, instance: Instance) -> float:
    noise = np.random.default_rng(instance.init_seed).normal(0.0, 0.01)
    return 0.5 + quality / 20 + noise


def _select_study(direction: str, **pruner: Any) -> optuna.Study:
    return optuna.create_study(
        direction=direction,
        sampler=RobustSampler({"q": QUALITIES}, seed=0),
        pruner=RobustPruner(**pruner),
    )


def test_select_on_a_maximising_study_keeps_the_highest_scores() -> None:
    study = _select_study("maximize", statistic="mean")
    result = optuna_robust.select(
        study, lambda params, instances: [_score(params["q"], i) for i in instances], seed=0
    )
    winner = result.winners[0]
    assert winner.params == {"q": 9}
    assert winner.value == pytest.approx(0.95, abs=0.02)
    # Every pruned model scores below the winner at the rung where it was dropped.
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.PRUNED:
            step = trial.last_step
            assert trial.intermediate_values[step] < winner.intermediate_values[step]


def test_select_minimising_the_negated_score_picks_the_same_model() -> None:
    def train(params: dict[str, Any], instances: list[Instance]) -> list[float]:
        return [-_score(params["q"], i) for i in instances]

    result = optuna_robust.select(_select_study("minimize"), train, seed=0)
    assert result.winners[0].params == {"q": 9}


def test_maximise_worst_case_statistic_is_the_lowest_score() -> None:
    pruner = RobustPruner(statistic="max")
    assert pruner.statistic_value([0.9, 0.7, 0.8], maximize=True) == 0.7
    assert pruner.statistic_value([0.9, 0.7, 0.8]) == 0.9
    assert RobustPruner(statistic="quantile:1.0").statistic_value([1, 3], maximize=True) == 1
    # A diverged instance is the worst score, never the best.
    assert RobustPruner(statistic="mean").statistic_value([0.9, math.nan], maximize=True) == (
        -math.inf
    )


def test_maximise_gate_drops_scores_below_the_baseline() -> None:
    pruner = RobustPruner(baseline=0.8, baseline_tolerance=0.1)
    assert pruner.gate_limit(maximize=True) == pytest.approx(0.72)
    assert pruner.survivors(0, [0.9, 0.7, 0.75, math.nan], maximize=True).tolist() == [0, 2]
    assert pruner.survivors(0, [0.9, 0.7, 0.75], maximize=False).tolist() == [1, 2]
    assert pruner.survivors(1, [0.1, 0.9, 0.5, 0.3], maximize=True).tolist() == [1, 2]


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_asynchronous_optimize_ends_with_the_truly_best_model(direction: str) -> None:
    sign = 1.0 if direction == "maximize" else -1.0
    study = _select_study(direction, statistic="mean", max_instances=8)

    def objective(trial: optuna.Trial) -> float:
        quality = trial.suggest_categorical("q", QUALITIES)
        return optuna_robust.evaluate_instances(
            trial, lambda instances: [sign * _score(quality, i) for i in instances]
        )

    study.optimize(objective)
    assert study.best_trial.params == {"q": 9}
    assert len(optuna_robust.instance_losses(study.best_trial)) == 8
    assert study.best_value == pytest.approx(sign * 0.95, abs=0.02)


def test_evaluate_instances_refuses_multi_objective_before_training() -> None:
    study = optuna.create_study(
        directions=["minimize", "minimize"], pruner=RobustPruner(max_instances=2)
    )
    trained = []

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        value = optuna_robust.evaluate_instances(trial, lambda inst: trained.extend(inst) or [])
        return value, value

    with pytest.raises(ValueError, match="single-objective"):
        study.optimize(objective, n_trials=1, catch=())
    assert trained == []


def test_maximise_stores_a_diverged_score_as_minus_infinity() -> None:
    study = _select_study("maximize", statistic="mean")

    def train(params: dict[str, Any], instances: list[Instance]) -> list[float]:
        return [math.nan if params["q"] == 9 else _score(params["q"], i) for i in instances]

    result = optuna_robust.select(study, train, final_instances=2, seed=0)
    assert result.winners[0].params == {"q": 8}
    diverged = next(t for t in study.trials if t.params == {"q": 9})
    assert optuna_robust.instance_losses(diverged).tolist() == [-math.inf]


def test_instance_seeds_fit_every_library() -> None:
    import sklearn.utils  # noqa: F401 - only where scikit-learn is installed
    import torch

    instances = optuna_robust.make_instances({"q": 1}, 200, seed=12345)
    seeds = [s for i in instances for s in (i.data_seed, i.init_seed)]
    assert all(0 <= s <= 2**31 - 1 for s in seeds)
    for seed in seeds[:20]:
        np.random.default_rng(seed)
        np.random.RandomState(seed)
        torch.Generator().manual_seed(seed)
        sklearn.utils.check_random_state(seed)
