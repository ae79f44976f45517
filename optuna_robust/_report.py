"""robustness_report: one row per model with the spread of its instance losses."""

from __future__ import annotations

from collections.abc import Iterable
import math
from typing import TYPE_CHECKING
from typing import Literal

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState
import pandas as pd

from optuna_robust._planned import Stage
from optuna_robust._pruner import check_single_objective
from optuna_robust._records import candidate_index
from optuna_robust._records import instance_losses
from optuna_robust._stats import Statistic
from optuna_robust._stats import check_direction
from optuna_robust._stats import resolve_statistic
from optuna_robust._stats import robust_value

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

_COLUMNS = ("mean", "median", "std", "iqr", "min", "max")
_DIRECTIONS = ("minimize", "maximize")


def robustness_report(
    study_or_trials: optuna.Study | Iterable[FrozenTrial],
    *,
    statistic: Statistic = "mean",
    phase: Literal["selection", "final", "all"] = "selection",
    direction: Literal["minimize", "maximize"] | StudyDirection | None = None,
) -> pd.DataFrame:
    """Summarise the instance losses of every model: one row per trial, best first.

    Rows are ranked the way a selection reads: first by how far a model got (``instances``,
    most first), so that a model pruned after one lucky instance never stands above a model
    that completed sixteen; then by ``statistic``, best first in the study's direction (lowest
    loss, or highest score in a maximising study); ties by trial number.

    Example:

        .. code-block:: python

            import optuna
            import optuna_robust


            def model(lr, losses):
                records = {f"robust:selection:{i:06d}": {"loss": x} for i, x in enumerate(losses)}
                lr_choices = optuna.distributions.CategoricalDistribution([0.1, 0.01, 1.0])
                return optuna.trial.create_trial(
                    value=max(losses), params={"lr": lr}, distributions={"lr": lr_choices},
                    user_attrs=records,
                )


            trials = [
                model(1.0, [0.1]),  # pruned after one lucky instance
                model(0.1, [0.2, 0.9, 0.3]),
                model(0.01, [0.4, 0.5, 0.45]),
            ]
            report = optuna_robust.robustness_report(trials, statistic="max")
            assert report["params_lr"].tolist() == [0.01, 0.1, 1.0]  # the steadier model first
            print(report.to_string(na_rep="–"))  # one instance: no std

    Args:
        study_or_trials:
            A study, or trials, evaluated by :func:`~optuna_robust.evaluate_instances` or
            :func:`~optuna_robust.select`. Trials without instances are left out.
        statistic:
            The statistic to rank by, with the meaning it has in
            :class:`~optuna_robust.RobustPruner` for the direction; its value is the
            ``statistic`` column.
        phase:
            Which instances to summarise: ``"selection"``, ``"final"`` or ``"all"``.
        direction:
            ``"minimize"`` (the values are losses) or ``"maximize"`` (scores, higher is
            better). ``None``: the study's direction, or ``"minimize"`` for a list of trials.
            With a study, a different direction is refused.

    Returns:
        A DataFrame with columns ``trial``, ``state``, one ``params_<name>`` per param,
        ``instances``, ``mean``, ``median``, ``std``, ``iqr``, ``min``, ``max`` and
        ``statistic``, ranked as above. ``std`` is NaN for a model with one instance (pandas
        prints ``NaN``; ``to_string(na_rep="–")`` prints a dash); any spread over an instance
        that diverged is ``inf``.

    Raises:
        ValueError: ``direction`` is not one of the above or contradicts the study's, or a
            spread (``"std"``, ``"iqr"``) ranks a maximising report.
    """
    maximize = _maximize(study_or_trials, direction)
    check_direction(statistic, maximize)
    statistic_fn = resolve_statistic(statistic)
    trials = (
        study_or_trials.get_trials(deepcopy=False)
        if isinstance(study_or_trials, optuna.Study)
        else list(study_or_trials)
    )
    rows = []
    for trial in _one_per_model(trials):
        losses = instance_losses(trial, phase=phase)
        if losses.size == 0:
            continue
        row: dict[str, object] = {"trial": trial.number, "state": trial.state.name}
        row.update({f"params_{name}": value for name, value in trial.params.items()})
        row["instances"] = int(losses.size)
        # Descriptive columns: the plain values (min is the smallest, whatever the direction).
        for name in _COLUMNS:
            row[name] = robust_value(resolve_statistic(name), losses)
        if losses.size == 1:
            row["std"] = math.nan  # one instance says nothing about the spread
        row["statistic"] = robust_value(statistic_fn, losses, maximize=maximize)
        rows.append(row)
    columns = ["trial", "state", "instances", *_COLUMNS, "statistic"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    badness = -frame["statistic"] if maximize else frame["statistic"]
    order = np.lexsort((frame["trial"], badness, -frame["instances"]))
    return frame.iloc[order].reset_index(drop=True)


def _one_per_model(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """``trials`` with each budget-planned model's latest stage trial only.

    In a budget-planned ``study.optimize`` a model has one trial per round it reached, each
    holding all its instances so far; its latest (a failed one only when there is nothing
    later) stands for it.
    """
    latest: dict[int, FrozenTrial] = {}

    def rank(trial: FrozenTrial) -> tuple[int, bool, bool, int]:
        stage = Stage.of(trial)
        assert stage is not None
        usable = trial.state != TrialState.FAIL
        return stage.round, stage.final, usable, -trial.number

    for trial in trials:
        index = candidate_index(trial)
        if Stage.of(trial) is not None and index is not None:
            if index not in latest or rank(trial) > rank(latest[index]):
                latest[index] = trial
    kept = {t.number for t in latest.values()}
    return [t for t in trials if Stage.of(t) is None or t.number in kept]


def _maximize(
    study_or_trials: optuna.Study | Iterable[FrozenTrial],
    direction: Literal["minimize", "maximize"] | StudyDirection | None,
) -> bool:
    """Whether the report ranks scores (higher first); refuse an unknown or conflicting one."""
    wanted: bool | None = None
    if isinstance(direction, StudyDirection) and direction != StudyDirection.NOT_SET:
        wanted = direction == StudyDirection.MAXIMIZE
    elif direction in _DIRECTIONS:
        wanted = direction == "maximize"
    elif direction is not None:
        raise ValueError(
            f"direction must be 'minimize', 'maximize' or None but got {direction!r}."
        )
    if not isinstance(study_or_trials, optuna.Study):
        return bool(wanted)
    maximize = check_single_objective(study_or_trials)
    if wanted is not None and wanted != maximize:
        raise ValueError(
            f"direction={direction!r} contradicts study {study_or_trials.study_name!r}, which "
            f"{'maximizes' if maximize else 'minimizes'}; leave direction=None for a study."
        )
    return maximize
