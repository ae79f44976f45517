"""Lazy imports of optional dependencies, failing with the command that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

# module name -> (pip distribution, extra of optuna-robust that brings it)
_EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("torch==2.13.0", "calo"),
    "uproot": ("uproot", "calo"),
    "xgboost": ("xgboost-cpu", "calo"),
    "matplotlib": ("matplotlib", "plots"),
    "optuna_dashboard": ("optuna-dashboard", "dashboard"),
    "plotly": ("plotly", "dashboard"),
}


def import_optional(name: str) -> ModuleType:
    """Import an optional dependency, or fail with the install command in the message.

    Args:
        name:
            The module to import, e.g. ``"torch"`` or ``"matplotlib.pyplot"``.

    Returns:
        The imported module.

    Raises:
        ModuleNotFoundError: The package is not installed; the message says how to install it.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        top = name.split(".")[0]
        if error.name is not None and error.name.split(".")[0] != top:
            raise  # A dependency of the package is broken: keep the real error.
        dist, extra = _EXTRAS.get(top, (top, ""))
        hint = f"pip install {dist}"
        if extra:
            hint += f"  (or: pip install 'optuna-robust[{extra}]')"
        raise ModuleNotFoundError(
            f"optuna-robust needs the {top!r} package for this feature; install it with: {hint}",
            name=top,
        ) from error
