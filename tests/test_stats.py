from __future__ import annotations

import math

import numpy as np
import pytest

from optuna_robust._stats import resolve_statistic
from optuna_robust._stats import robust_value

LOSSES = np.array([4.0, 1.0, 3.0, 2.0, 10.0])


@pytest.mark.parametrize(
    ("statistic", "expected"),
    [
        ("mean", 4.0),
        ("median", 3.0),
        ("max", 10.0),
        ("min", 1.0),
        ("std", float(np.std(LOSSES, ddof=1))),
        ("iqr", 4.0 - 2.0),
        ("quantile:0.5", 3.0),
        ("quantile:1", 10.0),
        ("cvar:0.6", (10.0 + 4.0) / 2),  # the worst 40 % of 5 losses: 2 of them
        ("cvar:0", 4.0),  # the worst 100 %: the mean
    ],
)
def test_statistic_values(statistic: str, expected: float) -> None:
    assert robust_value(resolve_statistic(statistic), LOSSES) == pytest.approx(expected)


def test_statistic_callable_is_used_as_is() -> None:
    assert robust_value(resolve_statistic(lambda x: float(x[0])), LOSSES) == 4.0


@pytest.mark.parametrize("statistic", ["mean", "median", "max", "std", "iqr", "cvar:0.5"])
def test_statistic_nan_counts_as_worst(statistic: str) -> None:
    clean = robust_value(resolve_statistic(statistic), LOSSES)
    broken = robust_value(resolve_statistic(statistic), np.append(LOSSES, math.nan))
    assert broken >= clean
    assert not math.isnan(broken)


def test_statistic_empty_is_inf() -> None:
    assert robust_value(resolve_statistic("mean"), np.array([])) == math.inf


@pytest.mark.parametrize(
    ("statistic", "match"),
    [
        ("average", "Unknown statistic 'average'"),
        ("quantile:1.5", "must be a number in \\[0, 1\\]"),
        ("cvar:1", "must be a number in \\[0, 1\\)"),
        ("quantile:abc", "but got 'abc'"),
        ("quantile:", "Unknown statistic"),
        (3, "must be a string or a callable but got 3"),
    ],
)
def test_statistic_invalid_names_value(statistic: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        resolve_statistic(statistic)  # type: ignore[arg-type]
