from __future__ import annotations

import json
import math
import time
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.trial import TrialState
import pytest

import optuna_robust
from optuna_robust import RobustSampler
from tests.test_docstrings import _examples

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


def _tpe_objective(trial: optuna.Trial) -> float:
    """An objective as written for TPE: log float, int and categorical params."""
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    depth = trial.suggest_int("depth", 1, 8)
    kind = trial.suggest_categorical("kind", ["rf", "gbt"])
    return abs(math.log10(lr) + 2) + depth / 8 + (kind == "rf")


TPE_DISTRIBUTIONS: dict[str, BaseDistribution] = {
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "depth": IntDistribution(1, 8),
    "kind": CategoricalDistribution(["rf", "gbt"]),
}


def test_from_distributions_runs_a_tpe_objective_unchanged_once_per_candidate() -> None:
    sampler = RobustSampler.from_distributions(TPE_DISTRIBUTIONS, n_points=4, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(_tpe_objective)
    seen = [json.dumps(t.params, sort_keys=True) for t in study.trials]
    assert len(seen) == 4 * 4 * 2 and len(set(seen)) == len(seen)
    assert {t.params["lr"] for t in study.trials} == {1e-4, 1e-3, 1e-2, 1e-1}
    # Stored with the user's distributions, not categorical ones.
    assert all(t.distributions == TPE_DISTRIBUTIONS for t in study.trials)
    assert study.best_params == {"lr": 1e-2, "depth": 1, "kind": "gbt"}


def test_from_distributions_suggest_and_select_store_the_users_distributions() -> None:
    sampler = RobustSampler.from_distributions(TPE_DISTRIBUTIONS, n_points=2, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda trial: float(sampler.suggest(trial)["depth"]))
    assert len(study.trials) == 8
    assert all(t.distributions == TPE_DISTRIBUTIONS for t in study.trials)
    assert sampler.distributions(0) == TPE_DISTRIBUTIONS

    selection = optuna.create_study(
        sampler=RobustSampler.from_distributions(TPE_DISTRIBUTIONS, n_points=2, seed=0),
        pruner=optuna_robust.RobustPruner(max_instances=2),
    )
    optuna_robust.select(
        selection,
        lambda params, instances: [params["depth"] + 0.1 * i.index for i in instances],
        final_instances=1,
        seed=0,
    )
    assert all(t.distributions == TPE_DISTRIBUTIONS for t in selection.trials)


@pytest.mark.parametrize(
    ("distribution", "n_points", "values"),
    [
        (FloatDistribution(1e-4, 1e-1, log=True), 4, (1e-4, 1e-3, 1e-2, 1e-1)),
        (FloatDistribution(0.0, 1.0), 5, (0.0, 0.25, 0.5, 0.75, 1.0)),
        (FloatDistribution(0.0, 1.0, step=0.25), 9, (0.0, 0.25, 0.5, 0.75, 1.0)),
        (FloatDistribution(0.0, 1.0, step=0.1), 3, (0.0, 0.5, 1.0)),
        (FloatDistribution(0.1, 0.7, step=0.1), 4, (0.1, 0.3, 0.5, 0.7)),
        (IntDistribution(1, 4), 5, (1, 2, 3, 4)),
        (IntDistribution(1, 9), 3, (1, 5, 9)),
        (IntDistribution(0, 100, step=10), 6, (0, 20, 40, 60, 80, 100)),
        (IntDistribution(1, 64, log=True), 4, (1, 4, 16, 64)),
        (IntDistribution(1, 3, log=True), 5, (1, 2, 3)),
        (CategoricalDistribution(["a", None, 2]), 2, ("a", None, 2)),
    ],
)
def test_from_distributions_grid_values(
    distribution: BaseDistribution, n_points: int, values: tuple[Any, ...]
) -> None:
    sampler = RobustSampler.from_distributions({"p": distribution}, n_points=n_points)
    assert sampler.search_space == {"p": values}
    assert all(distribution._contains(distribution.to_internal_repr(v)) for v in values)


def test_from_distributions_example_runs() -> None:
    (code,) = _examples(RobustSampler.from_distributions)
    exec(compile(code, "<from_distributions>", "exec"), {})


@pytest.mark.parametrize(
    ("distributions", "n_points", "match"),
    [
        ({}, 5, "distributions must be a non-empty mapping"),
        ([FloatDistribution(0, 1)], 5, "distributions must be a non-empty mapping"),
        ({"lr": [0.1, 0.01]}, 5, "distributions\\['lr'\\] must be a FloatDistribution"),
        ({1: IntDistribution(1, 2)}, 5, "keys must be param names \\(str\\) but got 1"),
        ({"lr": FloatDistribution(0, 1)}, 1, "n_points must be an integer >= 2 but got 1"),
        ({"lr": FloatDistribution(0, 1)}, 2.5, "n_points must be an integer >= 2 but got 2.5"),
        ({"lr": FloatDistribution(0, 1)}, True, "n_points must be an integer >= 2 but got True"),
        ({"x": CategoricalDistribution(["a", "a"])}, 5, "duplicates candidate 0"),
    ],
)
def test_from_distributions_invalid_arguments(
    distributions: Any, n_points: Any, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        RobustSampler.from_distributions(distributions, n_points=n_points)


def test_user_distribution_must_contain_the_candidates_value() -> None:
    sampler = RobustSampler({"lr": [0.001, 0.01]}, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("lr", 1e-4, 1e-1, log=True))
    assert all(isinstance(t.distributions["lr"], FloatDistribution) for t in study.trials)
    trial = optuna.create_study(sampler=RobustSampler({"lr": [0.5]}, seed=0)).ask()
    with pytest.raises(ValueError, match="does not contain the candidate's value 0.5"):
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "optuna_robust._sampler"]


def _grid_study(n_candidates: int) -> tuple[RobustSampler, optuna.Study]:
    sampler = RobustSampler({"a": list(range(n_candidates))}, seed=0)
    return sampler, optuna.create_study(sampler=sampler)


def test_n_trials_smaller_than_the_grid_warns_how_many_were_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sampler, study = _grid_study(12)
    study.optimize(_objective(sampler), n_trials=5)
    (message,) = _warnings(caplog)
    assert "(n_trials=5) with 7 of 12 RobustSampler candidates not tried yet" in message
    caplog.clear()
    study.optimize(_objective(sampler), n_trials=3)  # a second call counts its own trials
    (message,) = _warnings(caplog)
    assert "(n_trials=3) with 4 of 12" in message
    caplog.clear()
    study.optimize(_objective(sampler), n_trials=10)  # the rest: the sampler stops by itself
    assert len(study.trials) == 12 and _warnings(caplog) == []


def test_timeout_before_the_grid_is_done_warns_how_many_were_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sampler, study = _grid_study(50)

    def slow(trial: optuna.Trial) -> float:
        time.sleep(0.1)
        return float(sampler.suggest(trial)["a"])

    study.optimize(slow, timeout=0.25)
    tried = len(study.trials)
    assert 1 <= tried < 50
    (message,) = _warnings(caplog)
    assert f"(timeout=0.25s) with {50 - tried} of 50 RobustSampler candidates" in message


def test_a_failed_last_trial_counts_as_not_tried(caplog: pytest.LogCaptureFixture) -> None:
    sampler, study = _grid_study(6)

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 1:
            raise RuntimeError("broken model")
        return float(sampler.suggest(trial)["a"])

    study.optimize(objective, n_trials=2, catch=(RuntimeError,))
    (message,) = _warnings(caplog)
    assert "with 5 of 6 RobustSampler candidates not tried yet (1 tried or running)" in message


def test_no_warning_when_every_candidate_was_tried_or_outside_optimize(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sampler, study = _grid_study(4)
    study.optimize(_objective(sampler), n_trials=4)
    trial = optuna.create_study(sampler=sampler).ask()  # ask-and-tell: no n_trials to end
    trial.study.tell(trial, float(sampler.suggest(trial)["a"]))
    assert _warnings(caplog) == []
