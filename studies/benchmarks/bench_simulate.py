"""Events per second of the fast simulation and of loading its files, as a table.

Goal on the 2-core development machine: 500,000 events simulated in under 60 s and loaded in
under 5 s. Timings during which other processes kept the CPU busy are repeated (see
``_guard.py``); the table quotes medians and flags what stayed contaminated.

Run (2 to 10 minutes at the default size: contaminated timings are repeated)::

    .venv/bin/python studies/benchmarks/bench_simulate.py --events 500000
"""

from __future__ import annotations

import argparse
from pathlib import Path
import statistics
import tempfile

from _guard import Timing
from _guard import guarded_time

from optuna_robust.calo.data import CaloData
from optuna_robust.calo.simulate import simulate

GOAL_SIMULATE_S = 60.0  # for 500,000 events
GOAL_LOAD_S = 5.0


def cpu_seconds(timing: Timing) -> float:
    """Median CPU time of this process per run: the work an idle machine spreads over its cores."""
    return statistics.median(own * run for own, run in zip(timing.own_cores, timing.runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000, help="events per dataset")
    parser.add_argument("--datasets", default="AB", help="datasets to time, e.g. A or AB")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    scale = args.events / 500_000
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for dataset in args.datasets:
            path = Path(folder) / f"dataset_{dataset}.root"

            def run_simulate(dataset: str = dataset, path: Path = path) -> None:
                simulate(
                    dataset=dataset,
                    n_events=args.events,
                    seed=args.seed,
                    out=path,
                    progress_bar=False,
                )

            # One clean run is enough for a minute-long timing; at most three attempts.
            simulated = guarded_time(run_simulate, repeats=1, max_attempts=3)
            loaded = guarded_time(lambda path=path: CaloData.from_root(path), repeats=3)
            size_mb = path.stat().st_size / 1e6
            rows.append((dataset, simulated, loaded, size_mb))

    print(
        f"{'':9} {'events':>7} {'simulate':>9} {'events/s':>9} {'CPU s':>6} {'goal':>6}   "
        f"{'load':>6} {'events/s':>9} {'goal':>5} {'MB':>5}"
    )
    for dataset, simulated, loaded, size_mb in rows:
        print(
            f"dataset {dataset} {args.events:>7} {simulated.seconds:>8.1f}s "
            f"{args.events / simulated.seconds:>9.0f} {cpu_seconds(simulated):>6.1f} "
            f"{GOAL_SIMULATE_S * scale:>5.0f}s   {loaded.seconds:>5.2f}s "
            f"{args.events / loaded.seconds:>9.0f} {GOAL_LOAD_S * scale:>4.1f}s {size_mb:>5.0f}"
        )
    print("Goals scale with the number of events. CPU s: CPU time of simulate, all threads.")
    print("Timings (medians) and the load of other processes:")
    for dataset, simulated, loaded, _ in rows:
        print(f"  {dataset} simulate: {simulated.describe()}")
        print(f"  {dataset} load:     {loaded.describe()}")


if __name__ == "__main__":
    main()
