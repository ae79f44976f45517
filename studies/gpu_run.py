"""The decisive parts of the paper on one GPU, in at most 8 minutes, with their verdicts.

Three studies, cheapest first, each at a GPU scale built on its ``long`` config:
init_vs_sampling (Fig. 7: a 16 x 16 grid, 256 instances per model in one stacked group),
selection (energy, with the paper's baseline gate) and sample_size (Figs. 4 and 8: both tasks,
dataset A, 50 instances per box, sizes 2,000 to 24,000, 100 epochs). Each writes its report
into ``OUT/<study>/``; the summary prints every finding with its verdict and the minutes each
part took. Run from the repository root::

    .venv/bin/python -m studies.gpu_run --out gpu_reports          # on the GPU machine
    .venv/bin/python -m studies.gpu_run --quick --out /tmp/quick   # CPU, under a minute

``--quick`` runs the same code on the smoke configs (the gate on, so the path where it drops
every candidate runs too), to check the script end to end before spending device time.

Sizing: on a GPU these small nets are launch-bound, about 70 kernels per optimiser step
whatever the number of stacked instances (docs/performance.md), so the cost is the number of
steps: sample_size ~350,000, selection <= 48 calls x 100 epochs x 63-250 steps, the grid
~19,000 larger ones; at 0.4 ms a step, about 5 minutes of training.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
import re
import time
from typing import Any

import optuna
import torch

from studies._common import load_config
from studies._common import write_report

# name: (base scale, overrides), in the order they run.
GPU: dict[str, tuple[str, dict[str, Any]]] = {
    "init_vs_sampling": (
        "long",
        {"n_events": 40000, "n_train": 4000, "n_test": 4000, "n_data": 16, "n_init": 16},
    ),
    "selection": (
        "long",
        {"tasks": ["energy"], "gate": True, "n_events": 40000, "n_train": 2000, "n_test": 4000},
    ),
    "sample_size": (
        "long",
        {
            "n_events": 100000,
            "datasets": ["A"],
            "min_size": 2000,
            "max_size": 24000,
            "n_sizes": 3,
            "instances": 50,
        },
    ),
}
QUICK: dict[str, tuple[str, dict[str, Any]]] = {
    "init_vs_sampling": ("smoke", {}),
    "selection": ("smoke", {"tasks": ["energy"], "gate": True}),
    "sample_size": ("smoke", {"datasets": ["A"]}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the reports")
    parser.add_argument("--quick", action="store_true", help="smoke configs on the CPU")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not args.quick and not torch.cuda.is_available():
        raise SystemExit("No CUDA device: run on the GPU machine, or with --quick on a CPU.")
    torch.set_num_threads(1)  # see studies/run.py; on the GPU the host only feeds it
    plan = QUICK if args.quick else GPU
    flag = " --quick" if args.quick else ""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(f"{'Quick check' if args.quick else 'GPU run'} on {device}")
    start, summary = time.perf_counter(), []
    for name, (base, overrides) in plan.items():
        config = {**load_config(name, base), **overrides}
        out = args.out / name
        out.mkdir(parents=True, exist_ok=True)
        module = importlib.import_module(f"studies.{name}.study")
        began = time.perf_counter()
        body = module.run(config, out)
        seconds = time.perf_counter() - began
        command = f".venv/bin/python -m studies.gpu_run{flag} (on {device})"
        write_report(out, config, body, seconds, command=command)
        summary.append(f"{name}: {seconds / 60:.1f} min, {out / 'report.md'}")
        print(summary[-1], flush=True)
        summary += [f"  {verdict:26s} {finding}" for finding, verdict in findings(body)]
    print("\n".join(["", *summary, f"total {(time.perf_counter() - start) / 60:.1f} min"]))


def findings(body: str) -> list[tuple[str, str]]:
    """(finding, verdict) of each row of a report's "Compared with the paper" table."""
    compared = body[body.index("## Compared with the paper") :]
    rows = re.findall(r"^\| (.+?) \| .+ \| (.+?) \|$", compared, flags=re.MULTILINE)
    return [(finding, verdict) for finding, verdict in rows if finding != "finding"]


if __name__ == "__main__":
    main()
