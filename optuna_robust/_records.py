"""The instance and record protocol: every ``robust:*`` key, record format and seed rule.

Instance records are one user attribute per trained instance, so that appends never race; the
other keys are the system attributes that the sampler, the pruner and ``select`` keep.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
import json
import math
from numbers import Real
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

import numpy as np

from optuna_robust._instances import Instance
from optuna_robust._instances import derive_seed
from optuna_robust._optuna_compat import write_trial

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.study import Study
    from optuna.trial import FrozenTrial

Phase = Literal["selection", "final"]
PHASES: tuple[Phase, ...] = ("selection", "final")
PAIRINGS = ("data", "none")
_PREFIX = "robust:"

# Trial system attrs.
CANDIDATE_KEY = f"{_PREFIX}candidate"  # index of the RobustSampler candidate a trial holds
ERROR_KEY = f"{_PREFIX}error"  # why train_fn failed this model
WINNER_KEY = f"{_PREFIX}winner_rank"  # rank of a select winner (0 = best)
STAGE_KEY = f"{_PREFIX}stage"  # a budget-planned study.optimize trial's round (see _planned.py)
# Study system attrs.
FINGERPRINT_KEY = f"{_PREFIX}candidates_fingerprint"  # the RobustSampler's candidate set
RUN_KEY = f"{_PREFIX}select_run"  # the fingerprint of a select run (see _run.py)


def error_message(error: Exception) -> str:
    """The ``ERROR_KEY`` text of a model whose ``train_fn`` raised ``error``."""
    return f"train_fn raised {type(error).__name__}: {error}"


def candidate_index(trial: FrozenTrial) -> int | None:
    """The index of the candidate handed to ``trial``, or ``None`` if it got none."""
    index = trial.system_attrs.get(CANDIDATE_KEY)
    return None if index is None else int(index)


def rung_key(rung: int) -> str:
    """The trial system attr that holds a trial's value at ``rung`` (asynchronous pruning)."""
    return f"{_PREFIX}rung_{rung}"


def record_key(phase: Phase, index: int) -> str:
    """The user-attribute key of instance ``index`` of ``phase``; sorts by index."""
    return f"{_PREFIX}{phase}:{index:06d}"


def extras_key(phase: Phase, index: int) -> str:
    """The system-attribute key of an instance's extras (epochs, seconds, its ``"curve"``...).

    The record in the user attrs keeps only the loss and the seeds; everything else a
    ``train_fn`` returns lives here. optuna-dashboard prints each user attr on one line, and
    with the extras (and above all a curve of hundreds of numbers) a winner's page was 1,700 to
    5,700 px wide.
    """
    return f"{_PREFIX}extras:{phase}:{index:06d}"


RECORD_FIELDS = ("loss", "data_seed", "init_seed")


