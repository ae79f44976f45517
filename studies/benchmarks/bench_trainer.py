"""Benchmark of the instance trainer against a plain one-model-at-a-time PyTorch loop.

Measures instance-epochs per second of ``train_instances`` at several K (instances of one
configuration trained together) and of a plain loop (one ``nn.Module``, fused AdamW, the same
data and epochs), and the FLOP floor: training + evaluation FLOPs per instance-epoch (counted by
``torch.utils.flop_counter``) against the GFLOP/s of one large matmul on the same device.
Every timing is guarded against other processes' load (see ``_guard.py``).

Run (from the repository root)::

    .venv/bin/python studies/benchmarks/bench_trainer.py                 # CPU, K = 1 8 32 128
    .venv/bin/python studies/benchmarks/bench_trainer.py --device cuda   # K = 1 8 32 128 256
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
import json
import os
from pathlib import Path
import platform
import sys
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from _guard import Timing  # noqa: E402
from _guard import guarded_time  # noqa: E402

from optuna_robust import Instance  # noqa: E402
from optuna_robust import make_instances  # noqa: E402
from optuna_robust.calo.losses import loss_for  # noqa: E402
from optuna_robust.calo.models import ModelConfig  # noqa: E402
from optuna_robust.calo.models import build_model  # noqa: E402
from optuna_robust.calo.models import count_parameters  # noqa: E402
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


@dataclass
class Row:
    """One line of the result table."""

    name: str
    k: int
    timing: Timing
    instance_epochs: int

    @property
    def rate(self) -> float:
        return self.instance_epochs / self.timing.seconds


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = {**CONFIG, "batch_size": args.batch_size}
    data = SyntheticCaloData(n_test=args.n_test)
    settings = TrainSettings(
        min_epochs=args.epochs,
        window=1,
        max_epochs=args.epochs,
        n_train=args.n_train,
        n_test=args.n_test,
        group_size=args.group_size,
    )
    guard = {
        "repeats": args.repeats,
        "max_other_cores": args.max_other_cores,
        "max_attempts": args.max_attempts,
    }
    print(describe_machine(device, args))

    ceiling = matmul_gflops(device, guard)
    flops = flops_per_instance_epoch(config, args.n_train, args.n_test)
    print(
        f"matmul ceiling: {ceiling:.1f} GFLOP/s; model: {count_parameters(config)} "
        f"parameters, {flops / 1e9:.3f} GFLOP per instance-epoch "
        f"(n_train={args.n_train}, n_test={args.n_test})\n"
    )

    def trainer(k: int) -> Callable[[], object]:
        instances = make_instances(config, k, seed=BENCH_SEED)
        return lambda: train_instances(
            config, instances, data=data, task=TASK, settings=settings, device=device
        )

    def plain() -> object:
        instances = make_instances(config, args.plain_instances, seed=BENCH_SEED)
        return [plain_loop(config, instance, data, args, device) for instance in instances]

    # Warm-up (lazy initialisation, oneDNN / cuDNN kernel selection for each group shape)
    # outside the timings.
    for k in sorted({1, *(min(k, 16) for k in args.ks)}):
        trainer(k)()
    plain_loop(config, make_instances(config, 1, seed=BENCH_SEED)[0], data, args, device)
    rows = [Row("plain loop", 1, guarded_time(plain, **guard), args.plain_instances * args.epochs)]
    print(format_row(rows[0], rows[0].rate, flops, ceiling), flush=True)
    for k in args.ks:
        rows.append(Row("trainer", k, guarded_time(trainer(k), **guard), k * args.epochs))
        print(format_row(rows[-1], rows[0].rate, flops, ceiling), flush=True)

    print("\n" + markdown_table(rows, flops, ceiling))
    if args.json:
        Path(args.json).write_text(json.dumps(as_json(rows, flops, ceiling, args), indent=2))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--ks",
        type=int,
        nargs="+",
        default=None,
        help="instances trained together (default: 1 8 32 128, +256 on cuda)",
    )
    parser.add_argument("--n-train", type=int, default=2000, help="training rows per epoch")
    parser.add_argument("--n-test", type=int, default=500, help="test rows evaluated per epoch")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--group-size",
        type=int,
        default=None,
        help="TrainSettings.group_size (default: the trainer's choice)",
    )
    parser.add_argument(
        "--plain-instances", type=int, default=2, help="instances the plain loop trains per timing"
    )
    parser.add_argument("--repeats", type=int, default=3, help="clean timings per median")
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=12,
        help="timings at most per measurement, clean or not",
    )
    parser.add_argument(
        "--max-other-cores",
        type=float,
        default=0.15,
        help="other processes' load (cores) above which a timing is redone",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    if args.ks is None:
        args.ks = [1, 8, 32, 128] + ([256] if args.device.startswith("cuda") else [])
    return args


def plain_loop(
    config: dict[str, Any],
    instance: Instance,
    data: SyntheticCaloData,
    args: argparse.Namespace,
    device: torch.device,
) -> float:
    """What one would write without the trainer: one model, fused AdamW, the same work."""
    model_config = ModelConfig.from_dict(config)
    model = build_model(model_config, TASK, init_seed=instance.init_seed).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=model_config.lr, weight_decay=model_config.l2, fused=True
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
        for start in range(0, args.n_train, args.batch_size):
            rows = order[start : start + args.batch_size]
            loss = loss_fn(model(deposits[rows]), energy[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            test_loss = loss_fn(model(test_deposits), test_energy)
        float(test_loss)  # one synchronisation per epoch, as the trainer has
    return float(test_loss)


def matmul_gflops(device: torch.device, guard: dict[str, Any]) -> float:
    """GFLOP/s of a large float32 matmul: the ceiling the model's FLOPs are compared with."""
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    repeats = 20 if device.type == "cuda" else 4

    def run() -> None:
        for _ in range(repeats):
            torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()

    timing = guarded_time(run, warmup=1, **guard)
    print(f"matmul {n}x{n}: {timing.describe()}")
    return 2 * n**3 * repeats / timing.seconds / 1e9


