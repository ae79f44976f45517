"""The criteria every study applies (studies/_common.py): rankings, verdicts, robust sizes."""

from __future__ import annotations

import math

import numpy as np

from studies._common import criteria_table
from studies._common import lead_finding
from studies._common import robust_from
from studies._common import verdict


def test_criteria_table_ranks_by_mean_and_by_spread() -> None:
    losses = {"steady": [2.0, 2.1, 1.9], "good": [1.0, 1.5, 0.5], "broken": [1.0, math.inf]}
    table = criteria_table(losses).set_index("model")
    assert table["rank by mean"].to_dict() == {"steady": 2, "good": 1, "broken": 3}
    assert table["rank by std"].to_dict() == {"steady": 1, "good": 2, "broken": 3}


def test_lead_finding_needs_the_expected_models_first_and_decidedly_better() -> None:
    losses = {"steady": [2.0, 2.1, 1.9], "good": [1.0, 1.5, 0.5], "broken": [1.0, math.inf]}
    options = {"finding": "f", "paper": "p", "tested": True}
    first = lead_finding(losses, ["good"], "mean", **options)
    assert first["verdict"] == "direction only"  # first, but not shown better than steady
    assert first["here"].startswith("by mean: good 1, steady 2")
    assert lead_finding(losses, ["steady"], "mean", **options)["verdict"] == "not reproduced"
    clear = {"a": [1.0, 1.01, 0.99, 1.0], "b": [2.0, 2.02, 1.98, 2.0], "c": [3.0, 3.1, 2.9]}
    assert lead_finding(clear, ["a", "b"], "mean", **options)["verdict"] == "reproduced"
    assert lead_finding(clear, ["a"], "mean", **{**options, "tested": False})["verdict"] == (
        "not tested at this scale"
    )


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