def split_extras(record: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a record into its core fields (loss and seeds) and everything else."""
    core = {k: v for k, v in record.items() if k in RECORD_FIELDS}
    extras = {k: v for k, v in record.items() if k not in RECORD_FIELDS}
    return core, extras


def record_attrs(
    phase: Phase, records_by_index: Mapping[int, Mapping[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The user attrs (records) and system attrs (extras) that store ``records_by_index``."""
    user_attrs: dict[str, Any] = {}
    system_attrs: dict[str, Any] = {}
    for index, record in records_by_index.items():
        core, extras = split_extras(record)
        user_attrs[record_key(phase, index)] = core
        if extras:
            system_attrs[extras_key(phase, index)] = extras
    return user_attrs, system_attrs


def params_key(params: Mapping[str, Any]) -> str:
    """A canonical text form of a model's params: the identity its instance seeds hang on."""
    return json.dumps(dict(params), sort_keys=True, default=str)


def resolve_seed(study: Study, seed: int | None) -> int:
    """``seed``, or one derived from the study name so every worker of a study agrees."""
    if seed is None:
        return derive_seed("study", study.study_name)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be None or an integer but got {seed!r}.")
    return seed


def check_pairing(pairing: str) -> None:
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be 'data' or 'none' but got {pairing!r}.")


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


def make_instances(
    params: Mapping[str, Any],
    indices: int | Iterable[int],
    *,
    seed: int,
    phase: Phase = "selection",
    pairing: str = "data",
) -> list[Instance]:
    """The instances that :func:`~optuna_robust.select` trains for a model, seeds included.

    Use it to train the same instances outside a selection, for example fresh ``"final"``
    instances of a model found by another method, measured exactly as ``select`` measures its
    winners.

    Example:

        .. code-block:: python

            import optuna_robust

            instances = optuna_robust.make_instances({"lr": 0.1}, 3, seed=0, phase="final")
            assert [i.index for i in instances] == [0, 1, 2]
            same = optuna_robust.make_instances({"lr": 0.1}, range(3), seed=0, phase="final")
            assert same == instances

    Args:
        params:
            The model's params.
        indices:
            Instance indices, or a count ``n`` for indices ``0 .. n-1``.
        seed:
            The selection's seed.
        phase:
            ``"selection"`` or ``"final"``: the two phases are seeded independently.
        pairing:
            ``"data"`` or ``"none"``, as in :func:`~optuna_robust.select`.

    Returns:
        One :class:`~optuna_robust.Instance` per index.
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be 'selection' or 'final' but got {phase!r}.")
    check_pairing(pairing)
    key = params_key(params)
    if isinstance(indices, int):
        indices = range(indices)
    return [
        make_instance(seed=seed, params_key=key, phase=phase, index=index, pairing=pairing)
        for index in indices
    ]


def make_record(instance: Instance, result: object, *, maximize: bool = False) -> dict[str, Any]:
    """Validate one ``train_fn`` result (a loss, or a mapping with ``"loss"``) into a record.

    In a maximising study the ``"loss"`` is a score; a non-finite one is stored as ``"-inf"``.
    """
    if isinstance(result, Mapping):
        if "loss" not in result:
            raise ValueError(
                f"train_fn returned a mapping without a 'loss' key for instance "
                f"{instance.index}: keys {sorted(result)}."
            )
        reserved = sorted(set(result) & {"data_seed", "init_seed"})
        if reserved:
            raise ValueError(
                f"train_fn returned {reserved} for instance {instance.index}: these keys are "
                "reserved for the instance's own seeds; name the extra otherwise."
            )
        extras = {str(k): _jsonable(v) for k, v in result.items() if k != "loss"}
        loss = result["loss"]
    else:
        extras, loss = {}, result
    # A string or a bool would convert to a float silently ("0.5", True -> 1.0): refuse them.
    if isinstance(loss, str | bytes | bool | np.bool_) or not isinstance(loss, Real):
        raise ValueError(
            f"train_fn must return a float loss (or a mapping with 'loss') per instance, "
            f"but returned {result!r} for instance {instance.index}."
        )
    loss = float(loss)
    return {
        # Non-finite values are stored as a string: JSON has no infinity, and a diverged
        # instance must stay the worst possible value in the study's direction.
        "loss": loss if math.isfinite(loss) else ("-inf" if maximize else "inf"),
        "data_seed": instance.data_seed,
        "init_seed": instance.init_seed,
        **extras,
    }


def make_records(
    instances: Sequence[Instance], results: object, *, maximize: bool = False
) -> dict[int, dict[str, Any]]:
    """Validate a ``train_fn`` return value into one record per instance, by instance index."""
    checked = check_results(results, instances)
    return {i.index: make_record(i, r, maximize=maximize) for i, r in zip(instances, checked)}


def write_records(
    storage: BaseStorage,
    trial_id: int,
    phase: Phase,
    batch: Mapping[int, Mapping[str, Any]],
    *,
    intermediate_values: Mapping[int, float] | None = None,
) -> None:
    """Store a batch of records (and their extras, and a rung's value) in one write."""
    user_attrs, system_attrs = record_attrs(phase, batch)
    write_trial(
        storage,
        trial_id,
        user_attrs=user_attrs,
        system_attrs=system_attrs,
        intermediate_values=intermediate_values,
    )


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


def records(
    trial: FrozenTrial, phase: Phase = "selection", *, extras: bool = False
) -> list[dict[str, Any]]:
    """The instance records of ``trial`` for ``phase``, ordered by instance index.

    With ``extras=True`` each record also holds its extras (such as ``"epochs"`` and
    ``"curve"``), which are stored apart from the record (see :func:`extras_key`).
    """
    keys = _record_keys(trial.user_attrs, phase)
    if not extras:
        return [trial.user_attrs[k] for k in keys]
    merged = []
    for key in keys:
        extra = trial.system_attrs.get(extras_key(phase, int(key.rsplit(":", 1)[1])), {})
        merged.append({**trial.user_attrs[key], **extra})
    return merged


def _record_keys(user_attrs: Mapping[str, Any], phase: Phase) -> list[str]:
    prefix = f"{_PREFIX}{phase}:"
    return sorted(k for k in user_attrs if k.startswith(prefix))


def reusable_records(
    trials: Sequence[FrozenTrial], params: Mapping[str, Any], *, broken: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Instance records stored on failed trials of the same model whose run was interrupted.

    A worker that died leaves its trial RUNNING (or FAIL once a heartbeat notices); the
    instances it stored are reused rather than trained again. Trials that failed because
    ``train_fn`` raised (marked with an error) are not a source: their model is broken —
    unless ``broken=True``, when such a model is being retried.

    Returns:
        The user attrs (records) and system attrs (their extras) to copy to the new trial.
    """
    sources = [
        trial
        for trial in trials
        if trial.state.name == "FAIL"
        and (broken or ERROR_KEY not in trial.system_attrs)
        and trial.params == dict(params)
    ]
    return selection_attrs(sources)


def selection_attrs(trials: Sequence[FrozenTrial]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The selection records of ``trials`` (the first trial's where two hold one index).

    Returns:
        The user attrs (records) and system attrs (their extras) that copy them to a trial.
    """
    user_attrs: dict[str, Any] = {}
    system_attrs: dict[str, Any] = {}
    for trial in trials:
        for key in _record_keys(trial.user_attrs, "selection"):
            user_attrs.setdefault(key, trial.user_attrs[key])
            extra = extras_key("selection", int(key.rsplit(":", 1)[1]))
            if extra in trial.system_attrs:
                system_attrs.setdefault(extra, trial.system_attrs[extra])
    return user_attrs, system_attrs


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
