from __future__ import annotations

import math

import optuna
from optuna.trial import TrialState
import pytest

from optuna_robust import RobustPruner


def test_rungs_geometric_and_linear() -> None:
    geometric = RobustPruner(min_instances=1, reduction_factor=2)
    assert [geometric.rung_instances(r) for r in range(6)] == [1, 2, 4, 8, 16, 32]
    three = RobustPruner(min_instances=2, reduction_factor=3, max_instances=50)
    assert [three.rung_instances(r) for r in range(5)] == [2, 6, 18, 50, 50]
    linear = RobustPruner(min_instances=3, growth="linear")
    assert [linear.rung_instances(r) for r in range(4)] == [3, 4, 5, 6]


def test_rung_of_inverts_rung_instances() -> None:
    pruner = RobustPruner(max_instances=20)
    assert [pruner.rung_of(n) for n in (1, 2, 3, 4, 16, 20, 32)] == [0, 1, None, 2, 4, 5, None]
    assert pruner.is_last_rung(5) and not pruner.is_last_rung(4)


def test_gate_drops_losses_above_baseline_tolerance() -> None:
    pruner = RobustPruner(baseline=1.0, baseline_tolerance=0.2)
    values = [1.0, 1.2, 1.2000001, 5.0, math.nan, 0.5]
    # Rung 0 applies the gate only, no halving: everything up to 1.2 passes, best first.
    assert pruner.survivors(0, values).tolist() == [5, 0, 1]


def test_halving_keeps_floor_half_and_n_keep() -> None:
    pruner = RobustPruner(n_keep=2)
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert pruner.survivors(0, values).tolist() == [1, 3]  # floor(5 / 2) = 2
    assert pruner.survivors(1, [2.0, 1.0, 3.0]).tolist() == [1, 0]  # never fewer than n_keep
    assert RobustPruner(reduction_factor=3).survivors(2, values).tolist() == [1]


def test_halving_nan_and_inf_are_worst_never_raise() -> None:
    pruner = RobustPruner()
    assert pruner.survivors(1, [math.nan, math.inf, 3.0, 7.0]).tolist() == [2, 3]


def test_last_rung_keeps_n_keep() -> None:
    pruner = RobustPruner(max_instances=4, n_keep=1)
    assert pruner.survivors(2, [3.0, 1.0, 2.0, 0.5]).tolist() == [3]


def _trial_at(study: optuna.Study, losses: list[float], pruner: RobustPruner) -> bool:
    trial = study.ask()
    step = len(losses)
    trial.report(pruner.statistic_value(losses), step)
    pruned = trial.should_prune()
    study.tell(trial, state=TrialState.PRUNED if pruned else None, values=None if pruned else 0)
    return pruned


def test_async_gate_at_rung_zero() -> None:
    pruner = RobustPruner(baseline=1.0, max_instances=8)
    study = optuna.create_study(pruner=pruner)
    assert _trial_at(study, [1.5], pruner) is True
    assert _trial_at(study, [1.1], pruner) is False
    assert _trial_at(study, [0.1], pruner) is False


def test_async_asha_promotes_best_share_of_rung() -> None:
    pruner = RobustPruner(max_instances=8)
    study = optuna.create_study(pruner=pruner)
    # Rung 1 (two instances): the first trial is alone and best, so it goes on.
    assert _trial_at(study, [1.0, 1.0], pruner) is False
    assert _trial_at(study, [2.0, 2.0], pruner) is True  # 2 trials: only the best goes on
    assert _trial_at(study, [0.5, 0.5], pruner) is False
    assert _trial_at(study, [1.5, 1.5], pruner) is True  # 4 trials: the best 2 are 0.5 and 1.0


def test_async_steps_between_rungs_never_prune() -> None:
    pruner = RobustPruner(max_instances=8)
    study = optuna.create_study(pruner=pruner)
    assert _trial_at(study, [9.0, 9.0, 9.0], pruner) is False  # 3 is not a rung


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reduction_factor": 1}, "reduction_factor must be at least 2 but got 1"),
        ({"reduction_factor": 2.5}, "reduction_factor must be an integer but got 2.5"),
        ({"min_instances": 0}, "min_instances must be an integer >= 1 but got 0"),
        ({"growth": "exponential"}, "growth must be 'geometric' or 'linear'"),
        ({"max_instances": 0}, "max_instances must be None or an integer >= min_instances"),
        ({"baseline": 0.0}, "baseline must be a positive finite loss but got 0.0"),
        ({"baseline": -1.0}, "but got -1.0"),
        ({"baseline_tolerance": -0.1}, "baseline_tolerance must be a finite number >= 0"),
        ({"n_keep": 0}, "n_keep must be an integer >= 1 but got 0"),
        ({"statistic": "mode"}, "Unknown statistic 'mode'"),
    ],
)
def test_pruner_invalid_arguments_name_the_value(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RobustPruner(**kwargs)  # type: ignore[arg-type]
