"""Benchmark of the instance trainer against the best plain PyTorch setup, on every core.

The fair baseline is what a user gets without the trainer: a plain training loop (one
``nn.Module``, fused AdamW) in one single-thread process per core, every core busy. Two
measurements, in one run:

1. one configuration (about the paper's "2 conv + 2 FC" size) at K = 1, 8, 32, 128: the
   trainer in one process with one torch thread per core (groups train in parallel threads),
   and in the baseline's setup, one single-thread process per core with K / cores each;
2. round 1 of a selection over a slice of the paper's grid (architectures with every one of
   their training configurations: NAdam/AdamW x 4 learning rates x 3 L2 x 4 batch sizes),
   through ``select``: mixed groups (``CaloTrainer.train_group``) against one model per call
   (``CaloTrainer.__call__``) on a process pool of one single-thread worker per core; and the
   plain loop one model per call on that pool, for comparison.

Each reports instance-epochs/s, the ratio to its baseline and the share of the matmul ceiling
(a large float32 matmul on every core), from FLOPs counted by ``torch.utils.flop_counter``;
and the same per CPU-second used (against one thread's matmul per CPU-second), which other
processes' load inflates much less than wall time. Every timing is guarded against other
processes' load (``_guard.py``).

Run (from the repository root)::

    .venv/bin/python studies/benchmarks/bench_trainer.py --json bench.json
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import concurrent.futures
from dataclasses import dataclass
from dataclasses import replace
import functools
import json
import multiprocessing
import os
from pathlib import Path
import platform
import sys
import time
from typing import Any

import optuna
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from _guard import SelfTimed  # noqa: E402
from _guard import Timing  # noqa: E402
from _guard import guarded_time  # noqa: E402
from _guard import guarded_times  # noqa: E402

from optuna_robust import Instance  # noqa: E402
from optuna_robust import RobustPruner  # noqa: E402
from optuna_robust import RobustSampler  # noqa: E402
from optuna_robust import make_instances  # noqa: E402
from optuna_robust import select  # noqa: E402
from optuna_robust.calo.losses import loss_for  # noqa: E402
from optuna_robust.calo.models import ModelConfig  # noqa: E402
from optuna_robust.calo.models import build_model  # noqa: E402
from optuna_robust.calo.models import count_parameters  # noqa: E402
from optuna_robust.calo.spaces import paper_selection_space  # noqa: E402
from optuna_robust.calo.train import CaloTrainer  # noqa: E402
from optuna_robust.calo.train import TrainSettings  # noqa: E402
from optuna_robust.calo.train import train_instances  # noqa: E402
from tests.calo._synthetic import SyntheticCaloData  # noqa: E402

# About the paper's "2 conv + 2 FC" model (19,315 parameters there): 18,961 parameters.
CONFIG = {
    "n_conv": 2,
    "conv1_filters": 32,
    "conv1_kernel": 5,
    "conv2_filters": 16,
    "conv2_kernel": 3,
    "padding": "same",
    "pooling": True,
    "n_fc": 2,
    "fc1_units": 64,
    "fc2_units": 64,
    "activation": "ReLU",
    "optimizer": "AdamW",
    "lr": 1e-3,
    "batch_size": 32,
    "l2": 0.01,
}
TASK = "energy"
BENCH_SEED = 0  # the study seed of the instances timed: the same instances every run
# Architectures of the paper grid (spaces.paper_selection_space) for the round-1 slice: the
# grid's median in FLOPs (1.34 MFLOP per training row), its smallest (0.28) and its largest
# (4.47); the grid's mean is 1.53. --architectures takes the first N.
ARCHITECTURES = [
    {
        "inductive_bias": False,
        "n_fc": 3,
        "conv1_kernel": 5,
        "conv1_filters": 16,
        "conv2_filters": 8,
    },
    {"inductive_bias": True, "n_fc": 4, "conv1_kernel": 3, "conv1_filters": 8, "conv2_filters": 8},
    {
        "inductive_bias": True,
        "n_fc": 2,
        "conv1_kernel": 7,
        "conv1_filters": 16,
        "conv2_filters": 16,
    },
]


@dataclass
class Row:
    """One line of a result table: a timing, the work it did and what to compare it with."""

    name: str
    setup: str
    instance_epochs: int
    flops: float  # of all the instance-epochs timed
    timing: Timing
    k: int | str = ""

    @property
    def rate(self) -> float:
        return self.instance_epochs / self.timing.seconds

    @property
    def cpu_rate(self) -> float:
        """Instance-epochs per CPU second used: what other processes' load barely changes."""
        return self.instance_epochs / self.timing.cpu_seconds

    @property
    def gflops(self) -> float:
        return self.flops / self.timing.seconds / 1e9

    @property
    def cpu_gflops(self) -> float:
        return self.flops / self.timing.cpu_seconds / 1e9


