"""K stacked copies of one configuration's network, computed together for the instance trainer.

``models.CaloNet`` is the plain network of one instance, written to be read; ``StackedNet``
computes the same function for K instances at once (grouped convolutions, batched matmuls) over
parameters named as in ``CaloNet`` with a leading instance axis.
"""

from __future__ import annotations

from collections.abc import Sequence

from optuna_robust._imports import import_optional
from optuna_robust.calo.models import LEAKY_RELU_SLOPE
from optuna_robust.calo.models import MONOTONE_ACTIVATIONS
from optuna_robust.calo.models import ModelConfig
from optuna_robust.calo.models import build_model

try:
    import torch
except ModuleNotFoundError:  # pragma: no cover - torch comes with the calo extra
    import_optional("torch")  # raises, naming the install command
    raise
from torch.nn import functional


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
    """The forward pass of K stacked copies of one configuration's ``CaloNet``.

    Args:
        config:
            The validated configuration.
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
