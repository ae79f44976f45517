"""The paper's family of calorimeter networks: the configuration, its validation, He
initialisation and the plain single-instance ``nn.Module`` that the instance trainer reproduces.

A configuration is a flat ``dict`` (so that each key maps onto one Optuna categorical parameter):

=================  ========================================================  ============
key                meaning                                                   default
=================  ========================================================  ============
``n_conv``         number of convolutional layers, 1 or 2                    2
``conv1_filters``  filters of the first convolutional layer                  32
``conv1_kernel``   its kernel size, 3, 5 or 7                                5
``conv2_filters``  filters of the second one (ignored when ``n_conv=1``)     16
``conv2_kernel``   its kernel size, 3, 5 or 7                                3
``padding``        ``"same"`` (output as large as the input) or ``"valid"``  ``"same"``
``pooling``        max pooling 2x2 (stride 2) after each convolution         ``True``
``n_fc``           number of hidden fully connected layers, 1 to 4           2
``fc1_units``      width of hidden layer 1 (``fc2_units`` ... likewise;      64
                   the layers beyond ``n_fc`` are ignored)
``activation``     Sigmoid, Tanh, ReLU, LeakyReLU, PReLU, ELU or GELU        ``"ReLU"``
``optimizer``      SGD, Adam, AdamW, NAdam, RMSprop, Adagrad or Adadelta     ``"Adam"``
``lr``             learning rate                                             0.001
``batch_size``     minibatch size                                            32
``l2``             L2 coefficient (decoupled weight decay for AdamW)         0.0
``inductive_bias`` concatenate the sum of the deposits (energy) or their     ``False``
                   barycentre x, y in mm (position) to the output of the
                   first fully connected layer
=================  ========================================================  ============

``l2`` is the optimiser's ``weight_decay`` on every parameter: for AdamW the decoupled decay,
for the others L2 regularisation, i.e. ``l2 * w`` added to each gradient (the gradient of
``(l2 / 2) * ||w||^2`` added to the loss). Optimisers otherwise keep torch's defaults (SGD
without momentum, Adadelta's rho 0.9, ...). Names of activations and optimisers are matched
case-insensitively and stored as spelled above (the ``torch.nn`` / ``torch.optim`` class
names). The network reads the raw deposits in GeV (the paper does not preprocess them) and
outputs the energy in GeV (task ``"energy"``) or the x of the entry point in mm (task
``"position"``). PReLU has one learnable slope per neuron (per
channel after a convolution), initialised to 0.25. Every weight is He-initialised (normal,
fan-in, gain sqrt(2)); every bias starts at zero.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from dataclasses import dataclass
import math
import numbers
from typing import Any

from optuna_robust._imports import import_optional
from optuna_robust.calo.data import GRID_SIZE
from optuna_robust.calo.losses import TASKS

try:
    import torch
except ModuleNotFoundError:  # pragma: no cover - torch comes with the calo extra
    import_optional("torch")  # raises, naming the install command
    raise
from torch import nn
from torch.nn import functional

ACTIVATIONS = ("Sigmoid", "Tanh", "ReLU", "LeakyReLU", "PReLU", "ELU", "GELU")
OPTIMIZERS = ("SGD", "Adam", "AdamW", "NAdam", "RMSprop", "Adagrad", "Adadelta")
KERNEL_SIZES = (3, 5, 7)
PADDINGS = ("same", "valid")
MAX_CONV = 2
MAX_FC = 4
CELL_SIZE_MM = 40.4
LEAKY_RELU_SLOPE = 0.01
PRELU_INIT = 0.25
# Activations f with max(f(a), f(b)) == f(max(a, b)): pooling may then run before them.
MONOTONE_ACTIVATIONS = frozenset({"Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU"})

_INT_KEYS = (
    "n_conv",
    "conv1_filters",
    "conv1_kernel",
    "conv2_filters",
    "conv2_kernel",
    "n_fc",
    "fc1_units",
    "fc2_units",
    "fc3_units",
    "fc4_units",
    "batch_size",
)


@dataclass(frozen=True)
class ModelConfig:
    """One candidate model: architecture and training hyperparameters (see the module docstring).

    Build it from an Optuna-style flat dict with :meth:`from_dict`; the constructor validates
    every field and raises ``ValueError`` naming the bad value.
    """

    n_conv: int = 2
    conv1_filters: int = 32
    conv1_kernel: int = 5
    conv2_filters: int = 16
    conv2_kernel: int = 3
    padding: str = "same"
    pooling: bool = True
    n_fc: int = 2
    fc1_units: int = 64
    fc2_units: int = 64
    fc3_units: int = 64
    fc4_units: int = 64
    activation: str = "ReLU"
    optimizer: str = "Adam"
    lr: float = 1e-3
    batch_size: int = 32
    l2: float = 0.0
    inductive_bias: bool = False

    def __post_init__(self) -> None:
        for key in _INT_KEYS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{key} must be an integer but got {value!r}.")
            object.__setattr__(self, key, int(value))
        for key in ("lr", "l2"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"{key} must be a number but got {value!r}.")
            object.__setattr__(self, key, float(value))
        for key in ("pooling", "inductive_bias"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key} must be True or False but got {getattr(self, key)!r}.")
        if self.n_conv not in range(1, MAX_CONV + 1):
            raise ValueError(f"n_conv must be 1 or 2 but got {self.n_conv}.")
        if self.n_fc not in range(1, MAX_FC + 1):
            raise ValueError(f"n_fc must be between 1 and {MAX_FC} but got {self.n_fc}.")
        for layer in range(1, self.n_conv + 1):
            filters = getattr(self, f"conv{layer}_filters")
            kernel = getattr(self, f"conv{layer}_kernel")
            if filters < 1:
                raise ValueError(f"conv{layer}_filters must be at least 1 but got {filters}.")
            if kernel not in KERNEL_SIZES:
                raise ValueError(f"conv{layer}_kernel must be 3, 5 or 7 but got {kernel}.")
        for layer in range(1, self.n_fc + 1):
            units = getattr(self, f"fc{layer}_units")
            if units < 1:
                raise ValueError(f"fc{layer}_units must be at least 1 but got {units}.")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be 'same' or 'valid' but got {self.padding!r}.")
        object.__setattr__(self, "activation", _canonical("activation", self.activation))
        object.__setattr__(self, "optimizer", _canonical("optimizer", self.optimizer))
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number but got {self.lr}.")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1 but got {self.batch_size}.")
        if not (math.isfinite(self.l2) and self.l2 >= 0):
            raise ValueError(f"l2 must be a finite number >= 0 but got {self.l2}.")
        self.feature_map_sizes()  # raises when the image shrinks to nothing

    @classmethod
    def from_dict(cls, config: Mapping[str, Any] | ModelConfig) -> ModelConfig:
        """Validate a flat configuration dict; missing keys take their defaults.

        Args:
            config:
                ``{key: value}`` with the keys of the module docstring (e.g. ``trial.params``);
                a :class:`ModelConfig` is returned as it is.

        Returns:
            The validated configuration.

        Raises:
            ValueError: A key is unknown or a value is invalid; the message names it.
        """
        if isinstance(config, ModelConfig):
            return config
        if not isinstance(config, Mapping):
            raise ValueError(f"config must be a mapping of parameters but got {config!r}.")
        known = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(str(key) for key in config if key not in known)
        if unknown:
            raise ValueError(f"Unknown model parameter(s) {unknown}; the known ones are {known}.")
        return cls(**config)

    def as_dict(self) -> dict[str, Any]:
        """The configuration as a flat dict (the inverse of :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @property
    def conv_layers(self) -> tuple[tuple[int, int], ...]:
        """``(filters, kernel)`` of each convolutional layer in use."""
        return tuple(
            (getattr(self, f"conv{i}_filters"), getattr(self, f"conv{i}_kernel"))
            for i in range(1, self.n_conv + 1)
        )

    @property
    def fc_units(self) -> tuple[int, ...]:
        """Width of each hidden fully connected layer in use."""
        return tuple(getattr(self, f"fc{i}_units") for i in range(1, self.n_fc + 1))

    def feature_map_sizes(self) -> tuple[int, ...]:
        """Side of the square image after each convolutional block (convolution + pooling).

        Raises:
            ValueError: The image shrinks below one cell.
        """
        side = GRID_SIZE
        sides = []
        for layer, (_, kernel) in enumerate(self.conv_layers, start=1):
            if self.padding == "valid":
                side -= kernel - 1
            if self.pooling:
                side //= 2
            if side < 1:
                raise ValueError(
                    f"With padding={self.padding!r} and pooling={self.pooling}, the 15x15 "
                    f"image has no cell left after convolutional layer {layer} (kernels "
                    f"{[k for _, k in self.conv_layers]}); use padding='same', smaller "
                    "kernels or no pooling."
                )
            sides.append(side)
        return tuple(sides)

    @property
    def n_flat(self) -> int:
        """Number of features entering the first fully connected layer."""
        side = self.feature_map_sizes()[-1]
        return self.conv_layers[-1][0] * side * side


def n_inductive_features(task: str) -> int:
    """How many features the inductive bias adds: 1 for energy (sum), 2 for position (x, y)."""
    return 1 if _check_task(task) == "energy" else 2


def inductive_features(deposits: torch.Tensor, task: str) -> torch.Tensor:
    """The high-level inputs of paper 3.8, computed from the deposits.

    Args:
        deposits:
            Cell energies in GeV, shape ``(n, 15, 15)`` (row = y, column = x).
        task:
            ``"energy"``: the sum of all deposits, shape ``(n, 1)``. ``"position"``: the
            barycentre ``(x, y)`` in mm relative to the centre of the central cell, ``(n, 2)``
            (0 for an empty cluster).

    Returns:
        The features, same dtype and device as ``deposits``.
    """
    total = deposits.sum(dim=(1, 2))
    if _check_task(task) == "energy":
        return total.unsqueeze(1)
    centre = GRID_SIZE // 2
    coords = torch.arange(GRID_SIZE, dtype=deposits.dtype, device=deposits.device) - centre
    coords = coords * CELL_SIZE_MM
    safe_total = torch.where(total > 0, total, torch.ones_like(total))
    x = (deposits.sum(dim=1) * coords).sum(dim=1) / safe_total
    y = (deposits.sum(dim=2) * coords).sum(dim=1) / safe_total
    empty = total <= 0
    x = torch.where(empty, torch.zeros_like(x), x)
    y = torch.where(empty, torch.zeros_like(y), y)
    return torch.stack([x, y], dim=1)


def build_model(
    config: Mapping[str, Any] | ModelConfig, task: str, *, init_seed: int | None = None
) -> CaloNet:
    """The plain single-instance network of a configuration, He-initialised.

    This is the reference that the instance trainer reproduces; it is also what to use to run a
    trained instance (load the ``state_dict`` that ``train_instances(..., return_state=True)``
    returns).

    Args:
        config:
            A flat configuration dict (see the module docstring) or a :class:`ModelConfig`.
        task:
            ``"energy"`` or ``"position"``.
        init_seed:
            Seed of the weight initialisation; the same seed gives the same weights. ``None``
            draws from torch's global generator.

    Returns:
        The network on the CPU, float32.
    """
    return CaloNet(ModelConfig.from_dict(config), task, init_seed=init_seed)


def count_parameters(config: Mapping[str, Any] | ModelConfig, task: str = "energy") -> int:
    """Number of trainable parameters of a configuration (the paper's models have <= 24,000).

    Args:
        config:
            A flat configuration dict or a :class:`ModelConfig`.
        task:
            ``"energy"`` or ``"position"`` (the inductive bias adds one or two inputs).

    Returns:
        The parameter count.
    """
    model = CaloNet(ModelConfig.from_dict(config), task, init_seed=0, device="meta")
    return sum(parameter.numel() for parameter in model.parameters())


def _canonical(key: str, name: object) -> str:
    choices = ACTIVATIONS if key == "activation" else OPTIMIZERS
    if isinstance(name, str):
        for choice in choices:
            if name.lower() == choice.lower():
                return choice
    raise ValueError(f"{key} must be one of {list(choices)} but got {name!r}.")


def _check_task(task: object) -> str:
    if task not in TASKS:
        raise ValueError(f"task must be 'energy' or 'position' but got {task!r}.")
    return str(task)


def _activation_module(name: str, n_units: int) -> nn.Module:
    if name == "PReLU":
        return nn.PReLU(num_parameters=n_units, init=PRELU_INIT)
    if name == "LeakyReLU":
        return nn.LeakyReLU(LEAKY_RELU_SLOPE)
    module: nn.Module = getattr(nn, name)()
    return module


def _he_initialise(model: nn.Module, init_seed: int | None) -> None:
    generator = None if init_seed is None else torch.Generator().manual_seed(init_seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_in", nonlinearity="relu", generator=generator
                )
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.PReLU):
                module.weight.fill_(PRELU_INIT)


