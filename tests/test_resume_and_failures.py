"""Selections nobody can corrupt: same-run resume, one driver, failures by whose fault."""

from __future__ import annotations

import concurrent.futures
import math
import os
from pathlib import Path
import signal
import subprocess
import sys
import time
from typing import Any

import optuna
from optuna.trial import TrialState
import pytest

import optuna_robust
from optuna_robust import Instance
from optuna_robust import RobustPruner
from optuna_robust import RobustSampler
from tests import _driver

ROOT = Path(__file__).resolve().parent.parent


class _Interrupt(BaseException):
    pass


def _level(params: dict[str, Any], instances: list[Instance]) -> list[float]:
    return [float(params["x"]) + (i.init_seed % 10) / 100 for i in instances]


def _interrupted(storage: optuna.storages.BaseStorage, xs: list[int], **pruner: Any) -> None:
    """A selection over ``x`` killed during round 1."""
    calls = {"n": 0}

    def flaky(params: dict[str, Any], instances: list[Instance]) -> list[float]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise _Interrupt
        return _level(params, instances)

    study = optuna.create_study(
        storage=storage,
        study_name="run",
        sampler=RobustSampler({"x": xs}, seed=0),
        pruner=RobustPruner(**pruner),
    )
    with pytest.raises(_Interrupt):
        optuna_robust.select(study, flaky, final_instances=2, seed=0)


def _rerun(storage: optuna.storages.BaseStorage, xs: list[int], **kwargs: Any) -> Any:
    pruner = kwargs.pop("pruner", {})
    study = optuna.load_study(
        study_name="run",
        storage=storage,
        sampler=RobustSampler({"x": xs}, seed=kwargs.pop("order_seed", 0)),
        pruner=RobustPruner(**pruner),
    )
    return optuna_robust.select(study, _level, **{"final_instances": 2, "seed": 0, **kwargs})


# -- 1. a rerun continues only the same run ---------------------------------------------------


def test_resume_with_a_reordered_candidate_list_is_refused() -> None:
    # Before: the winner of the rerun was reported with loss 1.0 while its true loss is 4.
    storage = optuna.storages.InMemoryStorage()
    _interrupted(storage, [1, 2, 3, 4])
    with pytest.raises(ValueError, match="the candidate set differs"):
        _rerun(storage, [4, 3, 2, 1])
    assert _rerun(storage, [1, 2, 3, 4]).winners[0].params == {"x": 1}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"pruner": {"reduction_factor": 3}}, "reduction_factor was 2, now 3"),
        ({"pruner": {"statistic": "max"}}, "statistic was 'mean', now 'max'"),
        ({"pruner": {"baseline": 3.5}}, "baseline was None, now 3.5"),
        ({"pairing": "none"}, "pairing was 'data', now 'none'"),
        ({"order_seed": 1}, "the RobustSampler's seed differs"),
        ({"final_instances": 3}, "final_instances was 2, now 3"),
    ],
)
def test_resume_with_other_settings_names_each_difference(
    change: dict[str, Any], named: str
) -> None:
    storage = optuna.storages.InMemoryStorage()
    _interrupted(storage, [1, 2, 3, 4])
    with pytest.raises(ValueError, match=named):
        _rerun(storage, [1, 2, 3, 4], **change)


def test_raising_final_instances_after_completion_is_refused_not_ignored() -> None:
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(
        storage=storage,
        study_name="run",
        sampler=RobustSampler({"x": [1, 2]}, seed=0),
        pruner=RobustPruner(),
    )
    optuna_robust.select(study, _level, final_instances=2, seed=0)
    with pytest.raises(ValueError, match="final_instances was 2, now 5"):
        _rerun(storage, [1, 2], final_instances=5)


# -- 2. failures by whose fault ---------------------------------------------------------------


def _study(xs: list[int], storage: Any = None) -> optuna.Study:
    return optuna.create_study(
        storage=storage, sampler=RobustSampler({"x": xs}, seed=0), pruner=RobustPruner()
    )


