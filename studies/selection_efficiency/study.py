"""A ground-truth benchmark of selection methods: which one finds the truly most robust model?

Synthetic candidate sets whose true robustness (the mean of a model's loss distribution) is known
exactly, an instant ``train_fn``, and every selection method side by side at the same budgets:
the paper's successive halving through ``optuna_robust.select``, the asynchronous path, Optuna's
pruners with instances as steps, SMAC3's intensifier, uniform allocation, and the core's
budget-planned halving (``RobustPruner(max_trainings=...)`` through ``select``). Run with::

    .venv/bin/python studies/run.py selection_efficiency --scale cpu   # or smoke, long
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
import math
from pathlib import Path
import time
from typing import Any
from typing import NamedTuple
import warnings

import numpy as np
import optuna
import pandas as pd

import optuna_robust

EXHAUSTIVE_INSTANCES = 50  # the paper's final instances: exhaustive = N x 50 trainings
FAMILIES = ("easy", "hard", "trap", "diverging")

# ---------------------------------------------------------------------------------------------
# The generator: a loss distribution per model, sampled from the instance seeds.


def uniform_from_seeds(seeds: np.ndarray, stream: int) -> np.ndarray:
    """Uniform numbers in (0, 1), a fixed function of each seed (splitmix64, vectorised)."""
    with np.errstate(over="ignore"):
        z = np.asarray(seeds, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15) * np.uint64(
            stream + 1
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(float) + 0.5) / 2.0**53


def normal_from_seeds(seeds: np.ndarray, stream: int) -> np.ndarray:
    """Standard normal numbers, a fixed function of each seed (Box-Muller)."""
    u1, u2 = uniform_from_seeds(seeds, 2 * stream), uniform_from_seeds(seeds, 2 * stream + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


class CandidateSet(NamedTuple):
    """N models; instance loss = level + scale * (sqrt(rho) * data + sqrt(1 - rho) * init).

    ``data`` is a standard normal of the instance's ``data_seed``, so with ``pairing="data"``
    every model sees the same data effect and two models' losses correlate by ``rho``. ``init``
    is a standardised lognormal of the ``init_seed`` with shape ``skew`` (0: normal): mean 0,
    variance 1, a long right tail, so a skewed model's median and minimum lie below its mean.
    With probability ``fail`` a training diverges and its loss is ``inf``.
    """

    family: str
    rho: float
    level: np.ndarray
    scale: np.ndarray
    skew: np.ndarray
    fail: np.ndarray

    @property
    def n_models(self) -> int:
        return self.level.size

    def losses(
        self, models: np.ndarray | int, data_seeds: np.ndarray, init_seeds: np.ndarray
    ) -> np.ndarray:
        """The losses of instances (``models``, seeds broadcast together)."""
        data = normal_from_seeds(data_seeds, 0)
        gauss = normal_from_seeds(init_seeds, 1)
        skew = self.skew[models]
        safe = np.maximum(skew, 1e-3)
        lognormal = (np.exp(safe * gauss) - np.exp(safe**2 / 2)) / np.sqrt(
            np.expm1(safe**2) * np.exp(safe**2)
        )
        init = np.where(skew > 1e-3, lognormal, gauss)
        noise = math.sqrt(self.rho) * data + math.sqrt(1 - self.rho) * init
        loss = self.level[models] + self.scale[models] * noise
        return np.where(uniform_from_seeds(init_seeds, 2) < self.fail[models], np.inf, loss)

    def true_mean(self) -> np.ndarray:
        """The exact mean of each model's loss distribution (``inf`` if it can diverge)."""
        return np.where(self.fail > 0, np.inf, self.level)


