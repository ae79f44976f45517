"""Comparing two models' instance losses: by the mean (Welch) and by the spread (Brown-Forsythe).

The studies (``studies/_common.py``) and the demo judge robustness with these, numpy only: an
interval at ``LEVEL`` for the difference of two models by either criterion, and whether it
settles the sign.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["CRITERIA", "LEVEL", "Difference", "compare", "student_quantile"]

CRITERIA = {"mean": "mean test loss", "std": "standard deviation of the instance losses"}
LEVEL = 0.95


@dataclass(frozen=True)
class Difference:
    """``a - b`` for one criterion, with its interval at ``LEVEL``.

    For ``"mean"`` it is the difference of the mean losses (Welch's interval); for ``"std"``
    the Brown-Forsythe comparison: the difference of the mean absolute deviations from each
    model's median, with Welch's interval (its sign is that of the difference in spread). A
    model with a diverged (infinite) instance is worse by either criterion than one without.
    """

    criterion: str
    estimate: float
    low: float
    high: float

    @property
    def decided(self) -> bool:
        """The interval excludes zero: the sign of the difference is established."""
        return self.low > 0 or self.high < 0


def compare(a: ArrayLike, b: ArrayLike, criterion: str) -> Difference:
    """Compare two models' instance losses by ``"mean"`` or ``"std"`` (see :class:`Difference`)."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {list(CRITERIA)} but got {criterion!r}.")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    worse_x, worse_y = not np.all(np.isfinite(x)), not np.all(np.isfinite(y))
    if worse_x or worse_y:  # a diverged instance: infinitely bad, by either criterion
        sign = 0.0 if worse_x and worse_y else (math.inf if worse_x else -math.inf)
        return Difference(criterion, sign, sign, sign) if sign else _undecided(criterion)
    if criterion == "std":
        if min(x.size, y.size) < 3:  # two deviations from their median are always equal
            return _undecided(criterion)
        x, y = np.abs(x - np.median(x)), np.abs(y - np.median(y))
    return _welch(x, y, criterion)


def _undecided(criterion: str) -> Difference:
    return Difference(criterion, math.nan, -math.inf, math.inf)


def _welch(x: np.ndarray, y: np.ndarray, criterion: str) -> Difference:
    """Welch's interval for mean(x) - mean(y), Student quantile by Cornish-Fisher."""
    if x.size < 2 or y.size < 2:
        return _undecided(criterion)
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    estimate = float(x.mean() - y.mean())
    if vx + vy == 0:
        return Difference(criterion, estimate, estimate, estimate)
    dof = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    half = student_quantile(0.5 + LEVEL / 2, dof) * math.sqrt(vx + vy)
    return Difference(criterion, estimate, estimate - half, estimate + half)


def student_quantile(p: float, dof: float) -> float:
    """Quantile of Student's t: Cornish-Fisher to 1/dof^4 (within 0.2 % for dof >= 3); below
    3 degrees of freedom the exact quantile at floor(dof) (conservative)."""
    if dof < 2:
        return math.tan(math.pi * (p - 0.5))
    if dof < 3:
        return (2 * p - 1) * math.sqrt(2 / (4 * p * (1 - p)))
    z = NormalDist().inv_cdf(p)
    terms = (
        (z**3 + z) / 4,
        (5 * z**5 + 16 * z**3 + 3 * z) / 96,
        (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
    )
    return z + sum(term / dof ** (k + 1) for k, term in enumerate(terms))