@dataclass(frozen=True)
class Ceilings:
    """A large float32 matmul: GFLOP/s on every core (wall time), and per CPU-second."""

    wall: float
    core: float


def main() -> None:
    args = parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cores = args.cores
    torch.set_num_threads(cores)
    guard = {
        "repeats": args.repeats,
        "max_other_cores": args.max_other_cores,
        "max_attempts": args.max_attempts,
    }
    data = SyntheticCaloData(n_test=args.n_test)
    settings = fixed_epochs(args.epochs, args.n_train, args.n_test)
    print(describe_machine(args))
    ceilings = matmul_ceilings(guard)
    flops = flops_per_instance_epoch(CONFIG, args.n_train, args.n_test)
    print(
        f"matmul ceiling: {ceilings.wall:.1f} GFLOP/s on {cores} cores, {ceilings.core:.1f} "
        f"per CPU-second; model: {count_parameters(CONFIG)} parameters, "
        f"{flops / 1e9:.3f} GFLOP per instance-epoch\n"
    )
    single = []
    if "single" in args.parts:
        single = single_configuration(args, data, settings, flops, guard, ceilings)
    round_one = []
    if "round" in args.parts:
        round_one = selection_round_one(args, data, settings, guard, ceilings)
    tables = [markdown_table(rows, ceilings) for rows in (single, round_one) if rows]
    print("\n" + "\n\n".join(tables))
    if args.json:
        document = {
            "args": vars(args),
            "machine": describe_machine(args),
            "matmul_gflops": ceilings.wall,
            "matmul_gflops_per_cpu_s": ceilings.core,
            "single_configuration": [as_json(row, ceilings) for row in single],
            "round_one": [as_json(row, ceilings) for row in round_one],
        }
        Path(args.json).write_text(json.dumps(document, indent=2))


