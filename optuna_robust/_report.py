"""robustness_report: one row per model with the spread of its instance losses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from typing import Literal

import optuna
import pandas as pd

from optuna_robust._records import instance_losses
from optuna_robust._stats import Statistic
from optuna_robust._stats import resolve_statistic
from optuna_robust._stats import robust_value

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

_COLUMNS = ("mean", "median", "std", "iqr", "min", "max")


def robustness_report(
    study_or_trials: optuna.Study | Iterable[FrozenTrial],
    *,
    statistic: Statistic = "mean",
    phase: Literal["selection", "final", "all"] = "selection",
) -> pd.DataFrame:
    """Summarise the instance losses of every model: one row per trial, best first.

    Example:

        .. code-block:: python

            import optuna
            import optuna_robust


            def model(lr, losses):
                records = {f"robust:selection:{i:06d}": {"loss": x} for i, x in enumerate(losses)}
                lr_choices = optuna.distributions.CategoricalDistribution([0.1, 0.01])
                return optuna.trial.create_trial(
                    value=max(losses), params={"lr": lr}, distributions={"lr": lr_choices},
                    user_attrs=records,
                )


            trials = [model(0.1, [0.2, 0.9, 0.3]), model(0.01, [0.4, 0.5, 0.45])]
            report = optuna_robust.robustness_report(trials, statistic="max")
            assert report["params_lr"].tolist() == [0.01, 0.1]  # the steadier model first

    Args:
        study_or_trials:
            A study, or trials, evaluated by :func:`~optuna_robust.evaluate_instances` or
            :func:`~optuna_robust.select`. Trials without instances are left out.
        statistic:
            The statistic to sort by; its value is the ``statistic`` column.
        phase:
            Which instances to summarise: ``"selection"``, ``"final"`` or ``"all"``.

    Returns:
        A DataFrame with columns ``trial``, ``state``, one ``params_<name>`` per param,
        ``instances``, ``mean``, ``median``, ``std``, ``iqr``, ``min``, ``max`` and
        ``statistic``, sorted by ``statistic`` (ascending: lower losses are better).
    """
    statistic_fn = resolve_statistic(statistic)
    trials = (
        study_or_trials.get_trials(deepcopy=False)
        if isinstance(study_or_trials, optuna.Study)
        else list(study_or_trials)
    )
    rows = []
    for trial in trials:
        losses = instance_losses(trial, phase=phase)
        if losses.size == 0:
            continue
        row: dict[str, object] = {"trial": trial.number, "state": trial.state.name}
        row.update({f"params_{name}": value for name, value in trial.params.items()})
        row["instances"] = int(losses.size)
        for name in _COLUMNS:
            row[name] = robust_value(resolve_statistic(name), losses)
        row["statistic"] = robust_value(statistic_fn, losses)
        rows.append(row)
    columns = ["trial", "state", "instances", *_COLUMNS, "statistic"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame.sort_values(["statistic", "trial"], kind="stable").reset_index(drop=True)
    return frame
