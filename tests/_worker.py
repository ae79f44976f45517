"""A worker process for the multi-process tests: optimise a shared study until it stops."""

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


def main(url: str, study_name: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=study_name,
        storage=storage_from(url),
        sampler=optuna_robust.RobustSampler(SPACE, seed=0),
        pruner=optuna_robust.RobustPruner(max_instances=4),
    )

    def objective(trial: optuna.Trial) -> float:
        params = study.sampler.suggest(trial)  # type: ignore[attr-defined]

        def train_fn(instances: list[optuna_robust.Instance]) -> list[float]:
            time.sleep(0.005)
            return [params["a"] + 0.1 * params["b"] + 0.01 * i.index for i in instances]

        return optuna_robust.evaluate_instances(trial, train_fn)

    study.optimize(objective)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
