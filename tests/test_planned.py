"""Budget-planned halving: RobustPruner(max_trainings=...) in select and in study.optimize."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import optuna
import pytest

import optuna_robust
from optuna_robust import Instance
from optuna_robust import RobustPruner
from optuna_robust import RobustSampler


class _Counting:
    """A train_fn whose loss is ``x`` plus seeded noise, counting every training."""

    def __init__(self, noise: float = 0.05, fail: set[int] = frozenset()) -> None:
        self.noise = noise
        self.fail = fail
        self.trainings = 0

    def __call__(self, params: dict[str, Any], instances: list[Instance]) -> list[float]:
        if params["x"] in self.fail:
            raise RuntimeError(f"model {params['x']} diverged")
        self.trainings += len(instances)
        return [params["x"] + self.noise * ((i.init_seed % 101) / 100 - 0.5) for i in instances]


def _study(n: int, storage: Any = None, name: str | None = None, **pruner: Any) -> optuna.Study:
    return optuna.create_study(
        storage=storage,
        study_name=name,
        sampler=RobustSampler({"x": list(range(n))}, seed=0),
        pruner=RobustPruner(**pruner),
    )


def _spent(rungs: list[optuna_robust.PlannedRung]) -> int:
    before = [0] + [r.instances for r in rungs]
    return sum(r.models * (r.instances - b) for r, b in zip(rungs, before))


# -- the plan ----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 600),
    extra=st.integers(0, 20_000),
    eta=st.integers(2, 4),
    n_keep=st.integers(1, 4),
    min_instances=st.integers(1, 3),
    gate=st.booleans(),
)
def test_the_plan_spends_at_most_the_budget_and_halves_down_to_n_keep(
    n: int, extra: int, eta: int, n_keep: int, min_instances: int, gate: bool
) -> None:
    budget = n * min_instances + extra
    pruner = RobustPruner(
        max_trainings=budget,
        reduction_factor=eta,
        n_keep=n_keep,
        min_instances=min_instances,
        baseline=1.0 if gate else None,
    )
    rungs = pruner.planned_rungs(n)
    assert _spent(rungs) <= budget
    assert rungs[0].instances >= min_instances and rungs[0].models == n
    assert all(a.instances < b.instances for a, b in zip(rungs, rungs[1:]))
    assert all(a.survivors == b.models for a, b in zip(rungs, rungs[1:]))
    assert rungs[-1].survivors == min(n, n_keep)
    # Up to rounding, the budget is spent: what is left cannot buy one more instance each for
    # the last rung's models.
    assert budget - _spent(rungs) < max(len(rungs), 1) * n or len(rungs) == 1


def test_at_the_papers_natural_budget_the_plan_is_the_papers_schedule() -> None:
    # 128 candidates, rungs 1, 2, ..., 64: 128 + 6 x 64 = 512 trainings.
    rungs = RobustPruner(max_trainings=512).planned_rungs(128)
    paper = RobustPruner()
    assert [r.instances for r in rungs] == [paper.rung_instances(r) for r in range(7)]
    assert [r.survivors for r in rungs] == [64, 32, 16, 8, 4, 2, 1]


def test_a_round_that_affords_no_instance_halves_on_the_instances_it_has() -> None:
    # 5 % of 128 x 50: round 1 cannot give 64 models one more instance each.
    rungs = RobustPruner(max_trainings=320).planned_rungs(128)
    assert rungs[0] == optuna_robust.PlannedRung(instances=1, models=128, survivors=32)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_trainings": 0}, "max_trainings must be >= 1"),
        ({"max_trainings": 2.5}, "max_trainings must be None or an integer"),
        ({"max_trainings": True}, "max_trainings must be None or an integer"),
        ({"max_trainings": 100, "max_instances": 8}, "leave max_instances=None"),
        ({"max_trainings": 100, "growth": "linear"}, "growth='geometric'"),
    ],
)
def test_invalid_budgets_name_the_value(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RobustPruner(**kwargs)


def test_a_budget_below_one_instance_each_is_refused_before_training() -> None:
    train = _Counting()
    study = _study(20, max_trainings=19)
    with pytest.raises(ValueError, match=r"max_trainings=19 cannot train .* 20 candidates"):
        optuna_robust.select(study, train, final_instances=0)
    assert train.trainings == 0 and not study.trials
    with pytest.raises(ValueError, match="no fixed rungs"):
        RobustPruner(max_trainings=100).rung_instances(0)


# -- select ----------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [40, 64, 100, 250, 1_000])
def test_select_spends_at_most_the_budget_and_finds_the_best(budget: int) -> None:
    train = _Counting()
    result = optuna_robust.select(
        _study(32, max_trainings=budget), train, final_instances=3, seed=0
    )
    assert result.winners[0].params == {"x": 0}
    assert train.trainings == result.budget.instances
    assert result.budget.selection_instances <= budget
    assert result.budget.final_instances == 3
    assert result.rounds["survivors"].iloc[-1] == 1
    assert result.rounds["cumulative"].iloc[-1] == result.budget.selection_instances
    # Up to rounding, what the user gave is spent (at most one instance per model per round).
    assert budget - result.budget.selection_instances < 32 * len(result.rounds)


def test_select_at_the_natural_budget_trains_what_the_papers_schedule_trains() -> None:
    paper, planned = _Counting(), _Counting()
    by_paper = optuna_robust.select(_study(64), paper, final_instances=0, seed=0)
    natural = by_paper.budget.selection_instances
    by_plan = optuna_robust.select(
        _study(64, max_trainings=natural), planned, final_instances=0, seed=0
    )
    assert by_plan.rounds.equals(by_paper.rounds)
    assert by_plan.winners[0].params == by_paper.winners[0].params


def test_failed_models_leave_their_share_to_the_others() -> None:
    train = _Counting(fail={1, 2, 3})
    result = optuna_robust.select(_study(16, max_trainings=200), train, final_instances=0)
    assert result.winners[0].params == {"x": 0}
    assert train.trainings == result.budget.selection_instances <= 200
    assert 200 - train.trainings < 16 * len(result.rounds)


def test_the_baseline_gate_comes_first_and_the_passers_share_the_budget() -> None:
    train = _Counting(noise=0.0)
    # Baseline 4, tolerance 0: models 0..4 pass, 11 are gated after one instance each.
    study = _study(16, max_trainings=100, baseline=4.0, baseline_tolerance=0.0)
    result = optuna_robust.select(study, train, final_instances=0)
    assert result.rounds["survivors"].iloc[0] == 5
    assert result.winners[0].params == {"x": 0}
    assert 100 - 16 < train.trainings <= 100


def test_select_maximising_picks_the_highest_score() -> None:
    study = optuna.create_study(
        direction="maximize",
        sampler=RobustSampler({"x": list(range(16))}, seed=0),
        pruner=RobustPruner(max_trainings=120),
    )
    result = optuna_robust.select(study, _Counting(), final_instances=2)
    assert result.winners[0].params == {"x": 15}


class _Interrupt(BaseException):
    pass


def test_an_interrupted_planned_selection_resumes_to_the_same_result() -> None:
    whole = _Counting()
    expected = optuna_robust.select(
        _study(32, max_trainings=300), whole, final_instances=2, seed=0
    )

    storage = optuna.storages.InMemoryStorage()
    first = _Counting()

    def dies(params: dict[str, Any], instances: list[Instance]) -> list[float]:
        if first.trainings > 150:
            raise _Interrupt
        return first(params, instances)

    with pytest.raises(_Interrupt):
        optuna_robust.select(
            _study(32, storage, "run", max_trainings=300), dies, final_instances=2, seed=0
        )
    study = optuna.load_study(
        study_name="run",
        storage=storage,
        sampler=RobustSampler({"x": list(range(32))}, seed=0),
        pruner=RobustPruner(max_trainings=300),
    )
    rest = _Counting()
    result = optuna_robust.select(study, rest, final_instances=2, seed=0)
    assert first.trainings + rest.trainings == whole.trainings  # nothing trained twice
    assert result.rounds.equals(expected.rounds)
    assert [t.params for t in result.winners] == [t.params for t in expected.winners]
    assert result.winners[0].value == expected.winners[0].value


def test_a_rerun_with_another_budget_is_refused() -> None:
    storage = optuna.storages.InMemoryStorage()
    optuna_robust.select(_study(8, storage, "run", max_trainings=40), _Counting())
    study = optuna.load_study(
        study_name="run",
        storage=storage,
        sampler=RobustSampler({"x": list(range(8))}, seed=0),
        pruner=RobustPruner(max_trainings=80),
    )
    with pytest.raises(ValueError, match="max_trainings"):
        optuna_robust.select(study, _Counting())


# -- study.optimize ----------------------------------------------------------------------------


def test_the_budget_planned_pruner_never_prunes_a_trial_itself() -> None:
    """Its decisions are whole rounds, which the RobustSampler hands out (see
    tests/test_planned_optimize.py); a hand-made objective that asks it is never pruned."""
    study = _study(8, max_trainings=40)

    def reports(trial: optuna.Trial) -> float:
        trial.suggest_categorical("x", list(range(8)))
        for step in (1, 2, 4):
            trial.report(100.0 + trial.number, step)
            assert not trial.should_prune()
        return 1.0

    study.optimize(reports, n_trials=8)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 8


@pytest.mark.timeout(30)
def test_an_explicit_cap_above_the_pruners_is_refused_not_a_hang() -> None:
    study = _study(2, max_instances=4)
    with pytest.raises(ValueError, match="above the pruner's max_instances"):
        study.optimize(
            lambda t: optuna_robust.evaluate_instances(
                t, lambda i: [t.suggest_categorical("x", [0, 1])] * len(i), max_instances=8
            )
        )