class CaloNet(nn.Module):
    """The plain network of one configuration (one instance), written for readability.

    Layers, in order: ``convs[i]`` -> ``conv_activations[i]`` -> max pool 2x2 (if pooling) for
    each convolutional layer; flatten; ``fcs[j]`` -> ``fc_activations[j]`` for each hidden
    layer, with the inductive features concatenated after the first; ``output`` (one number).

    Args:
        config:
            The validated configuration.
        task:
            ``"energy"`` or ``"position"``.
        init_seed:
            Seed of the He initialisation (``None``: torch's global generator).
        device:
            Where the parameters live (``"meta"`` builds a shape-only network).
    """

    def __init__(
        self,
        config: ModelConfig,
        task: str,
        *,
        init_seed: int | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        self.config = config
        self.task = _check_task(task)
        padding = config.padding
        convs, conv_activations = [], []
        channels = 1
        for filters, kernel in config.conv_layers:
            pad = kernel // 2 if padding == "same" else 0
            # Built on the meta device: no default initialisation draws from the global RNG.
            convs.append(nn.Conv2d(channels, filters, kernel, padding=pad, device="meta"))
            conv_activations.append(_activation_module(config.activation, filters))
            channels = filters
        self.convs = nn.ModuleList(convs)
        self.conv_activations = nn.ModuleList(conv_activations)
        fcs, fc_activations = [], []
        width = config.n_flat
        for layer, units in enumerate(config.fc_units):
            fcs.append(nn.Linear(width, units, device="meta"))
            fc_activations.append(_activation_module(config.activation, units))
            width = units + (
                n_inductive_features(task) if layer == 0 and config.inductive_bias else 0
            )
        self.fcs = nn.ModuleList(fcs)
        self.fc_activations = nn.ModuleList(fc_activations)
        self.output = nn.Linear(width, 1, device="meta")
        self.to_empty(device=device)
        if str(device) != "meta":
            _he_initialise(self, init_seed)

    def forward(self, deposits: torch.Tensor) -> torch.Tensor:
        """Predict from deposits of shape ``(n, 15, 15)``; returns shape ``(n,)``."""
        hidden = deposits.unsqueeze(1)
        for conv, activation in zip(self.convs, self.conv_activations):
            hidden = activation(conv(hidden))
            if self.config.pooling:
                hidden = functional.max_pool2d(hidden, 2)
        hidden = hidden.flatten(1)
        for layer, (fc, activation) in enumerate(zip(self.fcs, self.fc_activations)):
            hidden = activation(fc(hidden))
            if layer == 0 and self.config.inductive_bias:
                extra = inductive_features(deposits, self.task)
                hidden = torch.cat([hidden, extra], dim=1)
        prediction: torch.Tensor = self.output(hidden).squeeze(1)
        return prediction