def _dies_in_the_pool(params: dict[str, Any], instances: list[Instance]) -> list[float]:
    if params["x"] == 2:
        os._exit(1)  # what the OOM killer does to a pool worker
    return _level(params, instances)


def test_a_dead_pool_worker_stops_the_run_and_fails_no_model() -> None:
    storage = optuna.storages.InMemoryStorage()
    study = _study([1, 2, 3, 4], storage)
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        with pytest.raises(optuna_robust.SelectionStopped, match="not a model's fault"):
            optuna_robust.select(study, _dies_in_the_pool, executor=pool, final_instances=1)
    assert [t for t in study.trials if t.state == TrialState.FAIL] == []
    # The cause fixed, a rerun continues and finishes.
    result = optuna_robust.select(study, _level, final_instances=1)
    assert result.winners[0].params == {"x": 1}


def test_an_unreadable_data_file_stops_the_run_and_fails_no_model(tmp_path: Path) -> None:
    def reads_data(params: dict[str, Any], instances: list[Instance]) -> list[float]:
        (tmp_path / "missing.root").read_bytes()
        return _level(params, instances)

    study = _study([1, 2])
    with pytest.raises(optuna_robust.SelectionStopped, match="FileNotFoundError"):
        optuna_robust.select(study, reads_data, final_instances=1)
    assert all(t.state == TrialState.RUNNING for t in study.trials)


def test_a_train_fn_that_cannot_be_pickled_is_refused_before_training() -> None:
    study = _study([1, 2])
    with concurrent.futures.ProcessPoolExecutor(1) as pool:
        with pytest.raises(ValueError, match="cannot be sent to a ProcessPoolExecutor"):
            optuna_robust.select(study, lambda p, i: _level(p, i), executor=pool)
    assert study.trials == []


def test_retries_give_a_flaky_model_more_tries() -> None:
    failures = {"left": 2}

    def flaky(params: dict[str, Any], instances: list[Instance]) -> list[float]:
        if params["x"] == 1 and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("transient")
        return _level(params, instances)

    study = _study([1, 2, 3])
    result = optuna_robust.select(study, flaky, final_instances=1, retries=2)
    assert result.winners[0].params == {"x": 1}
    assert [t for t in study.trials if t.state == TrialState.FAIL] == []


def test_retry_failed_retries_a_model_whose_bug_was_fixed() -> None:
    def buggy(params: dict[str, Any], instances: list[Instance]) -> list[float]:
        if params["x"] == 1:
            raise ZeroDivisionError("a bug")
        return _level(params, instances)

    storage = optuna.storages.InMemoryStorage()
    study = _study([1, 2, 3, 4], storage)
    assert optuna_robust.select(study, buggy, final_instances=1).winners[0].params == {"x": 2}
    # Without retry_failed a rerun keeps the failure; with it, the fixed model is retried.
    assert optuna_robust.select(study, _level, final_instances=1).winners[0].params == {"x": 2}
    study = optuna.load_study(
        study_name=study.study_name,
        storage=storage,
        sampler=RobustSampler({"x": [1, 2, 3, 4]}, seed=0),
        pruner=RobustPruner(),
    )
    result = optuna_robust.select(study, _level, final_instances=1, retry_failed=True)
    assert result.winners[0].params == {"x": 1}


def _hangs(params: dict[str, Any], instances: list[Instance]) -> list[float]:
    if params["x"] == 2:
        time.sleep(30)
    return _level(params, instances)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_training_that_hangs_times_out_as_the_models_failure(workers: int) -> None:
    study = _study([1, 2, 3])
    started = time.monotonic()
    if workers:
        with concurrent.futures.ProcessPoolExecutor(workers) as pool:
            result = optuna_robust.select(
                study, _hangs, executor=pool, final_instances=1, timeout=1.0
            )
    else:
        result = optuna_robust.select(study, _hangs, final_instances=1, timeout=1.0)
    assert time.monotonic() - started < 20
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert [t.params for t in failed] == [{"x": 2}]
    assert "timeout=1" in failed[0].system_attrs["robust:error"]
    assert result.winners[0].params == {"x": 1}


