"""The run fingerprint: a rerun of ``select`` continues only the same run, or refuses.

Resuming with an edited candidate list would train new params into old trials; resuming with
another reduction factor, gate or statistic would mix two policies in one round table. Both
give a wrong answer without an error, so every setting that shapes the run is stored at the
first ``select`` and compared on every rerun.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from optuna_robust._optuna_compat import storage_of
from optuna_robust._optuna_compat import study_id
from optuna_robust._records import RUN_KEY
from optuna_robust._stats import statistic_name

if TYPE_CHECKING:
    from optuna.study import Study

    from optuna_robust._pruner import RobustPruner
    from optuna_robust._sampler import RobustSampler


def run_fingerprint(
    study: Study,
    sampler: RobustSampler,
    pruner: RobustPruner,
    *,
    seed: int,
    pairing: str,
    final: int,
) -> dict[str, Any]:
    """Every setting that shapes a selection run, as JSON-serialisable values."""
    return {
        "candidates": sampler._fingerprint,
        "n_candidates": len(sampler.candidates),
        "order": [int(i) for i in sampler.order(study)[:16]],  # the sampler's seeded order
        "direction": study.direction.name,
        "statistic": statistic_name(pruner.statistic),
        "reduction_factor": pruner.reduction_factor,
        "min_instances": pruner.min_instances,
        "growth": pruner.growth,
        "max_instances": pruner.max_instances,
        "baseline": pruner.baseline,
        "baseline_tolerance": pruner.baseline_tolerance,
        "n_keep": pruner.n_keep,
        "max_trainings": pruner.max_trainings,
        "seed": seed,
        "pairing": pairing,
        "final_instances": final,
    }


def check_run(study: Study, current: dict[str, Any]) -> None:
    """Store the run's fingerprint on the first call; refuse a rerun that differs from it.

    Raises:
        ValueError: The study holds a run with other settings; the message names each one.
    """
    storage = storage_of(study)
    stored = storage.get_study_system_attrs(study_id(study)).get(RUN_KEY)
    if stored is None:
        storage.set_study_system_attr(study_id(study), RUN_KEY, current)
        return
    differences = [
        _difference(name, stored.get(name), value)
        for name, value in current.items()
        if stored.get(name) != value
    ]
    if differences:
        raise ValueError(
            f"Study {study.study_name!r} holds a select run with other settings: "
            f"{'; '.join(differences)}. Rerun it with the stored settings to continue, or use "
            "a new study for the new run."
        )


def _difference(name: str, stored: object, given: object) -> str:
    if name == "candidates":
        return "the candidate set differs (edited, reordered, added or removed candidates)"
    if name == "order":
        return "the RobustSampler's seed differs (another hand-out order)"
    return f"{name} was {stored!r}, now {given!r}"
