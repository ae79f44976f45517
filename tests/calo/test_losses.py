"""The paper's losses: values, both array kinds, batching over instances, and misuse."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optuna_robust.calo import baselines
from optuna_robust.calo import data
from optuna_robust.calo import losses
from optuna_robust.calo.losses import energy_loss
from optuna_robust.calo.losses import loss_for
from optuna_robust.calo.losses import position_loss
from tests.test_docstrings import _examples


def test_energy_loss_normalises_by_the_square_root_of_the_true_energy() -> None:
    pred, true = np.array([2.0, 104.0, 50.0]), np.array([1.0, 100.0, 50.0])
    # (1/1)^2 + (4/10)^2 + 0 = 1.16 over 3 events.
    assert energy_loss(pred, true) == pytest.approx(1.16 / 3)


def test_energy_loss_weighs_a_resolution_limited_error_alike_at_all_energies() -> None:
    # An error of a*sqrt(E) (the stochastic term) costs a^2 at 1 GeV and at 100 GeV.
    true = np.array([1.0, 100.0])
    pred = true + 0.095 * np.sqrt(true)
    assert energy_loss(pred[:1], true[:1]) == pytest.approx(energy_loss(pred[1:], true[1:]))
    assert energy_loss(pred, true) == pytest.approx(0.095**2)


def test_position_loss_is_the_mean_squared_error_in_mm() -> None:
    assert position_loss(np.array([1.0, -3.0]), np.array([0.0, 0.0])) == pytest.approx(5.0)


@pytest.mark.parametrize("loss", [energy_loss, position_loss])
def test_losses_agree_on_tensors_and_arrays_and_keep_gradients(loss: object) -> None:
    rng = np.random.default_rng(0)
    true = rng.uniform(1, 100, 50)
    pred = true + rng.normal(0, 1, 50)
    expected = loss(pred, true)  # type: ignore[operator]
    assert isinstance(expected, float)
    pred_tensor = torch.tensor(pred, dtype=torch.float32, requires_grad=True)
    value = loss(pred_tensor, torch.tensor(true, dtype=torch.float32))  # type: ignore[operator]
    assert isinstance(value, torch.Tensor) and value.shape == ()
    assert value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert pred_tensor.grad is not None and torch.isfinite(pred_tensor.grad).all()


def test_losses_of_stacked_instances_are_per_instance() -> None:
    true = torch.tensor([[1.0, 4.0], [1.0, 4.0], [1.0, 4.0]])
    pred = true + torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    torch.testing.assert_close(energy_loss(pred, true), torch.tensor([0.0, 0.5, 0.5]))
    torch.testing.assert_close(position_loss(pred, true), torch.tensor([0.0, 0.5, 2.0]))


def test_losses_refuse_shapes_that_would_broadcast() -> None:
    with pytest.raises(ValueError, match=r"same shape .* \(3, 1\) and \(3,\)"):
        energy_loss(np.ones((3, 1)), np.ones(3))
    with pytest.raises(ValueError, match="same shape"):
        position_loss(torch.tensor(1.0), torch.tensor(1.0))


def test_losses_refuse_mixed_array_kinds() -> None:
    with pytest.raises(TypeError, match="ndarray and Tensor"):
        position_loss(np.ones(3), torch.ones(3))  # type: ignore[call-overload]


def test_loss_for_maps_tasks_to_losses() -> None:
    assert loss_for("energy") is energy_loss
    assert loss_for("position") is position_loss
    with pytest.raises(ValueError, match="task must be one of .* but got 'momentum'"):
        loss_for("momentum")


@pytest.mark.parametrize(
    "code",
    [
        code
        for module in (losses, data, baselines)
        for obj in vars(module).values()
        if getattr(obj, "__module__", None) == module.__name__
        for code in _examples(obj)
    ],
)
def test_calo_docstring_examples_run(code: str) -> None:
    exec(compile(code, "<docstring>", "exec"), {})