def flops_per_instance_epoch(config: dict[str, Any], n_train: int, n_test: int) -> float:
    """Training (forward + backward) and evaluation FLOPs of one instance for one epoch."""
    model = build_model(config, TASK, init_seed=0)
    batch = torch.rand(64, 15, 15)
    with FlopCounterMode(display=False) as counter:
        model(batch).sum().backward()
    train = counter.get_total_flops() / len(batch)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(batch)
    evaluate = counter.get_total_flops() / len(batch)
    return train * n_train + evaluate * n_test


def format_row(row: Row, plain_rate: float, flops: float, ceiling: float) -> str:
    gflops = row.rate * flops / 1e9
    return (
        f"{row.name:10s} K={row.k:<4d} {row.rate:9.2f} instance-epochs/s  "
        f"x{row.rate / plain_rate:6.2f} plain  {gflops:7.1f} GFLOP/s "
        f"({100 * gflops / ceiling:5.1f} % of matmul)  {row.timing.describe()}"
    )


def markdown_table(rows: list[Row], flops: float, ceiling: float) -> str:
    plain_rate = rows[0].rate
    lines = [
        "| run | K | instance-epochs/s | vs plain loop | GFLOP/s | % of matmul ceiling | "
        "timings | other processes (cores) | clean |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        gflops = row.rate * flops / 1e9
        loads = ", ".join(f"{load:.2f}" for load in row.timing.other_cores)
        lines.append(
            f"| {row.name} | {row.k} | {row.rate:.2f} | {row.rate / plain_rate:.2f}x | "
            f"{gflops:.1f} | {100 * gflops / ceiling:.1f} % | {len(row.timing.runs)} | "
            f"{loads} | {'yes' if row.timing.clean else 'NO'} |"
        )
    return "\n".join(lines)


def as_json(
    rows: list[Row], flops: float, ceiling: float, args: argparse.Namespace
) -> dict[str, Any]:
    return {
        "args": vars(args),
        "matmul_gflops": ceiling,
        "flops_per_instance_epoch": flops,
        "rows": [
            {
                "name": row.name,
                "k": row.k,
                "instance_epochs_per_s": row.rate,
                "seconds": row.timing.seconds,
                "runs": row.timing.runs,
                "other_cores": row.timing.other_cores,
                "clean": row.timing.clean,
            }
            for row in rows
        ],
    }


def describe_machine(device: torch.device, args: argparse.Namespace) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    return (
        f"{time.strftime('%Y-%m-%d %H:%M')}  torch {torch.__version__}  device {device} "
        f"({name})  threads {torch.get_num_threads()}  epochs {args.epochs}  "
        f"batch {args.batch_size}"
    )


if __name__ == "__main__":
    main()
