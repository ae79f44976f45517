"""Test losses of the baselines on simulated datasets A and B, as the markdown table of
``docs/simulation.md``.

For each dataset, training size and baseline, the loss on the whole test half is averaged over
bootstrap training samples (data seeds 0 .. seeds-1; XGBoost seed = data seed), as the paper
trains its networks. The simulated files are kept in ``artifacts/simulation/`` for reuse.

Run (about 3 minutes on 2 cores)::

    .venv/bin/python studies/benchmarks/baseline_table.py --events 100000 --seed 2024
"""

from __future__ import annotations

import argparse
from pathlib import Path
import statistics

from optuna_robust.calo.baselines import BASELINES
from optuna_robust.calo.baselines import baseline_loss
from optuna_robust.calo.data import CaloData
from optuna_robust.calo.losses import TASKS
from optuna_robust.calo.simulate import simulate

TRAINING_SIZES = (8_000, 16_000, 24_000, 32_000)
UNITS = {"energy": "GeV", "position": "mm²"}


def simulated(dataset: str, n_events: int, seed: int, folder: Path) -> Path:
    """The simulated file for these settings, simulating it unless it is already there."""
    path = folder / f"dataset_{dataset}_{n_events}_seed{seed}.root"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        simulate(dataset=dataset, n_events=n_events, seed=seed, out=path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per dataset")
    parser.add_argument("--seed", type=int, default=2024, help="simulation seed")
    parser.add_argument("--seeds", type=int, default=5, help="training samples per cell")
    parser.add_argument("--folder", type=Path, default=Path("artifacts/simulation"))
    args = parser.parse_args()

    print(f"Test loss (mean ± sd over {args.seeds} bootstrap training samples), whole test half")
    print(f"of {args.events:,} simulated events per dataset, simulation seed {args.seed}.\n")
    header = "| dataset | task (unit) | baseline |"
    header += "".join(f" n = {size:,} |" for size in TRAINING_SIZES)
    print(header)
    print("|---|---|---|" + "---:|" * len(TRAINING_SIZES))
    for dataset in "AB":
        data = CaloData.from_root(simulated(dataset, args.events, args.seed, args.folder))
        test = data.test_sample()
        for task in TASKS:
            for name in BASELINES:
                cells = []
                for size in TRAINING_SIZES:
                    losses = [
                        baseline_loss(
                            name, task, data.training_sample(size, data_seed), test, seed=data_seed
                        )
                        for data_seed in range(args.seeds)
                    ]
                    mean, spread = statistics.mean(losses), statistics.stdev(losses)
                    cells.append(f"{mean:#.4g} ± {spread:.2g}")
                print(
                    f"| {dataset} | {task} ({UNITS[task]}) | {name} | " + " | ".join(cells) + " |"
                )


if __name__ == "__main__":
    main()
