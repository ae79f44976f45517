"""A select driver run as its own process, for tests that run two at once or kill one.

Run as ``python -m tests._driver URL STUDY LOG DELAY WORKERS``. Every instance is appended to
LOG (with the worker's pid) when its training finishes, so a test sees who trained what, and
when. WORKERS > 1 trains through a ProcessPoolExecutor.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import sys
import time

import optuna

import optuna_robust

SPACE = {"a": list(range(6)), "b": list(range(4))}


def train(
    params: dict[str, int], instances: list[optuna_robust.Instance], *, log: str, delay: float
) -> list[float]:
    results = []
    for instance in instances:
        time.sleep(delay)
        with open(log, "a") as out:
            out.write(f"{os.getpid()} {params['a']} {params['b']} {instance.init_seed}\n")
        results.append(1.0 + params["a"] + 0.1 * params["b"] + (instance.init_seed % 97) / 1000)
    return results


def main(url: str, study_name: str, log: str, delay: float, workers: int) -> None:
    study = optuna.create_study(
        storage=url,
        study_name=study_name,
        sampler=optuna_robust.RobustSampler(SPACE, seed=3),
        pruner=optuna_robust.RobustPruner(),
        load_if_exists=True,
    )
    train_fn = functools.partial(train, log=log, delay=delay)
    executor = concurrent.futures.ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        result = optuna_robust.select(study, train_fn, executor=executor, final_instances=2)
    except optuna_robust.LeaseError as error:
        print(error, file=sys.stderr)
        sys.exit(3)
    print(repr(result.winners[0].params), flush=True)


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, study_name, log, delay, workers = sys.argv[1:6]
    main(url, study_name, log, float(delay), int(workers))