def single_configuration(
    args: argparse.Namespace,
    data: SyntheticCaloData,
    settings: TrainSettings,
    flops: float,
    guard: dict[str, Any],
    ceilings: Ceilings,
) -> list[Row]:
    """The plain loop on one core and on every core, and the trainer at each K."""
    cores, epochs = args.cores, args.epochs

    def plain(n_instances: int, rank: int) -> Callable[[], object]:
        return Work("plain", n_instances, args.n_train, args.n_test, epochs).prepare(rank)

    def trainer(k: int, rank: int = 0) -> Callable[[], object]:
        return Work("trainer", k, args.n_train, args.n_test, epochs).prepare(rank)

    def processes(kind: str, n_instances: int) -> Callable[[], SelfTimed]:
        return in_processes(cores, Work(kind, n_instances, args.n_train, args.n_test, epochs))

    # Warm-up (lazy initialisation, oneDNN kernel selection per shape) outside the timings.
    for k in sorted({1, *(min(k, 16) for k in args.ks)}):
        trainer(k)()
    plain(1, 0)()
    n_plain = args.plain_instances
    one = Work("plain", n_plain, args.n_train, args.n_test, epochs)
    runs: list[tuple[str, str, int | str, int, Callable[[], object]]] = [
        ("plain loop", "1 process x 1 thread", 1, n_plain, in_processes(1, one)),
        (
            "plain loop",
            f"{cores} processes x 1 thread (baseline)",
            1,
            cores * n_plain,
            processes("plain", n_plain),
        ),
        ("trainer", f"{cores} processes x 1 thread", 1, cores, processes("trainer", 1)),
    ]
    for k in args.ks:
        runs.append(("trainer", f"1 process x {cores} threads", k, k, trainer(k)))
        if k >= 2 * cores:  # the baseline's setup: K / cores instances in each process
            split = processes("trainer", k // cores)
            runs.append(("trainer", f"{cores} processes x 1 thread", k, k // cores * cores, split))
    # Interleaved: each ratio compares runs made under about the same load.
    timings = guarded_times({str(i): run[-1] for i, run in enumerate(runs)}, **guard)
    rows = [
        Row(name, setup, n * epochs, n * epochs * flops, timings[str(i)], k)
        for i, (name, setup, k, n, _) in enumerate(runs)
    ]
    for row in rows:
        print(format_row(row, rows[1], ceilings), flush=True)
    return rows


def selection_round_one(
    args: argparse.Namespace,
    data: SyntheticCaloData,
    settings: TrainSettings,
    guard: dict[str, Any],
    ceilings: Ceilings,
) -> list[Row]:
    """Round 1 of ``select`` over the slice: one model per call against mixed groups."""
    candidates = grid_slice(args.architectures)
    flops = sum(flops_per_instance_epoch(c, args.n_train, args.n_test) for c in candidates)
    n_groups = len({CaloTrainer(data, task=TASK).group_key(c) for c in candidates})
    print(
        f"\nround 1 over {len(candidates)} candidates of the paper grid "
        f"({args.architectures} architectures, {n_groups} groups), "
        f"{flops * args.epochs / len(candidates) / 1e9:.3f} GFLOP per instance on average"
    )
    cores = args.cores
    single_thread = CaloTrainer(data, task=TASK, settings=settings, num_threads=1)
    threaded = CaloTrainer(data, task=TASK, settings=settings, num_threads=cores)
    variants = [
        ("plain loop per call", f"pool of {cores} x 1 thread", PlainTrainer(data, args), cores),
        (
            "one model per call",
            f"pool of {cores} x 1 thread (baseline)",
            single_thread.__call__,
            cores,
        ),
        ("mixed groups", f"pool of {cores} x 1 thread", single_thread, cores),
        ("mixed groups", f"in process, {cores} threads", threaded, 0),
    ]
    warm = grid_slice(1)[:: len(grid_slice(1)) // 8]  # a few of each shape, untimed
    round_one(warm, threaded, 0)()
    round_guard = {**guard, "max_attempts": max(guard["repeats"], args.round_max_attempts)}
    timings = guarded_times(
        {str(i): round_one(candidates, v[2], v[3]) for i, v in enumerate(variants)},
        **round_guard,
    )
    epochs = len(candidates) * args.epochs
    rows = [
        Row(name, setup, epochs, flops * args.epochs, timings[str(i)], len(candidates))
        for i, (name, setup, _, _) in enumerate(variants)
    ]
    for row in rows:
        print(format_row(row, rows[1], ceilings), flush=True)
    return rows


def round_one(
    candidates: list[dict[str, Any]], train_fn: Callable[..., Any], workers: int
) -> Callable[[], object]:
    """Round 1 of a selection (one instance of every candidate) through ``select``."""

    def run() -> object:
        study = optuna.create_study(
            sampler=RobustSampler(candidates=candidates, seed=BENCH_SEED),
            pruner=RobustPruner(max_instances=1),
        )
        executor = None
        if workers:
            context = multiprocessing.get_context("fork")
            executor = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)
        try:
            return select(study, train_fn, executor=executor, final_instances=0, seed=BENCH_SEED)
        finally:
            if executor is not None:
                executor.shutdown(wait=True)  # joined: their CPU time counts as ours

    return run


def grid_slice(n_architectures: int) -> list[dict[str, Any]]:
    """Every candidate of the paper grid whose architecture is one of the first N chosen."""
    chosen = ARCHITECTURES[:n_architectures]
    return [
        candidate
        for candidate in paper_selection_space()
        if any(all(candidate[key] == value for key, value in arch.items()) for arch in chosen)
    ]


def fixed_epochs(epochs: int, n_train: int, n_test: int) -> TrainSettings:
    """Settings that train every instance exactly ``epochs`` epochs: the same work each run."""
    return TrainSettings(
        min_epochs=epochs, window=1, max_epochs=epochs, n_train=n_train, n_test=n_test
    )


@dataclass(frozen=True)
class Work:
    """What one benchmark process trains: instances of CONFIG, by the plain loop or the trainer.

    Picklable, so that spawned processes (fresh interpreters) can build it themselves.
    """

    kind: str  # "plain" or "trainer"
    n_instances: int
    n_train: int
    n_test: int
    epochs: int

    def prepare(self, rank: int) -> Callable[[], object]:
        """Data and instances (seeded by ``rank``) built; returns the work to time."""
        data = SyntheticCaloData(n_test=self.n_test)
        instances = make_instances(CONFIG, self.n_instances, seed=BENCH_SEED + rank)
        if self.kind == "plain":
            sizes = argparse.Namespace(
                n_train=self.n_train, n_test=self.n_test, epochs=self.epochs
            )
            cpu = torch.device("cpu")
            return lambda: [plain_loop(CONFIG, i, data, sizes, cpu) for i in instances]
        settings = fixed_epochs(self.epochs, self.n_train, self.n_test)
        return lambda: train_instances(CONFIG, instances, data=data, task=TASK, settings=settings)


def in_processes(n_processes: int, work: Work) -> Callable[[], SelfTimed]:
    """``work`` in ``n_processes`` single-thread processes at once (ranks 0, 1, ...).

    The processes are spawned (fresh interpreters: forking this multi-threaded process hung
    now and then), prepare their work, wait until all are ready, then run it; the timing runs
    from that moment to the last one's end, its CPU time is theirs over the same span.
    """

    def run() -> SelfTimed:
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(n_processes)
        spans = context.Queue()
        processes = [
            context.Process(target=_timed_child, args=(work, rank, barrier, spans))
            for rank in range(n_processes)
        ]
        for process in processes:
            process.start()
        try:
            times = [spans.get(timeout=_CHILD_TIMEOUT_S) for _ in processes]
        finally:
            for process in processes:
                process.join(timeout=_CHILD_TIMEOUT_S)  # joined: the guard counts their CPU
        if any(process.exitcode for process in processes):
            raise RuntimeError("a benchmark process failed")
        wall = max(stop for _, stop, _ in times) - min(start for start, _, _ in times)
        return SelfTimed(wall, cpu_seconds=sum(cpu for _, _, cpu in times))

    return run


_CHILD_TIMEOUT_S = 900  # a benchmark process that says nothing for this long has failed


def _timed_child(work: Work, rank: int, barrier: Any, spans: Any) -> None:
    torch.set_num_threads(1)
    # A fresh interpreter: warm up on every shape of the timed work (a full minibatch, the
    # last smaller one, the test chunks) before the start, as the in-process runs do.
    batch = CONFIG["batch_size"]
    warm_rows = batch + (work.n_train % batch or batch)
    replace(work, n_train=min(work.n_train, warm_rows), epochs=1).prepare(rank)()
    prepared = work.prepare(rank)
    barrier.wait()
    start, cpu = time.perf_counter(), time.process_time()
    prepared()
    spans.put((start, time.perf_counter(), time.process_time() - cpu))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=["single", "round"],
        default=["single", "round"],
        help="one configuration, round 1 of the grid slice, or both",
    )
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--n-train", type=int, default=2000, help="training rows per epoch")
    parser.add_argument("--n-test", type=int, default=500, help="test rows evaluated per epoch")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--plain-instances", type=int, default=2, help="instances per process of the plain loop"
    )
    parser.add_argument(
        "--architectures",
        type=int,
        default=len(ARCHITECTURES),
        choices=range(1, len(ARCHITECTURES) + 1),
        help="paper-grid architectures in the round-1 slice (96 candidates each)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="clean timings per median")
    parser.add_argument("--max-attempts", type=int, default=12, help="timings at most")
    parser.add_argument(
        "--round-max-attempts", type=int, default=4, help="timings at most of a round-1 run"
    )
    parser.add_argument(
        "--max-other-cores",
        type=float,
        default=0.15,
        help="other processes' load (cores) above which a timing is redone",
    )
    parser.add_argument("--json", default=None, help="also write the results here")
    return parser.parse_args()


def plain_loop(
    config: dict[str, Any],
    instance: Instance,
    data: SyntheticCaloData,
    args: argparse.Namespace,
    device: torch.device,
) -> float:
    """What one would write without the trainer: one model, its torch optimiser, the same work."""
    model_config = ModelConfig.from_dict(config)
    model = build_model(model_config, TASK, init_seed=instance.init_seed).to(device)
    options = {"fused": True} if model_config.optimizer in ("Adam", "AdamW", "SGD") else {}
    optimizer = getattr(torch.optim, model_config.optimizer)(
        model.parameters(), lr=model_config.lr, weight_decay=model_config.l2, **options
    )
    loss_fn = loss_for(TASK)
    sample = data.training_sample(args.n_train, instance.data_seed)
    test = data.test_sample(args.n_test)
    deposits, energy = sample.deposits.to(device), sample.energy.to(device)
    test_deposits, test_energy = test.deposits.to(device), test.energy.to(device)
    generator = torch.Generator().manual_seed(instance.init_seed)
    test_loss = torch.zeros((), device=device)
    for _ in range(args.epochs):
        order = torch.randperm(args.n_train, generator=generator).to(device)
        for start in range(0, args.n_train, model_config.batch_size):
            rows = order[start : start + model_config.batch_size]
            loss = loss_fn(model(deposits[rows]), energy[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            test_loss = loss_fn(model(test_deposits), test_energy)
        float(test_loss)  # one synchronisation per epoch, as the trainer has
    return float(test_loss)


@dataclass
class PlainTrainer:
    """A ``train_fn`` for ``select`` that runs the plain loop, one model per call."""

    data: SyntheticCaloData
    args: argparse.Namespace

    def __call__(self, params: dict[str, Any], instances: list[Instance]) -> list[float]:
        torch.set_num_threads(1)
        return [
            plain_loop(params, i, self.data, self.args, torch.device("cpu")) for i in instances
        ]


def matmul_ceilings(guard: dict[str, Any]) -> Ceilings:
    """The matmul rate on every core, and per CPU-second on one thread: the FLOP ceilings."""
    n, repeats = 2048, 4
    a, b = torch.randn(n, n), torch.randn(n, n)

    def run() -> None:
        for _ in range(repeats):
            torch.mm(a, b)

    timing = guarded_time(run, warmup=1, **guard)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    one_thread = guarded_time(run, warmup=1, **guard)
    torch.set_num_threads(threads)
    print(f"matmul {n}x{n}, {threads} threads: {timing.describe()}")
    print(f"matmul {n}x{n}, 1 thread: {one_thread.describe()}")
    flops = 2 * n**3 * repeats / 1e9
    return Ceilings(wall=flops / timing.seconds, core=flops / one_thread.cpu_seconds)


@functools.cache
def _flops_per_row(frozen_config: tuple[tuple[str, Any], ...]) -> tuple[float, float]:
    model = build_model(dict(frozen_config), TASK, init_seed=0)
    batch = torch.rand(64, 15, 15)
    with FlopCounterMode(display=False) as counter:
        model(batch).sum().backward()
    train = counter.get_total_flops() / len(batch)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(batch)
    return train, counter.get_total_flops() / len(batch)


def flops_per_instance_epoch(config: dict[str, Any], n_train: int, n_test: int) -> float:
    """Training (forward + backward) and evaluation FLOPs of one instance for one epoch."""
    network = {k: v for k, v in config.items() if k not in ("optimizer", "lr", "l2", "batch_size")}
    train, evaluate = _flops_per_row(tuple(sorted(network.items())))
    return train * n_train + evaluate * n_test


def format_row(row: Row, baseline: Row, ceilings: Ceilings) -> str:
    return (
        f"{row.name:19s} {str(row.k):>4s} {row.setup:38s} {row.rate:8.2f} instance-epochs/s "
        f"x{row.rate / baseline.rate:5.2f} ({100 * row.gflops / ceilings.wall:4.1f} %); "
        f"per CPU-s {row.cpu_rate:6.2f} x{row.cpu_rate / baseline.cpu_rate:5.2f} "
        f"({100 * row.cpu_gflops / ceilings.core:4.1f} %)  {row.timing.describe()}"
    )


def markdown_table(rows: list[Row], ceilings: Ceilings) -> str:
    baseline = next(row for row in rows if "baseline" in row.setup)
    lines = [
        "| run | K or models | setup | instance-epochs/s | vs baseline | % of ceiling | "
        "per CPU-second | vs baseline | % of core ceiling | timings | other processes (cores) "
        "| clean |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        loads = ", ".join(f"{load:.2f}" for load in row.timing.other_cores)
        lines.append(
            f"| {row.name} | {row.k} | {row.setup} | {row.rate:.2f} | "
            f"{row.rate / baseline.rate:.2f}x | {100 * row.gflops / ceilings.wall:.1f} % | "
            f"{row.cpu_rate:.2f} | {row.cpu_rate / baseline.cpu_rate:.2f}x | "
            f"{100 * row.cpu_gflops / ceilings.core:.1f} % | {len(row.timing.runs)} | {loads} | "
            f"{'yes' if row.timing.clean else 'NO'} |"
        )
    return "\n".join(lines)


def as_json(row: Row, ceilings: Ceilings) -> dict[str, Any]:
    return {
        "name": row.name,
        "setup": row.setup,
        "k": row.k,
        "instance_epochs_per_s": row.rate,
        "gflops": row.gflops,
        "share_of_ceiling": row.gflops / ceilings.wall,
        "instance_epochs_per_cpu_s": row.cpu_rate,
        "share_of_core_ceiling": row.cpu_gflops / ceilings.core,
        "seconds": row.timing.seconds,
        "runs": row.timing.runs,
        "cpu_seconds": row.timing.own_seconds,
        "other_cores": row.timing.other_cores,
        "clean": row.timing.clean,
    }


def describe_machine(args: argparse.Namespace) -> str:
    name = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    return (
        f"{time.strftime('%Y-%m-%d %H:%M')}  torch {torch.__version__}  cpu ({name})  "
        f"cores used {args.cores}  epochs {args.epochs}  n_train {args.n_train}  "
        f"n_test {args.n_test}"
    )


if __name__ == "__main__":
    main()
