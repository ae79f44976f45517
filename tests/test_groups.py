"""Grouped training: select hands several models' batches to a trainer that can stack them."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import optuna
from optuna.trial import TrialState

import optuna_robust
from optuna_robust import Instance
from optuna_robust import RobustPruner
from optuna_robust import RobustSampler

SPACE = {"arch": ["small", "big"], "lr": [0.1, 0.01, 0.001], "bs": [16, 32]}


def loss(params: dict[str, Any], instance: Instance) -> float:
    return (
        (1.0 if params["arch"] == "small" else 2.0) + params["lr"] + (instance.init_seed % 7) / 100
    )


class GroupedTrainer:
    """A picklable trainer that trains models sharing an architecture and batch size together."""

    max_group_size = 4

    def __init__(self, broken: dict[str, Any] | None = None) -> None:
        self.broken = broken
        self.calls: list[int] = []  # group sizes, in this process

    def group_key(self, params: dict[str, Any]) -> tuple[str, int]:
        return params["arch"], params["bs"]

    def __call__(self, params: dict[str, Any], instances: list[Instance]) -> list[float]:
        if params == self.broken:
            raise RuntimeError("this configuration diverges in a way that raises")
        return [loss(params, i) for i in instances]

    def train_group(
        self, batches: list[tuple[dict[str, Any], list[Instance]]]
    ) -> list[list[float]]:
        assert len({self.group_key(params) for params, _ in batches}) == 1
        self.calls.append(len(batches))
        return [self(params, instances) for params, instances in batches]


def _study() -> optuna.Study:
    return optuna.create_study(sampler=RobustSampler(SPACE, seed=0), pruner=RobustPruner())


def test_grouped_select_equals_model_by_model() -> None:
    trainer = GroupedTrainer()
    grouped = optuna_robust.select(_study(), trainer, final_instances=3, seed=0)
    plain = optuna_robust.select(_study(), trainer.__call__, final_instances=3, seed=0)
    assert grouped.rounds.equals(plain.rounds)
    assert grouped.winners[0].params == plain.winners[0].params
    assert grouped.winners[0].params["arch"] == "small"
    assert grouped.winners[0].value == plain.winners[0].value
    # Round 1: 12 models in 4 (arch, bs) groups of 3, one call per group.
    assert trainer.calls[:4] == [3, 3, 3, 3]
    assert max(trainer.calls) <= GroupedTrainer.max_group_size


def test_a_group_that_raises_is_retrained_model_by_model() -> None:
    broken = {"arch": "small", "lr": 0.1, "bs": 16}
    study = _study()
    result = optuna_robust.select(study, GroupedTrainer(broken), final_instances=2, seed=0)
    failed = [t.params for t in study.trials if t.state == TrialState.FAIL]
    assert failed == [broken]  # its two group mates were trained alone and went on
    assert result.winners[0].params["arch"] == "small"


def test_grouped_training_through_a_process_pool() -> None:
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        result = optuna_robust.select(
            _study(), GroupedTrainer(), executor=pool, final_instances=2, seed=0
        )
    plain = optuna_robust.select(_study(), GroupedTrainer().__call__, final_instances=2, seed=0)
    assert result.rounds.equals(plain.rounds)
    assert result.winners[0].params == plain.winners[0].params
