"""robustness_report ranks models the way a selection reads: furthest first, then the statistic."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import pytest

import optuna_robust
from optuna_robust import Instance
from optuna_robust import RobustPruner
from optuna_robust import RobustSampler


def _model(number: int, values: list[float], state: TrialState = TrialState.COMPLETE) -> Any:
    """A trial of model ``number`` whose instances had ``values``."""
    records = {f"robust:selection:{i:06d}": {"loss": v} for i, v in enumerate(values)}
    trial = optuna.trial.create_trial(
        state=state,
        value=float(np.mean(values)) if state == TrialState.COMPLETE else None,
        params={"m": number},
        distributions={"m": CategoricalDistribution(list(range(10)))},
        user_attrs=records,
        intermediate_values={len(values): float(np.mean(values))},
    )
    trial.number = number
    return trial


def test_report_ranks_completed_models_above_pruned_lucky_ones() -> None:
    lucky = _model(0, [0.05], TrialState.PRUNED)  # the lowest loss, on one instance only
    steady = _model(1, [0.3] * 16)
    better = _model(2, [0.2] * 16)
    halfway = _model(3, [0.1, 0.15, 0.12, 0.11], TrialState.PRUNED)
    report = optuna_robust.robustness_report([lucky, steady, better, halfway])
    assert report["trial"].tolist() == [2, 1, 3, 0]
    assert report["instances"].tolist() == [16, 16, 4, 1]


def test_report_of_one_instance_has_no_std() -> None:
    report = optuna_robust.robustness_report([_model(0, [0.5], TrialState.PRUNED)])
    row = report.iloc[0]
    assert math.isnan(row["std"])
    assert row["mean"] == row["min"] == row["max"] == 0.5
    assert "–" in report.to_string(na_rep="–")
    two = optuna_robust.robustness_report([_model(1, [0.5, 0.7])]).iloc[0]
    assert two["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))


def test_report_direction_keyword_ranks_scores_highest_first() -> None:
    trials = [_model(0, [0.9, 0.7]), _model(1, [0.8, 0.82]), _model(2, [0.6, 0.65])]
    assert optuna_robust.robustness_report(trials)["trial"].tolist() == [2, 0, 1]
    scores = optuna_robust.robustness_report(trials, direction="maximize")
    assert scores["trial"].tolist() == [1, 0, 2]  # mean 0.81, 0.80, 0.625
    worst_case = optuna_robust.robustness_report(trials, statistic="max", direction="maximize")
    assert worst_case["trial"].tolist() == [1, 0, 2]  # lowest scores 0.8, 0.7, 0.6
    assert worst_case["statistic"].tolist() == [0.8, 0.7, 0.6]
    assert worst_case["max"].tolist() == [0.82, 0.9, 0.65]  # the column stays the plain max
    same = optuna_robust.robustness_report(trials, direction=optuna.study.StudyDirection.MAXIMIZE)
    assert same["trial"].tolist() == [1, 0, 2]


def _accuracy_study(direction: str) -> optuna.Study:
    """An asynchronous study whose model q scores about 0.5 + q / 20, noisily."""
    sign = 1.0 if direction == "maximize" else -1.0
    study = optuna.create_study(
        direction=direction,
        sampler=RobustSampler({"q": list(range(8))}, seed=0),
        pruner=RobustPruner(statistic="mean", max_instances=8),
    )

    def objective(trial: optuna.Trial) -> float:
        q = trial.suggest_categorical("q", list(range(8)))

        def train_fn(instances: list[Instance]) -> list[float]:
            noise = [np.random.default_rng(i.init_seed).normal(0, 0.05) for i in instances]
            return [sign * (0.5 + q / 20 + e) for e in noise]

        return optuna_robust.evaluate_instances(trial, train_fn, seed=0)

    study.optimize(objective)
    return study


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_report_of_a_study_follows_its_direction(direction: str) -> None:
    study = _accuracy_study(direction)
    report = optuna_robust.robustness_report(study)
    completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(completed) < len(study.trials)  # some models were pruned
    # The first rows are the completed models, in the study's own order of best values.
    top = report.iloc[: len(completed)]
    assert set(top["state"]) == {"COMPLETE"}
    assert top["trial"].iloc[0] == study.best_trial.number
    values = top["statistic"].tolist()
    assert values == sorted(values, reverse=direction == "maximize")
    assert (report["instances"].diff().dropna() <= 0).all()


def test_report_refuses_a_direction_against_the_study() -> None:
    study = _accuracy_study("maximize")
    with pytest.raises(ValueError, match="direction='minimize' contradicts study"):
        optuna_robust.robustness_report(study, direction="minimize")
    assert not optuna_robust.robustness_report(study, direction="maximize").empty


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"direction": "max"}, "direction must be 'minimize', 'maximize' or None but got 'max'"),
        ({"direction": optuna.study.StudyDirection.NOT_SET}, "direction must be"),
        ({"direction": "maximize", "statistic": "std"}, "statistic 'std' is a spread"),
        ({"phase": "rounds"}, "phase must be"),
    ],
)
def test_report_invalid_arguments(kwargs: dict[str, Any], match: str) -> None:
    trials: list[FrozenTrial] = [_model(0, [0.5])]
    with pytest.raises(ValueError, match=match):
        optuna_robust.robustness_report(trials, **kwargs)


def test_report_without_instances_is_empty_with_the_columns() -> None:
    trial = optuna.trial.create_trial(value=1.0)
    report = optuna_robust.robustness_report([trial])
    assert report.empty and "statistic" in report.columns
