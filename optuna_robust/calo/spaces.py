"""The paper's search spaces as candidate lists, small ones for CPU runs, and TOML space files.

Every candidate is a flat dict of :class:`~optuna_robust.calo.models.ModelConfig` keys, so it
maps one to one onto Optuna categorical params and onto the instance trainer.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
import difflib
import itertools
from pathlib import Path
import tomllib
from typing import Any

import optuna

from optuna_robust.calo.models import ACTIVATIONS
from optuna_robust.calo.models import OPTIMIZERS
from optuna_robust.calo.models import ModelConfig

SPACE_NAMES = ("paper", "small", "activations", "optimizers", "tiny")
_KEYS = tuple(field.name for field in dataclasses.fields(ModelConfig))
_FC_WIDTHS = (64, 32, 16, 8)
_ALIASES = {  # names other libraries use for the same params
    "learning_rate": "lr",
    "weight_decay": "l2",
    "optimiser": "optimizer",
    "batch": "batch_size",
    "activation_function": "activation",
}  # hidden widths of the paper-grid networks, layer by layer


def product(
    space: Mapping[str, Sequence[Any]] | Mapping[str, Any], **fixed: Any
) -> list[dict[str, Any]]:
    """Every combination of ``space``, each merged with the ``fixed`` params."""
    names = list(space)
    return [{**fixed, **dict(zip(names, values))} for values in itertools.product(*space.values())]


def _with_fc_widths(candidate: dict[str, Any]) -> dict[str, Any]:
    for layer in range(candidate["n_fc"]):
        candidate[f"fc{layer + 1}_units"] = _FC_WIDTHS[layer]
    return candidate


def paper_selection_space() -> list[dict[str, Any]]:
    """The 6,912 candidates of the paper's selection (section 3.10), as reconstructed here.

    The paper names the factors (two convolutional layers, 2 to 4 fully connected layers,
    3/5/7 kernels, learning rate 1e-4..1e-1, batch size, L2 / weight decay, inductive bias,
    NAdam or AdamW) and the total, 6,912 = 2^8 * 3^3, but not every level: its five batch
    sizes cannot divide 6,912. This grid keeps the total: inductive bias (2) x FC layers 2-4
    (3) x kernel 3/5/7 (3) x filters per conv layer {8, 16}^2 (4) x optimiser NAdam/AdamW (2) x
    learning rate (4) x batch size 16-128 (4) x L2 (3). FC widths are 64, 32, 16, 8 by layer.
    """
    space = {
        "inductive_bias": [False, True],
        "n_fc": [2, 3, 4],
        "conv1_kernel": [3, 5, 7],
        "conv_filters": [(8, 8), (8, 16), (16, 8), (16, 16)],
        "optimizer": ["NAdam", "AdamW"],
        "lr": [0.0001, 0.001, 0.01, 0.1],
        "batch_size": [16, 32, 64, 128],
        "l2": [0.001, 0.01, 0.1],
    }
    candidates = []
    for candidate in product(space, n_conv=2, activation="ReLU"):
        candidate["conv1_filters"], candidate["conv2_filters"] = candidate.pop("conv_filters")
        candidate["conv2_kernel"] = candidate["conv1_kernel"]
        candidates.append(_with_fc_widths(candidate))
    return candidates


def activation_space() -> list[dict[str, Any]]:
    """Section 3.4 / Fig. 2: seven activations x learning rate (4) x batch size (4), Adam."""
    space = {
        "activation": list(ACTIVATIONS),
        "lr": [0.0001, 0.001, 0.01, 0.1],
        "batch_size": [32, 64, 128, 256],
    }
    return product(space, n_conv=2, n_fc=2, optimizer="Adam")


def optimizer_space() -> list[dict[str, Any]]:
    """Section 3.5 / Fig. 13: seven optimisers x lr (4) x batch size (6) x L2 (4), two nets."""
    space = {
        "inductive_bias": [False, True],
        "optimizer": list(OPTIMIZERS),
        "lr": [0.0001, 0.001, 0.01, 0.1],
        "batch_size": [8, 16, 32, 64, 128, 256],
        "l2": [0.0001, 0.001, 0.01, 0.1],
    }
    return product(space, n_conv=2, n_fc=2, activation="ReLU")


def small_space() -> list[dict[str, Any]]:
    """16 candidates for CPU demos: the paper's decisive factors at two levels each."""
    space = {
        "inductive_bias": [False, True],
        "optimizer": ["NAdam", "AdamW"],
        "lr": [0.001, 0.01],
        "batch_size": [32, 128],
    }
    return product(
        space,
        n_conv=2,
        conv1_filters=8,
        conv2_filters=8,
        n_fc=2,
        fc1_units=32,
        fc2_units=16,
        activation="ReLU",
        l2=0.001,
    )


def tiny_space() -> list[dict[str, Any]]:
    """Two candidates: the smallest selection that still halves, for smoke tests."""
    return product(
        {"lr": [0.003, 0.3]},
        n_conv=1,
        conv1_filters=4,
        conv1_kernel=3,
        n_fc=1,
        fc1_units=8,
        optimizer="Adam",
        batch_size=64,
    )


# The NAS space of the paper's section 7, searched with TPE one instance per trial.
NAS_FILTERS = (16, 32, 64)
NAS_WIDTHS = (32, 64, 128)
NAS_OPTIMIZERS = ("Adam", "AdamW", "RMSprop")
NAS_LRS = (0.0001, 0.001, 0.01)
NAS_BATCH_SIZES = (16, 32, 64)
NAS_L2 = (0.001, 0.01, 0.1)
NAS_FIRST_WIDTH = 128


