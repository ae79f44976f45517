"""Budget-planned halving in study.optimize: each round as continuation trials, as in select."""

from __future__ import annotations

from collections import Counter
import logging
from pathlib import Path
import subprocess
import sys
import threading
import time
from typing import Any

import optuna
from optuna.trial import TrialState
import pytest

import optuna_robust
from optuna_robust import Instance
from optuna_robust import RobustPruner
from optuna_robust import RobustSampler
from optuna_robust._records import ERROR_KEY
from optuna_robust._records import STAGE_KEY
from optuna_robust._records import records
from tests import _worker
from tests._worker import storage_from

ROOT = Path(__file__).resolve().parent.parent


def _losses(params: dict[str, Any], instances: list[Instance]) -> list[float]:
    """Noisy enough that one instance often ranks the models wrongly."""
    level = 1.0 + 0.05 * params["a"] + 0.02 * params["b"]
    return [level + 0.3 * ((i.init_seed % 997) / 997 - 0.5) for i in instances]


class _Log:
    """A train_fn recorder: which (params, instance index) were trained, in which thread."""

    def __init__(self, fail: set[int] = frozenset()) -> None:
        self.trained: list[tuple[int, int, int]] = []
        self.fail = fail
        self.lock = threading.Lock()

    def train(self, params: dict[str, Any], instances: list[Instance]) -> list[float]:
        if params["a"] in self.fail:
            raise RuntimeError(f"model a={params['a']} diverged")
        with self.lock:
            self.trained.extend((params["a"], params["b"], i.index) for i in instances)
        return _losses(params, instances)


def _study(storage: Any = None, name: str | None = None, **pruner: Any) -> optuna.Study:
    pruner.setdefault("max_trainings", 150)
    return optuna.create_study(
        storage=storage,
        study_name=name,
        load_if_exists=True,
        direction=pruner.pop("direction", "minimize"),
        sampler=RobustSampler({"a": list(range(8)), "b": list(range(4))}, seed=3),
        pruner=RobustPruner(**pruner),
    )


def _objective(study: optuna.Study, log: _Log, **kwargs: Any) -> Any:
    def objective(trial: optuna.Trial) -> float:
        params = study.sampler.suggest(trial)  # type: ignore[attr-defined]
        return optuna_robust.evaluate_instances(
            trial, lambda instances: log.train(params, instances), seed=5, **kwargs
        )

    return objective


def _select(log: _Log, **pruner: Any) -> optuna_robust.SelectionResult:
    study = _study(**pruner)
    return optuna_robust.select(study, log.train, final_instances=0, seed=5)


@pytest.mark.parametrize(
    "pruner",
    [
        {"max_trainings": 150},
        {"max_trainings": 64},  # rounds that can afford no new instance
        {"max_trainings": 300, "n_keep": 2, "reduction_factor": 3},
        {"max_trainings": 200, "baseline": 1.2, "baseline_tolerance": 0.0},  # the gate drops some
        {"max_trainings": 150, "direction": "maximize", "statistic": "max"},
    ],
)
def test_optimize_takes_selects_decisions_on_the_same_instances(pruner: dict[str, Any]) -> None:
    reference_log, log = _Log(), _Log()
    reference = _select(reference_log, **pruner)
    study = _study(**pruner)
    study.optimize(_objective(study, log))

    winners = [t for t in study.trials if t.state == TrialState.COMPLETE]
    winners.sort(key=lambda t: t.value, reverse=pruner.get("direction") == "maximize")
    assert [t.params for t in winners] == [t.params for t in reference.winners]
    assert [t.value for t in winners] == [t.value for t in reference.winners]
    assert study.best_params == reference.winners[0].params
    # The same instances, each trained once, within the budget.
    assert sorted(log.trained) == sorted(reference_log.trained)
    assert len(log.trained) == reference.budget.selection_instances <= pruner["max_trainings"]
    # A winner's trial holds all its instances; the study ends without an empty trial.
    assert len(records(study.best_trial)) == int(reference.rounds["instances_per_model"].iloc[-1])
    assert all(t.params for t in study.trials)


def test_threads_on_one_study_take_the_same_decisions() -> None:
    reference_log, log = _Log(), _Log()
    reference = _select(reference_log)
    study = _study()
    study.optimize(_objective(study, log), n_jobs=3)
    assert study.best_params == reference.winners[0].params
    assert study.best_value == reference.winners[0].value
    assert Counter(log.trained) == Counter(reference_log.trained)  # nothing twice
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 1


def test_a_model_whose_train_fn_raises_leaves_the_race_as_in_select() -> None:
    reference = _select(_Log(fail={0}))
    study = _study()
    log = _Log(fail={0})
    study.optimize(_objective(study, log), catch=(RuntimeError,))
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert {t.params["a"] for t in failed} == {0} and len(failed) == 4  # once each, no retry
    assert all("diverged" in t.system_attrs[ERROR_KEY] for t in failed)
    assert study.best_params == reference.winners[0].params
    assert study.best_value == reference.winners[0].value


