"""The criteria every study applies (studies/_common.py): intervals that cover, verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from studies._common import compare
from studies._common import criteria_table
from studies._common import leads
from studies._common import robust_from
from studies._common import student_quantile
from studies._common import verdict


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


def test_criteria_table_ranks_by_mean_and_by_spread() -> None:
    losses = {"steady": [2.0, 2.1, 1.9], "good": [1.0, 1.5, 0.5], "broken": [1.0, math.inf]}
    table = criteria_table(losses).set_index("model")
    assert table["rank by mean"].to_dict() == {"steady": 2, "good": 1, "broken": 3}
    assert table["rank by std"].to_dict() == {"steady": 1, "good": 2, "broken": 3}
    assert leads(losses, "good", "mean") == (True, False)  # first, not shown better than steady
    clear = {"a": [1.0, 1.01, 0.99, 1.0], "b": [2.0, 2.02, 1.98, 2.0]}
    assert leads(clear, "a", "mean") == (True, True)
    assert leads(clear, "b", "mean") == (False, False)


def test_verdict_follows_the_numbers() -> None:
    assert verdict(tested=False, agrees=True, decided=True) == "not tested at this scale"
    assert verdict(tested=True, agrees=False, decided=True) == "not reproduced"
    assert verdict(tested=True, agrees=True, decided=False) == "direction only"
    assert verdict(tested=True, agrees=True, decided=True) == "reproduced"


def test_robust_from_needs_evidence_that_larger_sizes_are_no_better() -> None:
    rng = np.random.default_rng(2)

    def losses(mean: float, spread: float) -> np.ndarray:
        return rng.normal(mean, spread, 12)

    saturating = {100: losses(3.0, 0.5), 1000: losses(1.0, 0.05), 4000: losses(1.0, 0.05)}
    assert robust_from(saturating, tolerance=0.1) == 1000
    improving = {100: losses(3.0, 0.5), 1000: losses(2.0, 0.05), 4000: losses(1.0, 0.05)}
    assert robust_from(improving, tolerance=0.1) is None  # the largest never passes alone
    noisy = {100: losses(1.0, 1.0), 4000: losses(1.0, 0.01)}
    assert robust_from(noisy, tolerance=0.1) is None  # not shown close: too few, too noisy