def candidate_set(family: str, n_models: int, rho: float, seed: int) -> CandidateSet:
    """One candidate set of ``family``; model 0 is not special (the best is placed at random).

    * easy: the best has level 1.0, every other model at least 1.05 (half a typical scale).
    * hard: a cluster of N/16 near-ties at 1.005-1.03 just behind the best.
    * trap: the best is steady (scale 0.06, no skew); N/16 lucky-but-erratic models at
      1.03-1.1 have scale 0.2-0.35 and skew 1-1.5: lower medians and minima, worse means.
    * diverging: N/8 models at 0.97-1.03 whose trainings diverge with probability 5-15 %.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES} but got {family!r}.")
    rng = np.random.default_rng([seed, FAMILIES.index(family), n_models, int(rho * 1000)])
    level = 1.05 + 0.25 * rng.random(n_models)
    scale = rng.uniform(0.06, 0.14, n_models)
    skew = rng.uniform(0.0, 0.5, n_models)
    fail = np.zeros(n_models)
    group = np.arange(1, 1 + max(2, n_models // (8 if family == "diverging" else 16)))
    if family == "hard":
        level[group] = rng.uniform(1.005, 1.03, group.size)
    elif family == "trap":
        level[group] = rng.uniform(1.03, 1.1, group.size)
        scale[group] = rng.uniform(0.2, 0.35, group.size)
        skew[group] = rng.uniform(1.0, 1.5, group.size)
        scale[0], skew[0] = 0.06, 0.0
    elif family == "diverging":
        level[group] = rng.uniform(0.97, 1.03, group.size)
        fail[group] = rng.uniform(0.05, 0.15, group.size)
    level[0] = 1.0
    order = rng.permutation(n_models)  # the best and the groups sit anywhere in the list
    return CandidateSet(family, rho, level[order], scale[order], skew[order], fail[order])


class Oracle:
    """The instant ``train_fn`` of one benchmark run; counts every training it does.

    ``seconds`` is the time spent inside the oracle (drawing the losses), so that a method's
    bookkeeping is its wall time less that: every method pays the same per training.
    """

    def __init__(self, candidates: CandidateSet, seed: int) -> None:
        self.candidates = candidates
        self.seed = seed
        self.n_models = candidates.n_models
        self.trainings = 0
        self.seconds = 0.0

    def train(self, params: dict[str, Any], instances: Sequence[optuna_robust.Instance]) -> list:
        """``select``'s ``train_fn``: the losses of a batch of one model's instances."""
        start = time.perf_counter()
        self.trainings += len(instances)
        data = np.array([i.data_seed for i in instances], dtype=np.uint64)
        init = np.array([i.init_seed for i in instances], dtype=np.uint64)
        losses = self.candidates.losses(params["model"], data, init).tolist()
        self.seconds += time.perf_counter() - start
        return losses

    def losses(self, model: int, indices: Sequence[int], pairing: str = "data") -> np.ndarray:
        """Selection instances ``indices`` of ``model``, seeded as ``select`` seeds them."""
        start = time.perf_counter()
        instances = optuna_robust.make_instances(
            {"model": model}, indices, seed=self.seed, pairing=pairing
        )
        self.seconds += time.perf_counter() - start
        return np.asarray(self.train({"model": model}, instances))


def models(n_models: int) -> list[dict[str, int]]:
    """The candidate dicts every method sees: one int param that names the model."""
    return [{"model": m} for m in range(n_models)]


# ---------------------------------------------------------------------------------------------
# The methods. Each trains through the oracle and returns the model it would pick.


def sha_select(oracle: Oracle, min_instances: int, max_instances: int, pairing: str) -> int:
    """The paper's successive halving through ``optuna_robust.select`` (0: no cap)."""
    study = optuna.create_study(
        sampler=optuna_robust.RobustSampler(candidates=models(oracle.n_models), seed=oracle.seed),
        pruner=optuna_robust.RobustPruner(
            min_instances=min_instances, max_instances=max_instances or None
        ),
    )
    result = optuna_robust.select(
        study, oracle.train, final_instances=0, pairing=pairing, seed=oracle.seed
    )
    return result.winners[0].params["model"]


def asynchronous(oracle: Oracle, pruner: optuna_robust.RobustPruner) -> int:
    """``study.optimize`` with RobustSampler + ``pruner`` + evaluate_instances (ASHA)."""
    sampler = optuna_robust.RobustSampler(candidates=models(oracle.n_models), seed=oracle.seed)
    study = optuna.create_study(sampler=sampler, pruner=pruner)

    def objective(trial: optuna.Trial) -> float:
        params = sampler.suggest(trial)
        return optuna_robust.evaluate_instances(
            trial, lambda instances: oracle.train(params, instances), seed=oracle.seed
        )

    study.optimize(objective, n_trials=oracle.n_models)
    return study.best_trial.params["model"]


def optuna_pruner(oracle: Oracle, pruner: optuna.pruners.BasePruner, max_instances: int) -> int:
    """An Optuna pruner with instances as steps: step k reports the mean of instances 1..k.

    The WilcoxonPruner instead gets each instance's own loss at its step (its documented use:
    steps are paired problem instances) and a diverged instance prunes the trial, since the
    pruner cannot compare ``inf``.
    """
    wilcoxon = isinstance(pruner, optuna.pruners.WilcoxonPruner)
    sampler = optuna_robust.RobustSampler(candidates=models(oracle.n_models), seed=oracle.seed)
    # A fixed name: HyperbandPruner assigns brackets by a hash of the study name.
    name = f"{type(pruner).__name__}-{oracle.seed}"
    study = optuna.create_study(study_name=name, sampler=sampler, pruner=pruner)

    def objective(trial: optuna.Trial) -> float:
        model = sampler.suggest(trial)["model"]
        losses: list[float] = []
        for k in range(max_instances):
            losses.append(float(oracle.losses(model, [k])[0]))
            if wilcoxon and not math.isfinite(losses[-1]):
                raise optuna.TrialPruned()
            trial.report(losses[-1] if wilcoxon else float(np.mean(losses)), k + 1)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(np.mean(losses))

    study.optimize(objective, n_trials=oracle.n_models)
    return study.best_trial.params["model"]


