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


def _reference(statistic: str, losses: np.ndarray) -> float:
    """The statistic computed here from its definition, not through the package."""
    losses = np.where(np.isnan(losses), np.inf, losses)
    if statistic == "mean":
        return float(np.mean(losses))
    if statistic == "median":
        return float(np.median(losses))
    if statistic == "max":
        return float(np.max(losses))
    if statistic == "quantile:0.9":
        with np.errstate(invalid="ignore"):
            value = float(np.quantile(losses, 0.9))
        return np.inf if np.isnan(value) else value  # inf - inf: the worst, by convention
    assert statistic == "cvar:0.5"
    return float(np.mean(np.sort(losses)[-int(np.ceil(0.5 * losses.size)) :]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(selections())
def test_select_invariants(case: dict[str, Any]) -> None:
    trained: dict[int, list[float]] = {}  # what train_fn really returned, per model

    def train_fn(params: dict[str, Any], instances: list[Instance]) -> list[float]:
        k = params["k"]
        if case["diverge"][k] and k % 3 == 0:
            losses = [float("nan") if i.index % 2 else 1.0 for i in instances]
        else:
            rng = [np.random.default_rng(i.init_seed) for i in instances]
            losses = [case["levels"][k] + case["spreads"][k] * r.exponential() for r in rng]
        trained.setdefault(k, []).extend(losses)
        return losses

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
    # Every training train_fn did is counted once: in a round, or as a final instance.
    n_trained = sum(len(losses) for losses in trained.values())
    assert n_trained == result.budget.instances
    measured = [t for t in study.trials if optuna_robust.instance_losses(t, phase="final").size]
    assert result.budget.final_instances == 3 * len(measured)
    # A measured model is no winner only when all its final instances diverged.
    for trial in measured:
        if trial.number not in {w.number for w in result.winners}:
            assert not np.isfinite(optuna_robust.instance_losses(trial, phase="final")).any()
    assert rounds["cumulative"].iloc[-1] == n_trained - result.budget.final_instances

    # The winners are the best of the last round's cohort by the statistic, recomputed here
    # from the losses train_fn returned.
    count = int(rounds["instances_per_model"].iloc[-1])
    cohort = [t for t in study.trials if len(optuna_robust.instance_losses(t)) >= count]
    value = {
        t.number: _reference(case["statistic"], np.array(trained[t.params["k"]][:count]))
        for t in cohort
    }
    winners = {t.number for t in result.winners}
    assert len(winners) <= case["n_keep"] and winners <= set(value)
    others = [value[n] for n in value if n not in winners]
    if winners and others:
        assert max(value[n] for n in winners) <= min(others)
