"""Which ``Study.optimize`` call a sampler hook runs in, and whether it stops after this trial.

Optuna tells a sampler nothing about ``n_trials`` or ``timeout``. But its hooks run inside the
``Study.optimize`` call that asked for the trial, in the same thread, so that call's frame is on
the stack, and its public arguments say when the loop will stop. With ``n_jobs > 1`` the hooks
run in pool threads whose stacks do not hold that frame: nothing is known there.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
import time
from types import CodeType
from types import FrameType

import optuna

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
