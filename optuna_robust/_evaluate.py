"""evaluate_instances: the body of an objective whose value is a statistic over instances."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence

import optuna
from optuna.trial import TrialState

from optuna_robust._instances import Instance
from optuna_robust._optuna_compat import storage_of
from optuna_robust._optuna_compat import study_id
from optuna_robust._optuna_compat import trial_id
from optuna_robust._optuna_compat import write_trial
from optuna_robust._pruner import RobustPruner
from optuna_robust._pruner import check_asynchronous
from optuna_robust._pruner import check_single_objective
from optuna_robust._records import check_pairing
from optuna_robust._records import make_instances
from optuna_robust._records import make_records
from optuna_robust._records import record_key
from optuna_robust._records import records
from optuna_robust._records import resolve_seed
from optuna_robust._records import reusable_records
from optuna_robust._records import write_records
from optuna_robust._stats import check_direction
from optuna_robust._stats import statistic_name

TrainFn = Callable[[list[Instance]], Sequence[object]]


def evaluate_instances(
    trial: optuna.Trial,
    train_fn: TrainFn,
    *,
    max_instances: int | None = None,
    pairing: str = "data",
    seed: int | None = None,
) -> float:
    """Train instances of the trial's model rung by rung; return the robustness statistic.

    Call it at the end of an objective, after every param has been suggested. For each rung of
    the study's :class:`~optuna_robust.RobustPruner` it calls ``train_fn`` once with the batch
    of :class:`~optuna_robust.Instance` that the rung needs (so a vectorised trainer gets the
    whole batch), stores one user attribute per instance (loss, seeds and any extras), reports
    the statistic over all instances so far at ``step`` = the number of instances, and asks the
    pruner. A pruned trial raises :class:`optuna.TrialPruned` after its instances are stored.

    Example:

        .. code-block:: python

            import optuna
            import optuna_robust

            study = optuna.create_study(
                sampler=optuna_robust.RobustSampler({"noise": [0.0, 0.5, 1.0]}, seed=0),
                pruner=optuna_robust.RobustPruner(statistic="max"),
            )


            def objective(trial):
                noise = trial.suggest_categorical("noise", [0.0, 0.5, 1.0])

                def train_fn(instances):
                    return [1.0 + noise * (i.init_seed % 7) / 7 for i in instances]

                return optuna_robust.evaluate_instances(trial, train_fn, max_instances=8)


            study.optimize(objective)
            assert study.best_params == {"noise": 0.0}

    Args:
        trial:
            The trial of the objective; its study must use a
            :class:`~optuna_robust.RobustPruner`.
        train_fn:
            ``train_fn(instances) -> results``, one result per instance: a float test loss, or a
            mapping with ``"loss"`` and extras such as ``"epochs"`` and ``"seconds"``. NaN or
            infinite losses count as the worst.
        max_instances:
            Instances at which the trial completes. Defaults to the pruner's ``max_instances``.
        pairing:
            ``"data"``: instance ``k`` of every model trains on the same bootstrap sample
            (common random numbers, sharper comparisons). ``"none"``: independent samples, as
            in the paper.
        seed:
            Seed from which every instance's ``data_seed`` and ``init_seed`` derive. ``None``
            derives it from the study name.

    Returns:
        The statistic over the trial's ``max_instances`` instances.

    Raises:
        optuna.TrialPruned: The pruner dropped the model.
        ValueError: The study has no RobustPruner, its pruner is budget-planned (that runs in
            :func:`~optuna_robust.select` only), no ``max_instances`` is known, an argument is
            out of range, or ``train_fn`` returned the wrong number of results.
    """
    study = trial.study
    pruner = study.pruner
    if not isinstance(pruner, RobustPruner):
        raise ValueError(
            f"evaluate_instances needs a study with a RobustPruner, but study "
            f"{study.study_name!r} has {type(pruner).__name__}."
        )
    targets = _targets(pruner, max_instances)
    maximize = check_single_objective(study)
    check_direction(pruner.statistic, maximize)
    check_pairing(pairing)
    study_seed = resolve_seed(study, seed)
    storage = storage_of(study)
    own_id = trial_id(study, trial)
    frozen = storage.get_trial(own_id)

    stored = {record_key("selection", i): r for i, r in enumerate(records(frozen))}
    if not stored:
        failed = storage.get_all_trials(study_id(study), deepcopy=False, states=(TrialState.FAIL,))
        reused, reused_extras = reusable_records(failed, frozen.params)
        write_trial(storage, own_id, user_attrs=reused, system_attrs=reused_extras)
        stored.update(reused)
    losses = [float(stored[k]["loss"]) for k in sorted(stored)]

    for target in targets:
        if target > len(losses):
            instances = make_instances(
                frozen.params, range(len(losses), target), seed=study_seed, pairing=pairing
            )
            batch = make_records(instances, train_fn(instances), maximize=maximize)
            write_records(storage, own_id, "selection", batch)
            losses.extend(float(record["loss"]) for record in batch.values())
        value = pruner.statistic_value(losses[:target], maximize=maximize)
        if target not in frozen.intermediate_values:
            trial.report(value, target)
        if target == targets[-1]:
            return value
        if trial.should_prune():
            raise optuna.TrialPruned(
                f"{statistic_name(pruner.statistic)} loss {value:.6g} over {target} instances "
                "is not among the best at this rung."
            )
    raise AssertionError("unreachable: the last target returns")


def _targets(pruner: RobustPruner, max_instances: int | None) -> list[int]:
    """The instance counts at which a trial reports, up to the one at which it completes."""
    check_asynchronous(pruner)
    cap = pruner.max_instances if max_instances is None else max_instances
    if cap is None:
        raise ValueError(
            "evaluate_instances needs max_instances (the count at which a trial completes): "
            "pass max_instances=... or set RobustPruner(max_instances=...)."
        )
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < pruner.min_instances:
        raise ValueError(
            f"max_instances must be an integer >= the pruner's min_instances "
            f"({pruner.min_instances}) but got {cap!r}."
        )
    if pruner.max_instances is not None and cap > pruner.max_instances:
        raise ValueError(
            f"max_instances={cap} is above the pruner's max_instances ({pruner.max_instances}), "
            "where its rungs stop: raise the pruner's cap instead."
        )
    targets = [min(pruner.rung_instances(0), cap)]
    while targets[-1] < cap:
        targets.append(min(pruner.rung_instances(len(targets)), cap))
    return targets
