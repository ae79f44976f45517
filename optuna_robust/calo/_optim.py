"""The one optimiser over K stacked instances' parameters, and its slicing when some stop.

Optimisers act elementwise, so one optimiser over the stacked parameters steps each instance
exactly as the instance's own optimiser would.
"""

from __future__ import annotations

from typing import Any

from optuna_robust._imports import import_optional
from optuna_robust.calo.models import ModelConfig

try:
    import torch
except ModuleNotFoundError:  # pragma: no cover - torch comes with the calo extra
    import_optional("torch")  # raises, naming the install command
    raise

# Optimisers whose fused (single-kernel) step exists on the device; the others use foreach.
_FUSED = {
    "cpu": frozenset({"SGD", "Adam", "AdamW", "Adagrad"}),
    "cuda": frozenset({"SGD", "Adam", "AdamW"}),
}


def make_optimizer(
    config: ModelConfig, params: list[torch.Tensor], device: torch.device
) -> torch.optim.Optimizer:
    """One optimiser of ``config``'s kind over the stacked parameters ``params``."""
    optimizer_class = getattr(torch.optim, config.optimizer)
    # weight_decay: decoupled for AdamW; for the others torch adds l2 * w to the gradient,
    # i.e. the L2 term (l2 / 2) * ||w||^2 of each instance's own loss.
    options: dict[str, Any] = {"lr": config.lr, "weight_decay": config.l2}
    if config.optimizer in _FUSED.get(device.type, frozenset()):
        options["fused"] = True
    else:
        options["foreach"] = True
    optimizer: torch.optim.Optimizer = optimizer_class(params, **options)
    return optimizer


def keep_instances(
    params: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    keep: torch.Tensor,
    config: ModelConfig,
    device: torch.device,
) -> tuple[dict[str, torch.Tensor], torch.optim.Optimizer]:
    """Slice the stacked parameters and the optimiser state down to the instances kept."""
    kept = {name: tensor.detach()[keep].requires_grad_() for name, tensor in params.items()}
    new_optimizer = make_optimizer(config, list(kept.values()), device)
    for name, tensor in params.items():
        state = optimizer.state.get(tensor)
        if state:
            # Per-element state has the parameter's shape; scalars (step counts) are shared
            # because every instance has taken the same steps.
            new_optimizer.state[kept[name]] = {
                key: value[keep]
                if isinstance(value, torch.Tensor) and value.shape == tensor.shape
                else value
                for key, value in state.items()
            }
    return kept, new_optimizer