def test_a_dead_workers_trial_holds_its_round_until_failed_then_is_handed_out_again(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(optuna_robust._planned, "_WAIT_WARNING_S", 0.2)
    reference_log, log = _Log(), _Log()
    reference = _select(reference_log)
    study = _study()
    orphan = study.ask()  # a worker takes round 0's first model, then dies
    assert orphan.number == 0 and STAGE_KEY in study.trials[0].system_attrs
    worker = threading.Thread(target=lambda: study.optimize(_objective(study, log)))
    with caplog.at_level(logging.WARNING, logger="optuna_robust"):
        worker.start()
        deadline = time.monotonic() + 20
        while "has waited" not in caplog.text:
            assert time.monotonic() < deadline, "the waiting worker never warned"
            time.sleep(0.05)
        assert worker.is_alive()  # it waits for round 0, which trial 0 still holds
        assert "trials [0]" in caplog.text and "study.tell" in caplog.text
        study.tell(orphan, state=TrialState.FAIL)  # what a heartbeat would do
        worker.join(timeout=30)
    assert not worker.is_alive()
    assert study.best_params == reference.winners[0].params
    assert Counter(log.trained) == Counter(reference_log.trained)


def test_n_trials_stops_mid_plan_with_a_warning_and_a_second_call_finishes_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reference = _select(_Log())
    study = _study()
    log = _Log()
    with caplog.at_level(logging.WARNING, logger="optuna_robust"):
        study.optimize(_objective(study, log), n_trials=40)
    assert "before its last round" in caplog.text
    assert not [t for t in study.trials if t.state == TrialState.COMPLETE]
    study.optimize(_objective(study, log))
    assert study.best_params == reference.winners[0].params
    assert len(log.trained) == reference.budget.selection_instances


def test_a_resume_with_another_budget_or_by_select_is_refused() -> None:
    storage = optuna.storages.InMemoryStorage()
    study = _study(storage, "plan")
    study.optimize(_objective(study, _Log()), n_trials=40)
    other = _study(storage, "plan", max_trainings=200)
    with pytest.raises(ValueError, match="max_trainings was 150, now 200"):
        other.optimize(_objective(other, _Log()), n_trials=1)
    with pytest.raises(ValueError, match="it was run by study.optimize, now by select"):
        optuna_robust.select(_study(storage, "plan"), _Log().train, final_instances=0, seed=5)


def test_a_budget_planned_pruner_needs_the_robust_sampler_and_its_own_counts() -> None:
    study = optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=0), pruner=RobustPruner(max_trainings=50)
    )

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        return optuna_robust.evaluate_instances(trial, lambda i: [x] * len(i))

    with pytest.raises(ValueError, match=r"needs sampler=RobustSampler\(...\).*RandomSampler"):
        study.optimize(objective, n_trials=1)
    planned = _study()
    with pytest.raises(ValueError, match="max_instances=4 conflicts with"):
        planned.optimize(_objective(planned, _Log(), max_instances=4), n_trials=1)
    small = _study(max_trainings=31)
    with pytest.raises(ValueError, match="cannot train min_instances=1 of each of the 32"):
        small.optimize(_objective(small, _Log()), n_trials=1)


def test_the_report_shows_each_model_once_at_its_latest_round() -> None:
    study = _study()
    study.optimize(_objective(study, _Log()))
    report = optuna_robust.robustness_report(study)
    assert len(report) == 32 and report["trial"].iloc[0] == study.best_trial.number
    assert report["instances"].iloc[0] == len(records(study.best_trial))


def _run_workers(url: str, name: str, log: Path, n_workers: int) -> list[optuna.trial.FrozenTrial]:
    optuna.create_study(study_name=name, storage=storage_from(url))
    command = [sys.executable, "-m", "tests._worker", url, name, str(log)]
    workers = [subprocess.Popen(command, cwd=ROOT) for _ in range(n_workers)]
    for worker in workers:
        assert worker.wait(timeout=240) == 0
    return optuna.load_study(study_name=name, storage=storage_from(url)).trials


def _check_like_one_worker(url: str, study_name: str, tmp_path: Path) -> None:
    many = _run_workers(url, study_name, tmp_path / "many.log", n_workers=3)
    one = _run_workers(f"sqlite:///{tmp_path / 'one.db'}", "one", tmp_path / "one.log", 1)
    best = [
        min((t for t in ts if t.state == TrialState.COMPLETE), key=_value) for ts in (many, one)
    ]
    assert best[0].params == best[1].params and best[0].value == best[1].value
    lines = Counter((tmp_path / "many.log").read_text().splitlines())
    reference = Counter((tmp_path / "one.log").read_text().splitlines())
    assert lines == reference and max(reference.values()) == 1  # each instance once
    assert sum(reference.values()) <= _worker.PLANNED_BUDGET


def _value(trial: optuna.trial.FrozenTrial) -> float:
    assert trial.value is not None
    return trial.value


def test_three_processes_on_a_journal_take_one_workers_decisions(
    tmp_path: Path, study_name: str
) -> None:
    _check_like_one_worker(f"journal:{tmp_path / 'journal.log'}", study_name, tmp_path)


@pytest.mark.postgres
def test_three_processes_on_postgres_take_one_workers_decisions(
    postgres_url: str, study_name: str, tmp_path: Path
) -> None:
    try:
        _check_like_one_worker(postgres_url, study_name, tmp_path)
    finally:
        optuna.delete_study(study_name=study_name, storage=postgres_url)


def test_a_study_made_again_under_its_name_is_planned_afresh() -> None:
    storage = optuna.storages.InMemoryStorage()
    sampler = RobustSampler({"a": list(range(8)), "b": list(range(4))}, seed=3)
    log = _Log()
    reference = _select(_Log())
    for _ in range(2):  # the same sampler object both times
        study = optuna.create_study(
            storage=storage,
            study_name="again",
            sampler=sampler,
            pruner=RobustPruner(max_trainings=150),
        )
        study.optimize(_objective(study, log))
        assert study.best_params == reference.winners[0].params
        optuna.delete_study(study_name="again", storage=storage)
    assert len(log.trained) == 2 * reference.budget.selection_instances


def test_the_sampler_pickles_and_goes_on_with_the_plan() -> None:
    import pickle

    reference = _select(_Log())
    study = _study()
    study.optimize(_objective(study, _Log()), n_trials=40)
    study.sampler = pickle.loads(pickle.dumps(study.sampler))
    study.optimize(_objective(study, _Log()))
    assert study.best_params == reference.winners[0].params
