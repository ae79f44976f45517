"""The instance trainer on one GPU: a prepared check that fits in 8 minutes on one H200.

Measures, on one device, in one run (a time budget skips what would not fit):

1. the plain loop (one ``nn.Module``, fused AdamW, one instance after the other);
2. the trainer for one configuration at K = 1, 4, 16, 64, 256, 1024 instances;
3. mixed groups: one paper-grid architecture with its 24 training configurations per batch
   size, 1, 8 and 43 instances each (``train_batches``), and how far one configuration's
   losses in a mixed group are from its losses trained alone;
4. a selection slice through ``select`` (halving, final instances), sized from the mixed-group
   rate to take about a minute.

It writes JSON (``--json``) and prints a table. ``--quick`` shrinks everything so that it runs
end to end on a CPU in seconds (the test suite runs it). Run on the GPU machine with
``bash studies/benchmarks/gpu_check.sh`` (it also installs carried wheels, see
docs/performance.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import concurrent.futures
import json
import math
import os
from pathlib import Path
import sys
import time
from typing import Any

import optuna
import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

from bench_trainer import BENCH_SEED  # noqa: E402
from bench_trainer import CONFIG  # noqa: E402
from bench_trainer import TASK  # noqa: E402
from bench_trainer import fixed_epochs  # noqa: E402
from bench_trainer import flops_per_instance_epoch  # noqa: E402
from bench_trainer import grid_slice  # noqa: E402
from bench_trainer import plain_loop  # noqa: E402

from optuna_robust import RobustPruner  # noqa: E402
from optuna_robust import RobustSampler  # noqa: E402
from optuna_robust import make_instances  # noqa: E402
from optuna_robust import select  # noqa: E402
from optuna_robust.calo.train import CaloTrainer  # noqa: E402
from optuna_robust.calo.train import TrainSettings  # noqa: E402
from optuna_robust.calo.train import train_batches  # noqa: E402
from optuna_robust.calo.train import train_instances  # noqa: E402
from tests.calo._synthetic import SyntheticCaloData  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # these small ops: a second OpenMP thread only waits
    # Float32 as on the CPU (the equivalence tolerance is 1e-4); --tf32 lets cuDNN use TF32.
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    start = time.perf_counter()
    data = SyntheticCaloData(n_test=args.n_test)
    settings = fixed_epochs(1, args.n_train, args.n_test)
    check = Check(args, start)
    check.note("environment", describe(device))
    check.note("matmul_gflops", matmul_gflops(device, args.quick))
    flops = flops_per_instance_epoch(CONFIG, args.n_train, args.n_test)

    instances = make_instances(CONFIG, max(args.ks), seed=BENCH_SEED)
    plain_instances = instances[: args.plain_instances]
    check.time(
        "plain loop",
        1,
        len(plain_instances),
        flops * len(plain_instances),
        lambda: [plain_loop(CONFIG, i, data, args, device) for i in plain_instances],
    )
    for k in args.ks:
        check.time(
            "trainer",
            k,
            k,
            flops * k,
            lambda k=k: train_instances(
                CONFIG, instances[:k], data=data, task=TASK, settings=settings, device=device
            ),
        )

    candidates = grid_slice(1)
    if args.quick:
        candidates = candidates[:: len(candidates) // 8]
    slice_flops = sum(flops_per_instance_epoch(c, args.n_train, args.n_test) for c in candidates)
    for per_config in args.mixed_instances:
        batches = [
            (config, make_instances(config, per_config, seed=BENCH_SEED)) for config in candidates
        ]
        check.time(
            "mixed groups",
            f"{len(candidates)}x{per_config}",
            len(candidates) * per_config,
            slice_flops * per_config,
            lambda batches=batches: train_batches(
                batches, data=data, task=TASK, settings=settings, device=device
            ),
        )
    check.note("mixed_vs_alone_max_rel_diff", mixed_vs_alone(candidates, data, settings, device))
    check.selection_slice(data, device)
    check.finish()


class Check:
    """Runs the timings within the time budget and collects the rows."""

    def __init__(self, args: argparse.Namespace, start: float) -> None:
        self.args, self.start = args, start
        self.rows: list[dict[str, Any]] = []
        self.notes: dict[str, Any] = {}
        self.last_rate = math.inf  # instance-epochs/s of the last timing: sizes the next

    def note(self, key: str, value: Any) -> None:
        self.notes[key] = value
        print(f"{key}: {value}", flush=True)

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.start)

    def time(
        self,
        name: str,
        k: int | str,
        instance_epochs: int,
        flops: float,
        run: Callable[[], object],
    ) -> None:
        """Warm up, then the median of ``--repeats`` timings; skipped when it would not fit."""
        expected = instance_epochs / self.last_rate * (1 + self.args.repeats)
        if expected > self.left():
            print(f"{name} {k}: skipped (about {expected:.0f} s, {self.left():.0f} s left)")
            self.rows.append({"name": name, "k": k, "skipped": True})
            return
        run()  # warm-up: cuDNN picks its algorithms for each shape, lazy initialisation
        seconds = []
        for _ in range(self.args.repeats):
            synchronize()
            began = time.perf_counter()
            run()
            synchronize()
            seconds.append(time.perf_counter() - began)
        median = sorted(seconds)[len(seconds) // 2]
        rate = instance_epochs / median
        self.last_rate = rate
        gflops = flops / median / 1e9
        share = gflops / self.notes["matmul_gflops"]
        self.rows.append(
            {
                "name": name,
                "k": k,
                "instance_epochs_per_s": rate,
                "gflops": gflops,
                "share_of_ceiling": share,
                "seconds": seconds,
            }
        )
        print(
            f"{name:14s} {str(k):>8s} {rate:10.1f} instance-epochs/s {gflops:9.1f} GFLOP/s "
            f"({100 * share:5.1f} % of matmul)  {median:.3f} s",
            flush=True,
        )

    def selection_slice(self, data: SyntheticCaloData, device: torch.device) -> None:
        """``select`` over the paper-grid slice, its epochs chosen to take about a minute."""
        candidates = grid_slice(3)
        if self.args.quick:
            candidates = candidates[:: len(candidates) // 12]
        final = 2 if self.args.quick else 10
        planned = dry_run_instances(candidates, final)
        mixed = [row for row in self.rows if row["name"] == "mixed groups" and "gflops" in row]
        rate = mixed[0]["instance_epochs_per_s"] if mixed else 1.0
        epochs = max(1, min(20, round(self.args.select_s * rate / planned)))
        if planned * epochs / rate > self.left():
            print(f"selection slice: skipped ({self.left():.0f} s left)")
            return
        settings = fixed_epochs(epochs, self.args.n_train, self.args.n_test)
        trainer = CaloTrainer(data, task=TASK, settings=settings, device=str(device))
        study = optuna.create_study(
            sampler=RobustSampler(candidates=candidates, seed=BENCH_SEED), pruner=RobustPruner()
        )
        # Threads overlap one group's host work (kernel launches) with another's GPU work.
        threads = self.args.select_threads if device.type == "cuda" else 0
        executor = concurrent.futures.ThreadPoolExecutor(threads) if threads else None
        began = time.perf_counter()
        result = select(study, trainer, executor=executor, final_instances=final, seed=BENCH_SEED)
        seconds = time.perf_counter() - began
        if executor is not None:
            executor.shutdown()
        trained = result.budget.instances
        self.rows.append(
            {
                "name": "select slice",
                "k": f"{len(candidates)} candidates",
                "instance_epochs_per_s": trained * epochs / seconds,
                "seconds": [seconds],
                "epochs": epochs,
                "instances": trained,
                "rounds": len(result.rounds),
            }
        )
        print(
            f"select slice: {len(candidates)} candidates, {len(result.rounds)} rounds, "
            f"{trained} instances x {epochs} epochs in {seconds:.1f} s: "
            f"{trained * epochs / seconds:.1f} instance-epochs/s",
            flush=True,
        )

    def finish(self) -> None:
        lines = [
            "| run | K | instance-epochs/s | GFLOP/s | % of matmul ceiling | seconds |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for row in self.rows:
            if row.get("skipped"):
                lines.append(f"| {row['name']} | {row['k']} | skipped | | | |")
                continue
            gflops = row.get("gflops")
            share = row.get("share_of_ceiling")
            lines.append(
                f"| {row['name']} | {row['k']} | {row['instance_epochs_per_s']:.1f} | "
                f"{'' if gflops is None else f'{gflops:.1f}'} | "
                f"{'' if share is None else f'{100 * share:.1f} %'} | "
                f"{sorted(row['seconds'])[len(row['seconds']) // 2]:.3f} |"
            )
        print("\n" + "\n".join(lines))
        print(f"\ntotal {time.perf_counter() - self.start:.0f} s")
        document = {"args": vars(self.args), **self.notes, "rows": self.rows}
        Path(self.args.json).write_text(json.dumps(document, indent=2, default=str))


def mixed_vs_alone(
    candidates: list[dict[str, Any]],
    data: SyntheticCaloData,
    settings: TrainSettings,
    device: torch.device,
) -> float:
    """Largest relative difference between a mixed group's losses and the same trained alone."""
    batches = [(c, make_instances(c, 1, seed=BENCH_SEED)) for c in candidates[:24]]
    mixed = train_batches(batches, data=data, task=TASK, settings=settings, device=device)
    worst = 0.0
    for (config, instances), results in zip(batches, mixed):
        alone = train_instances(
            config, instances, data=data, task=TASK, settings=settings, device=device
        )
        for together, single in zip(results, alone):
            for a, b in zip(together["curve"], single["curve"]):
                if math.isfinite(a) and math.isfinite(b):
                    worst = max(worst, abs(a - b) / max(abs(b), 1e-30))
    return worst


