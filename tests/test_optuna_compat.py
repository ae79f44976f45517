"""Optuna internals: the fast path is taken on this Optuna, and the public fallback is exact."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
from optuna.trial import TrialState
import pytest

from optuna_robust import _optuna_compat
from optuna_robust._optuna_compat import batch_writes_supported
from optuna_robust._optuna_compat import stop_optimize
from optuna_robust._optuna_compat import study_id
from optuna_robust._optuna_compat import trial_id
from optuna_robust._optuna_compat import write_trial


def _sqlite(tmp_path: Path) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'compat.db'}")


def _written(storage: optuna.storages.BaseStorage) -> optuna.trial.FrozenTrial:
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    write_trial(
        storage,
        trial_id(study, trial),
        user_attrs={"robust:selection:000000": {"loss": 0.5}, "b": [1, 2]},
        system_attrs={"robust:extras:selection:000000": {"curve": [1.0, 0.5]}},
        intermediate_values={1: 0.5, 2: 0.25},
    )
    return storage.get_trial(trial_id(study, trial))


def test_this_optuna_gets_the_one_transaction_path(tmp_path: Path) -> None:
    # If an Optuna upgrade changes the internals, this fails instead of a silent slow path.
    assert batch_writes_supported(_sqlite(tmp_path))
    assert not batch_writes_supported(optuna.storages.InMemoryStorage())


def test_the_public_fallback_stores_exactly_what_the_batch_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _written(_sqlite(tmp_path))
    monkeypatch.setattr(_optuna_compat, "_rdb_internals", lambda: None)
    (tmp_path / "slow").mkdir()
    storage = _sqlite(tmp_path / "slow")
    assert not batch_writes_supported(storage)
    slow = _written(storage)
    assert slow.user_attrs == fast.user_attrs
    assert slow.system_attrs == fast.system_attrs
    assert slow.intermediate_values == fast.intermediate_values == {1: 0.5, 2: 0.25}


def test_a_changed_internal_signature_falls_back_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def renamed(self: object, session: object, trial_id: int, key: str) -> None:
        raise AssertionError("must not be called")

    monkeypatch.setattr(optuna.storages.RDBStorage, "_set_trial_attr_without_commit", renamed)
    _optuna_compat._rdb_internals.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="optuna_robust._optuna_compat"):
            assert _optuna_compat._rdb_internals() is None
    finally:
        _optuna_compat._rdb_internals.cache_clear()
    assert "_set_trial_attr_without_commit takes" in caplog.text
    assert "one by one" in caplog.text


def test_ids_fall_back_to_public_lookups() -> None:
    study = optuna.create_study()
    study.ask()
    trial = study.ask()

    class Bare:  # what a study or trial would look like without the private ids
        study_name = study.study_name
        _storage = study._storage
        number = trial.number

    assert study_id(Bare()) == study._study_id  # type: ignore[arg-type]
    assert trial_id(Bare(), Bare()) == trial._trial_id  # type: ignore[arg-type]


def test_stop_optimize_stops_the_loop_and_is_harmless_outside_it() -> None:
    study = optuna.create_study()
    stop_optimize(study)  # outside optimize: nothing happens

    def objective(trial: optuna.Trial) -> float:
        stop_optimize(trial.study)
        return 1.0

    study.optimize(objective, n_trials=10)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]
