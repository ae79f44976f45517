"""A worker process for the multi-process tests: optimise a shared study until it stops.

Run as ``python -m tests._worker URL STUDY [LOG]``. With LOG, the study runs a budget-planned
selection (``RobustPruner(max_trainings=...)``) and every trained instance is appended to LOG.
"""

from __future__ import annotations

import sys
import time

import optuna

import optuna_robust

SPACE = {"a": list(range(6)), "b": list(range(5))}


def storage_from(url: str) -> optuna.storages.BaseStorage | str:
    if url.startswith("journal:"):
        backend = optuna.storages.journal.JournalFileBackend(url.removeprefix("journal:"))
        return optuna.storages.JournalStorage(backend)
    return url


# Budget-planned runs: about 8 instances per model's worth, with noise that the plan must see
# through (the best model is not the best after one instance for every seed).
PLANNED_BUDGET = 100


def planned_losses(params: dict[str, int], instances: list[optuna_robust.Instance]) -> list[float]:
    level = params["a"] + 0.1 * params["b"]
    return [level + 0.6 * ((i.init_seed % 1000) / 1000 - 0.5) for i in instances]


def main(url: str, study_name: str, log: str | None = None) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (
        optuna_robust.RobustPruner(max_instances=4)
        if log is None
        else optuna_robust.RobustPruner(max_trainings=PLANNED_BUDGET)
    )
    study = optuna.load_study(
        study_name=study_name,
        storage=storage_from(url),
        sampler=optuna_robust.RobustSampler(SPACE, seed=0),
        pruner=pruner,
    )

    def objective(trial: optuna.Trial) -> float:
        params = study.sampler.suggest(trial)  # type: ignore[attr-defined]

        def train_fn(instances: list[optuna_robust.Instance]) -> list[float]:
            time.sleep(0.005)
            if log is not None:
                with open(log, "a") as file:
                    file.writelines(f"{params['a']} {params['b']} {i.index}\n" for i in instances)
                return planned_losses(params, instances)
            return [params["a"] + 0.1 * params["b"] + 0.01 * i.index for i in instances]

        # A planned run's seed is fixed, so that runs under other study names compare.
        return optuna_robust.evaluate_instances(trial, train_fn, seed=None if log is None else 0)

    study.optimize(objective)


if __name__ == "__main__":
    main(*sys.argv[1:4])
