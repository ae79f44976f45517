"""Mixed-hyperparameter groups: instances of different configurations as one stacked model.

The contract: every configuration of a mixed group gets the per-epoch losses it gets trained
alone (``train_alone``, the plain nn.Module + torch.optim loop), for every optimiser.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

import optuna_robust
from optuna_robust import Instance
from optuna_robust import RobustPruner
from optuna_robust import RobustSampler
from optuna_robust.calo import _optim
from optuna_robust.calo import train as train_module
from optuna_robust.calo._optim import StackedOptimizer
from optuna_robust.calo.models import OPTIMIZERS
from optuna_robust.calo.models import ModelConfig
from optuna_robust.calo.spaces import product
from optuna_robust.calo.stacked import group_key
from optuna_robust.calo.stacked import split_evenly
from optuna_robust.calo.train import CaloTrainer
from optuna_robust.calo.train import TrainSettings
from optuna_robust.calo.train import train_batches
from tests.calo._synthetic import SyntheticCaloData
from tests.calo.test_train import RTOL
from tests.calo.test_train import SETTINGS
from tests.calo.test_train import TINY
from tests.calo.test_train import assert_curves_close
from tests.calo.test_train import one_thread  # noqa: F401 - the same autouse fixture here
from tests.calo.test_train import train_alone

MOMENT_OPTIMIZERS = [name for name in OPTIMIZERS if name != "Adadelta"]
# Learning rates at which each optimiser trains the tiny net stably (see test_train.py).
LR = {"SGD": 1e-3, "Adadelta": 1.0}


@pytest.fixture
def group_sizes(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The optimisers of each stacked group the trainer builds, as it builds them."""
    seen: list[list[str]] = []
    original = train_module._train_group

    def spy(members: list[tuple[ModelConfig, Instance]], *args: Any) -> list[dict[str, Any]]:
        seen.append([config.optimizer for config, _ in members])
        return original(members, *args)

    monkeypatch.setattr(train_module, "_train_group", spy)
    return seen


def _config(optimizer: str, l2: float, **overrides: Any) -> dict[str, Any]:
    lr = LR.get(optimizer, TINY["lr"])
    return {**TINY, "activation": "PReLU", "optimizer": optimizer, "lr": lr, "l2": l2, **overrides}


