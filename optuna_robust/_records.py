"""Instance records: one user attribute per trained instance, so that appends never race."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import math
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

import numpy as np

from optuna_robust._instances import Instance
from optuna_robust._instances import derive_seed

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

Phase = Literal["selection", "final"]
PHASES: tuple[Phase, ...] = ("selection", "final")
_PREFIX = "robust:"


def record_key(phase: Phase, index: int) -> str:
    """The user-attribute key of instance ``index`` of ``phase``; sorts by index."""
    return f"{_PREFIX}{phase}:{index:06d}"


def make_instance(
    *, seed: int, params_key: str, phase: Phase, index: int, pairing: str
) -> Instance:
    """The seeds of one instance, derived from the study seed, the model and the index.

    With ``pairing="data"``, instance ``k`` of every model trains on the same bootstrap sample
    (common random numbers); with ``"none"`` every seed differs between models.
    """
    model = "" if pairing == "data" else params_key
    return Instance(
        index=index,
        data_seed=derive_seed(seed, "data", phase, model, index),
        init_seed=derive_seed(seed, "init", phase, params_key, index),
    )


def make_record(instance: Instance, result: object) -> dict[str, Any]:
    """Validate one ``train_fn`` result (a loss, or a mapping with ``"loss"``) into a record."""
    if isinstance(result, Mapping):
        if "loss" not in result:
            raise ValueError(
                f"train_fn returned a mapping without a 'loss' key for instance "
                f"{instance.index}: keys {sorted(result)}."
            )
        extras = {str(k): _jsonable(v) for k, v in result.items() if k != "loss"}
        loss = result["loss"]
    else:
        extras, loss = {}, result
    try:
        loss = float(loss)
    except (TypeError, ValueError):
        raise ValueError(
            f"train_fn must return a float loss (or a mapping with 'loss') per instance, "
            f"but returned {result!r} for instance {instance.index}."
        ) from None
    return {
        # Non-finite losses are stored as the string "inf": JSON has no infinity, and a
        # diverged instance must stay the worst possible loss.
        "loss": loss if math.isfinite(loss) else "inf",
        "data_seed": instance.data_seed,
        "init_seed": instance.init_seed,
        **extras,
    }


def check_results(results: object, instances: Sequence[Instance]) -> list[object]:
    """Refuse a ``train_fn`` return value that does not have one entry per instance."""
    if isinstance(results, Mapping | str | bytes) or not isinstance(results, Sequence):
        raise ValueError(
            f"train_fn must return a list with one result per instance, but returned "
            f"{type(results).__name__} for {len(instances)} instances."
        )
    if len(results) != len(instances):
        raise ValueError(
            f"train_fn returned {len(results)} results for {len(instances)} instances "
            f"(indices {instances[0].index}..{instances[-1].index}); return one per instance."
        )
    return list(results)


def records(trial: FrozenTrial, phase: Phase = "selection") -> list[dict[str, Any]]:
    """The instance records of ``trial`` for ``phase``, ordered by instance index."""
    prefix = f"{_PREFIX}{phase}:"
    keys = sorted(k for k in trial.user_attrs if k.startswith(prefix))
    return [trial.user_attrs[k] for k in keys]


def instance_losses(
    trial: FrozenTrial, *, phase: Literal["selection", "final", "all"] = "selection"
) -> np.ndarray:
    """The test losses of a trial's instances, ordered by instance index.

    Example:

        .. code-block:: python

            import optuna
            import optuna_robust

            trial = optuna.trial.create_trial(
                value=0.5,
                user_attrs={"robust:selection:000000": {"loss": 0.5}},
            )
            assert optuna_robust.instance_losses(trial).tolist() == [0.5]

    Args:
        trial:
            A trial evaluated by :func:`~optuna_robust.evaluate_instances` or
            :func:`~optuna_robust.select`.
        phase:
            ``"selection"`` (the instances the selection trained), ``"final"`` (the fresh
            instances that measure a winner's robustness) or ``"all"``.

    Returns:
        A float array; diverged instances are ``inf``.
    """
    if phase not in ("selection", "final", "all"):
        raise ValueError(f"phase must be 'selection', 'final' or 'all' but got {phase!r}.")
    phases: Sequence[Phase] = PHASES if phase == "all" else (phase,)
    return np.array([float(r["loss"]) for p in phases for r in records(trial, p)], dtype=float)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
