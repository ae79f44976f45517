"""select: the paper's round-synchronous robust selection, through ask-and-tell on a study."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
import concurrent.futures
import dataclasses
import datetime
import logging
import math
from typing import TYPE_CHECKING
from typing import Any

from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import pandas as pd
import tqdm.auto

from optuna_robust._execution import check_executor
from optuna_robust._execution import train_models
from optuna_robust._instances import Instance
from optuna_robust._lease import driver_lease
from optuna_robust._optuna_compat import storage_of
from optuna_robust._optuna_compat import study_id
from optuna_robust._optuna_compat import trial_id
from optuna_robust._pruner import RobustPruner
from optuna_robust._pruner import check_single_objective
from optuna_robust._records import CANDIDATE_KEY
from optuna_robust._records import ERROR_KEY
from optuna_robust._records import WINNER_KEY
from optuna_robust._records import Phase
from optuna_robust._records import candidate_index
from optuna_robust._records import check_pairing
from optuna_robust._records import error_message
from optuna_robust._records import make_instance
from optuna_robust._records import make_records
from optuna_robust._records import params_key
from optuna_robust._records import records
from optuna_robust._records import resolve_seed
from optuna_robust._records import reusable_records
from optuna_robust._records import write_records
from optuna_robust._result import PAPER_FINAL_INSTANCES
from optuna_robust._result import SelectionBudget
from optuna_robust._result import SelectionResult
from optuna_robust._run import check_run
from optuna_robust._run import run_fingerprint
from optuna_robust._sampler import RobustSampler
from optuna_robust._stats import check_direction

if TYPE_CHECKING:
    from optuna.study import Study

_logger = logging.getLogger(__name__)

SelectTrainFn = Callable[[dict[str, Any], list[Instance]], Sequence[object]]
TrialCallback = Callable[["Study", FrozenTrial], None]


@dataclasses.dataclass
class _Model:
    """Bookkeeping of one candidate during a selection, so storage is read once."""

    candidate: int
    params: dict[str, Any]
    key: str
    trial_id: int = -1
    number: int = -1
    state: TrialState = TrialState.RUNNING
    losses: list[float] = dataclasses.field(default_factory=list)
    final_losses: list[float] = dataclasses.field(default_factory=list)
    reported: set[int] = dataclasses.field(default_factory=set)
    failed: bool = False


def select(
    study: Study,
    train_fn: SelectTrainFn,
    *,
    executor: concurrent.futures.Executor | None = None,
    final_instances: int = 50,
    pairing: str = "data",
    seed: int | None = None,
    show_progress_bar: bool = False,
    callbacks: Sequence[TrialCallback] | None = None,
    timeout: float | None = None,
    retries: int = 0,
    retry_failed: bool = False,
) -> SelectionResult:
    """Run the paper's robust selection on ``study``: successive halving over instances.

    Every candidate of the study's :class:`~optuna_robust.RobustSampler` becomes a trial. Round
    ``r`` trains each surviving model up to the ``r``-th rung of the study's
    :class:`~optuna_robust.RobustPruner` (1, 2, 4, ... instances); once the whole cohort has
    reached the rung, the pruner drops the worse models (the baseline gate at rung 0, the worse
    half after). With ``RobustPruner(max_trainings=...)`` the rounds instead split that budget
    (budget-planned halving: each round gives every model left an equal part of what remains).
    Rounds go on until ``n_keep`` models remain; then ``final_instances`` fresh
    instances of each winner measure its robustness, and the winners complete with that
    statistic as their value. Every instance is stored as soon as it is trained, so rerunning
    ``select`` on an interrupted study continues where it stopped and trains nothing twice.

    Example:

        .. code-block:: python

            import optuna
            import optuna_robust

            space = {"depth": [1, 2, 3, 4], "lr": [0.01, 0.1]}
            study = optuna.create_study(
                sampler=optuna_robust.RobustSampler(space, seed=0),
                pruner=optuna_robust.RobustPruner(statistic="mean"),
            )


            def train_fn(params, instances):
                loss = params["depth"] * params["lr"]
                return [loss * (1 + (i.init_seed % 10) / 100) for i in instances]


            result = optuna_robust.select(study, train_fn, final_instances=5)
            assert result.winners[0].params == {"depth": 1, "lr": 0.01}
            print(result.rounds)

    Args:
        study:
            A single-objective, minimising study with a RobustSampler and a RobustPruner. It
            may be new or hold an interrupted selection with the same candidates.
        train_fn:
            ``train_fn(params, instances) -> results``: trains the model with ``params`` once
            per :class:`~optuna_robust.Instance` and returns one result per instance, a float
            loss or a mapping with ``"loss"`` plus extras. With a process executor it must be
            picklable. If it raises, that model's trial fails (after ``retries`` more tries;
            the error is stored) and the selection goes on. A failure that is not the model's
            fault (a broken process pool, an ``OSError`` such as unreadable data) stops the
            run with :class:`~optuna_robust.SelectionStopped` and marks nothing failed.
        executor:
            A :class:`concurrent.futures.Executor` that trains a round's batches in parallel
            (processes, or a Dask or Ray cluster's executor). ``None`` trains in this process.
        final_instances:
            Fresh instances per winner that measure its robustness (the paper: 50).
        pairing:
            ``"data"`` (instance ``k`` of every model trains on the same bootstrap sample) or
            ``"none"`` (independent samples, as in the paper).
        seed:
            Seed of every instance's data and init seeds. ``None`` derives it from the study
            name. A rerun must use the seed of the interrupted run: the first run stores a
            fingerprint of the candidates, the pruner's settings, the statistic, the pairing,
            the seed and ``final_instances``, and a rerun with any of them changed raises. A
            ``train_fn`` with a ``fingerprint()`` method (a JSON-serialisable dict of what
            decides its losses, such as its settings and data; ``CaloTrainer`` has one) adds
            it to the run's fingerprint.
        show_progress_bar:
            Show a progress bar of the trainings of each round.
        callbacks:
            Each is called as ``callback(study, trial)`` for every model just before ``select``
            finishes its trial (pruned or complete), while the trial still accepts attributes
            and artifacts: ``trial`` is a :class:`~optuna.trial.FrozenTrial` with all its
            instance records. :class:`optuna_robust.visualization.TrialArtifactsCallback` is
            one: it puts each model's figure and records on its trial page in optuna-dashboard.
        timeout:
            Seconds one ``train_fn`` call may run; a longer one counts as that model's
            failure. Needs ``executor=None`` in the main thread, or a ProcessPoolExecutor.
        retries:
            How many more times a batch whose ``train_fn`` raised is tried before its model
            fails.
        retry_failed:
            Retry the models that failed in an earlier run (say, after fixing a bug in
            ``train_fn``), reusing the instances they had stored.

    Returns:
        A :class:`~optuna_robust.SelectionResult`: the winners, the round table and the budget.

    Raises:
        ValueError: The study lacks a RobustSampler or RobustPruner, is multi-objective, an
            argument is out of range, the run differs from the interrupted run (the message
            names each difference), or ``train_fn`` returned the wrong number of results.
        SelectionStopped: Training failed for a reason that is not a model's fault; rerun to
            continue.
        LeaseError: Another ``select`` is driving the same study right now.
    """
    sampler, pruner = _check_study(study)
    if isinstance(final_instances, bool) or not isinstance(final_instances, int):
        raise ValueError(f"final_instances must be an integer >= 0 but got {final_instances!r}.")
    if final_instances < 0:
        raise ValueError(f"final_instances must be an integer >= 0 but got {final_instances}.")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0 but got {retries!r}.")
    check_pairing(pairing)
    check_executor(executor, train_fn, timeout)
    pruner.check_budget(len(sampler.candidates))
    study_seed = resolve_seed(study, seed)
    with driver_lease(study) as lease:
        fingerprint = run_fingerprint(
            study, sampler, pruner, seed=study_seed, pairing=pairing, final=final_instances
        )
        identity = getattr(train_fn, "fingerprint", None)
        if callable(identity):  # what decides its losses: settings, data (CaloTrainer has it)
            fingerprint["train_fn"] = identity()
        check_run(study, fingerprint)
        run = _Selection(study, sampler, pruner, train_fn, executor, study_seed, pairing)
        run.lease = lease
        run.progress = show_progress_bar
        run.callbacks = list(callbacks or ())
        run.timeout = timeout
        run.retries = retries
        run.retry_failed = retry_failed
        return run.run(final_instances)


def _check_study(study: Study) -> tuple[RobustSampler, RobustPruner]:
    if not isinstance(study.sampler, RobustSampler):
        raise ValueError(
            f"select needs a study created with sampler=RobustSampler(...), but study "
            f"{study.study_name!r} uses {type(study.sampler).__name__}."
        )
    if not isinstance(study.pruner, RobustPruner):
        raise ValueError(
            f"select needs a study created with pruner=RobustPruner(...), but study "
            f"{study.study_name!r} uses {type(study.pruner).__name__}."
        )
    check_direction(study.pruner.statistic, check_single_objective(study))
    return study.sampler, study.pruner


class _Selection:
    def __init__(
        self,
        study: Study,
        sampler: RobustSampler,
        pruner: RobustPruner,
        train_fn: SelectTrainFn,
        executor: concurrent.futures.Executor | None,
        seed: int,
        pairing: str,
    ) -> None:
        self.study = study
        self.storage = storage_of(study)
        self.study_id = study_id(study)
        self.sampler = sampler
        self.pruner = pruner
        self.train_fn = train_fn
        self.executor = executor
        self.seed = seed
        self.pairing = pairing
        self.maximize = check_single_objective(study)
        self.timeout: float | None = None
        self.retries = 0
        self.retry_failed = False
        self.lease: Any = None
        self.progress = False
        self.callbacks: list[TrialCallback] = []

    def run(self, final_instances: int) -> SelectionResult:
        models = self._load_models()
        alive = models
        rows = []
        cumulative = 0
        previous_count = 0
        planned = self.pruner.max_trainings is not None
        for rung in range(10_000):
            if planned:
                # Budget-planned halving: plan the round from the models left and the spend.
                count = previous_count + self.pruner.planned_increment(
                    n_models=len(alive), spent=cumulative, first=rung == 0
                )
            else:
                count = self.pruner.rung_instances(rung)
            self._train(alive, "selection", count, desc=f"round {rung}")
            trained = sum(max(0, min(len(m.losses), count) - previous_count) for m in alive)
            # A model whose train_fn raised before this rung drops out here; on a rerun it
            # still counts in the rounds it completed, so replayed decisions stay the same.
            cohort = [m for m in alive if len(m.losses) >= count]
            for model in cohort:
                self._report(model, count)
            values = [self._value_at(m, count) for m in cohort]
            order = self.pruner.survivors(rung, values, maximize=self.maximize)
            survivors = [cohort[i] for i in order]
            kept = {m.candidate for m in survivors}
            for model in cohort:
                if model.candidate not in kept and model.state == TrialState.RUNNING:
                    self._finish(model, TrialState.PRUNED, self._value_at(model, count))
            cumulative += trained
            rows.append(
                {
                    "round": rung,
                    "instances_per_model": count,
                    "models": len(alive),
                    "instances": trained,
                    "cumulative": cumulative,
                    "survivors": len(survivors),
                }
            )
            alive = survivors
            previous_count = count
            if len(survivors) <= self.pruner.n_keep or self.pruner.is_last_rung(rung):
                break
        winners = alive[: self.pruner.n_keep]
        if not winners:
            _logger.warning(
                "No model survived the selection: every model failed, or none passed the "
                "baseline gate (see the trials' states and their robust:error attrs)."
            )
        self._train(winners, "final", final_instances, desc="final instances")
        completed = self._complete(winners, final_instances)
        selection = sum(len(m.losses) for m in models)
        final = sum(len(m.final_losses) for m in models)
        reference = final_instances or PAPER_FINAL_INSTANCES
        budget = SelectionBudget(selection, final, len(models) * reference)
        return SelectionResult(completed, pd.DataFrame(rows), budget)

    def _load_models(self) -> list[_Model]:
        """Build one model per candidate, reusing what an interrupted run stored."""
        trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
        by_candidate: dict[int, list[FrozenTrial]] = {}
        for trial in trials:
            index = candidate_index(trial)
            if index is not None:
                by_candidate.setdefault(index, []).append(trial)
        models = []
        for index in self.sampler.order(self.study):
            index = int(index)
            params = self.sampler.candidate(index)
            model = _Model(candidate=index, params=params, key=params_key(params))
            previous = by_candidate.get(index, [])
            current = next((t for t in previous if t.state != TrialState.FAIL), None)
            if current is None:
                failed = [t for t in previous if ERROR_KEY in t.system_attrs]
                current = None if self.retry_failed else next(iter(failed), None)
            if current is None:
                reused = reusable_records(previous, params, broken=self.retry_failed)
                current = self._new_trial(index, *reused)
            self._adopt(model, current)
            models.append(model)
        return models

    def _new_trial(
        self, index: int, reused: dict[str, Any], reused_extras: dict[str, Any]
    ) -> FrozenTrial:
        # One write creates the trial with its params: far cheaper than ask + suggest per param.
        template = FrozenTrial(
            number=-1,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=datetime.datetime.now(),
            datetime_complete=None,
            params=self.sampler.candidate(index),
            distributions=dict[str, Any](self.sampler.distributions(index)),
            user_attrs=reused,
            system_attrs={CANDIDATE_KEY: index, **reused_extras},
            intermediate_values={},
            trial_id=-1,
        )
        new_id = self.storage.create_new_trial(self.study_id, template_trial=template)
        number = self.storage.get_trial_number_from_id(new_id)
        return _replace(template, number=number, trial_id=new_id)

    def _adopt(self, model: _Model, trial: FrozenTrial) -> None:
        model.trial_id = trial_id(self.study, trial)
        model.number = trial.number
        model.state = trial.state
        model.failed = trial.state == TrialState.FAIL
        model.losses = [float(r["loss"]) for r in records(trial, "selection")]
        model.final_losses = [float(r["loss"]) for r in records(trial, "final")]
        model.reported = set(trial.intermediate_values)

    def _instances(self, model: _Model, phase: Phase, start: int, stop: int) -> list[Instance]:
        return [
            make_instance(
                seed=self.seed, params_key=model.key, phase=phase, index=i, pairing=self.pairing
            )
            for i in range(start, stop)
        ]

    def _train(self, models: list[_Model], phase: Phase, count: int, *, desc: str) -> None:
        """Bring every model's ``phase`` instances up to ``count``, storing each as it comes."""
        losses_of = (lambda m: m.losses) if phase == "selection" else (lambda m: m.final_losses)
        tasks = [
            (m, dict(m.params), self._instances(m, phase, len(losses_of(m)), count))
            for m in models
            if len(losses_of(m)) < count and m.state == TrialState.RUNNING
        ]
        total = sum(len(instances) for _, _, instances in tasks)
        if total == 0:
            return
        instances_of = {id(model): instances for model, _, instances in tasks}
        batches = train_models(
            self.train_fn,
            tasks,
            executor=self.executor,
            timeout=self.timeout,
            retries=self.retries,
        )
        with tqdm.auto.tqdm(
            total=total, desc=desc, unit="instance", disable=not self.progress
        ) as bar:
            for model, outcome in batches:
                self.lease.check()
                instances = instances_of[id(model)]
                if isinstance(outcome, Exception):
                    self._fail(model, outcome)
                else:
                    self._store(model, phase, instances, outcome)
                bar.update(len(instances))

    def _store(
        self, model: _Model, phase: Phase, instances: list[Instance], results: object
    ) -> None:
        """Store a batch's records, and the rung's value once the model has reached it."""
        target = model.losses if phase == "selection" else model.final_losses
        batch = make_records(instances, results, maximize=self.maximize)
        target.extend(float(record["loss"]) for record in batch.values())
        count = len(model.losses)
        report = phase == "selection" and count not in model.reported
        write_records(
            self.storage,
            model.trial_id,
            phase,
            batch,
            intermediate_values={count: self._value_at(model, count)} if report else {},
        )
        if report:
            model.reported.add(count)

    def _value_at(self, model: _Model, count: int) -> float:
        return self.pruner.statistic_value(model.losses[:count], maximize=self.maximize)

    def _report(self, model: _Model, count: int) -> None:
        if count not in model.reported and model.state == TrialState.RUNNING:
            self.storage.set_trial_intermediate_value(
                model.trial_id, count, self._value_at(model, count)
            )
            model.reported.add(count)

    def _fail(self, model: _Model, error: Exception) -> None:
        _logger.warning(
            f"Trial {model.number} failed: train_fn raised {error!r} for params {model.params}."
        )
        self.storage.set_trial_system_attr(model.trial_id, ERROR_KEY, error_message(error))
        self._finish(model, TrialState.FAIL)
        model.failed = True

    def _finish(self, model: _Model, state: TrialState, value: float | None = None) -> None:
        if self.callbacks and state != TrialState.FAIL:
            trial = self.storage.get_trial(model.trial_id)
            for callback in self.callbacks:
                callback(self.study, trial)
        # Straight to the storage, as Study.tell would, without its deep copy of the trial.
        values = None if value is None else [value]
        self.storage.set_trial_state_values(model.trial_id, state, values)
        model.state = state

    def _complete(self, winners: list[_Model], final_instances: int) -> list[FrozenTrial]:
        finished = []
        for rank, model in enumerate(winners):
            if model.state == TrialState.RUNNING:
                losses = model.final_losses if final_instances else model.losses
                value = self.pruner.statistic_value(losses, maximize=self.maximize)
                if not any(math.isfinite(loss) for loss in losses):
                    # Every instance diverged: a model with no finite loss is no winner.
                    _logger.warning(
                        f"Trial {model.number} ({model.params}) would win, but all its "
                        f"{len(losses)} instances diverged; it is pruned."
                    )
                    self._finish(model, TrialState.PRUNED, value)
                    continue
                self.storage.set_trial_system_attr(model.trial_id, WINNER_KEY, rank)
                self._finish(model, TrialState.COMPLETE, value)
            if model.state == TrialState.COMPLETE:
                finished.append(self.storage.get_trial(model.trial_id))
        sign = -1.0 if self.maximize else 1.0
        return sorted(
            finished, key=lambda t: (sign * _value(t, sign), t.system_attrs.get(WINNER_KEY, 0))
        )


def _value(trial: FrozenTrial, sign: float) -> float:
    """The trial's value, with a missing or NaN value as the worst in the study's direction."""
    return sign * math.inf if trial.value is None or math.isnan(trial.value) else trial.value


def _replace(trial: FrozenTrial, *, number: int, trial_id: int) -> FrozenTrial:
    """A copy of ``trial`` with another number and id, through the public constructor."""
    return FrozenTrial(
        number=number,
        state=trial.state,
        value=trial.value,
        datetime_start=trial.datetime_start,
        datetime_complete=trial.datetime_complete,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs=trial.user_attrs,
        system_attrs=trial.system_attrs,
        intermediate_values=trial.intermediate_values,
        trial_id=trial_id,
    )
