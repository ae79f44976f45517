"""Budget-planned halving in ``study.optimize``: each round of the plan as continuation trials.

:func:`~optuna_robust.select` keeps one trial per model running across its rounds. A worker of
``study.optimize`` cannot: a trial ends when its objective returns. So here every round of the
plan is one *stage* trial per model still in the race. The stage trial of round ``r`` copies
the instances of the model's round ``r - 1`` trial (the one it *continues*), trains the new
instances the plan gives the round, reports the statistic at ``step`` = its instance count and
ends pruned. Once every stage trial of round ``r`` has ended, the :class:`RobustSampler` takes
the round's decision from the reported values, exactly as ``select`` takes it, and hands the
survivors' stage trials of round ``r + 1`` to the next trials asked for. After the last round
one *final* trial per winner copies its instances, trains nothing and completes with the
statistic as its value, so the study's COMPLETE trials are the winners. A worker that asks for
a trial while a round is still training elsewhere waits for that round.

Everything is decided from the storage alone, so any number of workers (threads or processes
on one storage) agree, and a rerun after a crash replays the decisions taken and goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
import dataclasses
import logging
import math
import random
import time
from typing import TYPE_CHECKING
from typing import Any
from typing import NamedTuple
import warnings

import numpy as np
import optuna
from optuna.trial import TrialState

from optuna_robust._optuna_compat import record_heartbeat
from optuna_robust._optuna_compat import storage_of
from optuna_robust._optuna_compat import trial_id
from optuna_robust._optuna_compat import write_trial
from optuna_robust._records import CANDIDATE_KEY
from optuna_robust._records import ERROR_KEY
from optuna_robust._records import STAGE_KEY
from optuna_robust._records import records

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

    from optuna_robust._pruner import RobustPruner

_logger = logging.getLogger(__name__)

_LIVE = (TrialState.RUNNING, TrialState.WAITING)
_ENDED = (TrialState.COMPLETE, TrialState.PRUNED)
_WAIT_WARNING_S = 60.0  # a round that makes no progress this long gets a warning


@dataclasses.dataclass(frozen=True)
class Stage:
    """What one trial of a budget-planned ``study.optimize`` does for its model."""

    round: int
    """The round of the plan (the final stage: the number of rounds)."""
    instances: int
    """The model's instances once the stage is done."""
    continues: int | None
    """The storage id of the model's trial of the round before, whose instances it copies."""
    final: bool = False
    """Whether this is a winner's final trial (it trains nothing and completes)."""

    def attr(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def of(cls, trial: FrozenTrial) -> Stage | None:
        value = trial.system_attrs.get(STAGE_KEY)
        return None if value is None else cls(**value)


class Assignment(NamedTuple):
    """A stage to hand to the trial that asks."""

    candidate: int
    stage: Stage


class Waiting(NamedTuple):
    """Nothing to hand out until the round's other stage trials end."""

    round: int
    trials: list[int]
    """The numbers of the trials still training the round."""


def first_stage(pruner: RobustPruner, n_candidates: int) -> Stage:
    """The stage of the first ``n_candidates`` trials: round 0 of the plan."""
    count = pruner.planned_increment(n_models=n_candidates, spent=0, first=True)
    return Stage(round=0, instances=count, continues=None)


class _Decided(NamedTuple):
    """The plan after its decided rounds: where a replay starts."""

    round: int
    tasks: list[tuple[int, int | None]]
    """The models of the next round, best first, each with its latest stage trial's id."""
    values: dict[int, float]
    previous: int
    spent: int


class Plan:
    """The decisions of one budget-planned selection, replayed from its trials.

    A decided round never changes (its trials have ended), so the plan remembers where the
    decided rounds end, and each replay starts there.

    Args:
        order:
            The sampler's hand-out order: the cohort order of round 0 (ties keep it).
        pruner:
            The budget-planned pruner.
        maximize:
            Whether the study maximises.
    """

    def __init__(
        self, order: Sequence[int] | np.ndarray, pruner: RobustPruner, *, maximize: bool
    ) -> None:
        self.order = [int(c) for c in order]
        self.pruner = pruner
        self.maximize = maximize
        self._decided = _Decided(0, [(c, None) for c in self.order], {}, 0, 0)

    def next_assignment(
        self, trials: Sequence[FrozenTrial], *, remember: bool = True
    ) -> Assignment | Waiting | None:
        """Replay the plan's decisions from ``trials``; say what the next trial does.

        Args:
            trials:
                Every trial of the study.
            remember:
                Keep the rounds decided here for later replays (not for a trial list that
                is not the storage's, such as one with a trial's state changed ahead).

        Returns:
            The first stage that no live trial holds, a :class:`Waiting` when every stage of
            the current round is held but not all have ended, or ``None`` when the plan is
            done.

        Raises:
            ValueError: A stored stage trained another instance count than this pruner plans
                (the study was started with other settings).
        """
        pruner, order = self.pruner, self.order
        # Trials of round 0 just created by another worker: their number says their model.
        held_at_start = {order[t.number]: t.number for t in trials if _taking_first(t, len(order))}
        by_stage: dict[tuple[int, bool], dict[int, list[tuple[FrozenTrial, Stage]]]] = {}
        for trial in trials:
            attr, candidate = (
                trial.system_attrs.get(STAGE_KEY),
                trial.system_attrs.get(CANDIDATE_KEY),
            )
            if attr is not None and candidate is not None and attr["round"] >= self._decided.round:
                stage = Stage(**attr)
                slot = by_stage.setdefault((stage.round, stage.final), {})
                slot.setdefault(int(candidate), []).append((trial, stage))

        round_, tasks, values, previous, spent = self._decided
        values = dict(values)
        while round_ == 0 or len(tasks) > pruner.n_keep:  # select's rounds, at least one
            count = previous + pruner.planned_increment(
                n_models=len(tasks), spent=spent, first=round_ == 0
            )
            cohort = tasks
            if count > previous:  # a round that trains; one that cannot afford any reuses values
                stage_trials = by_stage.get((round_, False), {})
                cohort, held = [], list[int]()
                for candidate, continues in tasks:
                    found = stage_trials.get(candidate, [])
                    _check_count(found, count, round_)
                    done, running, dropped = _status([t for t, _ in found], count)
                    if done is not None:
                        cohort.append((candidate, trial_id(None, done)))
                        values[candidate] = done.intermediate_values[count]
                        spent += count - previous
                    elif running:
                        held.extend(t.number for t in running)
                    elif dropped is not None:
                        spent += max(len(records(dropped)) - previous, 0)
                    elif round_ == 0 and candidate in held_at_start:
                        held.append(held_at_start[candidate])
                    else:
                        return Assignment(candidate, Stage(round_, count, continues))
                if held:
                    return Waiting(round_, sorted(held))
            ranked = pruner.survivors(
                round_, [values[c] for c, _ in cohort], maximize=self.maximize
            )
            tasks = [cohort[i] for i in ranked]
            previous = count
            round_ += 1
            if remember:
                self._decided = _Decided(round_, tasks, dict(values), previous, spent)

        final_trials = by_stage.get((round_, True), {})
        held = list[int]()
        for candidate, continues in tasks[: pruner.n_keep]:
            found = final_trials.get(candidate, [])
            done, running, dropped = _status([t for t, _ in found], previous)
            if running:
                held.extend(t.number for t in running)
            elif done is None and dropped is None:
                return Assignment(candidate, Stage(round_, previous, continues, final=True))
        return Waiting(round_, sorted(held)) if held else None


def claim_stage(
    study: Study, trial: FrozenTrial, plan: Plan, all_trials: Callable[[], list[FrozenTrial]]
) -> Assignment | None:
    """Claim the next stage for ``trial``, waiting while other workers train the round.

    Two workers may pick the same stage at the same instant. Each writes its claim, reads the
    trials again, and withdraws if another trial holds the stage too: of two claims at least
    one sees the other, so never both keep one (both may withdraw, and try again).

    Returns:
        The stage claimed (written to the trial's system attrs), or ``None``: the plan is done.
    """
    storage, own = storage_of(study), trial_id(study, trial)
    delay, waited, last = 0.02, 0.0, None
    while True:
        record_heartbeat(study, own)  # a worker that dies while it waits goes stale
        result = plan.next_assignment(all_trials())
        if result is None:
            return None
        if isinstance(result, Assignment):
            attrs = {CANDIDATE_KEY: result.candidate, STAGE_KEY: result.stage.attr()}
            write_trial(storage, own, user_attrs={}, system_attrs=attrs)
            if not any(
                t.system_attrs.get(CANDIDATE_KEY) == result.candidate
                and t.number != trial.number
                and t.state in (*_LIVE, *_ENDED)
                and Stage.of(t) == result.stage
                for t in all_trials()
            ):
                return result
            withdraw = {STAGE_KEY: None, CANDIDATE_KEY: None}  # the stage first
            write_trial(storage, own, user_attrs={}, system_attrs=withdraw)
            time.sleep(random.uniform(0.01, 0.1))
            continue
        if result != last:
            waited, last = 0.0, result
        elif waited >= _WAIT_WARNING_S:
            _logger.warning(
                f"Round {result.round} of the budget-planned selection has waited "
                f"{waited:.0f} s for trials {result.trials[:10]}. If their workers died, fail "
                "them (study.tell(number, state=optuna.trial.TrialState.FAIL)) or give the "
                "storage a heartbeat (RDBStorage(heartbeat_interval=...)): their models are "
                "then handed out again."
            )
            waited = -math.inf  # once per wait
        pause = delay * random.uniform(0.5, 1.5)  # workers that wait together poll apart
        time.sleep(pause)
        waited += pause
        delay = min(delay * 1.5, 2.0)
        with warnings.catch_warnings():  # a no-op without a heartbeat
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)


