from __future__ import annotations

import concurrent.futures
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

SPACE_512 = {"a": list(range(8)), "b": list(range(8)), "c": list(range(8))}


def _noisy(params: dict[str, Any], instances: list[Instance]) -> list[float]:
    """A model's loss: a level set by its params plus seeded instance-to-instance noise."""
    level = 1.0 + 2.0 * params["a"] + 0.1 * params["b"] + 0.01 * params["c"]
    return [level + np.random.default_rng(i.init_seed).normal(0.0, 0.002) for i in instances]


def _study(space: dict[str, list[Any]], storage: Any = None, **pruner: Any) -> optuna.Study:
    return optuna.create_study(
        storage=storage,
        sampler=RobustSampler(space, seed=0),
        pruner=RobustPruner(**pruner),
    )


def _closed_form(n_candidates: int, eta: int, gated: int | None = None) -> list[dict[str, int]]:
    """The paper's round table: rung r has eta**r instances; the survivors divide by eta."""
    rows, models, cumulative, previous = [], n_candidates, 0, 0
    for rung in range(64):
        count = eta**rung
        instances = models * (count - previous)
        cumulative += instances
        survivors = gated if (rung == 0 and gated is not None) else max(models // eta, 1)
        rows.append(
            {"round": rung, "models": models, "instances": instances, "survivors": survivors}
        )
        models, previous = survivors, count
        if survivors <= 1:
            return rows
    raise AssertionError("unreachable")


def test_select_512_candidates_matches_closed_form() -> None:
    study = _study(SPACE_512)
    result = optuna_robust.select(study, _noisy, final_instances=50)
    expected = _closed_form(512, 2)
    table = result.rounds[["round", "models", "instances", "survivors"]].to_dict("records")
    assert table == expected
    assert result.rounds["cumulative"].iloc[-1] == sum(r["instances"] for r in expected) == 2560
    assert result.budget.selection_instances == 2560
    assert result.budget.final_instances == 50
    assert result.budget.exhaustive == 512 * 50
    assert result.winners[0].params == {"a": 0, "b": 0, "c": 0}
    assert len(optuna_robust.instance_losses(result.winners[0], phase="final")) == 50


def test_select_counts_every_instance_in_storage() -> None:
    study = _study(SPACE_512)
    result = optuna_robust.select(study, _noisy, final_instances=3)
    stored = sum(len(optuna_robust.instance_losses(t)) for t in study.trials)
    assert stored == result.rounds["cumulative"].iloc[-1]
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 1
    assert states.count(TrialState.PRUNED) == 511
    # Intermediate values: one point per rung reached, so the dashboard shows the halving.
    winner = result.winners[0]
    assert sorted(winner.intermediate_values) == [1, 2, 4, 8, 16, 32, 64, 128, 256]


def test_select_paper_budget_with_gate() -> None:
    """The paper's 6,912 candidates, 3,141 through the gate: 12 rounds, 41,165 trainings."""
    space = {f"q{i}": [0, 1, 2, 3] for i in range(4)} | {f"t{i}": [0, 1, 2] for i in range(3)}
    sampler = RobustSampler(space, seed=0)
    rank = {tuple(c.values()): k for k, c in enumerate(sampler.candidates)}

    def train_fn(params: dict[str, Any], instances: list[Instance]) -> list[float]:
        k = rank[tuple(params.values())]
        level = 1.0 if k < 3141 else 2.0  # baseline 1.0 with 20 % tolerance lets 3,141 through
        return [level + k * 1e-6 + (i.init_seed % 1000) * 1e-7 for i in instances]

    study = optuna.create_study(sampler=sampler, pruner=RobustPruner(baseline=1.0, n_keep=2))
    result = optuna_robust.select(study, train_fn, final_instances=50)
    assert len(result.rounds) == 12
    assert result.rounds["cumulative"].iloc[-1] == 41_165
    assert result.rounds["survivors"].tolist()[:3] == [3141, 1570, 785]
    assert result.budget.instances == 41_165 + 2 * 50
    assert result.budget.exhaustive == 345_600
    assert len(result.winners) == 2


@pytest.mark.parametrize("statistic", ["mean", "max"])
def test_select_steady_model_beats_lucky_one(statistic: str) -> None:
    """A model that got lucky on its first instance loses to one that is steadily good."""

    def train_fn(params: dict[str, Any], instances: list[Instance]) -> list[float]:
        if params["model"] == "steady":
            return [1.0 + 0.01 * (i.index % 3) for i in instances]
        if params["model"] == "lucky":  # great once, then erratic
            return [0.1 if i.index == 0 else 1.0 + 2.0 * (i.index % 2) for i in instances]
        return [5.0 for _ in instances]

    study = _study({"model": ["steady", "lucky", "bad", "worse"]}, statistic=statistic)
    result = optuna_robust.select(study, train_fn, final_instances=4)
    assert result.winners[0].params == {"model": "steady"}


def test_select_gate_drops_above_baseline() -> None:
    study = _study(SPACE_512, baseline=2.0, baseline_tolerance=0.2)
    result = optuna_robust.select(study, _noisy, final_instances=0)
    # Only a == 0 models (levels 1.0-1.77; a == 1 starts at 3.0) pass a gate at 2.4: 64 of them.
    assert result.rounds["survivors"].iloc[0] == 64
    assert result.rounds["models"].iloc[1] == 64


def test_select_with_thread_executor_gives_same_winner() -> None:
    serial = optuna_robust.select(_study(SPACE_512), _noisy, final_instances=5, seed=0)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
        parallel = optuna_robust.select(
            _study(SPACE_512), _noisy, executor=executor, final_instances=5, seed=0
        )
    assert parallel.winners[0].params == serial.winners[0].params
    assert parallel.winners[0].value == serial.winners[0].value
    assert parallel.rounds.equals(serial.rounds)


class _Interrupt(BaseException):
    pass


def test_select_rerun_after_interrupt_trains_nothing_twice() -> None:
    storage = optuna.storages.InMemoryStorage()
    trained: list[tuple[str, int]] = []
    calls = {"n": 0}

    def flaky(params: dict[str, Any], instances: list[Instance]) -> list[float]:
        calls["n"] += 1
        if calls["n"] == 700:  # in the middle of round 1
            raise _Interrupt
        trained.extend((repr(params), i.init_seed) for i in instances)
        return _noisy(params, instances)

    study = _study(SPACE_512, storage=storage)
    with pytest.raises(_Interrupt):
        optuna_robust.select(study, flaky, final_instances=5, seed=0)
    first = len(trained)
    again = optuna.load_study(
        study_name=study.study_name,
        storage=storage,
        sampler=RobustSampler(SPACE_512, seed=0),
        pruner=RobustPruner(),
    )
    result = optuna_robust.select(again, flaky, final_instances=5, seed=0)
    assert len(trained) > first
    assert len(set(trained)) == len(trained), "an instance was trained twice"
    reference = optuna_robust.select(_study(SPACE_512), _noisy, final_instances=5, seed=0)
    assert result.winners[0].params == reference.winners[0].params
    assert result.winners[0].value == reference.winners[0].value
    assert result.rounds.equals(reference.rounds)
    assert len(again.trials) == 512


def test_select_train_fn_error_fails_that_trial_and_goes_on() -> None:
    def train_fn(params: dict[str, Any], instances: list[Instance]) -> list[float]:
        if params["a"] == 3 and params["b"] == 3:
            raise RuntimeError("CUDA out of memory")
        return _noisy(params, instances)

    study = _study(SPACE_512)
    result = optuna_robust.select(study, train_fn, final_instances=2)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 8
    assert "CUDA out of memory" in failed[0].system_attrs["robust:error"]
    assert result.winners[0].params == {"a": 0, "b": 0, "c": 0}


def test_select_nan_and_inf_losses_count_as_worst() -> None:
    def train_fn(params: dict[str, Any], instances: list[Instance]) -> list[float]:
        if params["a"] == 0:
            return [math.nan if i.index % 2 else math.inf for i in instances]
        return _noisy(params, instances)

    result = optuna_robust.select(_study(SPACE_512), train_fn, final_instances=2)
    assert result.winners[0].params["a"] == 1


def test_select_wrong_number_of_results_is_refused() -> None:
    study = _study({"a": [1, 2]})
    with pytest.raises(ValueError, match="train_fn returned 2 results for 1 instances"):
        optuna_robust.select(study, lambda p, inst: [1.0, 2.0], final_instances=0)


def test_select_result_without_loss_key_is_refused() -> None:
    study = _study({"a": [1, 2]})
    with pytest.raises(ValueError, match="without a 'loss' key"):
        optuna_robust.select(study, lambda p, inst: [{"epochs": 3}], final_instances=0)


def test_select_stores_extras_with_each_instance() -> None:
    def train_fn(params: dict[str, Any], instances: list[Instance]) -> list[dict[str, Any]]:
        return [{"loss": 1.0, "epochs": 7, "curve": np.array([2.0, 1.0])} for _ in instances]

    study = _study({"a": [1]})
    optuna_robust.select(study, train_fn, final_instances=1)
    trial = study.trials[0]
    record = trial.user_attrs["robust:selection:000000"]
    # The record in the user attrs is the loss and the seeds; the extras stay out of them
    # (they would widen the dashboard's trial page) and come back with the record on request.
    assert set(record) == {"loss", "data_seed", "init_seed"}
    merged = optuna_robust._records.records(trial, "selection", extras=True)[0]
    assert merged["curve"] == [2.0, 1.0] and merged["epochs"] == 7
    assert "robust:final:000000" in trial.user_attrs


def test_select_pairing_data_shares_data_seeds_between_models() -> None:
    seeds: dict[str, list[tuple[int, int]]] = {}

    def train_fn(params: dict[str, Any], instances: list[Instance]) -> list[float]:
        seeds.setdefault(params["a"], []).extend((i.data_seed, i.init_seed) for i in instances)
        return [1.0 for _ in instances]

    optuna_robust.select(_study({"a": ["x", "y"]}), train_fn, final_instances=0, seed=1)
    assert seeds["x"][0][0] == seeds["y"][0][0]  # same bootstrap sample
    assert seeds["x"][0][1] != seeds["y"][0][1]  # different initialisation
    seeds.clear()
    optuna_robust.select(
        _study({"a": ["x", "y"]}), train_fn, final_instances=0, seed=1, pairing="none"
    )
    assert seeds["x"][0][0] != seeds["y"][0][0]


def test_select_rerun_with_other_seed_is_refused() -> None:
    storage = optuna.storages.InMemoryStorage()
    study = _study({"a": [1, 2]}, storage=storage)
    optuna_robust.select(study, lambda p, inst: [1.0] * len(inst), final_instances=0, seed=1)
    with pytest.raises(ValueError, match="seed was 1, now 2"):
        optuna_robust.select(study, lambda p, inst: [1.0] * len(inst), final_instances=0, seed=2)


@pytest.mark.parametrize(
    ("sampler", "pruner", "direction", "match"),
    [
        (optuna.samplers.RandomSampler(), RobustPruner(), "minimize", "sampler=RobustSampler"),
        (
            RobustSampler({"a": [1]}),
            optuna.pruners.MedianPruner(),
            "minimize",
            "pruner=RobustPruner",
        ),
        (RobustSampler({"a": [1]}), RobustPruner(statistic="std"), "maximize", "is a spread"),
    ],
)
def test_select_refuses_unsuitable_study(
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    direction: str,
    match: str,
) -> None:
    study = optuna.create_study(sampler=sampler, pruner=pruner, direction=direction)
    with pytest.raises(ValueError, match=match):
        optuna_robust.select(study, lambda p, inst: [1.0] * len(inst))
    assert study.trials == []


def test_select_refuses_a_multi_objective_study_before_training() -> None:
    study = optuna.create_study(
        sampler=RobustSampler({"a": [1]}),
        pruner=RobustPruner(),
        directions=["minimize", "maximize"],
    )
    with pytest.raises(ValueError, match="single-objective"):
        optuna_robust.select(study, lambda p, inst: [1.0] * len(inst))
    assert study.trials == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"final_instances": -1}, "final_instances must be an integer >= 0 but got -1"),
        ({"pairing": "both"}, "pairing must be 'data' or 'none' but got 'both'"),
        ({"seed": "1"}, "seed must be None or an integer but got '1'"),
    ],
)
def test_select_invalid_arguments(kwargs: dict[str, Any], match: str) -> None:
    study = _study({"a": [1]})
    with pytest.raises(ValueError, match=match):
        optuna_robust.select(study, lambda p, inst: [1.0] * len(inst), **kwargs)
    assert study.trials == []


def test_select_same_seed_gives_bit_identical_instances_and_winner() -> None:
    def run(name: str, seed: int = 11) -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
        study = optuna.create_study(
            study_name=name, sampler=RobustSampler(SPACE_512, seed=0), pruner=RobustPruner()
        )
        result = optuna_robust.select(study, _noisy, final_instances=5, seed=seed)
        stored = {
            (repr(t.params), key): value
            for t in study.trials
            for key, value in t.user_attrs.items()
        }
        return result.winners[0].params, stored

    first, second = run("first"), run("second")
    assert first[0] == second[0]
    assert first[1] == second[1]  # every loss and seed, bit for bit, whatever the study name
    assert run("other seed", seed=12)[1] != first[1]


def test_budget_fraction_keeps_its_meaning_without_final_instances() -> None:
    # Before: exhaustive became candidates x the winner's instance count (here 8 x 8).
    study = _study({"a": list(range(8))})
    result = optuna_robust.select(study, lambda p, inst: [p["a"]] * len(inst), final_instances=0)
    assert result.budget.exhaustive == 8 * 50
    assert result.budget.fraction == pytest.approx(result.budget.instances / 400)