@pytest.mark.parametrize(
    ("result", "match"),
    [
        ("0.5", "must return a float loss"),
        (True, "must return a float loss"),
        ({"loss": "0.5"}, "must return a float loss"),
        ({"loss": 0.5, "data_seed": 3}, "reserved"),
    ],
)
def test_results_that_are_not_losses_are_refused(result: object, match: str) -> None:
    study = _study([1])
    with pytest.raises(ValueError, match=match):
        optuna_robust.select(study, lambda p, inst: [result] * len(inst), final_instances=1)


def test_a_winner_whose_every_instance_diverged_is_no_winner() -> None:
    study = _study([1, 2])
    result = optuna_robust.select(study, lambda p, inst: [math.nan] * len(inst), final_instances=2)
    assert result.winners == []
    assert all(t.state == TrialState.PRUNED for t in study.trials)


# -- 3. and 4. one driver at a time; workers die with the driver -------------------------------


def _driver_process(url: str, log: Path, delay: float, workers: int = 1) -> subprocess.Popen:
    command = [sys.executable, "-m", "tests._driver", url, "lease", str(log), str(delay)]
    return subprocess.Popen(
        [*command, str(workers)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _wait_for(path: Path, n: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while len(_lines(path)) < n:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the driver never got going"
        time.sleep(0.02)


def _two_drivers(url: str, tmp_path: Path) -> None:
    first = _driver_process(url, tmp_path / "first.log", delay=0.05)
    _wait_for(tmp_path / "first.log", 3, first)
    second = _driver_process(url, tmp_path / "second.log", delay=0.0)
    _, error = second.communicate(timeout=120)
    assert second.returncode == 3, error
    assert "is being driven by select in process" in error and str(first.pid) in error
    out, error = first.communicate(timeout=300)
    assert first.returncode == 0, error
    study = optuna.load_study(study_name="lease", storage=url)
    n_candidates = len(_driver.SPACE["a"]) * len(_driver.SPACE["b"])
    assert len(study.trials) == n_candidates  # before: a second trial per candidate
    seeds = [line.split()[3] for line in _lines(tmp_path / "first.log")]
    assert len(seeds) == len(set(seeds)) and _lines(tmp_path / "second.log") == []
    # Released at the end: the next driver gets the study at once.
    assert not [n for n in optuna.get_all_study_names(url) if "select-lease" in n]


def test_a_second_driver_is_refused_while_the_first_runs_sqlite(tmp_path: Path) -> None:
    _two_drivers(f"sqlite:///{tmp_path / 'lease.db'}", tmp_path)


@pytest.mark.postgres
def test_a_second_driver_is_refused_while_the_first_runs_postgres(
    postgres_url: str, tmp_path: Path
) -> None:
    for name in optuna.get_all_study_names(postgres_url):
        if name == "lease" or name.startswith("lease:select-lease"):
            optuna.delete_study(study_name=name, storage=postgres_url)
    try:
        _two_drivers(postgres_url, tmp_path)
    finally:
        optuna.delete_study(study_name="lease", storage=postgres_url)


def test_a_killed_drivers_lease_is_taken_over_and_its_workers_stop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lease.db'}"
    log = tmp_path / "killed.log"
    driver = _driver_process(url, log, delay=0.2, workers=2)
    _wait_for(log, 4, driver)
    driver.send_signal(signal.SIGKILL)
    driver.communicate()
    at_kill = len(_lines(log))
    time.sleep(2.5)
    # Before: pool workers of the killed driver went on training queued batches.
    assert len(_lines(log)) <= at_kill + 2  # at most the instance each worker was finishing
    for pid in {int(line.split()[0]) for line in _lines(log)}:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # The dead driver's lease does not block a rerun.
    rerun = _driver_process(url, tmp_path / "rerun.log", delay=0.0)
    out, error = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, error