def _taking_first(trial: FrozenTrial, n_candidates: int) -> bool:
    """A trial of round 0 that was just created and has not stored its stage yet."""
    first = trial.number < n_candidates and STAGE_KEY not in trial.system_attrs
    return first and trial.state in _LIVE


def _status(
    found: list[FrozenTrial], count: int
) -> tuple[FrozenTrial | None, list[FrozenTrial], FrozenTrial | None]:
    """A stage's trials: the one that ended with its value, the running ones, a dropped one.

    A stage is dropped when its ``train_fn`` raised (the trial failed with a stored error) or
    its trial ended without reporting (say, the objective pruned itself first). A trial that
    failed without an error was interrupted (its worker died): its stage is handed out again.
    """
    done = [t for t in found if t.state in _ENDED and count in t.intermediate_values]
    if done:
        return min(done, key=lambda t: t.number), [], None
    running = [t for t in found if t.state in _LIVE]
    dropped = [
        t
        for t in found
        if t.state in _ENDED or (t.state == TrialState.FAIL and ERROR_KEY in t.system_attrs)
    ]
    return None, running, (dropped[0] if dropped else None)


def _check_count(found: list[tuple[FrozenTrial, Stage]], count: int, round_: int) -> None:
    for trial, stage in found:
        if stage.instances != count:
            raise ValueError(
                f"Trial {trial.number} trained round {round_} of a budget-planned selection "
                f"up to {stage.instances} instances, but this RobustPruner plans {count}: the "
                "study was started with other pruner settings (max_trainings, reduction_factor, "
                "min_instances, baseline or n_keep). Rerun it with the stored settings, or use "
                "a new study."
            )
