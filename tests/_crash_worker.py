"""A selection that a test kills with SIGKILL and reruns.

Run as `python -m tests._crash_worker MODE URL LOG`.

MODE is "select" (the round-synchronous driver), "optimize" (study.optimize with the
RobustPruner) or "planned" (study.optimize with a budget-planned RobustPruner). Every trained
instance is appended to LOG before its result is returned, so the test knows what was trained
in each run.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import optuna

import optuna_robust

SPACE = {"a": list(range(8)), "b": list(range(8))}
STUDY = "crash"
SEED = 7


def storage_for(url: str) -> optuna.storages.RDBStorage:
    # The heartbeat lets a rerun of study.optimize fail the trials a killed worker left RUNNING.
    return optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=2)


def losses(params: dict[str, int], instances: list[optuna_robust.Instance]) -> list[float]:
    level = 1.0 + params["a"] + 0.1 * params["b"]
    return [
        level + float(np.random.default_rng([i.data_seed, i.init_seed]).normal(0.0, 0.3))
        for i in instances
    ]


def logged_train_fn(log_path: str, delay: float) -> optuna_robust._select.SelectTrainFn:
    def train_fn(params: dict[str, int], instances: list[optuna_robust.Instance]) -> list[float]:
        time.sleep(delay * len(instances))
        with open(log_path, "a") as log:
            for instance in instances:
                log.write(f"{params['a']} {params['b']} {instance.init_seed}\n")
            log.flush()
            os.fsync(log.fileno())
        return losses(params, instances)

    return train_fn


PLANNED_BUDGET = 400  # 64 candidates: one instance each in round 0, then about 6 rounds


def make_study(
    storage: optuna.storages.BaseStorage | str | None, *, planned: bool = False
) -> optuna.Study:
    pruner = (
        optuna_robust.RobustPruner(max_trainings=PLANNED_BUDGET)
        if planned
        else optuna_robust.RobustPruner(max_instances=8)
    )
    return optuna.create_study(
        study_name=STUDY,
        storage=storage,
        sampler=optuna_robust.RobustSampler(SPACE, seed=SEED),
        pruner=pruner,
        load_if_exists=True,
    )


def run(mode: str, storage: optuna.storages.BaseStorage | str | None, log_path: str) -> str:
    """Run the selection to its end; return the winner's params as text."""
    study = make_study(storage, planned=mode == "planned")
    train_fn = logged_train_fn(log_path, delay=0.002)
    if mode == "select":
        result = optuna_robust.select(study, train_fn, final_instances=4, seed=SEED)
        return repr(result.winners[0].params)

    def objective(trial: optuna.Trial) -> float:
        params = study.sampler.suggest(trial)  # type: ignore[attr-defined]
        return optuna_robust.evaluate_instances(
            trial, lambda instances: train_fn(params, instances), seed=SEED
        )

    study.optimize(objective)
    return repr(study.best_params)


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    mode, url, log_path = sys.argv[1:4]
    print(run(mode, storage_for(url), log_path), flush=True)
