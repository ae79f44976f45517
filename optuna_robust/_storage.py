"""Batched trial writes: one transaction per model and round on RDB storages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna


def _rdb_backend(storage: optuna.storages.BaseStorage) -> Any:
    """The RDBStorage behind ``storage`` (plain or cached), if its batch internals exist."""
    backend = getattr(storage, "_backend", storage)
    if not isinstance(backend, optuna.storages.RDBStorage):
        return None
    needed = (
        "scoped_session",
        "_set_trial_attr_without_commit",
        "_set_trial_intermediate_value_without_commit",
    )
    return backend if all(hasattr(backend, name) for name in needed) else None


def write_trial(
    storage: optuna.storages.BaseStorage,
    trial_id: int,
    *,
    user_attrs: Mapping[str, Any],
    system_attrs: Mapping[str, Any] | None = None,
    intermediate_values: Mapping[int, float] | None = None,
) -> None:
    """Write user attrs, system attrs and intermediate values of one RUNNING trial.

    On an RDB storage, everything goes in one transaction: a selection writes tens of thousands
    of instance records, and a commit per record would make SQLite the bottleneck. Elsewhere,
    and if Optuna's internals ever change, the public per-item storage API is used.
    """
    system_attrs = system_attrs or {}
    intermediate_values = intermediate_values or {}
    rdb = _rdb_backend(storage)
    if rdb is None:
        for key, value in user_attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)
        for key, value in system_attrs.items():
            storage.set_trial_system_attr(trial_id, key, value)
        for step, value in intermediate_values.items():
            storage.set_trial_intermediate_value(trial_id, step, value)
        return
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(rdb.scoped_session, True) as session:
        for key, value in user_attrs.items():
            rdb._set_trial_attr_without_commit(
                session, models.TrialUserAttributeModel, trial_id, key, value
            )
        for key, value in system_attrs.items():
            rdb._set_trial_attr_without_commit(
                session, models.TrialSystemAttributeModel, trial_id, key, value
            )
        for step, value in intermediate_values.items():
            rdb._set_trial_intermediate_value_without_commit(session, trial_id, step, value)