def smac_intensifier(oracle: Oracle, max_config_calls: int) -> int:
    """SMAC3's racing intensifier (ROAR facade) over the candidates, instances = instance index.

    Every candidate is in the initial design (shuffled); SMAC races each challenger against the
    incumbent on the incumbent's instances and stops once no candidate is left to propose.
    """
    import tempfile

    from ConfigSpace import Configuration
    from ConfigSpace import ConfigurationSpace
    from ConfigSpace import Integer
    from smac import RandomFacade
    from smac import Scenario
    from smac.initial_design import DefaultInitialDesign
    from smac.intensifier import Intensifier
    from smac.main.exceptions import ConfigurationSpaceExhaustedException
    from smac.runhistory import TrialValue

    space = ConfigurationSpace(seed=oracle.seed % 2**31)
    space.add(Integer("model", (0, oracle.n_models - 1)))
    order = np.random.default_rng(oracle.seed).permutation(oracle.n_models)
    configs = [Configuration(space, values={"model": int(m)}) for m in order]
    instances = [str(k) for k in range(max_config_calls)]
    with tempfile.TemporaryDirectory() as folder:
        scenario = Scenario(
            space,
            deterministic=True,
            n_trials=oracle.n_models * EXHAUSTIVE_INSTANCES,
            instances=instances,
            instance_features={k: [float(k)] for k in instances},
            seed=oracle.seed % 2**31,
            output_directory=Path(folder),
        )
        smac = RandomFacade(
            scenario,
            lambda config, instance, seed=0: 0.0,  # unused: trials run through ask and tell
            initial_design=DefaultInitialDesign(scenario, n_configs=0, additional_configs=configs),
            intensifier=Intensifier(scenario, max_config_calls=max_config_calls, seed=0),
            overwrite=True,
            logging_level=40,
        )
        try:
            while oracle.trainings < oracle.n_models * EXHAUSTIVE_INSTANCES:
                info = smac.ask()
                loss = float(oracle.losses(info.config["model"], [int(info.instance)])[0])
                smac.tell(info, TrialValue(cost=loss))
        except (ConfigurationSpaceExhaustedException, StopIteration):
            pass  # every candidate proposed: SMAC has nothing left to race
        return int(smac.intensifier.get_incumbent()["model"])


def uniform(oracle: Oracle, instances: int) -> int:
    """Every model gets the same number of instances; the best mean wins (1: single instance)."""
    means = [np.mean(oracle.losses(m, range(instances))) for m in range(oracle.n_models)]
    return int(np.argmin(means))


def budget_trainings(oracle: Oracle, share: float | str) -> int:
    """A budget of ``share`` x N x 50 trainings (the exhaustive search's share).

    ``share="natural"``: exactly what the paper's SHA from one instance trains, N (1 + (R - 1)
    / 2) for R = log2 N rounds, so that the two compare at equal trainings.
    """
    if share == "natural":
        rounds = math.ceil(math.log2(oracle.n_models))
        return math.floor(oracle.n_models * (1 + (rounds - 1) / 2))
    assert isinstance(share, float)
    return math.floor(share * oracle.n_models * EXHAUSTIVE_INSTANCES)


def _budget(share: float | str) -> str:
    return f"max_trainings {share:.0%}" if isinstance(share, float) else "max_trainings = SHA's"


def planned_select(oracle: Oracle, share: float | str) -> int:
    """Budget-planned halving in the core: ``select`` with ``RobustPruner(max_trainings=...)``."""
    study = optuna.create_study(
        sampler=optuna_robust.RobustSampler(candidates=models(oracle.n_models), seed=oracle.seed),
        pruner=optuna_robust.RobustPruner(max_trainings=budget_trainings(oracle, share)),
    )
    result = optuna_robust.select(
        study, oracle.train, final_instances=0, pairing="data", seed=oracle.seed
    )
    return result.winners[0].params["model"]


def planned_optimize(oracle: Oracle, share: float | str) -> int:
    """Budget-planned halving in ``study.optimize``: each round as continuation trials."""
    sampler = optuna_robust.RobustSampler(candidates=models(oracle.n_models), seed=oracle.seed)
    pruner = optuna_robust.RobustPruner(max_trainings=budget_trainings(oracle, share))
    study = optuna.create_study(sampler=sampler, pruner=pruner)

    def objective(trial: optuna.Trial) -> float:
        params = sampler.suggest(trial)
        return optuna_robust.evaluate_instances(
            trial, lambda instances: oracle.train(params, instances), seed=oracle.seed
        )

    study.optimize(objective)  # stops by itself once the plan is done
    return study.best_trial.params["model"]


PLANNED = "select, budget-planned"
PLANNED_OPTIMIZE = "study.optimize, budget-planned"


class Method(NamedTuple):
    label: str
    run: Callable[[Oracle, Any], int]
    describe: Callable[[Any], str]


def _caps(setting: Sequence[int]) -> str:
    return f"min {setting[0]}, max {setting[1] or 'none'}"


