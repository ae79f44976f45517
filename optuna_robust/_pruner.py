"""RobustPruner: successive halving where the resource is the number of trained instances."""

from __future__ import annotations

from collections.abc import Sequence
import math
from typing import TYPE_CHECKING
from typing import Literal
from typing import NamedTuple

import numpy as np
import optuna
from optuna.study import StudyDirection

from optuna_robust._optuna_compat import storage_of
from optuna_robust._optuna_compat import trial_id
from optuna_robust._records import rung_key
from optuna_robust._stats import Statistic
from optuna_robust._stats import StatisticFn
from optuna_robust._stats import resolve_statistic
from optuna_robust._stats import robust_value

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial


class PlannedRung(NamedTuple):
    """One rung of a budget-planned schedule (see :meth:`RobustPruner.planned_rungs`)."""

    instances: int
    """Instances every model has at this rung."""
    models: int
    """Models planned to reach this rung."""
    survivors: int
    """Models planned to go on past it (``n_keep`` at the last rung)."""


class RobustPruner(optuna.pruners.BasePruner):
    """Prune models whose instance losses say they are not robust.

    A trial is a model; its intermediate value at step ``k`` is a statistic (mean, max, ...) over
    the test losses of its first ``k`` instances (independent trainings, see
    :func:`~optuna_robust.evaluate_instances`). Rungs are instance counts: ``min_instances *
    reduction_factor ** r`` (geometric, the paper's choice: every round costs about the same) or
    ``min_instances + r`` (linear). At rung 0 an optional baseline gate drops every model whose
    loss exceeds ``baseline * (1 + baseline_tolerance)``; at every other rung (and at rung 0 when
    there is no baseline) the worse ``1 - 1/reduction_factor`` share is dropped.

    With ``max_trainings`` set, the pruner plans the instance counts instead (*budget-planned
    halving*, sequential halving after Karnin, Koren and Somekh, 2013): with ``S`` models still
    in the race, ``T`` trainings spent and ``R`` rounds left until ``n_keep`` remain, the next
    round gives every model ``floor((max_trainings - T) / (R * S))`` new instances (at least
    ``min_instances`` in the first round), then drops the worse share as above. Every round
    spends an equal part of what is left, so the halving always runs down to ``n_keep`` models
    and the budget is spent up to rounding; a round that can afford no new instance halves on
    the instances already trained. The paper's schedule is the default.

    Used inside :func:`optuna_robust.select`, the decision at a rung is taken once the whole
    cohort has reached it, as in the paper. Used in a plain :meth:`optuna.study.Study.optimize`
    (any number of workers) with the paper's schedule, a trial is promoted when it is among the
    best ``1/reduction_factor`` of the trials that have reached the rung so far (ASHA). A
    budget-planned pruner in ``study.optimize`` needs a :class:`~optuna_robust.RobustSampler`,
    which hands out each round as one trial per model left once the round before has ended, so
    that the decisions are ``select``'s (see :func:`~optuna_robust.evaluate_instances`). NaN or
    infinite instance losses count as the worst possible and never raise.

    Example:

        .. code-block:: python

            import optuna
            import optuna_robust

            space = {"width": [8, 16, 32], "lr": [0.001, 0.01]}
            study = optuna.create_study(
                sampler=optuna_robust.RobustSampler(space, seed=0),
                pruner=optuna_robust.RobustPruner(statistic="mean", max_instances=4),
            )


            def objective(trial):
                width = trial.suggest_categorical("width", space["width"])
                lr = trial.suggest_categorical("lr", space["lr"])
                return optuna_robust.evaluate_instances(
                    trial, lambda instances: [lr * width + 0.01 * i.index for i in instances]
                )


            study.optimize(objective)
            assert study.best_params == {"width": 8, "lr": 0.001}

    Args:
        statistic:
            The robustness statistic over a model's instance losses: ``"mean"``, ``"median"``,
            ``"max"``, ``"min"``, ``"std"``, ``"iqr"``, ``"quantile:q"``, ``"cvar:q"`` (mean of
            the worst ``1 - q`` share) or a callable ``numpy array -> float``, all in terms of
            losses (lower is better). In a maximising study the values are scores and each
            statistic keeps its meaning: ``"max"`` (the worst case) is the lowest score,
            ``"quantile:0.9"`` the 10 % quantile; ``"std"`` and ``"iqr"`` are refused there.
        reduction_factor:
            ``eta``: keep the best ``1/eta`` at each rung. An integer ``>= 2``.
        min_instances:
            Instances of every model at rung 0.
        growth:
            ``"geometric"`` (rungs ``min_instances * eta**r``) or ``"linear"``
            (``min_instances + r``).
        max_instances:
            Stop adding instances at this count. Inside :func:`~optuna_robust.select`, the best
            ``n_keep`` models at this rung are the winners; in :meth:`~optuna.study.Study.optimize`
            a trial that reaches it completes. ``None``: no cap (``select`` halves until
            ``n_keep`` remain; ``evaluate_instances`` then needs its own ``max_instances``).
        baseline:
            The loss of a reference model (the paper: the parametric baseline). ``None``
            disables the gate.
        baseline_tolerance:
            The gate lets through losses up to ``baseline * (1 + baseline_tolerance)``.
        n_keep:
            How many models :func:`~optuna_robust.select` keeps at the end; halving never keeps
            fewer.
        max_trainings:
            The trainings the halving rounds may spend (a winner's ``final_instances`` come on
            top), for budget-planned halving. It must cover ``min_instances`` of every candidate.
            Each round is planned from the models still in the race, so failed or gated models
            leave more for the others. In :meth:`~optuna.study.Study.optimize` it needs a
            :class:`~optuna_robust.RobustSampler`. ``None``: the paper's schedule
            (``min_instances``, ``growth`` and ``max_instances``), the default. Needs
            ``growth="geometric"`` and ``max_instances=None``.

    Raises:
        ValueError: An argument is out of range; the message names it.
    """

    def __init__(
        self,
        *,
        statistic: Statistic = "mean",
        reduction_factor: int = 2,
        min_instances: int = 1,
        growth: Literal["geometric", "linear"] = "geometric",
        max_instances: int | None = None,
        baseline: float | None = None,
        baseline_tolerance: float = 0.2,
        n_keep: int = 1,
        max_trainings: int | None = None,
    ) -> None:
        self._statistic_fn: StatisticFn = resolve_statistic(statistic)
        if isinstance(reduction_factor, bool) or not isinstance(reduction_factor, int):
            raise ValueError(f"reduction_factor must be an integer but got {reduction_factor!r}.")
        if reduction_factor < 2:
            raise ValueError(f"reduction_factor must be at least 2 but got {reduction_factor}.")
        if not isinstance(min_instances, int) or min_instances < 1:
            raise ValueError(f"min_instances must be an integer >= 1 but got {min_instances!r}.")
        if growth not in ("geometric", "linear"):
            raise ValueError(f"growth must be 'geometric' or 'linear' but got {growth!r}.")
        if max_instances is not None and (
            not isinstance(max_instances, int) or max_instances < min_instances
        ):
            raise ValueError(
                f"max_instances must be None or an integer >= min_instances ({min_instances}) "
                f"but got {max_instances!r}."
            )
        if baseline is not None and not (math.isfinite(baseline) and baseline > 0):
            raise ValueError(f"baseline must be a positive finite loss but got {baseline!r}.")
        if not (math.isfinite(baseline_tolerance) and baseline_tolerance >= 0):
            raise ValueError(
                f"baseline_tolerance must be a finite number >= 0 but got {baseline_tolerance!r}."
            )
        if not isinstance(n_keep, int) or n_keep < 1:
            raise ValueError(f"n_keep must be an integer >= 1 but got {n_keep!r}.")
        if max_trainings is not None:
            if isinstance(max_trainings, bool) or not isinstance(max_trainings, int):
                raise ValueError(
                    f"max_trainings must be None or an integer >= 1 but got {max_trainings!r}."
                )
            if max_trainings < 1:
                raise ValueError(f"max_trainings must be >= 1 but got {max_trainings}.")
            if max_instances is not None or growth != "geometric":
                raise ValueError(
                    "max_trainings plans the instance counts itself: leave max_instances=None "
                    f"and growth='geometric' (got max_instances={max_instances!r}, "
                    f"growth={growth!r})."
                )
        self.statistic = statistic
        self.reduction_factor = reduction_factor
        self.min_instances = min_instances
        self.growth = growth
        self.max_instances = max_instances
        self.baseline = baseline
        self.baseline_tolerance = baseline_tolerance
        self.n_keep = n_keep
        self.max_trainings = max_trainings

    def rung_instances(self, rung: int) -> int:
        """The number of instances a model has at ``rung`` (capped at ``max_instances``)."""
        if rung < 0:
            raise ValueError(f"rung must be >= 0 but got {rung}.")
        if self.max_trainings is not None:
            raise ValueError(
                "A budget-planned RobustPruner (max_trainings set) has no fixed rungs: they "
                "depend on the number of candidates, see planned_rungs(n_candidates)."
            )
        if self.growth == "geometric":
            count = self.min_instances * self.reduction_factor**rung
        else:
            count = self.min_instances + rung
        return count if self.max_instances is None else min(count, self.max_instances)

    def rung_of(self, n_instances: int) -> int | None:
        """The rung whose instance count is exactly ``n_instances``, or ``None``."""
        rung = 0
        while (count := self.rung_instances(rung)) < n_instances:
            if count == self.max_instances:
                return None
            rung += 1
        return rung if count == n_instances else None

    def is_last_rung(self, rung: int) -> bool:
        """Whether no rung with more instances follows ``rung``."""
        return self.max_instances is not None and self.rung_instances(rung) >= self.max_instances

    def check_budget(self, n_candidates: int) -> None:
        """Refuse a ``max_trainings`` that cannot train ``min_instances`` of every candidate.

        Raises:
            ValueError: The budget is below ``n_candidates * min_instances``.
        """
        if (
            self.max_trainings is not None
            and self.max_trainings < n_candidates * self.min_instances
        ):
            raise ValueError(
                f"max_trainings={self.max_trainings} cannot train min_instances="
                f"{self.min_instances} of each of the {n_candidates} candidates "
                f"({n_candidates * self.min_instances} trainings)."
            )

    def planned_increment(self, *, n_models: int, spent: int, first: bool) -> int:
        """New instances per model in the next round of a budget-planned schedule.

        Args:
            n_models:
                Models still in the race, each with the same number of instances.
            spent:
                Trainings the halving rounds have spent so far.
            first:
                Whether this is the first round (it trains at least ``min_instances``).
        """
        if self.max_trainings is None:
            raise ValueError("planned_increment needs a RobustPruner with max_trainings set.")
        rounds = 1 if first and self.baseline is not None else 0
        alive = max(n_models, 1)
        while alive > self.n_keep:
            alive = max(alive // self.reduction_factor, self.n_keep)
            rounds += 1
        share = (self.max_trainings - spent) // (max(rounds, 1) * max(n_models, 1))
        return max(share, self.min_instances) if first else max(share, 0)

    def planned_rungs(self, n_candidates: int) -> list[PlannedRung]:
        """The budget-planned schedule for ``n_candidates``: what a selection will train.

        It assumes every model trains and passes the baseline gate (:func:`~optuna_robust.select`
        replans each round from the models actually left); a round that can afford no new
        instance is merged into the rung before it (which then keeps fewer models).

        Example:

            .. code-block:: python

                import optuna_robust

                pruner = optuna_robust.RobustPruner(max_trainings=400)
                rungs = pruner.planned_rungs(100)
                print(rungs[0])  # PlannedRung(instances=1, models=100, survivors=50)
                before = [0] + [r.instances for r in rungs]
                spent = sum(r.models * (r.instances - b) for r, b in zip(rungs, before))
                assert spent <= 400 and rungs[-1].survivors == 1

        Raises:
            ValueError: No budget is set, or it is below ``n_candidates * min_instances``.
        """
        if self.max_trainings is None:
            raise ValueError("planned_rungs needs a RobustPruner with max_trainings set.")
        self.check_budget(n_candidates)
        rungs: list[PlannedRung] = []
        alive, spent, count = n_candidates, 0, 0
        while True:
            first = not rungs
            add = self.planned_increment(n_models=alive, spent=spent, first=first)
            gate_round = first and self.baseline is not None
            halved = min(max(alive // self.reduction_factor, self.n_keep), alive)
            survivors = alive if gate_round else halved
            if add == 0:
                rungs[-1] = rungs[-1]._replace(survivors=survivors)
            else:
                count += add
                spent += add * alive
                rungs.append(PlannedRung(count, alive, survivors))
            if survivors <= self.n_keep:
                return rungs
            alive = survivors

    def gate_limit(self, *, maximize: bool = False) -> float | None:
        """The worst rung-0 value the baseline gate lets through, or ``None`` without a gate.

        Minimising: losses up to ``baseline * (1 + baseline_tolerance)``. Maximising: scores
        down to ``baseline * (1 - baseline_tolerance)``.
        """
        if self.baseline is None:
            return None
        sign = -1.0 if maximize else 1.0
        return self.baseline * (1.0 + sign * self.baseline_tolerance)

    def statistic_value(
        self, losses: Sequence[float] | np.ndarray, *, maximize: bool = False
    ) -> float:
        """The robustness statistic over ``losses``, with NaN as the worst.

        With ``maximize=True`` the values are scores (higher is better); see
        :func:`optuna_robust._stats.robust_value` for what each statistic then means.
        """
        return robust_value(self._statistic_fn, np.asarray(losses, dtype=float), maximize=maximize)

    def survivors(
        self, rung: int, values: Sequence[float], *, maximize: bool = False
    ) -> np.ndarray:
        """Decide a whole cohort at ``rung`` at once, as :func:`~optuna_robust.select` does.

        Args:
            rung:
                The rung every model of the cohort has just reached.
            values:
                Each model's statistic at that rung, in a fixed order (ties keep that order).
            maximize:
                Whether higher values are better (a maximising study).

        Returns:
            The indices into ``values`` of the models that go on, best first.
        """
        badness = _badness(np.asarray(values, dtype=float), maximize)
        order = np.argsort(badness, kind="stable")
        gate = self.gate_limit(maximize=maximize)
        if rung == 0 and gate is not None:
            return order[badness[order] <= _badness(np.array([gate]), maximize)[0]]
        if self.is_last_rung(rung):
            return order[: self.n_keep]
        n_survivors = max(len(order) // self.reduction_factor, self.n_keep)
        return order[:n_survivors]

    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        """The asynchronous (ASHA) decision for one trial at its latest reported step."""
        maximize = check_single_objective(study)
        step = trial.last_step
        if step is None or self.max_trainings is not None:
            # A budget-planned selection decides whole rounds, through its RobustSampler.
            return False
        rung = self.rung_of(step)
        if rung is None or self.is_last_rung(rung):
            return False
        value = float(_badness(np.array([trial.intermediate_values[step]]), maximize)[0])
        gate = self.gate_limit(maximize=maximize)
        if rung == 0 and gate is not None:
            return bool(value > _badness(np.array([gate]), maximize)[0])
        key = rung_key(rung)
        # The rung attr holds the "badness" (the value, negated when maximising): lower wins.
        storage_of(study).set_trial_system_attr(trial_id(study, trial), key, value)
        competing = [
            t.system_attrs[key]
            for t in study.get_trials(deepcopy=False)
            if key in t.system_attrs and t.number != trial.number
        ]
        competing.append(value)
        competing.sort()
        # Like Optuna's ASHA: the first eta - 1 trials at a rung go on when they are the best.
        promotable_index = max(len(competing) // self.reduction_factor - 1, 0)
        return bool(value > competing[promotable_index])


def check_single_objective(study: Study) -> bool:
    """Refuse a multi-objective study; return whether the study maximises."""
    if len(study.directions) > 1:
        raise ValueError(
            f"Robust selection needs a single-objective study, but study {study.study_name!r} "
            f"has directions {[d.name for d in study.directions]}."
        )
    return study.direction == StudyDirection.MAXIMIZE


def _badness(values: np.ndarray, maximize: bool) -> np.ndarray:
    """Values on a lower-is-better scale, NaN the worst."""
    signed = -values if maximize else values
    return np.nan_to_num(signed, nan=math.inf)
