"""Property-based checks of select's invariants over random candidate sets and losses."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import optuna

import optuna_robust
from optuna_robust import Instance
from optuna_robust import RobustPruner
from optuna_robust import RobustSampler


@st.composite
def selections(draw: st.DrawFn) -> dict[str, Any]:
    n_candidates = draw(st.integers(min_value=1, max_value=80))
    return {
        "n_candidates": n_candidates,
        "levels": draw(
            st.lists(st.floats(0.0, 10.0), min_size=n_candidates, max_size=n_candidates)
        ),
        "spreads": draw(
            st.lists(st.floats(0.0, 5.0), min_size=n_candidates, max_size=n_candidates)
        ),
        "diverge": draw(st.lists(st.booleans(), min_size=n_candidates, max_size=n_candidates)),
        "eta": draw(st.sampled_from([2, 3, 4])),
        "n_keep": draw(st.integers(min_value=1, max_value=3)),
        "baseline": draw(st.one_of(st.none(), st.floats(1.0, 12.0))),
        "statistic": draw(st.sampled_from(["mean", "median", "max", "quantile:0.9", "cvar:0.5"])),
        "max_instances": draw(st.one_of(st.none(), st.integers(min_value=1, max_value=40))),
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(selections())
def test_select_invariants(case: dict[str, Any]) -> None:
    def train_fn(params: dict[str, Any], instances: list[Instance]) -> list[float]:
        k = params["k"]
        if case["diverge"][k] and k % 3 == 0:
            return [float("nan") if i.index % 2 else 1.0 for i in instances]
        rng = [np.random.default_rng(i.init_seed) for i in instances]
        return [case["levels"][k] + case["spreads"][k] * r.exponential() for r in rng]

    pruner = RobustPruner(
        reduction_factor=case["eta"],
        n_keep=case["n_keep"],
        baseline=case["baseline"],
        statistic=case["statistic"],
        max_instances=case["max_instances"],
    )
    study = optuna.create_study(
        sampler=RobustSampler({"k": list(range(case["n_candidates"]))}, seed=0), pruner=pruner
    )
    result = optuna_robust.select(study, train_fn, final_instances=3, seed=0)
    rounds = result.rounds

    previous = 0
    for row in rounds.itertuples():
        # The instance counts add up to the round table.
        assert row.instances == row.models * (row.instances_per_model - previous)
        gated = row.round == 0 and case["baseline"] is not None
        last = pruner.is_last_rung(row.round)
        if not gated and not last:
            # Survivors shrink by the reduction factor, never below n_keep (or what is there).
            assert row.survivors == min(max(row.models // case["eta"], case["n_keep"]), row.models)
        previous = row.instances_per_model
    assert rounds["cumulative"].iloc[-1] == rounds["instances"].sum()
    assert result.budget.selection_instances == rounds["instances"].sum()
    stored = sum(len(optuna_robust.instance_losses(t)) for t in study.trials)
    assert stored == result.budget.selection_instances

    # The winners are the best of the last round by the statistic.
    count = int(rounds["instances_per_model"].iloc[-1])
    last_cohort = [t for t in study.trials if len(optuna_robust.instance_losses(t)) >= count]
    values = sorted(
        pruner.statistic_value(optuna_robust.instance_losses(t)[:count]) for t in last_cohort
    )
    for rank, winner in enumerate(
        sorted(
            result.winners,
            key=lambda t: pruner.statistic_value(optuna_robust.instance_losses(t)[:count]),
        )
    ):
        assert (
            pruner.statistic_value(optuna_robust.instance_losses(winner)[:count]) == values[rank]
        )
    assert len(result.winners) <= case["n_keep"]
