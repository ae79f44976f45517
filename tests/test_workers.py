"""Several processes share one RobustSampler grid through a storage: no candidate twice."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import optuna
from optuna.trial import TrialState
import pytest

from tests._worker import storage_from

ROOT = Path(__file__).resolve().parent.parent


def _run_workers(url: str, study_name: str, n_workers: int = 3) -> list[optuna.trial.FrozenTrial]:
    optuna.create_study(study_name=study_name, storage=storage_from(url))
    workers = [
        subprocess.Popen([sys.executable, "-m", "tests._worker", url, study_name], cwd=ROOT)
        for _ in range(n_workers)
    ]
    for worker in workers:
        assert worker.wait(timeout=240) == 0
    return optuna.load_study(study_name=study_name, storage=storage_from(url)).trials


def _check_no_duplicates(trials: list[optuna.trial.FrozenTrial]) -> None:
    evaluated = [t for t in trials if t.params]
    keys = [json.dumps(t.params, sort_keys=True) for t in evaluated]
    assert len(keys) == len(set(keys)), "a candidate was handed out twice"
    assert len(keys) == 30, "every candidate is evaluated"
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in evaluated)
    # Trials a worker asked for after every candidate was out: pruned, with no params.
    assert all(t.state == TrialState.PRUNED for t in trials if not t.params)
    best = min((t for t in evaluated if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert best.params == {"a": 0, "b": 0}


def test_three_processes_journal_storage(tmp_path: Path, study_name: str) -> None:
    _check_no_duplicates(_run_workers(f"journal:{tmp_path / 'journal.log'}", study_name))


@pytest.mark.postgres
def test_three_processes_postgres(postgres_url: str, study_name: str) -> None:
    try:
        _check_no_duplicates(_run_workers(postgres_url, study_name))
    finally:
        optuna.delete_study(study_name=study_name, storage=postgres_url)