def dry_run_instances(candidates: list[dict[str, Any]], final: int) -> int:
    """Instances a selection over ``candidates`` trains (a run with a loss that costs nothing)."""
    study = optuna.create_study(
        sampler=RobustSampler(candidates=candidates, seed=BENCH_SEED), pruner=RobustPruner()
    )

    def loss(params: dict[str, Any], instances: list[Any]) -> list[float]:
        return [
            params["lr"] + params["batch_size"] / 1e3 + i.init_seed % 97 / 1e4 for i in instances
        ]

    return select(study, loss, final_instances=final, seed=BENCH_SEED).budget.instances


def matmul_gflops(device: torch.device, quick: bool) -> float:
    n = 1024 if quick else (8192 if device.type == "cuda" else 2048)
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)
    synchronize()
    began = time.perf_counter()
    for _ in range(5):
        torch.mm(a, b)
    synchronize()
    return 2 * n**3 * 5 / (time.perf_counter() - began) / 1e9


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def describe(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    cudnn = torch.backends.cudnn.version() if device.type == "cuda" else None
    return f"torch {torch.__version__}, {name}, cuDNN {cudnn}, {time.strftime('%Y-%m-%d %H:%M')}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: seconds on a CPU")
    parser.add_argument(
        "--json", default=os.path.join(os.environ.get("OUT", "."), "gpu_check.json")
    )
    parser.add_argument(
        "--budget-s", type=float, default=420.0, help="stop starting timings after"
    )
    parser.add_argument(
        "--select-s", type=float, default=60.0, help="target of the selection slice"
    )
    parser.add_argument("--select-threads", type=int, default=4, help="select's thread executor")
    parser.add_argument("--tf32", action="store_true", help="let cuDNN and cuBLAS use TF32")
    args = parser.parse_args(argv)
    args.ks = [1, 2] if args.quick else [1, 4, 16, 64, 256, 1024]
    args.mixed_instances = [1] if args.quick else [1, 8, 43]
    args.n_train, args.n_test = (64, 32) if args.quick else (2000, 500)
    args.epochs, args.plain_instances = 1, (1 if args.quick else 4)
    args.repeats = 1 if args.quick else 3
    if args.quick:
        args.select_s = 1.0
    return args


if __name__ == "__main__":
    main()
