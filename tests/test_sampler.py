from __future__ import annotations

import json
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState
import pytest

from optuna_robust import RobustSampler

SPACE = {"lr": [0.1, 0.01], "width": [8, 16, 32]}


def _objective(sampler: RobustSampler) -> Any:
    def objective(trial: optuna.Trial) -> float:
        return float(sum(sampler.suggest(trial).values()))

    return objective


def test_sampler_hands_out_every_candidate_once_then_stops() -> None:
    sampler = RobustSampler(SPACE, seed=3)
    study = optuna.create_study(sampler=sampler)
    study.optimize(_objective(sampler))
    seen = [json.dumps(t.params, sort_keys=True) for t in study.trials]
    assert len(seen) == 6 and len(set(seen)) == 6


def test_sampler_order_is_seeded_and_shuffled() -> None:
    orders = []
    for seed in (0, 0, 1):
        sampler = RobustSampler({"a": list(range(20))}, seed=seed)
        study = optuna.create_study(sampler=sampler)
        study.optimize(_objective(sampler))
        orders.append([t.params["a"] for t in study.trials])
    assert orders[0] == orders[1] != orders[2]
    assert orders[0] != sorted(orders[0])


def test_sampler_conditional_candidates() -> None:
    candidates = [
        {"n_fc": 1, "fc1": 8},
        {"n_fc": 2, "fc1": 8, "fc2": 4},
        {"n_fc": 2, "fc1": 16, "fc2": 4},
    ]
    sampler = RobustSampler(candidates=candidates, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(_objective(sampler))
    assert sorted(json.dumps(t.params, sort_keys=True) for t in study.trials) == sorted(
        json.dumps(c, sort_keys=True) for c in candidates
    )
    assert sampler.search_space == {"n_fc": (1, 2), "fc1": (8, 16), "fc2": (4,)}


def test_sampler_params_are_categorical_in_dataframe() -> None:
    sampler = RobustSampler(SPACE, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(_objective(sampler))
    assert all(
        isinstance(d, CategoricalDistribution)
        for t in study.trials
        for d in t.distributions.values()
    )
    frame = study.trials_dataframe()
    assert {"params_lr", "params_width"} <= set(frame.columns)


def test_sampler_plain_suggest_categorical_works() -> None:
    sampler = RobustSampler(SPACE, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(
        lambda t: (
            t.suggest_categorical("lr", SPACE["lr"])
            * t.suggest_categorical("width", SPACE["width"])
        )
    )
    assert len(study.trials) == 6


def test_sampler_unknown_param_is_refused() -> None:
    sampler = RobustSampler(SPACE, seed=0)
    study = optuna.create_study(sampler=sampler)
    trial = study.ask()
    with pytest.raises(ValueError, match="Param 'depth' is not part of candidate"):
        trial.suggest_categorical("depth", [1, 2])
    with pytest.raises(ValueError, match="does not contain the candidate's value"):
        trial.suggest_categorical("lr", [0.5, 0.6])


def test_sampler_rehands_candidates_whose_trials_failed() -> None:
    sampler = RobustSampler({"a": [1, 2, 3]}, seed=0)
    study = optuna.create_study(sampler=sampler)
    failed_params = []

    def objective(trial: optuna.Trial) -> float:
        a = sampler.suggest(trial)["a"]
        if trial.number == 1:
            failed_params.append(a)
            raise RuntimeError("worker died")
        return float(a)

    study.optimize(objective, catch=(RuntimeError,))
    states = [t.state for t in study.trials]
    assert states.count(TrialState.FAIL) == 1 and states.count(TrialState.COMPLETE) == 3
    assert study.trials[-1].params == {"a": failed_params[0]}


def test_sampler_extra_trial_after_exhaustion_is_pruned_without_params() -> None:
    sampler = RobustSampler({"a": [1]}, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(_objective(sampler))
    study.optimize(_objective(sampler), n_trials=1)  # a late worker
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert study.trials[1].params == {}


def test_sampler_different_candidates_on_one_study_are_refused() -> None:
    storage = optuna.storages.InMemoryStorage()
    first = RobustSampler({"a": [1, 2]}, seed=0)
    study = optuna.create_study(storage=storage, study_name="s", sampler=first)
    study.optimize(_objective(first), n_trials=1)
    other = RobustSampler({"a": [1, 2, 3]}, seed=0)
    study = optuna.load_study(storage=storage, study_name="s", sampler=other)
    with pytest.raises(ValueError, match="different candidate set"):
        study.optimize(_objective(other), n_trials=1)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((), {}, "exactly one of search_space and candidates"),
        ((SPACE,), {"candidates": [{"a": 1}]}, "exactly one of search_space and candidates"),
        ((), {"candidates": []}, "candidate set is empty"),
        (
            (),
            {"candidates": [{"a": 1}, {"a": 1}]},
            "Candidate 1 \\{'a': 1\\} duplicates candidate 0",
        ),
        (({"a": []},), {}, "search_space\\['a'\\] must be a non-empty list"),
        (({"a": "abc"},), {}, "search_space\\['a'\\] must be a non-empty list"),
        ((), {"candidates": [{"a": [1, 2]}]}, "choices must be None, bool, int, float or str"),
        ((), {"candidates": [{}]}, "Candidate 0 must be a non-empty dict"),
    ],
)
def test_sampler_invalid_candidates(
    args: tuple[Any, ...], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        RobustSampler(*args, **kwargs)
