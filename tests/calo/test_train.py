"""The instance trainer: equal to training each instance alone, early stopping, divergence."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
import math
from pathlib import Path
import pickle
from typing import Any

import numpy as np
import pytest
import torch

from optuna_robust._instances import Instance
from optuna_robust._instances import derive_seed
from optuna_robust.calo.losses import loss_for
from optuna_robust.calo.models import ACTIVATIONS
from optuna_robust.calo.models import OPTIMIZERS
from optuna_robust.calo.models import ModelConfig
from optuna_robust.calo.models import build_model
from optuna_robust.calo.train import CaloTrainer
from optuna_robust.calo.train import TrainSettings
from optuna_robust.calo.train import early_stop_epoch
from optuna_robust.calo.train import instance_test_seed
from optuna_robust.calo.train import train_instances
from tests.calo._synthetic import SyntheticCaloData

# Float32 throughout: the stacked and the plain model sum in different orders, and the
# differences (~1e-7) stay far below the 1e-4 tolerance over these few epochs.
RTOL = 1e-4
TINY = {
    "conv1_filters": 4,
    "conv1_kernel": 3,
    "conv2_filters": 3,
    "conv2_kernel": 3,
    "fc1_units": 8,
    "fc2_units": 6,
    "batch_size": 16,
    "lr": 1e-2,
    "l2": 0.01,
}
# 72 rows in batches of 16: the last minibatch of each epoch is smaller (8 rows).
SETTINGS = TrainSettings(min_epochs=4, window=4, max_epochs=4, n_train=72, n_test=48)
INSTANCES = [Instance(0, 11, 21), Instance(1, 12, 22), Instance(2, 13, 23)]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # Tiny tensors: a second OpenMP thread only adds synchronisation (and on a loaded machine
    # waits for a busy core).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_alone(
    config: dict[str, Any],
    instance: Instance,
    data: SyntheticCaloData,
    task: str,
    settings: TrainSettings,
    epochs: int,
) -> tuple[list[float], list[dict[str, torch.Tensor]]]:
    """The plain reference: one nn.Module, one torch.optim optimiser, the documented seeds.

    Returns the test loss and a copy of the weights after each epoch.
    """
    model_config = ModelConfig.from_dict(config)
    model = build_model(model_config, task, init_seed=instance.init_seed)
    optimizer_class = getattr(torch.optim, model_config.optimizer)
    optimizer = optimizer_class(
        model.parameters(), lr=model_config.lr, weight_decay=model_config.l2
    )
    loss_fn = loss_for(task)
    sample = data.training_sample(settings.n_train, instance.data_seed)
    seed = settings.test_seed
    if settings.test_sample == "per_instance":  # the documented rule
        seed = derive_seed(settings.test_seed, "test", instance.data_seed)
        assert instance_test_seed(settings, instance) == seed
    test = data.test_sample(settings.n_test, seed=seed)
    targets = sample.energy if task == "energy" else sample.x
    test_targets = test.energy if task == "energy" else test.x
    generator = torch.Generator().manual_seed(derive_seed(instance.init_seed, "minibatches"))
    curve, states = [], []
    for _ in range(epochs):
        order = torch.randperm(settings.n_train, generator=generator)
        for start in range(0, settings.n_train, model_config.batch_size):
            rows = order[start : start + model_config.batch_size]
            loss = loss_fn(model(sample.deposits[rows]), targets[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            curve.append(float(loss_fn(model(test.deposits), test_targets)))
        states.append({name: p.detach().clone() for name, p in model.state_dict().items()})
    return curve, states


def assert_curves_close(together: list[float], alone: list[float]) -> None:
    assert len(together) == len(alone)
    np.testing.assert_allclose(together, alone, rtol=RTOL, atol=0)


def check_against_alone(
    config: dict[str, Any],
    *,
    task: str = "energy",
    settings: TrainSettings = SETTINGS,
    instances: list[Instance] = INSTANCES,
) -> list[dict[str, Any]]:
    data = SyntheticCaloData()
    results = train_instances(config, instances, data=data, task=task, settings=settings)
    for result, instance in zip(results, instances, strict=True):
        curve, _ = train_alone(config, instance, data, task, settings, settings.max_epochs)
        assert_curves_close(result["curve"], curve)
        assert result["loss"] == result["curve"][-1]
        # Not vacuous: training moved the loss well beyond the tolerance.
        assert abs(curve[-1] - curve[0]) > 100 * RTOL * abs(curve[0])
    return results


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_train_instances_equals_training_alone_for_each_activation(activation: str) -> None:
    check_against_alone({**TINY, "activation": activation, "optimizer": "Adam"})


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_train_instances_equals_training_alone_for_each_optimizer(optimizer: str) -> None:
    # Adadelta's steps start ~1e-3 lr: it needs its customary lr of 1. Plain SGD is unstable
    # (chaotic, float noise grows fast) at 1e-2 on these raw deposits.
    lr = {"Adadelta": 1.0, "SGD": 1e-3}.get(optimizer, TINY["lr"])
    check_against_alone({**TINY, "activation": "PReLU", "optimizer": optimizer, "lr": lr})


@pytest.mark.parametrize(
    ("task", "architecture"),
    [
        ("position", {"inductive_bias": True, "n_fc": 3, "fc3_units": 5}),
        ("energy", {"inductive_bias": True, "n_fc": 1}),
        ("energy", {"n_conv": 1, "padding": "valid", "pooling": False, "n_fc": 4}),
        ("position", {"padding": "valid", "conv1_kernel": 5, "activation": "GELU", "lr": 0.03}),
    ],
)
def test_train_instances_equals_training_alone_for_other_architectures(
    task: str, architecture: dict[str, Any]
) -> None:
    check_against_alone({**TINY, **architecture, "optimizer": "AdamW"}, task=task)


def test_train_instances_in_several_groups_equals_training_alone() -> None:
    settings = TrainSettings(
        min_epochs=3, window=3, max_epochs=3, n_train=72, n_test=48, group_size=2
    )
    check_against_alone({**TINY, "optimizer": "NAdam"}, settings=settings)


def test_parallel_groups_on_two_threads_equal_training_alone() -> None:
    # Eight instances with two torch threads: two groups of four train in parallel threads.
    instances = [Instance(i, 30 + i, 40 + i) for i in range(8)]
    config = {**TINY, "optimizer": "AdamW"}
    data = SyntheticCaloData()
    torch.set_num_threads(2)
    results = train_instances(config, instances, data=data, task="energy", settings=SETTINGS)
    assert torch.get_num_threads() == 2  # restored after the call
    torch.set_num_threads(1)
    for result, instance in zip(results, instances, strict=True):
        curve, _ = train_alone(config, instance, data, "energy", SETTINGS, SETTINGS.max_epochs)
        assert_curves_close(result["curve"], curve)


PER_INSTANCE = TrainSettings(
    min_epochs=3, window=3, max_epochs=3, n_train=72, n_test=48, test_sample="per_instance"
)


@pytest.mark.parametrize(
    ("task", "config", "settings"),
    [
        ("energy", {"optimizer": "Adam"}, PER_INSTANCE),
        (
            "position",
            {"optimizer": "AdamW", "inductive_bias": True, "activation": "PReLU"},
            PER_INSTANCE,
        ),
        (
            "energy",
            {"optimizer": "NAdam", "inductive_bias": True},
            replace(PER_INSTANCE, group_size=2),
        ),
    ],
)
def test_per_instance_test_samples_equal_training_alone(
    task: str, config: dict[str, Any], settings: TrainSettings
) -> None:
    results = check_against_alone({**TINY, **config}, task=task, settings=settings)
    # Not vacuous: the instances' test samples differ, so the fixed test sample would give
    # other losses.
    fixed = train_instances(
        {**TINY, **config},
        INSTANCES,
        data=SyntheticCaloData(),
        task=task,
        settings=replace(settings, test_sample="fixed"),
    )
    for own, shared in zip(results, fixed, strict=True):
        assert abs(own["loss"] - shared["loss"]) > 100 * RTOL * abs(shared["loss"])


def test_per_instance_test_samples_follow_stopped_instances_out() -> None:
    # The middle instance stops after epoch 2 (empty clusters, flat loss); its test sample
    # must leave the stack with it, so the others keep being scored on their own samples.
    config = {**TINY, "lr": 2e-3, "l2": 0.0, "optimizer": "Adam"}
    settings = TrainSettings(
        min_epochs=2,
        window=2,
        tolerance=0.01,
        max_epochs=6,
        n_train=64,
        n_test=64,
        test_sample="per_instance",
    )
    instances = [Instance(0, 0, 0), Instance(1, 99, 1), Instance(2, 3, 3)]
    data = SyntheticCaloData(empty_seeds={99})
    results = train_instances(config, instances, data=data, task="energy", settings=settings)
    assert [result["epochs"] for result in results] == [6, 2, 6]  # the premise of this test
    for result, instance in zip(results, instances, strict=True):
        curve, _ = train_alone(config, instance, data, "energy", settings, result["epochs"])
        assert_curves_close(result["curve"], curve)


def test_train_instances_is_deterministic() -> None:
    config = {**TINY, "optimizer": "AdamW", "activation": "ELU"}
    runs = [
        train_instances(
            config, INSTANCES, data=SyntheticCaloData(), task="energy", settings=SETTINGS
        )
        for _ in range(2)
    ]
    for first, second in zip(*runs, strict=True):
        assert first["curve"] == second["curve"]
        assert first["loss"] == second["loss"]


def test_train_instances_returns_the_documented_record() -> None:
    results = train_instances(
        TINY, INSTANCES[:2], data=SyntheticCaloData(), task="energy", settings=SETTINGS
    )
    for result in results:
        assert set(result) == {"loss", "epochs", "seconds", "curve", "stop_reason"}
        assert result["epochs"] == len(result["curve"]) == SETTINGS.max_epochs
        assert result["loss"] == result["curve"][-1]
        assert result["seconds"] > 0
        assert result["stop_reason"] == "max_epochs"
    assert train_instances(TINY, [], data=SyntheticCaloData(), task="energy") == []


@pytest.mark.parametrize("activation", ["Tanh", "GELU"])
def test_diverging_configuration_gives_inf_losses_not_an_error(activation: str) -> None:
    config = {**TINY, "optimizer": "SGD", "lr": 10.0, "activation": activation}
    settings = TrainSettings(min_epochs=20, window=5, max_epochs=20, n_train=72, n_test=48)
    results = train_instances(
        config, INSTANCES, data=SyntheticCaloData(), task="energy", settings=settings
    )
    for result in results:
        assert result["loss"] == math.inf
        assert result["stop_reason"] == "diverged"
        assert result["epochs"] < settings.max_epochs
        assert result["curve"][-1] == math.inf
        assert all(math.isfinite(loss) for loss in result["curve"][:-1])


def test_diverging_instance_leaves_the_others_unaffected() -> None:
    poisoned = Instance(1, 666, 24)
    data = SyntheticCaloData(diverging_seeds={poisoned.data_seed})
    instances = [INSTANCES[0], poisoned, INSTANCES[1]]
    config = {**TINY, "optimizer": "Adam"}
    results = train_instances(config, instances, data=data, task="energy", settings=SETTINGS)
    assert results[1]["loss"] == math.inf
    assert results[1]["epochs"] == 1
    assert results[1]["stop_reason"] == "diverged"
    for result, instance in [(results[0], instances[0]), (results[2], instances[2])]:
        curve, _ = train_alone(config, instance, data, "energy", SETTINGS, SETTINGS.max_epochs)
        assert_curves_close(result["curve"], curve)


def test_stopped_instances_are_frozen_exactly() -> None:
    # The middle instance trains on empty clusters: only its output bias learns, its test loss
    # is flat at once and it stops after epoch 2, while the others train on to epoch 8. Adam's
    # momentum would keep moving it: the trainer must drop it with its weights as they were.
    config = {**TINY, "lr": 2e-3, "l2": 0.0, "optimizer": "Adam"}
    settings = TrainSettings(
        min_epochs=2, window=2, tolerance=0.01, max_epochs=8, n_train=64, n_test=64
    )
    instances = [Instance(0, 0, 0), Instance(1, 99, 1), Instance(2, 3, 3)]
    data = SyntheticCaloData(empty_seeds={99})
    results = train_instances(
        config, instances, data=data, task="energy", settings=settings, return_state=True
    )
    assert [result["epochs"] for result in results] == [8, 2, 8]  # the premise of this test
    test = data.test_sample(settings.n_test, seed=settings.test_seed)
    for result, instance in zip(results, instances, strict=True):
        epochs = result["epochs"]
        curve, states = train_alone(config, instance, data, "energy", settings, epochs + 1)
        assert_curves_close(result["curve"], curve[:epochs])
        for name, weights in result["state_dict"].items():
            torch.testing.assert_close(weights, states[epochs - 1][name], rtol=RTOL, atol=1e-6)
        # The weights it reports are the ones that give its loss.
        model = build_model(config, "energy")
        model.load_state_dict(result["state_dict"])
        with torch.no_grad():
            loss = float(loss_for("energy")(model(test.deposits), test.energy))
        assert loss == pytest.approx(result["loss"], rel=RTOL)
        # Not vacuous: one more epoch would have moved the weights.
        moved = max(
            float((states[epochs][name] - states[epochs - 1][name]).abs().max())
            for name in states[epochs]
        )
        assert moved > 1e-4


@pytest.mark.parametrize(
    ("curve", "expected"),
    [
        ([1.0] * 10, 3),  # flat: stops as soon as min_epochs and window allow
        ([0.5**k for k in range(8)], 8),  # keeps halving: trains to max_epochs
        ([0.5**k for k in range(7)], None),  # ... not reached yet
        ([4.0, 2.0, 1.0, 1.0, 1.5, 1.0, 1.0, 1.0], 5),  # spread exactly (1 + tolerance)
        ([4.0, 2.0, 1.0, 1.6, 1.0, 1.0, 1.0, 1.0], 7),  # the spike must leave the window
        ([1.0, float("nan"), 1.0], 2),  # NaN stops at once, even before min_epochs
        ([1.0, float("inf")], 2),
        ([], None),
    ],
)
def test_early_stop_epoch_follows_the_rule(curve: list[float], expected: int | None) -> None:
    rule = {"min_epochs": 3, "window": 3, "tolerance": 0.5, "max_epochs": 8}
    assert early_stop_epoch(curve, **rule) == expected


def test_early_stop_epoch_waits_for_a_full_window_and_for_min_epochs() -> None:
    flat = [1.0] * 40
    assert early_stop_epoch(flat, min_epochs=2, window=5, tolerance=0.1, max_epochs=99) == 5
    assert early_stop_epoch(flat, min_epochs=30, window=5, tolerance=0.1, max_epochs=99) == 30


def test_early_stop_rule_is_the_trainers() -> None:
    settings = TrainSettings(
        min_epochs=2, window=2, tolerance=0.01, max_epochs=8, n_train=64, n_test=64
    )
    instances = [Instance(0, 0, 0), Instance(1, 99, 1), Instance(2, 3, 3)]
    results = train_instances(
        {**TINY, "lr": 2e-3, "l2": 0.0},
        instances,
        data=SyntheticCaloData(empty_seeds={99}),
        task="energy",
        settings=settings,
    )
    rule = {"min_epochs": 2, "window": 2, "tolerance": 0.01, "max_epochs": 8}
    for result in results:
        assert early_stop_epoch(result["curve"], **rule) == result["epochs"]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"min_epochs": -1}, "min_epochs must be an integer >= 0 but got -1"),
        ({"window": 0}, "window must be an integer >= 1 but got 0"),
        ({"tolerance": -0.1}, "tolerance must be a number >= 0 but got -0.1"),
        ({"max_epochs": 5, "min_epochs": 6}, r"min_epochs \(6\) must not exceed max_epochs"),
        ({"n_train": 0}, "n_train must be an integer >= 1 but got 0"),
        ({"n_test": 2.5}, "n_test must be an integer >= 1 but got 2.5"),
        ({"group_size": 0}, "group_size must be an integer >= 1 but got 0"),
        ({"test_sample": "random"}, "test_sample must be 'fixed' or 'per_instance' but got"),
    ],
)
def test_train_settings_reject_bad_values(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainSettings(**options)


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"task": "mass"}, "task must be 'energy' or 'position' but got 'mass'"),
        ({"data": object()}, "data must have training_sample"),
        ({"settings": {"min_epochs": 1}}, "settings must be a TrainSettings"),
        ({"instances": [(1, 2)]}, r"instances must be Instance\(index, data_seed, init_seed\)"),
        ({"device": "tpu"}, "device must be e.g. 'cpu' or 'cuda' but got 'tpu'"),
        ({"config": {**TINY, "dropout": 0.1}}, r"Unknown model parameter\(s\) \['dropout'\]"),
    ],
)
def test_train_instances_rejects_bad_arguments(arguments: dict[str, Any], match: str) -> None:
    call: dict[str, Any] = {
        "config": TINY,
        "instances": INSTANCES,
        "data": SyntheticCaloData(),
        "task": "energy",
        "settings": SETTINGS,
        **arguments,
    }
    config, instances = call.pop("config"), call.pop("instances")
    with pytest.raises(ValueError, match=match):
        train_instances(config, instances, **call)


def test_train_instances_rejects_a_wrong_sample_size() -> None:
    class ShortData(SyntheticCaloData):
        def training_sample(self, n: int, data_seed: int) -> Any:
            return super().training_sample(n - 1, data_seed)

    with pytest.raises(ValueError, match="training sample has 71 rows but 72 were asked for"):
        train_instances(TINY, INSTANCES, data=ShortData(), task="energy", settings=SETTINGS)


def test_calo_trainer_is_a_picklable_train_fn() -> None:
    trainer = CaloTrainer(
        SyntheticCaloData(), task="position", settings=SETTINGS, device="cpu", num_threads=1
    )
    copy = pickle.loads(pickle.dumps(trainer))
    torch.set_num_threads(2)
    results = copy(dict(TINY), INSTANCES[:2])
    assert torch.get_num_threads() == 2  # restored after the call
    torch.set_num_threads(1)
    expected = train_instances(
        TINY,
        INSTANCES[:2],
        data=SyntheticCaloData(),
        task="position",
        settings=SETTINGS,
        device="cpu",
    )
    assert [r["curve"] for r in results] == [r["curve"] for r in expected]


def test_calo_trainer_opens_a_root_file_lazily(tmp_path: Path) -> None:
    uproot = pytest.importorskip("uproot")
    sample = SyntheticCaloData().test_sample(400, seed=5)
    path = tmp_path / "events.root"
    with uproot.recreate(path) as root_file:
        root_file.mktree(
            "events",
            {name: np.float32 for name in ("energy", "x", "y")}
            | {"deposits": np.dtype((np.float32, (15, 15)))},
        )
        root_file["events"].extend(
            {name: getattr(sample, name).numpy() for name in ("deposits", "energy", "x", "y")}
        )
    trainer = CaloTrainer(str(path), task="energy", settings=SETTINGS)
    results = pickle.loads(pickle.dumps(trainer))(TINY, INSTANCES[:1])
    assert math.isfinite(results[0]["loss"])
    assert len(pickle.dumps(trainer)) < 2_000  # the path travels to workers, not the data
    missing = CaloTrainer(str(tmp_path / "missing.root"), task="energy", settings=SETTINGS)
    with pytest.raises(FileNotFoundError, match="missing.root"):
        missing(TINY, INSTANCES[:1])


def test_calo_trainer_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="task must be 'energy' or 'position' but got 'y'"):
        CaloTrainer(SyntheticCaloData(), task="y")
    with pytest.raises(ValueError, match="num_threads must be an integer >= 1 but got 0"):
        CaloTrainer(SyntheticCaloData(), task="energy", num_threads=0)
    with pytest.raises(ValueError, match="data must be a path or a dataset object"):
        CaloTrainer(42, task="energy")  # type: ignore[arg-type]