@pytest.mark.parametrize("family", ["moments", "adadelta"])
def test_stacked_optimizer_steps_as_torch_optim_does(
    family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Several optimisers, learning rates and L2 in one step; across schedule chunks (made
    # short here); two instances dropped on the way, as early stopping drops them.
    monkeypatch.setattr(_optim, "_SCHEDULE_STEPS", 16)
    names = MOMENT_OPTIMIZERS if family == "moments" else ["Adadelta"]
    configs = [
        ModelConfig(optimizer=name, lr=lr * LR.get(name, 1e-2), l2=l2)
        for name in names
        for lr, l2 in [(1.0, 0.01), (0.5, 0.0)]
    ]
    generator = torch.Generator().manual_seed(0)
    shapes = {"weight": (3, 4), "bias": (5,)}
    start = {
        name: torch.randn(len(configs), *shape, generator=generator)
        for name, shape in shapes.items()
    }
    stacked = StackedOptimizer(configs, start)
    alone = []
    for k, config in enumerate(configs):
        tensors = [start[name][k].clone().requires_grad_() for name in shapes]
        optimizer_class = getattr(torch.optim, config.optimizer)
        alone.append((tensors, optimizer_class(tensors, lr=config.lr, weight_decay=config.l2)))
    active = list(range(len(configs)))
    for step in range(60):
        targets = {
            name: torch.randn(len(configs), *shape, generator=generator)
            for name, shape in shapes.items()
        }
        stacked.zero_grad()
        sum(((stacked.params[n] - targets[n][active]) ** 2).sum() for n in shapes).backward()
        stacked.step()
        for k in active:
            tensors, optimizer = alone[k]
            optimizer.zero_grad()
            sum(((t - targets[n][k]) ** 2).sum() for t, n in zip(tensors, shapes)).backward()
            optimizer.step()
        if step == 20:
            keep = [slot for slot in range(len(active)) if slot not in (0, 3)]
            stacked.keep(torch.tensor(keep))
            active = [active[slot] for slot in keep]
    moved = 0.0
    for slot, k in enumerate(active):
        for tensor, name in zip(alone[k][0], shapes):
            torch.testing.assert_close(stacked.params[name][slot], tensor, rtol=RTOL, atol=1e-6)
            moved = max(moved, float((tensor.detach() - start[name][k]).abs().max()))
    assert moved > 0.1  # not vacuous: the parameters moved


def test_mixed_group_equals_each_configuration_trained_alone(group_sizes: list[list[str]]) -> None:
    # Every optimiser of the paper's grids, with and without L2, one or two instances each,
    # in one train_batches call; two batch sizes and Adadelta make separate groups.
    batches = [
        (_config(name, l2=0.01 if i % 2 else 0.0), [Instance(i, 50 + i, 60 + i)])
        for i, name in enumerate(MOMENT_OPTIMIZERS)
    ]
    batches[1][1].append(Instance(9, 59, 69))
    batches += [
        (_config("Adadelta", l2=0.01), [Instance(0, 70, 80)]),
        (_config("Adadelta", l2=0.0, lr=0.5), [Instance(0, 71, 81)]),
        (_config("Adam", l2=0.01, batch_size=24), [Instance(0, 72, 82)]),
    ]
    data = SyntheticCaloData()
    settings = TrainSettings(
        min_epochs=4, window=4, max_epochs=4, n_train=72, n_test=48, group_size=16
    )
    results = train_batches(batches, data=data, task="energy", settings=settings)
    assert sorted(map(len, group_sizes)) == [1, 2, 7]
    assert sorted(group_sizes, key=len)[-1] == sorted(
        MOMENT_OPTIMIZERS + [MOMENT_OPTIMIZERS[1]], key=MOMENT_OPTIMIZERS.index
    )
    for (config, instances), batch_results in zip(batches, results, strict=True):
        assert len(batch_results) == len(instances)
        for instance, result in zip(instances, batch_results, strict=True):
            curve, _ = train_alone(config, instance, data, "energy", settings, 4)
            assert_curves_close(result["curve"], curve)
            assert abs(curve[-1] - curve[0]) > 100 * RTOL * abs(curve[0])  # training moved it


def test_mixed_group_drops_a_stopped_instance_and_trains_the_others_on() -> None:
    # The Adam instance trains on empty clusters and stops after epoch 2 (as in test_train);
    # its group mates, each with another optimiser, must train on to epoch 8 exactly.
    settings = TrainSettings(
        min_epochs=2, window=2, tolerance=0.01, max_epochs=8, n_train=64, n_test=64
    )
    batches = [
        (_config("NAdam", l2=0.01, lr=2e-3), [Instance(0, 0, 0)]),
        (_config("Adam", l2=0.0, lr=2e-3, activation="ReLU"), [Instance(1, 99, 1)]),
        (_config("RMSprop", l2=0.001, lr=2e-3), [Instance(2, 3, 3)]),
        (_config("AdamW", l2=0.1, lr=2e-3), [Instance(3, 4, 4)]),
    ]
    data = SyntheticCaloData(empty_seeds={99})
    results = train_batches(batches, data=data, task="energy", settings=settings)
    assert [r[0]["epochs"] for r in results] == [8, 2, 8, 8]  # the premise of this test
    for (config, (instance,)), (result,) in zip(batches, results, strict=True):
        curve, _ = train_alone(config, instance, data, "energy", settings, result["epochs"])
        assert_curves_close(result["curve"], curve)


def test_group_key_ignores_the_optimiser_settings_only() -> None:
    base = ModelConfig(n_fc=2, optimizer="Adam", lr=1e-3, l2=0.0)
    same = [ModelConfig(n_fc=2, optimizer=name, lr=0.1, l2=0.01) for name in MOMENT_OPTIMIZERS] + [
        ModelConfig(n_fc=2, fc3_units=5, optimizer="SGD")
    ]  # fc3 is not in the network
    assert {group_key(config) for config in same} == {group_key(base)}
    apart = [
        ModelConfig(n_fc=2, optimizer="Adadelta"),
        ModelConfig(n_fc=2, batch_size=64),
        ModelConfig(n_fc=3),
        ModelConfig(n_fc=2, conv1_kernel=3),
        ModelConfig(n_fc=2, inductive_bias=True),
    ]
    assert len({group_key(config) for config in [base, *apart]}) == 1 + len(apart)
    assert group_key(ModelConfig(n_conv=1, conv2_filters=4)) == group_key(ModelConfig(n_conv=1))


def test_calo_trainer_gives_invalid_params_a_group_of_their_own() -> None:
    trainer = CaloTrainer(SyntheticCaloData(), task="energy", settings=SETTINGS)
    assert trainer.group_key(TINY) == trainer.group_key({**TINY, "lr": 0.5})
    broken = trainer.group_key({**TINY, "lr": -1.0})
    assert broken != trainer.group_key(TINY)
    assert broken != trainer.group_key({**TINY, "lr": -2.0})
    with pytest.raises(ValueError, match="max_group_size must be an integer >= 1 but got 0"):
        CaloTrainer(SyntheticCaloData(), task="energy", max_group_size=0)


@pytest.mark.parametrize(
    ("n_items", "group_size", "workers", "sizes"),
    [
        (24, 8, 2, [6, 6, 6, 6]),  # 3 groups would leave a worker idle for the third
        (24, 8, 1, [8, 8, 8]),
        (8, 8, 2, [4, 4]),
        (3, 8, 4, [1, 1, 1]),
        (10, 4, 1, [3, 3, 4]),
    ],
)
def test_split_evenly_keeps_every_worker_busy(
    n_items: int, group_size: int, workers: int, sizes: list[int]
) -> None:
    groups = split_evenly(list(range(n_items)), group_size=group_size, workers=workers)
    assert [len(group) for group in groups] == sizes
    assert [item for group in groups for item in group] == list(range(n_items))


def test_train_batches_rejects_what_is_not_a_batch() -> None:
    with pytest.raises(ValueError, match=r"batches must be \(config, instances\) pairs but got"):
        train_batches([TINY], data=SyntheticCaloData(), task="energy")  # type: ignore[list-item]
    assert train_batches([(TINY, [])], data=SyntheticCaloData(), task="energy") == [[]]


def test_select_with_groups_equals_select_model_by_model(group_sizes: list[list[str]]) -> None:
    space = {"optimizer": ["NAdam", "AdamW"], "lr": [0.003, 0.03], "batch_size": [16, 24]}
    fixed = {key: value for key, value in TINY.items() if key not in space}
    candidates = product(space, **fixed)
    settings = TrainSettings(min_epochs=2, window=2, max_epochs=2, n_train=48, n_test=32)
    trainer = CaloTrainer(SyntheticCaloData(), task="energy", settings=settings)

    def run(train_fn: Any) -> optuna_robust.SelectionResult:
        study = optuna.create_study(
            sampler=RobustSampler(candidates=candidates, seed=0), pruner=RobustPruner()
        )
        return optuna_robust.select(study, train_fn, final_instances=2, seed=0)

    grouped = run(trainer)
    assert sorted(map(len, group_sizes))[-2:] == [4, 4]  # round 1: one group per batch size
    plain = run(lambda params, instances: trainer(params, instances))
    assert grouped.winners[0].params == plain.winners[0].params
    assert grouped.rounds.equals(plain.rounds)  # the same decisions in every round
    assert grouped.winners[0].value == pytest.approx(plain.winners[0].value, rel=RTOL)


def test_gpu_check_runs_end_to_end_in_quick_mode(tmp_path: Path) -> None:
    # The prepared GPU script, shrunk (--quick) so that it runs here on the CPU in seconds.
    path = Path(__file__).resolve().parents[2] / "studies" / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    assert spec is not None and spec.loader is not None
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    out = tmp_path / "gpu_check.json"
    gpu_check.main(["--quick", "--device", "cpu", "--json", str(out)])
    document = json.loads(out.read_text())
    ran = {row["name"] for row in document["rows"] if not row.get("skipped")}
    assert ran == {"plain loop", "trainer", "mixed groups", "select slice"}
    assert document["mixed_vs_alone_max_rel_diff"] < RTOL
