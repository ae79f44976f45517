"""evaluate_instances: the body of an objective whose value is a statistic over instances."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
import math

import optuna
from optuna.trial import TrialState

from optuna_robust._instances import Instance
from optuna_robust._optuna_compat import storage_of
from optuna_robust._optuna_compat import study_id
from optuna_robust._optuna_compat import trial_id
from optuna_robust._optuna_compat import write_trial
from optuna_robust._planned import Stage
from optuna_robust._pruner import RobustPruner
from optuna_robust._pruner import check_single_objective
from optuna_robust._records import ERROR_KEY
from optuna_robust._records import check_pairing
from optuna_robust._records import error_message
from optuna_robust._records import make_instances
from optuna_robust._records import make_records
from optuna_robust._records import record_key
from optuna_robust._records import records
from optuna_robust._records import resolve_seed
from optuna_robust._records import reusable_records
from optuna_robust._records import selection_attrs
from optuna_robust._records import write_records
from optuna_robust._run import check_run
from optuna_robust._run import run_fingerprint
from optuna_robust._sampler import RobustSampler
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

    Under a budget-planned pruner (``RobustPruner(max_trainings=...)``) with a
    :class:`~optuna_robust.RobustSampler`, the trial is one round of one model instead: it
    copies the instances of that model's trial of the round before, calls ``train_fn`` once
    with the instances the plan adds this round, reports the statistic and ends pruned, so that
    the sampler can decide the round once all of it has ended (the decisions of
    :func:`~optuna_robust.select` with ``final_instances=0``, on the same instances). After the
    last round, each winner's trial copies its instances, trains nothing and completes with the
    statistic: the study's COMPLETE trials are the winners. Workers that ask for a trial while a
    round is still training elsewhere wait for it. A ``train_fn`` that raises drops its model
    (the error is stored in the trial's ``robust:error`` system attr); a worker that dies leaves
    its model's round to be handed out again, once its trial is failed (by a heartbeat, or by
    ``study.tell``), reusing the instances it stored.

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
            Leave it ``None`` under a budget-planned pruner, which plans the counts.
        pairing:
            ``"data"``: instance ``k`` of every model trains on the same bootstrap sample
            (common random numbers, sharper comparisons). ``"none"``: independent samples, as
            in the paper.
        seed:
            Seed from which every instance's ``data_seed`` and ``init_seed`` derive. ``None``
            derives it from the study name.

    Returns:
        The statistic over the trial's ``max_instances`` instances (budget-planned: over the
        winner's instances).

    Raises:
        optuna.TrialPruned: The pruner dropped the model (budget-planned: the model's round is
            done, whether or not it goes on).
        ValueError: The study has no RobustPruner, a budget-planned pruner runs without a
            RobustSampler or resumes a study run with other settings (the message names each),
            no ``max_instances`` is known, an argument is out of range, or ``train_fn``
            returned the wrong number of results.
    """
    study = trial.study
    pruner = study.pruner
    if not isinstance(pruner, RobustPruner):
        raise ValueError(
            f"evaluate_instances needs a study with a RobustPruner, but study "
            f"{study.study_name!r} has {type(pruner).__name__}."
        )
    maximize = check_single_objective(study)
    check_direction(pruner.statistic, maximize)
    check_pairing(pairing)
    study_seed = resolve_seed(study, seed)
    if pruner.max_trainings is not None:
        if max_instances is not None:
            raise ValueError(
                f"max_instances={max_instances!r} conflicts with RobustPruner(max_trainings="
                f"{pruner.max_trainings}), which plans the instance counts itself: leave "
                "max_instances=None."
            )
        return _evaluate_stage(trial, train_fn, pairing=pairing, seed=study_seed)
    targets = _targets(pruner, max_instances)
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


def _evaluate_stage(trial: optuna.Trial, train_fn: TrainFn, *, pairing: str, seed: int) -> float:
    """One stage of a budget-planned selection in ``study.optimize`` (see ``_planned.py``)."""
    study = trial.study
    pruner = study.pruner
    sampler = study.sampler
    assert isinstance(pruner, RobustPruner)
    storage = storage_of(study)
    own_id = trial_id(study, trial)
    frozen = storage.get_trial(own_id)
    stage = Stage.of(frozen)
    if stage is None or not isinstance(sampler, RobustSampler):
        raise ValueError(
            f"RobustPruner(max_trainings={pruner.max_trainings}) in study.optimize needs "
            "sampler=RobustSampler(...): the plan is made for its finite set of candidates, and "
            f"the sampler hands out each round's trials; study {study.study_name!r} uses "
            f"{type(sampler).__name__}."
        )
    maximize = check_single_objective(study)
    fingerprint = run_fingerprint(study, sampler, pruner, seed=seed, pairing=pairing, final=0)
    check_run(study, {**fingerprint, "mode": "study.optimize"})

    stored = dict(selection_attrs([frozen])[0])
    if not stored:
        continued = [] if stage.continues is None else [storage.get_trial(stage.continues)]
        failed = storage.get_all_trials(study_id(study), deepcopy=False, states=(TrialState.FAIL,))
        reused = reusable_records(failed, frozen.params)
        copied = selection_attrs(continued)
        user_attrs, system_attrs = {**reused[0], **copied[0]}, {**reused[1], **copied[1]}
        write_trial(storage, own_id, user_attrs=user_attrs, system_attrs=system_attrs)
        stored = user_attrs
    losses = [float(stored[k]["loss"]) for k in sorted(stored)][: stage.instances]
    if stage.instances > len(losses):
        instances = make_instances(
            frozen.params, range(len(losses), stage.instances), seed=seed, pairing=pairing
        )
        try:
            batch = make_records(instances, train_fn(instances), maximize=maximize)
        except Exception as error:
            # A broken model leaves the race; a worker that dies leaves no error, and its
            # model's round is handed out again.
            storage.set_trial_system_attr(own_id, ERROR_KEY, error_message(error))
            raise
        write_records(storage, own_id, "selection", batch)
        losses.extend(float(record["loss"]) for record in batch.values())
    value = pruner.statistic_value(losses, maximize=maximize)
    trial.report(value, stage.instances)
    name = statistic_name(pruner.statistic)
    if not stage.final:
        raise optuna.TrialPruned(
            f"Round {stage.round}: {name} loss {value:.6g} over {stage.instances} instances. "
            "The model waits for its round's decision; a later trial continues it if it "
            "survives."
        )
    if not any(math.isfinite(loss) for loss in losses):
        raise optuna.TrialPruned(
            f"The model would win, but all its {len(losses)} instances diverged."
        )
    return value


def _targets(pruner: RobustPruner, max_instances: int | None) -> list[int]:
    """The instance counts at which a trial reports, up to the one at which it completes."""
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
