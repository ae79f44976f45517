"""Timings that notice when other processes share the CPU, for the benchmarks in this folder.

Each run of a timed callable records the CPU time that *other* processes took meanwhile: the
machine's busy time from ``/proc/stat`` (steal included: a hypervisor's other guests count too)
minus this process's own ``getrusage``. A run during which the others averaged more than
``max_other_cores`` is contaminated and repeated, up to ``max_attempts`` runs in all; the result
is the median of the clean runs (of all runs, flagged ``clean=False``, when too few were clean).
A run that times its own work (e.g. in child processes, after they have started and loaded
their data) returns :class:`SelfTimed`; the load check still spans the whole run.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
import math
import os
import resource
import statistics
import time


@dataclass(frozen=True)
class SelfTimed:
    """What a timed callable returns when it measured its own work's wall (and CPU) time."""

    seconds: float
    cpu_seconds: float | None = None


@dataclass(frozen=True)
class Timing:
    """The outcome of :func:`guarded_time`.

    Attributes:
        seconds:
            Median wall time of the clean runs (of all runs when ``clean`` is False).
        clean:
            Whether ``seconds`` comes from ``repeats`` uncontaminated runs.
        runs:
            Wall time of every run, in order.
        other_cores:
            Average number of cores that other processes kept busy during each run (NaN where
            ``/proc/stat`` is missing: such runs count as clean).
        own_cores:
            Average number of cores this process kept busy during each run.
        own_seconds:
            CPU seconds this process (and its joined children) used in each run: a measure
            of the work that other processes' load inflates much less than wall time.
    """

    seconds: float
    clean: bool
    runs: list[float] = field(default_factory=list)
    other_cores: list[float] = field(default_factory=list)
    own_cores: list[float] = field(default_factory=list)
    own_seconds: list[float] = field(default_factory=list)

    @property
    def cpu_seconds(self) -> float:
        """Median CPU seconds of the runs (all of them: clean or not)."""
        return statistics.median(self.own_seconds) if self.own_seconds else math.nan

    def describe(self) -> str:
        """One line: median, number of runs, other processes' load, and a flag if unclean."""
        loads = ", ".join(f"{load:.2f}" for load in self.other_cores)
        flag = "" if self.clean else "  CONTAMINATED: too few clean runs"
        return (
            f"{self.seconds:.3f} s median of {len(self.runs)} runs (other processes' cores per "
            f"run: {loads}){flag}"
        )


def machine_busy_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot, from ``/proc/stat`` (Linux)."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal guest guest_nice (guest is in user).
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    ticks = user + nice + system + irq + softirq + steal
    return ticks / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds this process (all its threads) and its waited-for children have used.

    Child processes count once they have been waited for (joined): a timed run that starts
    processes must join them before it returns.
    """
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def guarded_time(
    run: Callable[[], object],
    *,
    repeats: int = 3,
    max_other_cores: float = 0.15,
    max_attempts: int | None = None,
    warmup: int = 0,
) -> Timing:
    """Time ``run()`` ``repeats`` times, repeating runs that other processes slowed down.

    Args:
        run:
            The work to time; its result is ignored unless it is a :class:`SelfTimed`, whose
            seconds then stand for the run's wall time.
        repeats:
            Clean runs wanted.
        max_other_cores:
            A run is contaminated when other processes kept more than this many cores busy on
            average while it ran (the kernel's own housekeeping stays well below 0.05).
        max_attempts:
            Runs at most, clean or not (default ``3 * repeats``).
        warmup:
            Untimed runs first (caches, lazy initialisation).

    Returns:
        The :class:`Timing`.
    """
    timings = guarded_times(
        {"run": run},
        repeats=repeats,
        max_other_cores=max_other_cores,
        max_attempts=max_attempts,
        warmup=warmup,
    )
    return timings["run"]


def guarded_times(
    runs: Mapping[str, Callable[[], object]],
    *,
    repeats: int = 3,
    max_other_cores: float = 0.15,
    max_attempts: int | None = None,
    warmup: int = 0,
) -> dict[str, Timing]:
    """:func:`guarded_time` for several callables, interleaved: one run of each in turn.

    On a machine that other people's jobs keep busy, runs made one after the other see
    different loads; interleaved, a ratio of two medians compares runs made under about the
    same load. A callable stops being run once it has ``repeats`` clean runs or
    ``max_attempts`` runs in all. Arguments as for :func:`guarded_time`.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1 but got {repeats}.")
    if max_other_cores < 0:
        raise ValueError(f"max_other_cores must be >= 0 but got {max_other_cores}.")
    max_attempts = 3 * repeats if max_attempts is None else max_attempts
    if max_attempts < repeats:
        raise ValueError(f"max_attempts ({max_attempts}) must be at least repeats ({repeats}).")
    for run in runs.values():
        for _ in range(warmup):
            run()
    records: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in runs}

    def clean_runs(name: str) -> list[float]:
        # NaN (no /proc/stat) counts as clean.
        return [wall for wall, other, _, _ in records[name] if not other > max_other_cores]

    def done(name: str) -> bool:
        return len(records[name]) >= max_attempts or len(clean_runs(name)) >= repeats

    while not all(done(name) for name in runs):
        for name, run in runs.items():
            if not done(name):
                records[name].append(_timed_run(run))
    timings = {}
    for name, record in records.items():
        clean = len(clean_runs(name)) >= repeats
        walls = clean_runs(name) if clean else [wall for wall, _, _, _ in record]
        timings[name] = Timing(
            statistics.median(walls),
            clean,
            [wall for wall, _, _, _ in record],
            [other for _, other, _, _ in record],
            [own for _, _, own, _ in record],
            [seconds for _, _, _, seconds in record],
        )
    return timings


def _timed_run(run: Callable[[], object]) -> tuple[float, float, float, float]:
    """One run: its wall time, other processes' and its own cores, its own CPU seconds."""
    busy_before, own_before = machine_busy_seconds(), own_cpu_seconds()
    start = time.perf_counter()
    result = run()
    span = time.perf_counter() - start
    busy_after, own_after = machine_busy_seconds(), own_cpu_seconds()
    wall = result.seconds if isinstance(result, SelfTimed) else span
    own_used = own_after - own_before
    if busy_before is None or busy_after is None:
        other_used = float("nan")
    else:
        # Clock ticks are coarse (10 ms): never report a negative load.
        other_used = max(0.0, (busy_after - busy_before) - own_used)
    work_cpu = own_used
    if isinstance(result, SelfTimed) and result.cpu_seconds is not None:
        work_cpu = result.cpu_seconds  # e.g. without the children's start-up
    return wall, other_used / span, own_used / span, work_cpu
