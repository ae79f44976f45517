"""The reference reconstructions a network must beat (paper section 3.1).

``"parametric"``: the scaled sum of deposits (energy) or the 3x3 barycentre with the S-shape
correction (position); ``"xgboost"``: gradient-boosted trees on cluster features. Each is fitted
on a training :class:`~optuna_robust.calo._sample.Sample` and scored with the paper's losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations_with_replacement
import math
from typing import Any
from typing import ClassVar
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from optuna_robust._imports import import_optional
from optuna_robust.calo._sample import Sample
from optuna_robust.calo.data import GRID_SIZE
from optuna_robust.calo.losses import TASKS
from optuna_robust.calo.losses import loss_for

__all__ = [
    "BASELINES",
    "Baseline",
    "CorrectedBarycentre",
    "ScaledSum",
    "XGBoostBaseline",
    "baseline_loss",
    "fit_baseline",
]

BASELINES = ("parametric", "xgboost")
FloatArray = NDArray[np.float64]

# The paper's group's settings for the boosted trees (DESIGN.md section 3), in the names of
# xgboost's native API: XGBRegressor's learning_rate=0.1, n_estimators=75, max_depth=3,
# subsample=0.8, reg_alpha=0.8, colsample_bytree=0.8. (XGBRegressor itself needs scikit-learn.)
_XGBOOST_PARAMS = {
    "objective": "reg:squarederror",
    "tree_method": "hist",
    "eta": 0.1,
    "max_depth": 3,
    "subsample": 0.8,
    "alpha": 0.8,
    "colsample_bytree": 0.8,
    "nthread": 1,  # one thread: reproducible to the bit, and fast enough at these sizes
}
_XGBOOST_ROUNDS = 75


class Baseline(Protocol):
    """A fitted baseline: predicts the task's target (energy in GeV, or x in mm)."""

    @property
    def name(self) -> str: ...

    @property
    def task(self) -> str: ...

    def predict(self, sample: Sample) -> FloatArray: ...


@dataclass(frozen=True)
class ScaledSum:
    """Energy = ``scale`` x the sum of all cells.

    Attributes:
        scale:
            Fitted by least squares in the normalised metric; about 1 / sampling fraction.
    """

    scale: float
    name: ClassVar[str] = "parametric"
    task: ClassVar[str] = "energy"

    @classmethod
    def fit(cls, train: Sample) -> ScaledSum:
        """Minimise sum((k S - E)^2 / E) over k: k = sum(S) / sum(S^2 / E)."""
        cluster_sum, energy = _cluster_sum(train), _numpy(train.energy)
        return cls(scale=float(cluster_sum.sum() / (cluster_sum**2 / energy).sum()))

    def predict(self, sample: Sample) -> FloatArray:
        return self.scale * _cluster_sum(sample)


@dataclass(frozen=True)
class CorrectedBarycentre:
    """x from the 3x3 barycentre around the hottest cell, with the S-shape correction.

    ``x = x_seed + b asinh((x_cog - x_seed) / D sinh(D / b))`` with D half a cell: the
    inverse of the barycentre of an exponential profile exp(-|x|/b) (LHCb: b ~ 0.1-0.15 cell).

    Attributes:
        shape_mm:
            The fitted b in mm.
        cell_size:
            Cell pitch in mm.
    """

    shape_mm: float
    cell_size: float
    name: ClassVar[str] = "parametric"
    task: ClassVar[str] = "position"

    @classmethod
    def fit(cls, train: Sample, cell_size: float) -> CorrectedBarycentre:
        """Fit b by least squares on x and y together (the showers are symmetric)."""
        seed_x, cog_x, seed_y, cog_y = _barycentre(_numpy(train.deposits), cell_size)
        seed = np.concatenate([seed_x, seed_y])
        offset = np.concatenate([cog_x, cog_y]) - seed
        true = np.concatenate([_numpy(train.x), _numpy(train.y)])

        def squared_error(log_b: float) -> float:
            corrected = _s_shape(seed, offset, math.exp(log_b), cell_size / 2)
            return float(np.mean((corrected - true) ** 2))

        log_b = _golden_section(squared_error, math.log(0.02 * cell_size), math.log(cell_size))
        return cls(shape_mm=math.exp(log_b), cell_size=cell_size)

    def predict(self, sample: Sample) -> FloatArray:
        seed_x, cog_x, _, _ = _barycentre(_numpy(sample.deposits), self.cell_size)
        return _s_shape(seed_x, cog_x - seed_x, self.shape_mm, self.cell_size / 2)


