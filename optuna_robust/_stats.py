"""Robustness statistics: one number that summarises the losses of a model's instances."""

from __future__ import annotations

from collections.abc import Callable
import math

import numpy as np

StatisticFn = Callable[[np.ndarray], float]
Statistic = str | StatisticFn

STATISTICS = ("mean", "median", "max", "min", "std", "iqr", "quantile:q", "cvar:q")


def _iqr(losses: np.ndarray) -> float:
    q75, q25 = np.quantile(losses, [0.75, 0.25])
    return float(q75 - q25)


def _cvar(q: float) -> StatisticFn:
    def cvar(losses: np.ndarray) -> float:
        worst = max(1, math.ceil(round((1.0 - q) * losses.size, 9)))
        return float(np.mean(np.sort(losses)[-worst:]))

    return cvar


_NAMED: dict[str, StatisticFn] = {
    "mean": lambda losses: float(np.mean(losses)),
    "median": lambda losses: float(np.median(losses)),
    "max": lambda losses: float(np.max(losses)),
    "min": lambda losses: float(np.min(losses)),
    "std": lambda losses: float(np.std(losses, ddof=1)) if losses.size > 1 else 0.0,
    "iqr": _iqr,
}


def resolve_statistic(statistic: Statistic) -> StatisticFn:
    """Turn a statistic spec into a function of an array of instance losses.

    Args:
        statistic:
            One of ``"mean"``, ``"median"``, ``"max"``, ``"min"``, ``"std"``, ``"iqr"``,
            ``"quantile:q"`` (the q-quantile, ``0 <= q <= 1``), ``"cvar:q"`` (the mean of the
            worst ``1 - q`` share of the losses, ``0 <= q < 1``), or a callable that takes a
            1-d numpy array and returns a float.

    Returns:
        A function ``losses -> float``. It is called only with non-empty arrays in which NaN has
        already been replaced by ``+inf``.

    Raises:
        ValueError: ``statistic`` is not one of the above.
    """
    if callable(statistic):
        return statistic
    if not isinstance(statistic, str):
        raise ValueError(f"statistic must be a string or a callable but got {statistic!r}.")
    if statistic in _NAMED:
        return _NAMED[statistic]
    kind, _, arg = statistic.partition(":")
    if kind in ("quantile", "cvar") and arg:
        try:
            q = float(arg)
        except ValueError:
            q = math.nan
        upper_ok = q <= 1.0 if kind == "quantile" else q < 1.0
        if not (0.0 <= q and upper_ok):
            bound = "[0, 1]" if kind == "quantile" else "[0, 1)"
            raise ValueError(
                f"The level of statistic {statistic!r} must be a number in {bound} "
                f"but got {arg!r}."
            )
        if kind == "quantile":
            return lambda losses: float(np.quantile(losses, q))
        return _cvar(q)
    raise ValueError(
        f"Unknown statistic {statistic!r}; use one of {', '.join(STATISTICS)}, or a callable."
    )


def statistic_name(statistic: Statistic) -> str:
    """A short label for a statistic spec, for tables and axis labels."""
    if isinstance(statistic, str):
        return statistic
    return getattr(statistic, "__name__", type(statistic).__name__)


def robust_value(
    statistic: StatisticFn, losses: np.ndarray | list[float], *, maximize: bool = False
) -> float:
    """Apply ``statistic`` with the robustness conventions: NaN counts as the worst value.

    An empty set of values, or a statistic that comes out NaN (such as the spread of losses
    that include ``inf``), is the worst as well, so that a broken model can never look good.

    For a maximising study the values are scores, and the statistic is applied to the negated
    scores and negated back, so that every statistic keeps its meaning in terms of "worse":
    ``mean`` and ``median`` are unchanged, ``max`` (the worst case) becomes the lowest score,
    ``quantile:0.9`` the 10 % quantile, ``cvar:q`` the mean of the lowest ``1 - q`` share.
    """
    worst = -math.inf if maximize else math.inf
    array = np.asarray(losses, dtype=float)
    if array.size == 0:
        return worst
    array = np.where(np.isnan(array), worst, array)
    with np.errstate(invalid="ignore", over="ignore"):
        value = -float(statistic(-array)) if maximize else float(statistic(array))
    return worst if math.isnan(value) else value


SPREADS = ("std", "iqr")


def check_direction(statistic: Statistic, maximize: bool) -> None:
    """Refuse a spread statistic on a maximising study, where higher would win."""
    if maximize and isinstance(statistic, str) and statistic in SPREADS:
        raise ValueError(
            f"statistic {statistic!r} is a spread (lower is better) but the study maximises; "
            "use a minimising study, or a statistic of the scores such as 'mean', 'max' (the "
            "worst case) or 'quantile:0.9'."
        )
