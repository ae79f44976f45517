"""RobustSampler: hand out every candidate of a finite set exactly once, across workers."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import copy
import hashlib
import itertools
import json
import logging
import threading
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from optuna_robust._grid import check_distributions
from optuna_robust._grid import grid_values
from optuna_robust._grid import suggest_with
from optuna_robust._optuna_compat import OptimizeCalls
from optuna_robust._optuna_compat import stop_optimize
from optuna_robust._optuna_compat import storage_of
from optuna_robust._optuna_compat import study_id
from optuna_robust._optuna_compat import trial_id
from optuna_robust._optuna_compat import write_trial
from optuna_robust._planned import Plan
from optuna_robust._planned import Stage
from optuna_robust._planned import claim_stage
from optuna_robust._planned import first_stage
from optuna_robust._pruner import RobustPruner
from optuna_robust._pruner import check_single_objective
from optuna_robust._records import CANDIDATE_KEY
from optuna_robust._records import FINGERPRINT_KEY
from optuna_robust._records import STAGE_KEY
from optuna_robust._records import candidate_index
from optuna_robust._run import check_plan
from optuna_robust._run import pruner_settings

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study
    from optuna.trial import FrozenTrial
    from optuna.trial import Trial

_logger = logging.getLogger(__name__)

_CHOICE_TYPES = (bool, int, float, str, type(None))
_EXHAUSTED = "Every candidate of the RobustSampler has been handed out; nothing left to try."
_LIVE_STATES = (TrialState.RUNNING, TrialState.WAITING, TrialState.COMPLETE, TrialState.PRUNED)


class RobustSampler(optuna.samplers.BaseSampler):
    """Hand out each candidate of a finite set exactly once, in a seeded shuffled order.

    A candidate is one model configuration. The set is either the Cartesian product of a
    ``{name: [choices]}`` search space, an explicit list of candidate dicts, which allows
    conditional spaces (say, the number of fully connected layers decides how many width
    parameters a candidate has), or a grid over Optuna distributions
    (:meth:`from_distributions`), so that an objective written for TPE runs unchanged.

    Trial ``n`` of the study gets the ``n``-th candidate of the shuffled order, so parallel
    workers on one storage never get the same candidate while all of them are alive. After the
    whole order has been handed out, further trials get candidates whose every trial has
    failed (for instance because its worker died and Optuna's heartbeat marked it failed); such
    a candidate may be handed out again, and in a rare race, to two workers at once. When no
    candidate is left, the worker's :meth:`~optuna.study.Study.optimize` loop stops; a trial
    that a worker asked for after that is pruned with no params. When ``n_trials`` or
    ``timeout`` ends the loop first, a warning (logger ``optuna_robust``) says how many
    candidates were not tried.

    With a budget-planned :class:`~optuna_robust.RobustPruner` (``max_trainings`` set), the
    first trials are round 0 of the plan, one per candidate in the same order, and the sampler
    then hands out each later round, one trial per model left, once the round before has ended
    (a worker that asks earlier waits), then one final trial per winner; the loop stops once
    the plan is done (see :func:`~optuna_robust.evaluate_instances`).

    In the objective, suggest each param with any distribution that contains the candidate's
    value: ``suggest_categorical`` with the choices of :attr:`search_space`, the
    ``suggest_float`` / ``suggest_int`` calls of a TPE objective, or :meth:`suggest`, which
    suggests exactly the candidate's params. Each param is stored with the distribution it was
    suggested with, so optuna-dashboard and :meth:`~optuna.study.Study.trials_dataframe`
    show it as the user wrote it.

    Example:

        .. code-block:: python

            import optuna
            import optuna_robust

            sampler = optuna_robust.RobustSampler({"lr": [0.01, 0.1], "width": [8, 16]}, seed=1)
            study = optuna.create_study(sampler=sampler)
            study.optimize(lambda trial: sum(sampler.suggest(trial).values()))
            assert len(study.trials) == 4  # every candidate exactly once

    Args:
        search_space:
            ``{name: [choices]}``; every combination is a candidate. Choices must be ``None``,
            ``bool``, ``int``, ``float`` or ``str``.
        candidates:
            An explicit list of candidate dicts, instead of ``search_space``.
        seed:
            Seed of the shuffled order. ``None`` derives it from the study name, so that every
            worker of a study agrees on the order.

    Raises:
        ValueError: Both or neither of ``search_space`` and ``candidates`` are given, the set is
            empty, a candidate appears twice, or a choice has an unsupported type.
    """

    def __init__(
        self,
        search_space: Mapping[str, Sequence[Any]] | None = None,
        *,
        candidates: Sequence[Mapping[str, Any]] | None = None,
        seed: int | None = None,
    ) -> None:
        if (search_space is None) == (candidates is None):
            raise ValueError("Give exactly one of search_space and candidates.")
        if search_space is not None:
            candidates = _product(search_space)
        assert candidates is not None
        self._candidates: list[dict[str, Any]] = _validated(candidates)
        self._seed = seed
        self._orders: dict[str, np.ndarray] = {}
        self._checked_studies: set[str] = set()
        space: dict[str, list[Any]] = {}
        for candidate in self._candidates:
            for name, value in candidate.items():
                choices = space.setdefault(name, [])
                if value not in choices:
                    choices.append(value)
        self._space = {name: tuple(choices) for name, choices in space.items()}
        self._distributions: dict[str, BaseDistribution] = {
            name: CategoricalDistribution(choices) for name, choices in self._space.items()
        }
        self._fingerprint = hashlib.blake2b(
            json.dumps(self._candidates, sort_keys=True).encode(), digest_size=8
        ).hexdigest()
        self._optimize_calls = OptimizeCalls()
        self._claim_lock = threading.Lock()
        self._plans: dict[tuple[int, int, str], Plan] = {}

    def __getstate__(self) -> dict[str, Any]:
        # A lock does not pickle; the plans are a cache, rebuilt from the storage.
        state = self.__dict__.copy()
        del state["_claim_lock"], state["_plans"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._claim_lock = threading.Lock()
        self._plans = {}

    @classmethod
    def from_distributions(
        cls,
        distributions: Mapping[str, BaseDistribution],
        *,
        n_points: int = 5,
        seed: int | None = None,
    ) -> RobustSampler:
        """A sampler over a grid of Optuna distributions: every combination, each once.

        Give it the distributions that the objective suggests, and the objective runs
        unchanged: ``trial.suggest_float("lr", 1e-4, 1e-1, log=True)`` gets the grid's
        learning rates, and the params are stored with these distributions.

        Example:

            .. code-block:: python

                import optuna
                from optuna.distributions import CategoricalDistribution
                from optuna.distributions import FloatDistribution
                from optuna.distributions import IntDistribution
                import optuna_robust

                sampler = optuna_robust.RobustSampler.from_distributions(
                    {
                        "lr": FloatDistribution(1e-3, 1e-1, log=True),
                        "depth": IntDistribution(1, 8),
                        "kind": CategoricalDistribution(["rf", "gbt"]),
                    },
                    n_points=3,
                    seed=0,
                )
                assert sampler.search_space == {
                    "lr": (0.001, 0.01, 0.1), "depth": (1, 5, 8), "kind": ("rf", "gbt")
                }


                def objective(trial):  # as written for TPE
                    lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
                    depth = trial.suggest_int("depth", 1, 8)
                    kind = trial.suggest_categorical("kind", ["rf", "gbt"])
                    return lr * depth + (kind == "rf")


                study = optuna.create_study(sampler=sampler)
                study.optimize(objective)
                assert len(study.trials) == 3 * 3 * 2  # every candidate exactly once

        Args:
            distributions:
                ``{name: distribution}`` with :class:`~optuna.distributions.FloatDistribution`,
                :class:`~optuna.distributions.IntDistribution` or
                :class:`~optuna.distributions.CategoricalDistribution` values.
            n_points:
                Values per float param, from ``low`` to ``high``, evenly spaced or geometric
                when ``log=True``. A stepped float or an int param keeps every value of its
                grid when it has at most ``n_points``, else ``n_points`` of them spread the same
                way. A categorical param keeps all its choices. An integer ``>= 2``.
            seed:
                Seed of the shuffled order, as in :class:`RobustSampler`.

        Returns:
            A :class:`RobustSampler` whose candidates are every combination of the grids.

        Raises:
            ValueError: ``distributions`` is empty or holds something else than the three
                distributions above, ``n_points`` is not an integer ``>= 2``, or a choice has
                an unsupported type; the message names the value.
        """
        checked = check_distributions(distributions)
        if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 2:
            raise ValueError(f"n_points must be an integer >= 2 but got {n_points!r}.")
        grid = {name: grid_values(dist, n_points) for name, dist in checked.items()}
        sampler = cls(grid, seed=seed)
        sampler._distributions.update(checked)
        return sampler

    @property
    def candidates(self) -> list[dict[str, Any]]:
        """Every candidate, in the order given (or of the Cartesian product)."""
        return [dict(candidate) for candidate in self._candidates]

    @property
    def search_space(self) -> dict[str, tuple[Any, ...]]:
        """Each param's values, over all candidates."""
        return dict(self._space)

    def distributions(self, index: int) -> dict[str, BaseDistribution]:
        """The distributions that :meth:`suggest` stores the params of candidate ``index`` with.

        Those given to :meth:`from_distributions`; otherwise categorical distributions over
        :attr:`search_space`.
        """
        return {name: self._distributions[name] for name in self._candidates[index]}

    def candidate(self, index: int) -> dict[str, Any]:
        """The params of candidate ``index``."""
        return dict(self._candidates[index])

    def suggest(self, trial: Trial) -> dict[str, Any]:
        """Suggest exactly the params of the candidate handed to ``trial``; return them."""
        study = trial.study
        index = candidate_index(storage_of(study).get_trial(trial_id(study, trial)))
        if index is None:
            raise optuna.TrialPruned(_EXHAUSTED)
        return {
            name: suggest_with(trial, name, distribution)
            for name, distribution in self.distributions(index).items()
        }

    def order(self, study: Study) -> np.ndarray:
        """Candidate indices in the order this sampler hands them out for ``study``."""
        if study.study_name not in self._orders:
            seed = self._seed
            if seed is None:
                seed = int.from_bytes(hashlib.sha256(study.study_name.encode()).digest()[:8])
            rng = np.random.default_rng(seed)
            self._orders[study.study_name] = rng.permutation(len(self._candidates))
        return self._orders[study.study_name]

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._check_fingerprint(study)
        self._optimize_calls.trial_started()
        pruner = _planned_pruner(study)
        if pruner is not None:
            self._hand_out_stage(study, trial, pruner)
            return
        index = self._next_candidate(study, trial.number)
        if index is None:
            stop_optimize(study)
            return
        storage_of(study).set_trial_system_attr(trial_id(study, trial), CANDIDATE_KEY, int(index))

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        index = candidate_index(trial)
        if index is None:
            raise optuna.TrialPruned(_EXHAUSTED)
        candidate = self._candidates[index]
        if param_name not in candidate:
            raise ValueError(
                f"Param {param_name!r} is not part of candidate {candidate}; suggest only the "
                f"candidate's params (RobustSampler.suggest does that)."
            )
        value = candidate[param_name]
        try:
            contained = param_distribution._contains(param_distribution.to_internal_repr(value))
        except ValueError:
            contained = False
        if not contained:
            raise ValueError(
                f"Param {param_name!r} was suggested with {param_distribution}, which does not "
                f"contain the candidate's value {value!r}; use the choices of "
                f"RobustSampler.search_space[{param_name!r}]."
            )
        return value

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        pruner = _planned_pruner(study)
        if pruner is not None:
            self._after_stage(study, trial, state, pruner)
            return
        if trial.number + 1 >= len(self._candidates) and not self._orphans(study):
            self._optimize_calls.forget()
            stop_optimize(study)
            return
        call = self._optimize_calls.ending_call()
        if call is None:
            return
        # The finishing trial is still RUNNING in the storage; a failure frees its candidate.
        failing = trial.number if state == TrialState.FAIL else None
        untried = len(self._orphans(study, failing=failing))
        untried += max(len(self.order(study)) - len(self._trials(study)), 0)
        if untried:
            total = len(self._candidates)
            _logger.warning(
                f"study.optimize ends after trial {trial.number} ({call.reason}) with "
                f"{untried} of {total} RobustSampler candidates not tried yet "
                f"({total - untried} tried or running). Run study.optimize again to try them; "
                "without n_trials and timeout it stops by itself once every candidate is tried."
            )

    def _hand_out_stage(self, study: Study, trial: FrozenTrial, pruner: RobustPruner) -> None:
        """Give ``trial`` the next stage of a budget-planned selection (see ``_planned.py``)."""
        n_candidates = len(self._candidates)
        pruner.check_budget(n_candidates)
        check_plan(study, self, pruner)
        if trial.number < n_candidates:
            index = int(self.order(study)[trial.number])
            stage = first_stage(pruner, n_candidates)
            # The candidate first: a reader skips a trial with a candidate but no stage.
            attrs = {CANDIDATE_KEY: index, STAGE_KEY: stage.attr()}
            write_trial(
                storage_of(study), trial_id(study, trial), user_attrs={}, system_attrs=attrs
            )
            return
        with self._claim_lock:  # threads of this process claim one at a time
            plan = self._plan(study, pruner)
            assignment = claim_stage(study, trial, plan, lambda: self._trials(study))
        if assignment is None:
            self._optimize_calls.forget()
            stop_optimize(study)

    def _plan(self, study: Study, pruner: RobustPruner) -> Plan:
        """The plan of ``study`` under ``pruner``'s settings, kept across trials."""
        # By storage and study id: a study deleted and made again under its name starts afresh.
        key = (id(storage_of(study)), study_id(study), repr(pruner_settings(pruner)))
        if key not in self._plans:
            maximize = check_single_objective(study)
            self._plans[key] = Plan(self.order(study), pruner, maximize=maximize)
        return self._plans[key]

    def _after_stage(
        self, study: Study, trial: FrozenTrial, state: TrialState, pruner: RobustPruner
    ) -> None:
        """Stop the loop when ``trial`` ended the plan; else warn if the call ends first."""
        stage = Stage.of(trial)
        if stage is None:
            return
        ended = copy.copy(trial)
        ended.state = state  # still RUNNING in the storage
        trials = [ended if t.number == trial.number else t for t in self._trials(study)]
        result = self._plan(study, pruner).next_assignment(trials, remember=False)
        if result is None:
            self._optimize_calls.forget()
            stop_optimize(study)
            return
        call = self._optimize_calls.ending_call()
        if call is not None:
            _logger.warning(
                f"study.optimize ends after trial {trial.number} ({call.reason}) in round "
                f"{stage.round} of the budget-planned selection, before its last "
                "round. Run study.optimize again to go on; without n_trials and timeout it "
                "stops by itself once the plan is done."
            )

    def _next_candidate(self, study: Study, number: int) -> int | None:
        order = self.order(study)
        if number < len(order):
            return int(order[number])
        orphans = self._orphans(study)
        return orphans[0] if orphans else None

    def _trials(self, study: Study) -> list[FrozenTrial]:
        return storage_of(study).get_all_trials(study_id(study), deepcopy=False)

    def _orphans(self, study: Study, *, failing: int | None = None) -> list[int]:
        """Candidates, in hand-out order, that no live trial holds (all their trials failed).

        Trial number ``failing`` counts as failed whatever its stored state.
        """
        order = self.order(study)
        trials = self._trials(study)
        held = set()
        for trial in trials:
            if trial.state in _LIVE_STATES and trial.number != failing:
                index = candidate_index(trial)
                # A trial just created by another worker may not have stored its candidate
                # yet; below len(order) its number says which one it is taking.
                if index is None and trial.number < len(order):
                    index = int(order[trial.number])
                held.add(index)
        if len(trials) < len(order):
            held.update(int(i) for i in order[len(trials) :])  # not handed out yet
        return [int(i) for i in order if int(i) not in held]

    def _check_fingerprint(self, study: Study) -> None:
        if study.study_name in self._checked_studies:
            return
        self._checked_studies.add(study.study_name)
        storage = storage_of(study)
        stored = storage.get_study_system_attrs(study_id(study)).get(FINGERPRINT_KEY)
        if stored is None:
            storage.set_study_system_attr(study_id(study), FINGERPRINT_KEY, self._fingerprint)
        elif stored != self._fingerprint:
            raise ValueError(
                f"Study {study.study_name!r} was started with a different candidate set "
                f"(fingerprint {stored}, this sampler's {self._fingerprint}); give every worker "
                "the same candidates, or use a new study."
            )


def _planned_pruner(study: Study) -> RobustPruner | None:
    """The study's RobustPruner if it plans a budget of trainings, else ``None``."""
    pruner = study.pruner
    if isinstance(pruner, RobustPruner) and pruner.max_trainings is not None:
        return pruner
    return None


def _product(search_space: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    if not isinstance(search_space, Mapping):
        raise ValueError(
            f"search_space must be a mapping of name -> choices but got {search_space!r}."
        )
    for name, choices in search_space.items():
        if isinstance(choices, str | bytes) or not isinstance(choices, Sequence) or not choices:
            raise ValueError(
                f"search_space[{name!r}] must be a non-empty list of choices but got {choices!r}."
            )
    names = list(search_space)
    return [dict(zip(names, values)) for values in itertools.product(*search_space.values())]


def _validated(candidates: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(candidates, Mapping) or not isinstance(candidates, Sequence):
        kind = type(candidates).__name__
        raise ValueError(f"candidates must be a list of dicts but got a {kind}.")
    if len(candidates) == 0:
        raise ValueError("The candidate set is empty; give at least one candidate.")
    seen: dict[str, int] = {}
    result = []
    for position, candidate in enumerate(candidates):
        if not isinstance(candidate, Mapping) or not candidate:
            raise ValueError(
                f"Candidate {position} must be a non-empty dict but got {candidate!r}."
            )
        for name, value in candidate.items():
            if not isinstance(value, _CHOICE_TYPES):
                raise ValueError(
                    f"Candidate {position} has {name}={value!r} of type {type(value).__name__}; "
                    "choices must be None, bool, int, float or str."
                )
        key = json.dumps(candidate, sort_keys=True)
        if key in seen:
            raise ValueError(
                f"Candidate {position} {dict(candidate)} duplicates candidate {seen[key]}; "
                "every candidate must be distinct."
            )
        seen[key] = position
        result.append(dict(candidate))
    return result
