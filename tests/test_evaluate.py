from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
import pytest

import optuna_robust
from optuna_robust import Instance
from optuna_robust import RobustPruner
from optuna_robust import RobustSampler

SPACE = {"a": list(range(8)), "b": list(range(4))}


def _losses(params: dict[str, Any], instances: list[Instance]) -> list[float]:
    level = 1.0 + params["a"] + 0.1 * params["b"]
    return [level + np.random.default_rng(i.init_seed).normal(0.0, 0.01) for i in instances]


def _objective(calls: list[int] | None = None, **kwargs: Any) -> Any:
    def objective(trial: optuna.Trial) -> float:
        params = {
            name: trial.suggest_categorical(name, choices) for name, choices in SPACE.items()
        }

        def train_fn(instances: list[Instance]) -> list[float]:
            if calls is not None:
                calls.append(len(instances))
            return _losses(params, instances)

        return optuna_robust.evaluate_instances(trial, train_fn, **kwargs)

    return objective


def _study(storage: Any = None, **pruner: Any) -> optuna.Study:
    return optuna.create_study(
        storage=storage, sampler=RobustSampler(SPACE, seed=0), pruner=RobustPruner(**pruner)
    )


def test_evaluate_calls_train_fn_once_per_rung_with_the_batch() -> None:
    calls: list[int] = []
    study = _study(max_instances=8)
    study.enqueue_trial({"a": 0, "b": 0})  # ignored by the sampler's own order: just a probe
    study.optimize(_objective(calls), n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE  # the first trial is never pruned
    assert calls == [1, 1, 2, 4]  # rungs 1, 2, 4, 8
    assert sorted(trial.intermediate_values) == [1, 2, 4, 8]
    assert len(optuna_robust.instance_losses(trial)) == 8
    assert trial.value == pytest.approx(np.mean(optuna_robust.instance_losses(trial)))


def test_evaluate_async_prunes_and_finds_best() -> None:
    study = _study(max_instances=8)
    study.optimize(_objective())
    states = [t.state for t in study.trials]
    assert len(states) == 32
    assert states.count(TrialState.PRUNED) > 16
    assert study.best_params == {"a": 0, "b": 0}


def test_evaluate_async_with_two_threads() -> None:
    study = _study(max_instances=4)
    study.optimize(_objective(), n_jobs=2)
    assert len(study.trials) == 32
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 32
    assert study.best_params == {"a": 0, "b": 0}


def test_evaluate_gate_prunes_at_first_instance() -> None:
    study = _study(max_instances=4, baseline=2.0, baseline_tolerance=0.0)
    study.optimize(_objective())
    for trial in study.trials:
        if trial.params["a"] >= 2:
            assert trial.state == TrialState.PRUNED
            assert len(optuna_robust.instance_losses(trial)) == 1


def test_evaluate_reuses_instances_of_an_interrupted_trial() -> None:
    study = optuna.create_study(pruner=RobustPruner(max_instances=4))
    params = {"a": 3, "b": 1}
    trial = study.ask(
        {name: optuna.distributions.CategoricalDistribution([v]) for name, v in params.items()}
    )
    record = {"loss": 1.5, "data_seed": 1, "init_seed": 2}
    study._storage.set_trial_user_attr(trial._trial_id, "robust:selection:000000", record)
    study.tell(trial, state=TrialState.FAIL)  # the worker died after one instance
    retry = study.ask(
        {name: optuna.distributions.CategoricalDistribution([v]) for name, v in params.items()}
    )
    calls: list[int] = []

    def train_fn(instances: list[Instance]) -> list[float]:
        calls.append(len(instances))
        return _losses(params, instances)

    value = optuna_robust.evaluate_instances(retry, train_fn)
    assert calls == [1, 2]  # instance 0 came from the failed trial
    losses = optuna_robust.instance_losses(study.trials[-1])
    assert losses[0] == 1.5 and len(losses) == 4
    assert value == pytest.approx(np.mean(losses))


def test_evaluate_nan_loss_is_worst_not_error() -> None:
    study = _study(max_instances=2)
    trial = study.ask()
    trial.suggest_categorical("a", [0, 1])
    value = optuna_robust.evaluate_instances(trial, lambda inst: [math.nan for _ in inst])
    assert value == math.inf
    assert (
        trial.study._storage.get_trial(trial._trial_id).user_attrs["robust:selection:000000"][
            "loss"
        ]
        == "inf"
    )


def test_evaluate_needs_robust_pruner_and_max_instances() -> None:
    study = optuna.create_study()
    with pytest.raises(ValueError, match="needs a study with a RobustPruner"):
        optuna_robust.evaluate_instances(study.ask(), lambda inst: [1.0])
    study = optuna.create_study(pruner=RobustPruner())
    with pytest.raises(ValueError, match="needs max_instances"):
        optuna_robust.evaluate_instances(study.ask(), lambda inst: [1.0])
    with pytest.raises(ValueError, match="max_instances must be an integer >= the pruner's"):
        optuna_robust.evaluate_instances(study.ask(), lambda inst: [1.0], max_instances=0)
    with pytest.raises(ValueError, match="pairing must be 'data' or 'none'"):
        optuna_robust.evaluate_instances(
            study.ask(), lambda inst: [1.0], max_instances=2, pairing="x"
        )


def test_evaluate_wrong_number_of_results_is_refused() -> None:
    study = optuna.create_study(pruner=RobustPruner(max_instances=4))
    with pytest.raises(ValueError, match="returned 3 results for 1 instances"):
        optuna_robust.evaluate_instances(study.ask(), lambda inst: [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="must return a list with one result per instance"):
        optuna_robust.evaluate_instances(study.ask(), lambda inst: 1.0)  # type: ignore[arg-type, return-value]