def suggest_nas(trial: optuna.Trial) -> dict[str, Any]:
    """Suggest one model of the paper's NAS space (section 7) with ``trial``.

    The paper counts 9,477 combinations: 9 filter pairs x 13 fully connected stacks x 81
    optimiser settings (3 optimisers, learning rates, batch sizes, L2). 13 = 1 + 3 + 9 is the
    count of 1-, 2- and 3-layer stacks when the first hidden layer keeps a fixed width (here
    128, the largest) and each further layer takes 32, 64 or 128 neurons: that reading is the
    one that reproduces the paper's total, so it is the one used here.
    """
    config: dict[str, Any] = {
        "n_conv": 2,
        "conv1_filters": trial.suggest_categorical("conv1_filters", NAS_FILTERS),
        "conv2_filters": trial.suggest_categorical("conv2_filters", NAS_FILTERS),
        "n_fc": trial.suggest_categorical("n_fc", (1, 2, 3)),
        "fc1_units": NAS_FIRST_WIDTH,
        "activation": "ReLU",
    }
    for layer in range(2, config["n_fc"] + 1):
        config[f"fc{layer}_units"] = trial.suggest_categorical(f"fc{layer}_units", NAS_WIDTHS)
    config["optimizer"] = trial.suggest_categorical("optimizer", NAS_OPTIMIZERS)
    config["lr"] = trial.suggest_categorical("lr", NAS_LRS)
    config["batch_size"] = trial.suggest_categorical("batch_size", NAS_BATCH_SIZES)
    config["l2"] = trial.suggest_categorical("l2", NAS_L2)
    return config


def nas_space_size() -> int:
    """The number of distinct models :func:`suggest_nas` can suggest (the paper: 9,477)."""
    stacks = sum(len(NAS_WIDTHS) ** (n_fc - 1) for n_fc in (1, 2, 3))
    settings = len(NAS_OPTIMIZERS) * len(NAS_LRS) * len(NAS_BATCH_SIZES) * len(NAS_L2)
    return len(NAS_FILTERS) ** 2 * stacks * settings


_NAMED = {
    "paper": paper_selection_space,
    "small": small_space,
    "activations": activation_space,
    "optimizers": optimizer_space,
    "tiny": tiny_space,
}


def load_space(name_or_path: str | Path) -> list[dict[str, Any]]:
    """The candidates of a named space (``paper``, ``small``, ...) or of a TOML file.

    A TOML space file has a ``[space]`` table of ``name = [choices]`` (every combination is a
    candidate), an optional ``[fixed]`` table of params shared by all, and/or ``[[candidates]]``
    entries listed one by one. Keys are :class:`~optuna_robust.calo.models.ModelConfig` fields::

        [fixed]
        n_conv = 2
        activation = "PReLU"

        [space]
        lr = [0.001, 0.01]
        batch_size = [32, 64]

    Raises:
        ValueError: Unknown space name, a folder or unreadable file, a misspelt key (the
            message suggests the right one), or a candidate the model family cannot build.
    """
    if str(name_or_path) in _NAMED:
        return _NAMED[str(name_or_path)]()
    path = Path(name_or_path)
    if path.is_dir():
        raise ValueError(
            f"Space {str(name_or_path)!r} is a folder: use one of {', '.join(SPACE_NAMES)} or "
            "the path of a .toml space file."
        )
    if path.suffix != ".toml":
        raise ValueError(
            f"Unknown space {str(name_or_path)!r}: use one of {', '.join(SPACE_NAMES)} or the "
            "path of a .toml space file."
        )
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"Space file {path} does not exist.") from None
    except OSError as error:
        raise ValueError(f"Space file {path} cannot be read: {error.strerror or error}.") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"Space file {path} is not valid TOML: {error}.") from None
    unknown_tables = set(document) - {"space", "fixed", "candidates"}
    if unknown_tables:
        raise ValueError(
            f"Space file {path} has unknown table(s) {sorted(unknown_tables)}; use [space], "
            "[fixed] and [[candidates]]."
        )
    fixed = dict(document.get("fixed", {}))
    space = dict(document.get("space", {}))
    listed = [dict(c) for c in document.get("candidates", [])]
    _check_keys(path, "[fixed]", fixed)
    _check_keys(path, "[space]", space)
    for candidate in listed:
        _check_keys(path, "[[candidates]]", candidate)
    for name, choices in space.items():
        if not isinstance(choices, list) or not choices:
            raise ValueError(
                f"Space file {path}: [space] {name} must be a non-empty list of choices "
                f"but is {choices!r}."
            )
    candidates = (product(space, **fixed) if space else []) + [{**fixed, **c} for c in listed]
    if not candidates:
        raise ValueError(f"Space file {path} defines no candidate: add [space] or [[candidates]].")
    for candidate in candidates:
        try:
            ModelConfig.from_dict(candidate)
        except ValueError as error:
            raise ValueError(
                f"Space file {path}: candidate {candidate} is invalid: {error}"
            ) from None
    return candidates


def _check_keys(path: Path, where: str, keys: Mapping[str, Any]) -> None:
    for key in keys:
        if key not in _KEYS:
            close = [_ALIASES[key]] if key in _ALIASES else difflib.get_close_matches(key, _KEYS)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {list(_KEYS)}"
            raise ValueError(f"Space file {path}: unknown key {key!r} in {where}{hint}")
