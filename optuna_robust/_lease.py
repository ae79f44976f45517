"""The driver lease: one ``select`` per study at a time, taken over when its holder is gone.

Optuna's storages offer one atomic compare-and-set on every backend (RDB and journal alike):
creating a study whose name is taken raises :class:`~optuna.exceptions.DuplicatedStudyError`.
So the lease is a small study, ``<study>:select-lease:<generation>``: whoever creates
generation ``g`` holds the lease, keeps a heartbeat in its system attrs from a background
thread, and deletes it on release. A driver that finds a lease whose heartbeat is stale, or
whose holder process on this machine is dead, takes over by creating generation ``g + 1``;
of several drivers trying at once exactly one succeeds.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import datetime
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING

import optuna

from optuna_robust._optuna_compat import storage_of

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.study import Study

_logger = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 10.0
STALE_SECONDS = 60.0  # a holder silent for this long (six missed heartbeats) is gone
_HOLDER = "holder"
_HEARTBEAT = "heartbeat"


class LeaseError(RuntimeError):
    """Another driver holds the study, or took it over from this one."""


def lease_name(study_name: str, generation: int) -> str:
    return f"{study_name}:select-lease:{generation}"


@contextlib.contextmanager
def driver_lease(
    study: Study, *, heartbeat: float = HEARTBEAT_SECONDS, stale: float = STALE_SECONDS
) -> Iterator[_Lease]:
    """Hold the study's driver lease for the duration of the block.

    Raises:
        LeaseError: A live driver holds the lease; the message names it.
    """
    lease = _Lease.acquire(storage_of(study), study.study_name, stale=stale)
    stop = threading.Event()
    beat = threading.Thread(target=lease.beat_until, args=(stop, heartbeat), daemon=True)
    beat.start()
    try:
        yield lease
    finally:
        stop.set()
        beat.join()
        lease.release()


class _Lease:
    def __init__(self, storage: BaseStorage, study_name: str, generation: int) -> None:
        self.storage = storage
        self.study_name = study_name
        self.generation = generation
        self.name = lease_name(study_name, generation)
        self.study_id = -1
        self.lost: str | None = None

    @classmethod
    def acquire(cls, storage: BaseStorage, study_name: str, *, stale: float) -> _Lease:
        generations = _generations(storage, study_name)
        generation = 0
        if generations:
            current = generations[-1]
            holder = _holder(storage, lease_name(study_name, current))
            if holder is not None and _alive(holder, stale):
                raise LeaseError(
                    f"Study {study_name!r} is being driven by select in {_describe(holder)}; "
                    "run one select per study at a time (wait for it, or stop it: a killed "
                    f"driver's lease is taken over once its heartbeat is {stale:.0f} s old)."
                )
            generation = current + 1
        lease = cls(storage, study_name, generation)
        try:
            study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], lease.name)
        except optuna.exceptions.DuplicatedStudyError:
            raise LeaseError(
                f"Another select driver took the lease of study {study_name!r} just now; run "
                "one select per study at a time."
            ) from None
        storage.set_study_system_attr(study_id, _HOLDER, _me())
        storage.set_study_system_attr(study_id, _HEARTBEAT, time.time())
        lease.study_id = study_id
        for old in generations:  # leases of dead drivers, now superseded
            _delete(storage, lease_name(study_name, old))
        return lease

    def beat_until(self, stop: threading.Event, interval: float) -> None:
        while not stop.wait(interval):
            try:
                if _generations(self.storage, self.study_name)[-1:] != [self.generation]:
                    self.lost = "another driver took the lease over"
                    return
                self.storage.set_study_system_attr(self.study_id, _HEARTBEAT, time.time())
            except Exception as error:  # noqa: BLE001 - a busy database: try again next beat
                # A transient failure (SQLite busy, a dropped connection) must not stop a
                # healthy run; a lease that stays silent is taken over only after `stale`.
                _logger.warning(f"select's lease heartbeat failed ({error!r}); retrying.")

    def check(self) -> None:
        """Raise if this driver no longer holds the lease (it stalled and was taken over)."""
        if self.lost is not None:
            raise LeaseError(
                f"select lost the lease of study {self.study_name!r}: {self.lost}. Nothing "
                "more is written by this driver."
            )

    def release(self) -> None:
        if self.lost is None:
            _delete(self.storage, self.name)


def _generations(storage: BaseStorage, study_name: str) -> list[int]:
    prefix = lease_name(study_name, 0)[:-1]
    found = []
    for summary in storage.get_all_studies():
        name = summary.study_name
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            found.append(int(name[len(prefix) :]))
    return sorted(found)


def _holder(storage: BaseStorage, name: str) -> dict[str, object] | None:
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return None
    attrs = storage.get_study_system_attrs(study_id)
    holder = dict(attrs.get(_HOLDER) or {})
    holder[_HEARTBEAT] = attrs.get(_HEARTBEAT, 0.0)
    return holder


def _alive(holder: dict[str, object], stale: float) -> bool:
    heartbeat = holder.get(_HEARTBEAT)
    if not isinstance(heartbeat, int | float) or time.time() - heartbeat > stale:
        return False
    pid = holder.get("pid")
    if holder.get("host") == socket.gethostname() and isinstance(pid, int):
        try:
            os.kill(pid, 0)  # the holder runs on this machine: ask the kernel directly
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


def _me() -> dict[str, str | int]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def _describe(holder: dict[str, object]) -> str:
    age = time.time() - float(holder.get(_HEARTBEAT, 0.0))  # type: ignore[arg-type]
    return (
        f"process {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')}, "
        f"last heartbeat {age:.0f} s ago)"
    )


def _delete(storage: BaseStorage, name: str) -> None:
    with contextlib.suppress(KeyError):
        storage.delete_study(storage.get_study_id_from_name(name))
