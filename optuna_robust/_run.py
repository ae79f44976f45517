"""The run fingerprint: a rerun of ``select`` continues only the same run, or refuses.

Resuming with an edited candidate list would train new params into old trials; resuming with
another reduction factor, gate or statistic would mix two policies in one round table. Both
give a wrong answer without an error, so every setting that shapes the run is stored at the
first ``select`` and compared on every rerun.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol

from optuna_robust._optuna_compat import storage_of
from optuna_robust._optuna_compat import study_id
from optuna_robust._records import RUN_KEY
from optuna_robust._stats import statistic_name

if TYPE_CHECKING:
    import numpy as np
    from optuna.study import Study

    from optuna_robust._pruner import RobustPruner


class SamplerLike(Protocol):
    """What a fingerprint reads of a :class:`~optuna_robust.RobustSampler` (which imports this
    module, so it is described rather than imported)."""

    _fingerprint: str

    @property
    def candidates(self) -> list[dict[str, Any]]: ...

    def order(self, study: Study) -> np.ndarray: ...


def run_fingerprint(
    study: Study,
    sampler: SamplerLike,
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
        **pruner_settings(pruner),
        "seed": seed,
        "pairing": pairing,
        "final_instances": final,
    }


def pruner_settings(pruner: RobustPruner) -> dict[str, Any]:
    """The pruner's settings that shape a selection run."""
    return {
        "statistic": statistic_name(pruner.statistic),
        "reduction_factor": pruner.reduction_factor,
        "min_instances": pruner.min_instances,
        "growth": pruner.growth,
        "max_instances": pruner.max_instances,
        "baseline": pruner.baseline,
        "baseline_tolerance": pruner.baseline_tolerance,
        "n_keep": pruner.n_keep,
        "max_trainings": pruner.max_trainings,
    }


def check_plan(study: Study, sampler: SamplerLike, pruner: RobustPruner) -> None:
    """Refuse to hand out trials of a budget-planned ``study.optimize`` run with other settings.

    The sampler knows the candidates and the pruner but not the seed and pairing of
    ``evaluate_instances``, which checks those itself (the stored ones are taken as given).

    Raises:
        ValueError: The study holds a run with other settings; the message names each one.
    """
    stored = storage_of(study).get_study_system_attrs(study_id(study)).get(RUN_KEY)
    if stored is not None:
        seed, pairing = stored.get("seed"), stored.get("pairing")
        current = run_fingerprint(study, sampler, pruner, seed=seed, pairing=pairing, final=0)
        check_run(study, {**current, "mode": "study.optimize"})


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
    # Over the keys of both: a key only one run has (``mode`` of a study.optimize run) differs;
    # but ``train_fn`` only where the stored run has it (runs stored before it existed).
    names = [*current, *(name for name in stored if name not in current)]
    if "train_fn" not in stored:
        names = [name for name in names if name != "train_fn"]
    differences = [
        _difference(name, stored.get(name), current.get(name))
        for name in names
        if stored.get(name) != current.get(name)
    ]
    if differences:
        raise ValueError(
            f"Study {study.study_name!r} holds a selection run with other settings: "
            f"{'; '.join(differences)}. Rerun it with the stored settings to continue, or use "
            "a new study for the new run."
        )


def _difference(name: str, stored: object, given: object) -> str:
    if name == "candidates":
        return "the candidate set differs (edited, reordered, added or removed candidates)"
    if name == "train_fn":
        changes = _changes(stored, given)
        return f"train_fn differs: {', '.join(changes) or 'it has no fingerprint now'}"
    if name == "mode":
        return f"it was run by {stored or 'select'}, now by {given or 'select'}"
    if name == "order":
        return "the RobustSampler's seed differs (another hand-out order)"
    return f"{name} was {stored!r}, now {given!r}"


def _changes(stored: object, given: object, prefix: str = "") -> list[str]:
    """``key was A, now B`` for each leaf where two nested dicts differ."""
    if isinstance(stored, dict) and isinstance(given, dict):
        return [
            change
            for key in [*stored, *(k for k in given if k not in stored)]
            for change in _changes(stored.get(key), given.get(key), f"{prefix}{key}.")
        ]
    return [] if stored == given else [f"{prefix.rstrip('.')} was {stored!r}, now {given!r}"]
