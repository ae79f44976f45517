"""The variance-share intervals of studies/init_vs_sampling cover at their nominal level.

Grids are drawn from the two-way random-effects model the study fits, with known shares; the
95 % intervals must contain the true share in 92-98 % of 1,000 grids (standard error 0.7 %:
0.92 lies 4 standard errors from both 0.95 and the 0.89 of the rows-and-columns bootstrap
they replace, measured on the first case below).
"""

from __future__ import annotations

import numpy as np
import pytest

from studies.init_vs_sampling.study import share_draws
from studies.init_vs_sampling.study import variance_shares


def _grids(shares: tuple[float, float, float], n: int, shape: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(42)
    sd = np.sqrt(shares)
    n_data, n_init = shape
    return (
        5.0
        + sd[0] * rng.normal(size=(n, n_data, 1))
        + sd[1] * rng.normal(size=(n, 1, n_init))
        + sd[2] * rng.normal(size=(n, n_data, n_init))
    )


@pytest.mark.parametrize(
    ("shares", "shape"),
    [
        ((0.05, 0.85, 0.10), (10, 10)),  # like the cpu run: the bootstrap's 89-90 % case
        ((0.4, 0.4, 0.2), (10, 10)),
        ((0.1, 0.3, 0.6), (10, 10)),
        ((0.2, 0.6, 0.2), (6, 12)),
    ],
)
def test_share_intervals_cover_at_the_nominal_level(
    shares: tuple[float, float, float], shape: tuple[int, int]
) -> None:
    rng = np.random.default_rng(7)
    covered = np.zeros(3)
    grids = _grids(shares, 1000, shape)
    for grid in grids:
        low, high = np.percentile(share_draws(grid, 1000, rng), [2.5, 97.5], axis=0)
        covered += (low <= shares) & (np.asarray(shares) <= high)
    coverage = covered / len(grids)
    assert np.all(coverage >= 0.92), coverage
    assert np.all(coverage <= 0.98), coverage  # not bought with uselessly wide intervals


def test_variance_shares_recover_known_shares_on_a_large_grid() -> None:
    grid = _grids((0.2, 0.5, 0.3), 1, (200, 200))[0]
    np.testing.assert_allclose(variance_shares(grid), [0.2, 0.5, 0.3], atol=0.06)