@dataclass(frozen=True)
class XGBoostBaseline:
    """Boosted trees on the 3x3 and 5x5 sums around the hottest cell (and, for position, the
    3x3 and 5x5 barycentres) with their degree-2 polynomial combinations.

    The trees predict a correction to a physical estimate, which a few shallow trees can
    model: energy / (5x5 sum), weighted so that the fit minimises the normalised energy loss;
    and x minus the centre of the hottest cell.

    Attributes:
        task:
            ``"energy"`` or ``"position"``.
        model:
            The fitted ``xgboost.Booster``.
        cell_size:
            Cell pitch in mm.
    """

    task: str
    model: Any
    cell_size: float
    name: ClassVar[str] = "xgboost"

    @classmethod
    def fit(cls, task: str, train: Sample, seed: int, cell_size: float) -> XGBoostBaseline:
        xgboost = import_optional("xgboost")
        features, anchor, scale = _xgboost_features(task, train, cell_size)
        if task == "energy":
            energy = _numpy(train.energy)
            # (r_pred s - E)^2 / E = (s^2 / E) (r_pred - E / s)^2: the energy loss, exactly.
            matrix = xgboost.DMatrix(features, label=energy / scale, weight=scale**2 / energy)
        else:
            matrix = xgboost.DMatrix(features, label=_numpy(train.x) - anchor)
        params = {**_XGBOOST_PARAMS, "seed": seed}
        model = xgboost.train(params, matrix, num_boost_round=_XGBOOST_ROUNDS)
        return cls(task=task, model=model, cell_size=cell_size)

    def predict(self, sample: Sample) -> FloatArray:
        features, anchor, scale = _xgboost_features(self.task, sample, self.cell_size)
        xgboost = import_optional("xgboost")
        correction = self.model.predict(xgboost.DMatrix(features)).astype(np.float64)
        return anchor + scale * correction


def fit_baseline(
    name: str, task: str, train: Sample, *, seed: int = 0, cell_size: float = 40.4
) -> Baseline:
    """Fit a baseline on a training sample.

    Args:
        name:
            ``"parametric"`` (scaled sum for energy, corrected barycentre for position) or
            ``"xgboost"``.
        task:
            ``"energy"`` or ``"position"``.
        train:
            The training sample.
        seed:
            Random state of XGBoost's row and column subsampling (the parametric fits are
            deterministic).
        cell_size:
            Cell pitch in mm of the calorimeter that produced the sample.

    Returns:
        The fitted baseline; ``predict(sample)`` gives energies in GeV or x in mm.

    Example:

        .. code-block:: python

            import torch
            from optuna_robust.calo._sample import Sample
            from optuna_robust.calo.baselines import fit_baseline

            deposits = torch.zeros(4, 15, 15)
            deposits[:, 7, 7] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # visible energy
            train = Sample(deposits, 6 * deposits.sum(dim=(1, 2)), torch.zeros(4), torch.zeros(4))
            baseline = fit_baseline("parametric", "energy", train)
            assert abs(baseline.predict(train)[0] - 6.0) < 1e-9
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS} but got {task!r}.")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0 but got {seed!r}.")
    if not (isinstance(cell_size, int | float) and math.isfinite(cell_size) and cell_size > 0):
        raise ValueError(f"cell_size must be a positive number of mm but got {cell_size!r}.")
    if name == "parametric":
        if task == "energy":
            return ScaledSum.fit(train)
        return CorrectedBarycentre.fit(train, cell_size)
    if name == "xgboost":
        return XGBoostBaseline.fit(task, train, seed, cell_size)
    raise ValueError(f"name must be one of {BASELINES} but got {name!r}.")


def baseline_loss(
    name: str,
    task: str,
    train: Sample,
    test: Sample,
    *,
    seed: int = 0,
    cell_size: float = 40.4,
) -> float:
    """Fit a baseline on ``train`` and return its loss on ``test``.

    Args:
        name:
            ``"parametric"`` or ``"xgboost"``; see :func:`fit_baseline`.
        task:
            ``"energy"`` (loss: :func:`~optuna_robust.calo.losses.energy_loss`) or
            ``"position"`` (:func:`~optuna_robust.calo.losses.position_loss`).
        train:
            The training sample.
        test:
            The test sample.
        seed:
            Random state of XGBoost.
        cell_size:
            Cell pitch in mm.

    Returns:
        The test loss.
    """
    baseline = fit_baseline(name, task, train, seed=seed, cell_size=cell_size)
    true = _numpy(test.energy if task == "energy" else test.x)
    return float(loss_for(task)(baseline.predict(test), true))


def _numpy(values: Any) -> FloatArray:
    """A float64 numpy copy of a tensor (on any device) or array."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def _cluster_sum(sample: Sample) -> FloatArray:
    return _numpy(sample.deposits).sum(axis=(1, 2))


