"""The paper's two quality metrics (section 3.2), for torch tensors and numpy arrays alike.

Both average over the last axis, so a stack of K instances' predictions, shape ``(K, n)``,
gives K losses in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any
from typing import overload

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import torch

__all__ = ["TASKS", "energy_loss", "loss_for", "position_loss"]

TASKS = ("energy", "position")


# A torch tensor in, a torch tensor out (differentiable); numpy arrays in, a float out.
@overload
def energy_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor: ...
@overload
def energy_loss(pred: NDArray[Any], true: NDArray[Any]) -> float | NDArray[np.float64]: ...
def energy_loss(pred: Any, true: Any) -> Any:
    """Mean of ``((E_pred - E_true) / sqrt(E_true))**2``, in GeV.

    The calorimeter's resolution is stochastic, sigma(E) = a sqrt(E), so a plain squared error
    would be dominated by the high-energy photons and an error that is negligible at 100 GeV
    would be large at 1 GeV. Dividing by sqrt(E_true) equalises that stochastic term: a
    reconstruction as good as the detector allows scores about a^2 (~0.009) at every energy,
    so low- and high-energy photons weigh alike.

    Args:
        pred:
            Predicted energies in GeV, shape ``(..., n)``.
        true:
            True energies in GeV (positive), the same shape and kind (tensor or array).

    Returns:
        The mean over the last axis: a 0-d tensor (or tensor of the leading shape) for tensors,
        a float (or array) for numpy arrays.

    Example:

        .. code-block:: python

            import numpy as np
            from optuna_robust.calo.losses import energy_loss

            # 1 GeV off at 10 GeV costs 0.1, at 100 GeV 0.01: the mean is 0.055.
            loss = energy_loss(np.array([11.0, 99.0]), np.array([10.0, 100.0]))
            assert abs(loss - 0.055) < 1e-12
    """
    _check_pair(pred, true)
    if isinstance(pred, np.ndarray):
        pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    return _mean_square((pred - true) / true**0.5)


@overload
def position_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor: ...
@overload
def position_loss(pred: NDArray[Any], true: NDArray[Any]) -> float | NDArray[np.float64]: ...
def position_loss(pred: Any, true: Any) -> Any:
    """Mean squared error of one coordinate (x), in mm^2.

    The showers are symmetric in x and y, so the paper scores x alone.

    Args:
        pred:
            Predicted x in mm, shape ``(..., n)``.
        true:
            True x in mm, the same shape and kind (tensor or array).

    Returns:
        The mean over the last axis, as for :func:`energy_loss`.

    Example:

        .. code-block:: python

            import torch
            from optuna_robust.calo.losses import position_loss

            pred = torch.tensor([[1.0, -2.0], [0.0, 3.0]])  # two instances, two events
            losses = position_loss(pred, torch.zeros(2, 2))
            assert losses.tolist() == [2.5, 4.5]
    """
    _check_pair(pred, true)
    if isinstance(pred, np.ndarray):
        pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    return _mean_square(pred - true)


def loss_for(task: str) -> Callable[[Any, Any], Any]:
    """The loss of a task: ``"energy"`` -> :func:`energy_loss`, ``"position"`` ->
    :func:`position_loss`.

    Args:
        task:
            One of :data:`TASKS`.

    Returns:
        The loss function.
    """
    if task == "energy":
        return energy_loss
    if task == "position":
        return position_loss
    raise ValueError(f"task must be one of {TASKS} but got {task!r}.")


def _check_pair(pred: Any, true: Any) -> None:
    """Refuse mixed kinds and unequal shapes: broadcasting (n, 1) against (n,) would silently
    average an n x n table of errors."""
    if isinstance(pred, np.ndarray) != isinstance(true, np.ndarray):
        raise TypeError(
            f"pred and true must both be numpy arrays or both torch tensors but got "
            f"{type(pred).__name__} and {type(true).__name__}."
        )
    if tuple(pred.shape) != tuple(true.shape) or len(pred.shape) == 0:
        raise ValueError(
            f"pred and true must have the same shape (..., n) but got {tuple(pred.shape)} and "
            f"{tuple(true.shape)}."
        )


def _mean_square(residual: Any) -> Any:
    mean = (residual * residual).mean(-1)
    return float(mean) if isinstance(mean, np.floating) else mean
