"""K stacked copies of one network, computed together for the instance trainer, and which
configurations may share one.

``models.CaloNet`` is the plain network of one instance, written to be read; ``StackedNet``
computes the same function for K instances at once (grouped convolutions, batched matmuls) over
parameters named as in ``CaloNet`` with a leading instance axis. The K instances may belong to
different configurations of one architecture (see :func:`group_key`): their optimiser settings
are per-instance columns of ``calo._optim.StackedOptimizer``.
"""

from __future__ import annotations

from collections.abc import Hashable
from collections.abc import Sequence
from typing import TypeVar

from optuna_robust._imports import import_optional
from optuna_robust.calo._optim import optimizer_family
from optuna_robust.calo.models import LEAKY_RELU_SLOPE
from optuna_robust.calo.models import MAX_CONV
from optuna_robust.calo.models import MAX_FC
from optuna_robust.calo.models import MONOTONE_ACTIVATIONS
from optuna_robust.calo.models import ModelConfig
from optuna_robust.calo.models import build_model

try:
    import torch
except ModuleNotFoundError:  # pragma: no cover - torch comes with the calo extra
    import_optional("torch")  # raises, naming the install command
    raise
from torch.nn import functional

Item = TypeVar("Item")
# The fields that only the optimiser reads: configurations differing in nothing else (but the
# optimiser's family) can train as one stacked model.
OPTIMISER_FIELDS = frozenset({"optimizer", "lr", "l2"})


def group_key(config: ModelConfig) -> Hashable:
    """Equal for configurations whose instances can train together as one stacked model.

    They must share the network (every field but ``optimizer``, ``lr`` and ``l2``; the widths
    of layers the network does not have do not count), the batch size (it sets the steps per
    epoch, and every instance of a group steps together) and the optimiser family (Adadelta's
    step has a form of its own, see ``calo/_optim.py``).
    """
    unused = {f"fc{layer}_units" for layer in range(config.n_fc + 1, MAX_FC + 1)}
    for layer in range(config.n_conv + 1, MAX_CONV + 1):
        unused |= {f"conv{layer}_filters", f"conv{layer}_kernel"}
    network = tuple(
        (name, value)
        for name, value in config.as_dict().items()
        if name not in OPTIMISER_FIELDS and name not in unused
    )
    return network, optimizer_family(config.optimizer)