def _windows(
    deposits: FloatArray, half_widths: tuple[int, ...]
) -> tuple[list[FloatArray], FloatArray, FloatArray]:
    """Square windows of side 2h+1 around each event's hottest cell, (n, 2h+1, 2h+1) each,
    and the row and column of that cell (moved inwards where the largest window would leave
    the grid)."""
    n = len(deposits)
    margin = max(half_widths)
    hottest = deposits.reshape(n, -1).argmax(axis=1)
    rows = np.clip(hottest // GRID_SIZE, margin, GRID_SIZE - 1 - margin)
    cols = np.clip(hottest % GRID_SIZE, margin, GRID_SIZE - 1 - margin)
    windows = []
    for half in half_widths:
        offsets = np.arange(-half, half + 1)
        rows_, cols_ = (rows[:, None] + offsets)[:, :, None], (cols[:, None] + offsets)[:, None, :]
        windows.append(deposits[np.arange(n)[:, None, None], rows_, cols_])
    return windows, rows.astype(np.float64), cols.astype(np.float64)


def _barycentre(
    deposits: FloatArray, cell_size: float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Centre of the hottest cell and barycentre of the 3x3 window around it, in mm:
    ``(seed_x, cog_x, seed_y, cog_y)``."""
    (window,), rows, cols = _windows(deposits, (1,))
    return _window_centre(window, rows, cols, cell_size)


def _window_centre(
    window: FloatArray, rows: FloatArray, cols: FloatArray, cell_size: float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """``(seed_x, cog_x, seed_y, cog_y)`` of a window centred on cell (rows, cols)."""
    half = window.shape[1] // 2
    offsets = np.arange(-half, half + 1) * cell_size
    total = window.sum(axis=(1, 2))
    seed_x, seed_y = (cols - GRID_SIZE // 2) * cell_size, (rows - GRID_SIZE // 2) * cell_size
    cog_x = seed_x + (window.sum(axis=1) @ offsets) / total
    cog_y = seed_y + (window.sum(axis=2) @ offsets) / total
    return seed_x, cog_x, seed_y, cog_y


def _s_shape(seed: FloatArray, offset: FloatArray, b: float, half_cell: float) -> FloatArray:
    return seed + b * np.arcsinh(offset / half_cell * math.sinh(half_cell / b))


def _golden_section(function: Any, low: float, high: float, tolerance: float = 1e-4) -> float:
    """Minimum of a unimodal function of one variable on [low, high]."""
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    f_a, f_b = function(a), function(b)
    while high - low > tolerance:
        if f_a < f_b:
            high, b, f_b = b, a, f_a
            a = high - ratio * (high - low)
            f_a = function(a)
        else:
            low, a, f_a = a, b, f_b
            b = low + ratio * (high - low)
            f_b = function(b)
    return (low + high) / 2


def _polynomial_features(base: FloatArray, degree: int = 2) -> FloatArray:
    """All monomials of the columns of ``base`` of degree 1 to ``degree``, as columns."""
    combos = [
        combo
        for power in range(1, degree + 1)
        for combo in combinations_with_replacement(range(base.shape[1]), power)
    ]
    return np.stack([np.prod(base[:, list(combo)], axis=1) for combo in combos], axis=1)


def _xgboost_features(
    task: str, sample: Sample, cell_size: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Features, and the anchor and scale that turn a tree output into a prediction."""
    (window_3, window_5), rows, cols = _windows(_numpy(sample.deposits), (1, 2))
    sum_3, sum_5 = window_3.sum(axis=(1, 2)), window_5.sum(axis=(1, 2))
    if task == "energy":
        return _polynomial_features(np.stack([sum_3, sum_5], axis=1)), np.zeros_like(sum_5), sum_5
    seed_x, cog_3, _, _ = _window_centre(window_3, rows, cols, cell_size)
    _, cog_5, _, _ = _window_centre(window_5, rows, cols, cell_size)
    base = np.stack([cog_3 - seed_x, cog_5 - seed_x, sum_3, sum_5], axis=1)
    return _polynomial_features(base), seed_x, np.ones_like(seed_x)
