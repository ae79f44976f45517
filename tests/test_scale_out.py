"""Scale-out: four worker processes on PostgreSQL, and select through a Dask cluster."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import distributed
import optuna
from optuna.trial import TrialState
import pytest

import optuna_robust
from optuna_robust._records import records
from tests import _crash_worker as crash

ROOT = Path(__file__).resolve().parent.parent


def _run_workers(url: str, study_name: str, n_workers: int) -> list[optuna.trial.FrozenTrial]:
    optuna.create_study(study_name=study_name, storage=url)
    command = [sys.executable, "-m", "tests._worker", url, study_name]
    workers = [subprocess.Popen(command, cwd=ROOT) for _ in range(n_workers)]
    for worker in workers:
        assert worker.wait(timeout=300) == 0
    return optuna.load_study(study_name=study_name, storage=url).trials


def _summary(trials: list[optuna.trial.FrozenTrial]) -> tuple[set[str], dict[str, object]]:
    """The candidates evaluated, and the best params; checks no instance lost or duplicated."""
    evaluated = [t for t in trials if t.params]
    keys = [json.dumps(t.params, sort_keys=True) for t in evaluated]
    assert len(keys) == len(set(keys)), "a candidate was evaluated twice"
    for trial in evaluated:
        seeds = [r["init_seed"] for r in records(trial)]
        assert len(seeds) == trial.last_step, f"trial {trial.number} lost an instance"
        assert len(seeds) == len(set(seeds)), f"trial {trial.number} has an instance twice"
    complete = [t for t in evaluated if t.state == TrialState.COMPLETE]
    return set(keys), min(complete, key=lambda t: t.value).params


@pytest.mark.postgres
def test_four_workers_postgres_match_one_worker(
    postgres_url: str, study_name: str, tmp_path: Path
) -> None:
    try:
        many = _summary(_run_workers(postgres_url, study_name, n_workers=4))
    finally:
        optuna.delete_study(study_name=study_name, storage=postgres_url)
    one = _summary(_run_workers(f"sqlite:///{tmp_path / 'one.db'}", study_name, n_workers=1))
    assert len(many[0]) == 30, "every candidate is evaluated"
    assert many == one


def test_select_with_dask_executor_matches_serial() -> None:
    serial = optuna_robust.select(crash.make_study(None), crash.losses, final_instances=4, seed=1)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        parallel = optuna_robust.select(
            crash.make_study(None),
            crash.losses,
            executor=client.get_executor(),
            final_instances=4,
            seed=1,
        )
    assert parallel.winners[0].params == serial.winners[0].params
    assert parallel.winners[0].value == serial.winners[0].value
    assert parallel.rounds.equals(serial.rounds)
