"""Comparing instance losses (calo/comparison.py): Student quantiles, intervals that cover."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optuna_robust.calo.comparison import compare
from optuna_robust.calo.comparison import student_quantile


@pytest.mark.parametrize(
    ("dof", "expected"),
    [(1, 12.706205), (2, 4.302653), (3, 3.182446), (5, 2.570582), (10, 2.228139), (30, 2.042272)],
)
def test_student_quantile_matches_the_tables(dof: int, expected: float) -> None:
    assert student_quantile(0.975, dof) == pytest.approx(expected, rel=2e-3)


def test_mean_interval_covers_at_its_level_with_unequal_spreads() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(2000):
        a, b = rng.normal(1.0, 0.1, 6), rng.normal(1.2, 0.3, 8)
        difference = compare(a, b, "mean")
        covered += difference.low <= -0.2 <= difference.high
    assert 0.93 <= covered / 2000 <= 0.97


def test_spread_comparison_finds_a_threefold_spread_and_rarely_a_false_one() -> None:
    rng = np.random.default_rng(1)
    found = sum(
        compare(rng.normal(0, 1, 20), rng.normal(5, 3, 20), "std").high < 0 for _ in range(200)
    )
    false = sum(
        compare(rng.normal(0, 1, 10), rng.normal(5, 1, 10), "std").decided for _ in range(1000)
    )
    assert found / 200 >= 0.9
    assert false / 1000 <= 0.08  # level 0.95: about 5 % false alarms


def test_a_diverged_instance_loses_by_both_criteria() -> None:
    good, bad = [1.0, 1.1, 0.9], [1.0, math.inf, 0.9]
    for criterion in ("mean", "std"):
        assert compare(bad, good, criterion).low > 0
        assert compare(good, bad, criterion).high < 0
        assert not compare(bad, bad, criterion).decided
    with pytest.raises(ValueError, match="criterion must be one of"):
        compare(good, good, "iqr")