METHODS = {
    "sha_none": Method(
        "select SHA, pairing none", lambda o, s: sha_select(o, s[0], s[1], "none"), _caps
    ),
    "sha_data": Method(
        "select SHA, pairing data", lambda o, s: sha_select(o, s[0], s[1], "data"), _caps
    ),
    "async": Method(
        "async RobustPruner",
        lambda o, s: asynchronous(
            o, optuna_robust.RobustPruner(min_instances=s[0], max_instances=s[1])
        ),
        _caps,
    ),
    "optuna_sha": Method(
        "Optuna SuccessiveHalvingPruner",
        lambda o, s: optuna_pruner(o, optuna.pruners.SuccessiveHalvingPruner(min_resource=1), s),
        lambda s: f"max {s}",
    ),
    "hyperband": Method(
        "Optuna HyperbandPruner",
        lambda o, s: optuna_pruner(o, optuna.pruners.HyperbandPruner(1, s), s),
        lambda s: f"max {s}",
    ),
    "wilcoxon": Method(
        "Optuna WilcoxonPruner",
        lambda o, s: optuna_pruner(o, optuna.pruners.WilcoxonPruner(p_threshold=s[0]), s[1]),
        lambda s: f"p {s[0]}, max {s[1]}",
    ),
    "smac": Method("SMAC3 intensifier", smac_intensifier, lambda s: f"max_config_calls {s}"),
    "uniform": Method("uniform", uniform, lambda s: f"{s} each"),
    "planned": Method(PLANNED, planned_select, _budget),
    "planned_optimize": Method(PLANNED_OPTIMIZE, planned_optimize, _budget),
}


# Methods cheap enough to run on the extra candidate sets of the head-to-head comparison.
# And, on those sets too, the peers that came closest at 5 % on the 40 sets (a difference of
# one or two sets there); None: every setting.
FAST_METHODS: dict[str, list[Any] | None] = {
    "sha_none": None,
    "sha_data": None,
    "uniform": None,
    "planned": None,
    "async": [[1, 8]],
    "optuna_sha": [8],
}


