"""Running training batches: whose fault a failure is, timeouts, and workers that die with us.

A failure is the *model's* when its own training raised: that model fails (after ``retries``
more tries) and the selection goes on. Anything else — a broken process pool (the OOM killer),
a ``train_fn`` that cannot be pickled, an ``OSError`` reading data, an interrupt — is not the
model's fault: the run stops with :class:`SelectionStopped`, nothing is marked failed, and a
rerun continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
import concurrent.futures
from concurrent.futures.process import BrokenProcessPool
import contextlib
import functools
import os
import pickle
import signal
import threading
import time
from typing import Any
from typing import TypeVar

Task = TypeVar("Task")
_NOT_THE_MODELS_FAULT = (
    concurrent.futures.BrokenExecutor,
    BrokenProcessPool,
    pickle.PicklingError,
    OSError,
)


class SelectionStopped(RuntimeError):
    """``select`` stopped for a reason that is not a model's fault; nothing was marked failed.

    Fix the cause (named in the message) and run ``select`` again with the same arguments: it
    continues where it stopped.
    """


class TrainingTimeout(TimeoutError):
    """A training batch ran longer than ``select``'s ``timeout``: counted as the model's fault."""


def is_the_models_fault(error: BaseException) -> bool:
    """Whether ``error`` came from the model's own training rather than from the machinery."""
    if isinstance(error, TrainingTimeout):
        return True
    return isinstance(error, Exception) and not isinstance(error, _NOT_THE_MODELS_FAULT)


def check_executor(
    executor: concurrent.futures.Executor | None, train_fn: object, timeout: float | None
) -> None:
    """Refuse up front what would otherwise fail every model of the first round."""
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(
                f"timeout must be None or a positive number of seconds but got {timeout!r}."
            )
        in_process = executor is None and threading.current_thread() is threading.main_thread()
        if not (in_process or isinstance(executor, concurrent.futures.ProcessPoolExecutor)):
            raise ValueError(
                "timeout needs select to run in the main thread with executor=None, or a "
                f"ProcessPoolExecutor; got executor={executor!r} in thread "
                f"{threading.current_thread().name!r}."
            )
    if isinstance(executor, concurrent.futures.ProcessPoolExecutor):
        try:
            pickle.dumps(train_fn)
        except Exception as error:  # noqa: BLE001 - any pickling failure means the same
            raise ValueError(
                f"train_fn {train_fn!r} cannot be sent to a ProcessPoolExecutor: {error}. Use a "
                "module-level function or a picklable callable object."
            ) from None


def run_batches(
    train_fn: Callable[..., Sequence[object]],
    tasks: Sequence[tuple[Task, tuple[Any, ...]]],
    *,
    executor: concurrent.futures.Executor | None,
    timeout: float | None,
    retries: int,
) -> Iterator[tuple[Task, object]]:
    """Yield ``(task, results or the model's exception)`` as each batch finishes.

    Each task is ``(key, args)``; ``train_fn(*args)`` trains it. A model's failure is retried
    ``retries`` times before it is yielded. Anything that is not the model's fault raises
    :class:`SelectionStopped`; pending batches are cancelled.
    """
    attempts = {index: 0 for index in range(len(tasks))}
    if executor is None:
        for index, (key, args) in enumerate(tasks):
            while True:
                outcome = _outcome(functools.partial(_call, train_fn, args, timeout, None))
                if isinstance(outcome, Exception) and attempts[index] < retries:
                    attempts[index] += 1
                    continue
                yield key, outcome
                break
        return
    guarded = isinstance(executor, concurrent.futures.ProcessPoolExecutor)
    parent = os.getpid() if guarded else None
    limit = timeout if guarded else None

    def submit(index: int) -> concurrent.futures.Future[Any]:
        return executor.submit(_call, train_fn, tasks[index][1], limit, parent)

    futures = {submit(index): index for index in range(len(tasks))}
    try:
        while futures:
            done, _ = concurrent.futures.wait(
                futures, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in done:
                index = futures.pop(future)
                outcome = _outcome(future.result)
                if isinstance(outcome, Exception) and attempts[index] < retries:
                    attempts[index] += 1
                    futures[submit(index)] = index
                    continue
                yield tasks[index][0], outcome
    finally:
        for future in futures:
            future.cancel()


def _outcome(get: Callable[[], object]) -> object:
    try:
        return get()
    except Exception as error:  # an interrupt (BaseException) propagates as it is
        if is_the_models_fault(error):
            return error
        raise SelectionStopped(
            f"select stopped: {type(error).__name__}: {error}. This is not a model's fault, so "
            "no model was marked failed; fix the cause and run select again to continue."
        ) from error


def _call(
    train_fn: Callable[..., Sequence[object]],
    args: tuple[Any, ...],
    timeout: float | None,
    parent: int | None,
) -> Sequence[object]:
    """Run one batch; in a pool worker, also die with the driver (``parent``)."""
    if parent is not None:
        _watch_parent(parent)
    with _deadline(timeout):
        return train_fn(*args)


_watched: set[int] = set()


def _watch_parent(parent: int) -> None:
    """In a pool worker: exit as soon as the driver process is gone (killed, even by SIGKILL).

    Without this, workers of a killed driver go on training the batches already queued.
    """
    if parent in _watched:
        return
    _watched.add(parent)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="optuna-robust-parent-watch", daemon=True).start()


@contextlib.contextmanager
def _deadline(timeout: float | None) -> Iterator[None]:
    if timeout is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise TrainingTimeout(f"the training batch ran longer than timeout={timeout:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