def split_evenly(items: Sequence[Item], *, group_size: int, workers: int) -> list[list[Item]]:
    """``items`` in order, in groups of nearly equal size, at most ``group_size`` each.

    The number of groups is a multiple of ``workers`` (when there are enough items), so that
    groups trained in parallel, ``workers`` at a time, keep every worker busy.
    """
    n_groups = -(-len(items) // group_size)
    n_groups = min(len(items), -(-n_groups // workers) * workers)
    bounds = [len(items) * g // n_groups for g in range(n_groups + 1)]
    return [list(items[start:stop]) for start, stop in zip(bounds, bounds[1:])]


def stack_parameters(
    config: ModelConfig, task: str, init_seeds: Sequence[int], device: torch.device
) -> dict[str, torch.Tensor]:
    """The initial weights of ``build_model(config, task, init_seed=s)`` for each seed, stacked.

    Args:
        config:
            The validated configuration.
        task:
            ``"energy"`` or ``"position"``.
        init_seeds:
            One initialisation seed per instance.
        device:
            Where the stacked parameters live.

    Returns:
        ``{name: tensor}`` with the names of ``CaloNet``'s parameters and a leading instance
        axis, each tensor a leaf that requires grad.
    """
    references = [build_model(config, task, init_seed=seed) for seed in init_seeds]
    names = [name for name, _ in references[0].named_parameters()]
    return {
        name: torch.stack([dict(ref.named_parameters())[name].detach() for ref in references])
        .to(device)
        .requires_grad_()
        for name in names
    }


class StackedNet:
    """The forward pass of K stacked copies of one architecture's ``CaloNet``.

    Args:
        config:
            The validated configuration (its optimiser settings are not used).
    """

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.pool_first = config.pooling and config.activation in MONOTONE_ACTIVATIONS

    def forward(
        self, params: dict[str, torch.Tensor], inputs: torch.Tensor, extras: torch.Tensor | None
    ) -> torch.Tensor:
        """Predictions of shape ``(K, b)``.

        Args:
            params:
                Stacked parameters, named as in ``CaloNet`` with a leading instance axis.
            inputs:
                Images ``(b, K, 15, 15)``: channel ``k`` of example ``j`` is instance ``k``'s.
            extras:
                Inductive features ``(K, b, m)``, or None.
        """
        config = self.config
        n_stack = params["output.bias"].shape[0]
        # Channels-last: pooling and the elementwise work run along contiguous channels, which
        # is several times faster than NCHW on a CPU with K * filters channels.
        hidden = inputs.contiguous(memory_format=torch.channels_last)
        for layer, (filters, kernel) in enumerate(config.conv_layers):
            weight = params[f"convs.{layer}.weight"]
            weight = weight.reshape(n_stack * filters, *weight.shape[2:])
            weight = weight.contiguous(memory_format=torch.channels_last)
            bias = params[f"convs.{layer}.bias"].reshape(-1)
            padding = kernel // 2 if config.padding == "same" else 0
            if layer == 0 and config.pooling:
                hidden, padding = _pad_for_pooling(hidden, kernel, padding)
            hidden = functional.conv2d(hidden, weight, bias, padding=padding, groups=n_stack)
            slope = params.get(f"conv_activations.{layer}.weight")
            if self.pool_first:
                # Same values and gradients as activation-then-pool for a monotone activation,
                # on a quarter of the elements.
                hidden = _activate(functional.max_pool2d(hidden, 2), config.activation, slope)
            else:
                hidden = _activate(hidden, config.activation, slope)
                if config.pooling:
                    hidden = functional.max_pool2d(hidden, 2)
        batch = hidden.shape[0]
        hidden = hidden.reshape(batch, n_stack, -1).transpose(0, 1)  # (K, b, features)
        for layer in range(config.n_fc):
            weight = params[f"fcs.{layer}.weight"]
            bias = params[f"fcs.{layer}.bias"].unsqueeze(1)
            hidden = torch.baddbmm(bias, hidden, weight.transpose(1, 2))
            slope = params.get(f"fc_activations.{layer}.weight")
            hidden = _activate(hidden, config.activation, slope, channels_last=True)
            if layer == 0 and extras is not None:
                hidden = torch.cat([hidden, extras], dim=2)
        weight, bias = params["output.weight"], params["output.bias"].unsqueeze(1)
        return torch.baddbmm(bias, hidden, weight.transpose(1, 2)).squeeze(2)


def _pad_for_pooling(inputs: torch.Tensor, kernel: int, padding: int) -> tuple[torch.Tensor, int]:
    """The first layer's input, padded so that the convolution yields only what is pooled.

    Max pooling 2x2 drops the last row and column of an odd-sized image; the first
    convolution need not compute them (13 % of its work at 15x15, forward and backward, and of
    the pooling's gradient). Its input is small (one channel per instance), so the asymmetric
    padding costs little; for later layers (many channels) it cost more than it saved.
    """
    side = inputs.shape[-1]
    if (side + 2 * padding - kernel + 1) % 2 == 0:
        return inputs, padding
    if padding == 0:  # valid: the last row and column of the input reach only dropped outputs
        return inputs[:, :, : side - 1, : side - 1], 0
    return functional.pad(inputs, (padding, padding - 1, padding, padding - 1)), 0


def _activate(
    hidden: torch.Tensor, name: str, slope: torch.Tensor | None, channels_last: bool = False
) -> torch.Tensor:
    if name == "ReLU":
        return functional.relu(hidden)
    if name == "LeakyReLU":
        return functional.leaky_relu(hidden, LEAKY_RELU_SLOPE)
    if name == "ELU":
        return functional.elu(hidden)
    if name == "GELU":
        return functional.gelu(hidden)
    if name == "Sigmoid":
        return torch.sigmoid(hidden)
    if name == "Tanh":
        return torch.tanh(hidden)
    assert name == "PReLU" and slope is not None
    if channels_last:  # (K, b, units) with slopes (K, units)
        return torch.where(hidden >= 0, hidden, hidden * slope.unsqueeze(1))
    return functional.prelu(hidden, slope.reshape(-1))  # (b, K * channels, h, w)