def benchmark(config: dict[str, Any]) -> pd.DataFrame:
    """One row per (candidate set, method, setting): the pick, its truth and the trainings.

    Every method runs on the first ``repetitions`` seeds of each (N, family, rho); the
    ``FAST_METHODS`` also on ``fast_repetitions`` more (tier "fast"), for a sharper
    select-SHA-versus-budget-planned comparison.
    """
    import importlib.util

    skip = set() if importlib.util.find_spec("smac") else {"smac"}
    rows = []
    sizes = zip(config["models"], config["repetitions"], config["fast_repetitions"])
    for n_models, repetitions, fast_repetitions in sizes:
        for family in config["families"]:
            for rho in config["rhos"]:
                for rep in range(repetitions + fast_repetitions):
                    seed = config["seed"] + rep
                    tier = "all" if rep < repetitions else "fast"
                    candidates = candidate_set(family, n_models, rho, seed)
                    truth = candidates.true_mean()
                    best, median = truth.min(), np.median(truth)
                    for key, settings in config["methods"].items():
                        smac_skip = n_models not in config.get("smac_models", []) or rep >= (
                            config.get("smac_repetitions", 0)
                        )
                        fast_skip = tier == "fast" and key not in FAST_METHODS
                        if key in skip or (key == "smac" and smac_skip) or fast_skip:
                            continue
                        for setting in settings:
                            only = FAST_METHODS.get(key)
                            if tier == "fast" and only is not None and setting not in only:
                                continue
                            oracle = Oracle(candidates, seed)
                            start = time.perf_counter()
                            with warnings.catch_warnings():
                                warnings.simplefilter("ignore")  # Optuna's experimental notes
                                pick = METHODS[key].run(oracle, setting)
                            # Bookkeeping: the method's wall time less the oracle's.
                            seconds = time.perf_counter() - start - oracle.seconds
                            regret = (truth[pick] - best) / (median - best)
                            rows.append(
                                {
                                    "models": n_models,
                                    "family": family,
                                    "rho": rho,
                                    "seed": seed,
                                    "tier": tier,
                                    "method": METHODS[key].label,
                                    "setting": METHODS[key].describe(setting),
                                    "pick": pick,
                                    "best": bool(truth[pick] == best),
                                    "within_1pct": bool(truth[pick] <= 1.01 * best),
                                    "regret": float(min(regret, 1.0)),
                                    "diverging_pick": bool(np.isinf(truth[pick])),
                                    "trainings": oracle.trainings,
                                    "fraction": oracle.trainings
                                    / (n_models * EXHAUSTIVE_INSTANCES),
                                    "seconds": seconds,
                                }
                            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# The report.


def summary(runs: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """The metrics of each (method, setting), averaged over candidate sets."""
    keys = ["method", "setting", *by]
    table = runs.groupby(keys, sort=False).agg(
        runs=("best", "size"),
        used=("fraction", "mean"),
        p_best=("best", "mean"),
        p_within_1pct=("within_1pct", "mean"),
        regret=("regret", "mean"),
        ms_per_run=("seconds", "mean"),
    )
    table["ms_per_run"] *= 1000
    return table.reset_index()


def at_budgets(table: pd.DataFrame, budgets: Sequence[float], value: str) -> pd.DataFrame:
    """Per method and budget b: ``value`` of the setting that spends the most within 1.1 b."""
    rows = []
    for method, group in table.groupby("method", sort=False):
        row: dict[str, Any] = {"method": method}
        for budget in budgets:
            fits = group[group["used"] <= 1.1 * budget]
            top = fits.loc[fits["used"].idxmax()] if len(fits) else None
            cell = "-" if top is None else f"{top[value]:.2f} ({top['used']:.1%})"
            row[f"{budget:.0%}"] = cell
        rows.append(row)
    return pd.DataFrame(rows)


def winners(table: pd.DataFrame, budgets: Sequence[float]) -> list[str]:
    """The method with the highest P(best) at each budget, runner-up beside it."""
    lines = []
    for budget in budgets:
        fits = table[table["used"] <= 1.1 * budget]
        best = fits.sort_values("used").groupby("method").tail(1)
        best = best.sort_values("p_best", ascending=False)
        first, second = best.iloc[0], best.iloc[1]
        lines.append(
            f"* {budget:.0%}: **{first['method']}** ({first['setting']}, P(best) "
            f"{first['p_best']:.2f} at {first['used']:.1%}), then {second['method']} "
            f"({second['setting']}, {second['p_best']:.2f} at {second['used']:.1%})"
        )
    return lines


def figure(runs: pd.DataFrame, budgets: Sequence[float], path: Path) -> None:
    """P(best) against the budget used, pooled and per family; P(within 1 %) pooled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("all families", runs, "p_best")]
    panels += [(family, runs[runs["family"] == family], "p_best") for family in FAMILIES]
    panels += [("all families", runs, "p_within_1pct")]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), sharex=True, sharey=True)
    for ax, (title, subset, value) in zip(axes.flat, panels):
        if subset.empty:
            ax.set_visible(False)
            continue
        table = summary(subset)
        for method, group in table.groupby("method", sort=False):
            group = group[group["used"] <= 0.4].sort_values("used")
            style = "-o" if method.startswith("select") else "--."
            ax.plot(100 * group["used"], group[value], style, label=method)
        for budget in budgets:
            ax.axvline(100 * budget, color="grey", lw=0.5, ls=":")
        ax.set_title(f"{'P(best)' if value == 'p_best' else 'P(within 1 %)'}: {title}")
        ax.set_xlabel("trainings used, % of exhaustive (N x 50)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _row(table: pd.DataFrame, method: str, setting: str) -> pd.Series | None:
    match = table[(table["method"] == method) & (table["setting"] == setting)]
    return None if match.empty else match.iloc[0]


def _at_budget(table: pd.DataFrame, method: str, budget: float) -> pd.Series | None:
    """The setting of ``method`` that spends the most within 1.1 x ``budget``."""
    fits = table[(table["method"] == method) & (table["used"] <= 1.1 * budget)]
    return None if fits.empty else fits.loc[fits["used"].idxmax()]


def _wilson(p: float, n: int) -> tuple[float, float]:
    """The 95 % Wilson interval of a proportion ``p`` out of ``n``."""
    z = 1.96
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


def head_to_head(runs: pd.DataFrame, budgets: Sequence[float]) -> pd.DataFrame:
    """select SHA against budget-planned select on every candidate set both ran on (both tiers).

    Per budget: each one's P(best) with its 95 % interval, and on the same sets, how often
    only the planned one found the best and how often only select SHA (the better pairing) did.
    """
    keys = ["models", "family", "rho", "seed"]
    table = summary(runs)
    rows = []
    for budget in budgets:
        proto = _at_budget(table, PLANNED, budget)
        shas = [_at_budget(table, f"select SHA, pairing {p}", budget) for p in ("none", "data")]
        shas = [s for s in shas if s is not None]
        if proto is None or not shas:
            continue
        sha = max(shas, key=lambda s: s["p_best"])
        row: dict[str, Any] = {"budget": f"{budget:.0%}"}
        for name, chosen in (("budget-planned", proto), ("select SHA", sha)):
            lo, hi = _wilson(chosen["p_best"], int(chosen["runs"]))
            row[name] = f"{chosen['p_best']:.2f} [{lo:.2f}, {hi:.2f}] at {chosen['used']:.1%}"
        row["select SHA setting"] = f"{sha['method'].split(', ')[1]}, {sha['setting']}"
        picks = [
            runs[(runs["method"] == c["method"]) & (runs["setting"] == c["setting"])]
            for c in (proto, sha)
        ]
        both = picks[0].merge(picks[1], on=keys, suffixes=("_proto", "_sha"))
        row["sets"] = len(both)
        row["only planned right"] = int((both["best_proto"] & ~both["best_sha"]).sum())
        row["only select right"] = int((~both["best_proto"] & both["best_sha"]).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def smac_text(runs: pd.DataFrame, note: str) -> str:
    """How SMAC3 ran, and every method at about its budget on the same candidate sets."""
    keys = ["models", "family", "rho", "seed"]
    smac = runs[runs["method"] == "SMAC3 intensifier"]
    lines = [
        "`pip install smac` (2.4.1) worked here without swig or a compiler: SMAC3 2.x replaced "
        "pyrfr by scikit-learn's random forest. It runs as the ROAR facade (`RandomFacade`: "
        "its racing `Intensifier`, no surrogate, since the candidates' params carry no "
        "information here) with every candidate in the initial design, ask and tell, instance "
        "k = instance index k (pairing data). SMAC3 stops by itself once no candidate is left "
        "to propose, so its budget is not a knob: it is what it used. " + note
    ]
    if smac.empty:
        return "".join(lines)
    same = runs.merge(smac[keys].drop_duplicates(), on=keys)
    table = summary(same)
    used = table.loc[table["method"] == "SMAC3 intensifier", "used"].max()
    lines.append(
        f"\n\nOn the same {smac[keys].drop_duplicates().shape[0]} candidate sets, each "
        f"method's setting that spends the most within 1.1 x SMAC3's {used:.1%}:\n"
    )
    for method in table["method"].unique():
        row = _at_budget(table, method, used)
        if row is not None:
            lines.append(
                f"\n* {method} ({row['setting']}): P(best) {row['p_best']:.2f}, P(within 1 %) "
                f"{row['p_within_1pct']:.2f} at {row['used']:.1%}, "
                f"{row['ms_per_run']:.0f} ms of bookkeeping per run"
            )
    return "".join(lines)


def probe_table(table: pd.DataFrame, by_family: pd.DataFrame) -> pd.DataFrame:
    """The probe's findings next to this run's numbers for the same settings."""
    sha = "select SHA, pairing none"
    rows = []
    for finding, probe, method, setting in [
        ("SHA from 1 instance, uncapped", "0.72 at 8 %", sha, "min 1, max none"),
        ("SHA from 2 instances, uncapped", "0.80 at 16 %", sha, "min 2, max none"),
        ("SHA capped (probe: capped to hit 12 %)", "0.62 at 12 %", sha, "min 1, max 16"),
        ("SHA at about 5 % (cap)", "0.28 at 5 %", sha, "min 1, max 8"),
        ("SuccessiveHalvingPruner", "0.28 at 12 %", "Optuna SuccessiveHalvingPruner", "max 128"),
        ("HyperbandPruner", "0.28 at 12 %", "Optuna HyperbandPruner", "max 32"),
        ("WilcoxonPruner", "0.39 at 12 %", "Optuna WilcoxonPruner", "p 0.1, max 16"),
        ("uniform", "0.25 at 12 %", "uniform", "6 each"),
        ("SMAC3", "0.56-0.75 at 5 %", "SMAC3 intensifier", "max_config_calls 50"),
        ("async path", "needs 45 % to match SHA", "async RobustPruner", "min 4, max 128"),
    ]:
        row = _row(table, method, setting)
        here = "not run" if row is None else f"{row.p_best:.2f} at {row.used:.1%}"
        rows.append({"finding": finding, "probe": probe, "setting here": setting, "here": here})
    trap = by_family[(by_family["family"] == "trap") & (by_family["setting"] == "min 1, max none")]
    values = dict(zip(trap["method"], trap["p_best"]))
    if sha in values and "select SHA, pairing data" in values:
        here = f"{values['select SHA, pairing data']:.2f} vs {values[sha]:.2f}"
        rows.append(
            {
                "finding": "trap: pairing data vs none (SHA uncapped)",
                "probe": "0.72 vs 0.90",
                "setting here": "min 1, max none",
                "here": here,
            }
        )
    return pd.DataFrame(rows)


def optimize_agreement(runs: pd.DataFrame) -> str:
    """How often budget-planned ``study.optimize`` made select's pick with select's trainings."""
    keys = ["models", "family", "rho", "seed", "setting"]
    columns = [*keys, "pick", "trainings", "seconds"]
    both = runs.loc[runs["method"] == PLANNED_OPTIMIZE, columns].merge(
        runs.loc[runs["method"] == PLANNED, columns], on=keys, suffixes=("", "_select")
    )
    if both.empty:
        return "It did not run in this configuration."
    same_pick = int((both["pick"] == both["pick_select"]).sum())
    same_cost = int((both["trainings"] == both["trainings_select"]).sum())
    ms = 1000 * both[["seconds", "seconds_select"]].median()
    return (
        f"On the {len(both)} (candidate set, budget) pairs both ran, it made select's pick "
        f"{same_pick} times and trained as many instances {same_cost} times; its bookkeeping "
        f"was {ms['seconds']:.0f} ms per selection (median), against select's "
        f"{ms['seconds_select']:.0f} ms: one trial per model and round, each a pass through "
        "Optuna's trial machinery."
    )


def proposal_text(runs: pd.DataFrame, every: pd.DataFrame, budgets: Sequence[float]) -> str:
    """The method's rule, and how it did against SHA and the best peer.

    Against select SHA: on every set both ran on (both tiers). Against each other method: on
    the sets its chosen setting ran on (both tiers; SMAC3 ran on fewer), the planned one
    measured on the same sets.
    """
    keys = ["models", "family", "rho", "seed"]
    proto_name = PLANNED
    versus_sha = head_to_head(every, budgets).set_index("budget")
    rows, beats = [], []
    for budget in budgets:
        label = f"{budget:.0%}"
        best: tuple[float, str, float] = (-1.0, "-", math.nan)
        for method in every["method"].unique():
            if method.startswith("select") or method == PLANNED_OPTIMIZE:  # not a peer
                continue
            peer = _at_budget(summary(every[every["method"] == method]), method, budget)
            if peer is None:
                continue
            # The planned method on exactly the sets the peer's setting ran on (both tiers).
            ran = (every["method"] == method) & (every["setting"] == peer["setting"])
            sets = every.loc[ran, keys].drop_duplicates()
            proto = _at_budget(summary(every.merge(sets, on=keys)), proto_name, budget)
            if proto is not None and peer["p_best"] > best[0]:
                best = (peer["p_best"], f"{method} ({peer['setting']})", proto["p_best"])
        if label not in versus_sha.index:
            continue
        sha = float(versus_sha.loc[label, "select SHA"].split()[0])
        proto_all = float(versus_sha.loc[label, "budget-planned"].split()[0])
        rows.append(
            {
                "budget": label,
                "budget-planned": versus_sha.loc[label, "budget-planned"],
                "select SHA": versus_sha.loc[label, "select SHA"],
                "best other method (same sets)": best[1],
                "its P(best)": f"{best[0]:.2f}",
                "budget-planned on its sets": f"{best[2]:.2f}",
            }
        )
        beats.append(proto_all >= sha and best[2] >= best[0])
    verdict = (
        "On point estimates budget-planned select is at least as accurate as select SHA and "
        "the best other method at every budget in this run (mind the intervals)."
        if beats and all(beats)
        else "Budget-planned select is **not** at least as accurate as both at every budget in "
        "this run: at "
        + ", ".join(r["budget"] for r, ok in zip(rows, beats) if not ok)
        + " it loses on point estimates (mind the intervals)."
    )
    planned = summary(runs[runs["method"] == PLANNED])
    planned = planned[["method", "setting", "runs", "used", "p_best", "ms_per_run"]]
    from studies._common import markdown

    return f"""**Rule** (`RobustPruner(max_trainings=B)` in `optuna_robust/_pruner.py`, run by
`select`). With N candidates and eta = 2, the halving runs R = ceil(log2 N) rounds. Round r
(survivors S_r, trainings so far T) gives every survivor a_r = floor((B - T) / ((R - r) x S_r))
new instances (at least `min_instances` in round 0), then keeps the best floor(S_r / 2) by the
statistic over all their instances (here pairing data: every survivor has the same instance
indices, so the comparison is on common data samples). After R rounds one model is left. Every
round thus spends an equal share of what is left (Karnin, Koren and Somekh 2013, sequential
halving), the budget is used up to rounding, and with B = N (1 + (R - 1) / 2) the schedule is
the paper's SHA from one instance. It differs from `RobustPruner(max_instances=...)` where it
matters: a cap stops halving with many models left and few instances each; the plan keeps
halving to one model and fits the *counts* to B. `select` plans each round from the models
actually left, so failed or gated models leave their share to the others.

**Measured** (P(best); each method's setting that spends the most within 1.1 x the budget;
against select SHA on every set both ran on, with 95 % intervals; against the other methods on
the sets each ran on):

{markdown(pd.DataFrame(rows))}

{verdict}

Every budget (pooled over the sets every method ran on; `used` is the share of N x 50 really
trained, `ms_per_run` the bookkeeping of one whole selection: its wall time less the time spent
drawing the synthetic losses):

{markdown(planned)}

By construction the plan *is* select's schedule at select's natural budgets (N (1 + (R - 1)
/ 2) trainings: 8 % of exhaustive at N = 128, 10 % at N = 512; twice that from two
instances), so there it can only tie; it gains where `min_instances` and `max_instances`
cannot land on the budget (below 8 %, and between the natural points).

**In `study.optimize`** (method "{PLANNED_OPTIMIZE}"): the same plan, each round as
continuation trials that the `RobustSampler` hands out once the round before has ended (see
`optuna_robust/_planned.py`). {optimize_agreement(runs)}

An earlier attempt (commit f61dd97, same cpu config) ran the plan's rungs in `study.optimize`
with ASHA promotion and a promotion quota per rung, so that no trial waited. It picked the true
best in 5-8 % of the 40 sets at every budget: the first trials, always the best so far, took
the quotas of the deep rungs, and the later, better models found them full. Taking each
round's decision once the whole round has ended is what makes the two paths agree.

**Tried and dropped** (a scratch harness on 200-240 candidate sets at N = 128, not committed):
eliminating, on top of halving, the models that a paired z-test on the common instances
calls significantly worse than the leader (racing on common random numbers) lowered P(best)
on trap and diverging (the leader is often a lucky erratic or not-yet-diverged model) and left
budget unspent; putting half the budget into round 0 lowered it at 8 and 12 %; racing each
candidate against an incumbent (SMAC3's rule, without SMAC3's bookkeeping) was below the plan
at equal budget; ranking by mean + std / sqrt(n) (a pessimistic index, possible today as a
callable `statistic`) helped the trap family and hurt easy, a trade-off rather than a win."""


def run(config: dict[str, Any], out: Path) -> str:
    runs = benchmark(config)
    runs.to_csv(out / "runs.csv", index=False, float_format="%.6g")
    return report(config, runs, out)


def report(config: dict[str, Any], runs: pd.DataFrame, out: Path) -> str:
    """The report body and its figure, from the runs table alone."""
    from studies._common import markdown

    budgets = config["budgets"]
    every = runs
    runs = every[every["tier"] == "all"]  # the candidate sets on which every method ran
    figure(runs, budgets, out / "p_best.png")
    table = summary(runs)
    pooled = at_budgets(table, budgets, "p_best")
    sections = []
    for family in config["families"]:
        family_table = summary(runs[runs["family"] == family])
        sections.append(f"### {family}\n\n{markdown(at_budgets(family_table, budgets, 'p_best'))}")
    by_models = []
    for n_models in config["models"]:
        models_table = summary(runs[runs["models"] == n_models])
        models_pooled = markdown(at_budgets(models_table, budgets, "p_best"))
        by_models.append(f"### N = {n_models}\n\n{models_pooled}")
    sha = summary(runs[runs["method"].str.startswith("select")], by=["family", "rho"])
    sha = sha[sha["setting"].isin(["min 1, max none", "min 2, max none"])]
    pairing = sha.pivot_table(
        index=["setting", "family", "rho"], columns="method", values="p_best"
    ).reset_index()
    smac = runs[runs["method"] == "SMAC3 intensifier"]
    smac_note = (
        f"SMAC3 ran on N in {config.get('smac_models')}, {config.get('smac_repetitions')} "
        "candidate set(s) per family and rho (its bookkeeping is slow, see ms per run)."
        if len(smac)
        else "SMAC3 did not run (not installed: `pip install -e '.[bench]'`, or not configured)."
    )
    seed = config["seed"]
    fast = ", ".join(
        METHODS[key].label
        + ("" if only is None else f" ({', '.join(METHODS[key].describe(x) for x in only)})")
        for key, only in FAST_METHODS.items()
    )
    tiers = "; ".join(
        f"N = {n}: seeds {seed}-{seed + a - 1} for every method"
        + (f", {seed + a}-{seed + a + f - 1} also for {fast}" if f else "")
        for n, a, f in zip(config["models"], config["repetitions"], config["fast_repetitions"])
    )
    smac_section = smac_text(runs, smac_note)
    probe = probe_table(table, summary(runs, by=["family"]))
    proposal = proposal_text(runs, every, budgets)
    return f"""
{config["scale"]} scale. Candidate sets: families {", ".join(config["families"])}; data-effect
correlation rho in {config["rhos"]}; N in {config["models"]}. Candidate sets per (N, family,
rho): {tiers}. The tables below use the sets every method ran on, except the head-to-head
section. No calorimeter data: the losses are synthetic, whatever the header says.
Every number below comes from `runs.csv` (one row per candidate set x method x setting, with
its `seed`: the candidate set is `candidate_set(family, N, rho, seed)` and every instance seed
is `make_instances({{"model": m}}, k, seed=seed, pairing=...)`, the seeds `select` uses).
{smac_note}

## What is measured

* **Truth.** Instance loss = level + scale x (sqrt(rho) x data(data_seed) + sqrt(1 - rho) x
  init(init_seed)); init is a standardised lognormal of shape `skew` (mean 0, variance 1), and a
  training diverges (loss inf) with probability `fail`. The robustness statistic is the mean, so
  the true robustness of a model is exactly its `level`, or inf when `fail` > 0. The true best is
  unique (level 1.0; no other model below 1.005 that cannot diverge).
* **P(best)**: the share of candidate sets where the method's pick is the true best.
  **P(within 1 %)**: its true mean is at most 1.01 x the best's.
  **Regret**: (true(pick) - true(best)) / (true(median model) - true(best)), capped at 1 (no
  better than a typical candidate); a pick that can diverge has an infinite true mean and
  counts 1.
* **Budget used**: trainings the method actually ran / (N x 50), counted by the train function
  itself. `select` runs with `final_instances=0`, so its count is the halving only.
* **Bookkeeping** (ms per run): a method's wall time for one candidate set less the time
  spent inside the train function drawing the synthetic losses, which every method pays alike.
* **At a budget b**: each method's setting that spent the most while staying within 1.1 x b
  (pooled mean); "-" when none fits. The share it really used is in brackets.
* **Pick**: SHA/select: the winner; asynchronous and Optuna pruners: the best COMPLETE trial
  (value: the mean over its instances); SMAC3: its incumbent; uniform: the best mean.

## P(best) at each budget, pooled (in brackets: the budget really used)

{markdown(pooled)}

Best at each budget (P(best); the 95 % margin of a pooled P near 0.7 is about
+-{1.96 * math.sqrt(0.21 / max(1, len(runs) / max(1, len(table)))):.2f}):

{chr(10).join(winners(table, budgets))}

![P(best) against budget](p_best.png)

## select SHA against budget-planned select, on more candidate sets

Both tiers: {every.groupby(["models", "family", "rho", "seed"]).ngroups} candidate sets. In
brackets the 95 % (Wilson) interval; the last two columns count, on the same sets, where only
one of the two picked the true best.

{markdown(head_to_head(every, budgets))}

## P(within 1 %) and regret at each budget, pooled

{markdown(at_budgets(table, budgets, "p_within_1pct"))}

{markdown(at_budgets(table, budgets, "regret"))}

## P(best) per family
{chr(10).join(sections)}

## P(best) per N
{chr(10).join(by_models)}

## Pairing: select SHA with pairing none vs data (P(best) per family and rho)

{markdown(pairing)}

## SMAC3

{smac_section}

## Compared with the previous probe

The probe's numbers come from the issue (a different generator); here, the same settings:

{markdown(probe)}

## The new method: budget-planned halving, `RobustPruner(max_trainings=...)`

{proposal}

## Every setting, pooled

{markdown(table)}
"""
