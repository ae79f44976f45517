"""Every use of Optuna's internals in one place, each with the reason and a public fallback.

The rest of the package calls these helpers and never touches a private Optuna name itself, so
an Optuna release that renames one breaks (or slows down) exactly one module, and
``tests/test_optuna_compat.py`` shows which.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
import dataclasses
import functools
import inspect
import logging
import threading
import time
from types import CodeType
from types import FrameType
from typing import TYPE_CHECKING
from typing import Any

import optuna

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.study import Study
    from optuna.trial import FrozenTrial
    from optuna.trial import Trial

_logger = logging.getLogger(__name__)


def storage_of(study: Study) -> BaseStorage:
    """The storage behind ``study``.

    ``Study._storage`` has no public accessor; Optuna's own integrations read it the same way.
    There is no fallback: if it is ever renamed, every test fails at once, loudly.
    """
    return study._storage


def study_id(study: Study) -> int:
    """The storage id of ``study`` (``Study._study_id``, or looked up by name)."""
    cached = getattr(study, "_study_id", None)
    if isinstance(cached, int):
        return cached
    return storage_of(study).get_study_id_from_name(study.study_name)


def trial_id(study: Study | None, trial: Trial | FrozenTrial) -> int:
    """The storage id of ``trial`` (``_trial_id``, or looked up by study and number)."""
    cached = getattr(trial, "_trial_id", None)
    if isinstance(cached, int):
        return cached
    if study is None:
        raise ValueError(f"The storage id of trial {trial.number} needs its study.")
    storage = storage_of(study)
    return storage.get_trial_id_from_study_id_trial_number(study_id(study), trial.number)


def stop_optimize(study: Study) -> None:
    """Stop ``study.optimize`` if it is running in this thread; do nothing otherwise.

    Public API only: :meth:`~optuna.study.Study.stop` raises ``RuntimeError`` outside an
    optimize loop, which is exactly the case to ignore.
    """
    try:
        study.stop()
    except RuntimeError:
        pass


def record_heartbeat(study: Study, trial_id: int) -> None:
    """Record a heartbeat for a trial that has not reached its objective yet, if enabled.

    Optuna beats only while the objective runs, so a worker that dies inside ``study.ask`` (in a
    sampler's ``before_trial``) would leave a RUNNING trial that no heartbeat ever fails. Public
    API of the heartbeat storages (``RDBStorage.record_heartbeat``); others have none.
    """
    storage = storage_of(study)
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if interval is not None:
        storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]


def write_trial(
    storage: BaseStorage,
    trial_id: int,
    *,
    user_attrs: Mapping[str, Any],
    system_attrs: Mapping[str, Any] | None = None,
    intermediate_values: Mapping[int, float] | None = None,
) -> None:
    """Write user attrs, system attrs and intermediate values of one RUNNING trial.

    On an RDB storage everything goes in one transaction: a selection writes tens of thousands
    of instance records, and a commit per record makes SQLite the bottleneck (41.6 s against
    24.5 s for 864 candidates). That needs three private RDBStorage helpers; if any of them is
    missing or has another signature, the public per-item API is used (same result, slower)
    and a warning says so once. A database error raises: nothing is dropped silently.
    """
    system_attrs = system_attrs or {}
    intermediate_values = intermediate_values or {}
    batch = _rdb_batch(storage)
    if batch is None:
        for key, value in user_attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)
        for key, value in system_attrs.items():
            storage.set_trial_system_attr(trial_id, key, value)
        for step, value in intermediate_values.items():
            storage.set_trial_intermediate_value(trial_id, step, value)
        return
    batch(trial_id, user_attrs, system_attrs, intermediate_values)


def batch_writes_supported(storage: BaseStorage) -> bool:
    """Whether :func:`write_trial` can use one transaction per call on ``storage``."""
    return _rdb_batch(storage) is not None


BatchWriter = Callable[[int, Mapping[str, Any], Mapping[str, Any], Mapping[int, float]], None]


def _rdb_batch(storage: BaseStorage) -> BatchWriter | None:
    # A cached storage (``_CachedStorage``) wraps the RDBStorage as ``_backend``.
    backend = getattr(storage, "_backend", storage)
    if not isinstance(backend, optuna.storages.RDBStorage):
        return None
    internals = _rdb_internals()
    if internals is None:
        return None
    models, scoped = internals

    def write(
        trial_id: int,
        user_attrs: Mapping[str, Any],
        system_attrs: Mapping[str, Any],
        intermediate_values: Mapping[int, float],
    ) -> None:
        # ignore_integrity_error=False: a conflicting row must raise, not roll back the batch
        # with a debug-level log.
        with scoped(backend.scoped_session, False) as session:
            for key, value in user_attrs.items():
                backend._set_trial_attr_without_commit(
                    session, models.TrialUserAttributeModel, trial_id, key, value
                )
            for key, value in system_attrs.items():
                backend._set_trial_attr_without_commit(
                    session, models.TrialSystemAttributeModel, trial_id, key, value
                )
            for step, value in intermediate_values.items():
                backend._set_trial_intermediate_value_without_commit(
                    session, trial_id, step, value
                )

    return write


_EXPECTED_SIGNATURES = {
    "_set_trial_attr_without_commit": ["session", "model_cls", "trial_id", "key", "value"],
    "_set_trial_intermediate_value_without_commit": [
        "session",
        "trial_id",
        "step",
        "intermediate_value",
    ],
}


@functools.cache
def _rdb_internals() -> tuple[Any, Any] | None:
    """Optuna's RDB models and session helper, if they look as this module expects."""
    try:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session
    except ImportError as error:
        _warn_fallback(f"cannot import Optuna's RDB internals ({error})")
        return None
    problem = _signature_problem(models, _create_scoped_session)
    if problem is not None:
        _warn_fallback(problem)
        return None
    return models, _create_scoped_session


def _signature_problem(models: Any, create_scoped_session: Any) -> str | None:
    for name, expected in _EXPECTED_SIGNATURES.items():
        method = getattr(optuna.storages.RDBStorage, name, None)
        if method is None:
            return f"RDBStorage.{name} does not exist"
        parameters = list(inspect.signature(method).parameters)[1:]  # without self
        if parameters != expected:
            return f"RDBStorage.{name} takes {parameters}, not {expected}"
    if not all(hasattr(models, f"Trial{kind}AttributeModel") for kind in ("User", "System")):
        return "Optuna's RDB models have no trial attribute models"
    parameters = list(inspect.signature(create_scoped_session).parameters)
    if parameters[:2] != ["scoped_session", "ignore_integrity_error"]:
        return f"_create_scoped_session takes {parameters}"
    return None


def _warn_fallback(reason: str) -> None:
    _logger.warning(
        f"optuna-robust: {reason} in Optuna {optuna.__version__}; instance records are written "
        "one by one (same results, slower)."
    )


# -- Which Study.optimize call a sampler hook runs in ------------------------------------------
# Optuna tells a sampler nothing about ``n_trials`` or ``timeout``. But its hooks run inside the
# ``Study.optimize`` call that asked for the trial, in the same thread, so that call's frame is
# on the stack, and its public arguments say when the loop will stop. That is how Optuna's
# optimize loop is built, not a promise: with ``n_jobs > 1`` the hooks run in pool threads whose
# stacks do not hold that frame, and nothing is known there (no warning, never a wrong one).

_OPTIMIZE_CODE: CodeType = inspect.unwrap(optuna.study.Study.optimize).__code__


@dataclasses.dataclass
class OptimizeCall:
    """One running ``Study.optimize`` call, as the sampler's hooks see it.

    Attributes:
        frame:
            The call's frame: it tells this call from the next one of the same thread (a frame
            id may be reused). Held only while the call may still be running.
        n_trials:
            The call's ``n_trials`` argument.
        timeout:
            The call's ``timeout`` argument, in seconds.
        started:
            ``time.monotonic()`` when the call's first trial started; Optuna starts its clock
            a moment earlier, so a timeout is seen late rather than early.
        trials:
            Trials this call has started so far.
    """

    frame: FrameType
    n_trials: int | None
    timeout: float | None
    started: float
    trials: int = 0

    def stops_after_this_trial(self) -> bool:
        """Whether the loop starts no further trial (``n_trials`` reached or time is up)."""
        if self.n_trials is not None and self.trials >= self.n_trials:
            return True
        return self.timeout is not None and time.monotonic() - self.started >= self.timeout

    @property
    def reason(self) -> str:
        """``n_trials=N`` or ``timeout=Ts``: the argument that ends the call."""
        if self.n_trials is not None and self.trials >= self.n_trials:
            return f"n_trials={self.n_trials}"
        return f"timeout={self.timeout:g}s"


class OptimizeCalls:
    """The ``Study.optimize`` call of each thread, followed from the sampler's hooks."""

    def __init__(self) -> None:
        self._calls: dict[int, OptimizeCall] = {}

    def trial_started(self) -> None:
        """Count a trial for the call running in this thread (call it from ``before_trial``)."""
        thread = threading.get_ident()
        frame = _optimize_frame()
        if frame is None:  # ask-and-tell, select, or a pool thread of n_jobs > 1
            self._calls.pop(thread, None)
            return
        call = self._calls.get(thread)
        if call is None or call.frame is not frame:
            arguments = frame.f_locals
            call = OptimizeCall(
                frame=frame,
                n_trials=arguments.get("n_trials"),
                timeout=arguments.get("timeout"),
                started=time.monotonic(),
            )
            self._calls[thread] = call
        call.trials += 1

    def ending_call(self) -> OptimizeCall | None:
        """This thread's call if it stops after the finishing trial (call from ``after_trial``)."""
        thread = threading.get_ident()
        call = self._calls.get(thread)
        if call is None or call.frame is not _optimize_frame():
            return None
        if not call.stops_after_this_trial():
            return None
        del self._calls[thread]
        return call

    def forget(self) -> None:
        """Drop this thread's call (the sampler stops the loop itself)."""
        self._calls.pop(threading.get_ident(), None)


def _optimize_frame() -> FrameType | None:
    frame = inspect.currentframe()
    while frame is not None and frame.f_code is not _OPTIMIZE_CODE:
        frame = frame.f_back
    return frame
