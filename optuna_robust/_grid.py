"""Turn Optuna distributions into finite grids, and suggest a param with its own distribution.

:meth:`RobustSampler.from_distributions` builds its candidates here, so that an objective
written for TPE (``suggest_float(..., log=True)``, ``suggest_int``, ...) runs unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
import math
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution

if TYPE_CHECKING:
    from optuna.trial import Trial

_KINDS = "FloatDistribution, IntDistribution or CategoricalDistribution"


def check_distributions(distributions: object) -> dict[str, BaseDistribution]:
    """Refuse anything but a non-empty ``{name: distribution}`` of the three supported kinds."""
    if not isinstance(distributions, Mapping) or not distributions:
        raise ValueError(
            f"distributions must be a non-empty mapping of name -> optuna distribution but got "
            f"{distributions!r}."
        )
    for name, distribution in distributions.items():
        if not isinstance(name, str):
            raise ValueError(f"distributions keys must be param names (str) but got {name!r}.")
        if not isinstance(distribution, FloatDistribution | IntDistribution):
            if not isinstance(distribution, CategoricalDistribution):
                raise ValueError(
                    f"distributions[{name!r}] must be a {_KINDS} but got {distribution!r}."
                )
    return dict(distributions)


def grid_values(distribution: BaseDistribution, n_points: int) -> list[Any]:
    """The values of ``distribution`` that a grid tries, in increasing order.

    Categorical: every choice. A float without a step: ``n_points`` values from ``low`` to
    ``high``, evenly spaced, or geometrically when ``log=True``. A stepped float or an int: every
    value on its grid when there are at most ``n_points``, else ``n_points`` of them spread evenly
    (geometrically when ``log=True``). ``low`` and ``high`` are always among the values.
    """
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, IntDistribution):
        return _int_values(distribution, n_points)
    assert isinstance(distribution, FloatDistribution)
    low, high, step = distribution.low, distribution.high, distribution.step
    if step is None:
        spaced = np.geomspace if distribution.log else np.linspace
        values = [_tidy(float(v), low, high) for v in spaced(low, high, n_points)]
        return _unique([low, *values[1:-1], high])
    n_steps = round((high - low) / step)
    ks = _spread(n_steps, n_points)
    # Rounded so that 0.1 + 3 * 0.1 reads 0.4; still on the step grid for Optuna's check.
    return _unique([_tidy(low + k * step, low, high) for k in ks])


def _int_values(distribution: IntDistribution, n_points: int) -> list[int]:
    low, high, step = distribution.low, distribution.high, distribution.step
    if distribution.log:  # Optuna allows log only with step 1
        if high - low + 1 <= n_points:
            return list(range(low, high + 1))
        return _unique([int(round(v)) for v in np.geomspace(low, high, n_points)])
    n_steps = (high - low) // step
    return _unique([low + k * step for k in _spread(n_steps, n_points)])


def _spread(n_steps: int, n_points: int) -> list[int]:
    """Step indices ``0 .. n_steps``: all of them, or ``n_points`` spread evenly."""
    if n_steps + 1 <= n_points:
        return list(range(n_steps + 1))
    return [int(math.floor(k + 0.5)) for k in np.linspace(0, n_steps, n_points)]


def _tidy(value: float, low: float, high: float) -> float:
    """``value`` to 12 significant digits (1e-3, not 0.0009999999999999998), kept in bounds."""
    return min(max(float(f"{value:.12g}"), low), high)


def _unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def suggest_with(trial: Trial, name: str, distribution: BaseDistribution) -> Any:
    """Suggest ``name`` on ``trial`` with exactly ``distribution``, through the public API."""
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    assert isinstance(distribution, CategoricalDistribution)
    return trial.suggest_categorical(name, list(distribution.choices))
