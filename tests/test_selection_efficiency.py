"""The selection-efficiency benchmark: an exact generator, and a smoke run that finds the best."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

import optuna_robust

STUDIES = Path(__file__).resolve().parent.parent / "studies"


def _study() -> ModuleType:
    return importlib.import_module("studies.selection_efficiency.study")


@pytest.mark.parametrize("family", ["easy", "hard", "trap", "diverging"])
def test_true_mean_matches_a_big_monte_carlo_sample(family: str) -> None:
    study = _study()
    candidates = study.candidate_set(family, 64, 0.7, seed=3)
    rng = np.random.default_rng(0)
    n = 40_000
    data = rng.integers(0, 2**63, (64, n), dtype=np.uint64)
    init = rng.integers(0, 2**63, (64, n), dtype=np.uint64)
    losses = candidates.losses(np.arange(64)[:, None], data, init)
    truth = candidates.true_mean()
    steady = candidates.fail == 0
    sample_mean = losses[steady].mean(axis=1)
    tolerance = 5 * candidates.scale[steady] / np.sqrt(n)
    assert np.all(np.abs(sample_mean - truth[steady]) < tolerance)
    assert np.all(np.isinf(truth[~steady]))
    failed = np.isinf(losses[~steady]).mean(axis=1)
    assert np.allclose(failed, candidates.fail[~steady], atol=0.01)
    # Exactly one true best, and the skew puts medians below means (the trap's premise).
    assert np.sum(truth == truth.min()) == 1
    skewed = steady & (candidates.skew > 0.3)
    assert np.all(np.median(losses[skewed], axis=1) < truth[skewed])


@pytest.mark.parametrize("rho", [0.0, 0.7])
def test_data_effect_is_shared_under_pairing_data_with_the_requested_rho(rho: float) -> None:
    study = _study()
    candidates = study.candidate_set("easy", 16, rho, seed=1)
    a, b = np.flatnonzero(candidates.skew < 0.2)[:2]
    oracle = study.Oracle(candidates, seed=5)
    indices = range(3000)
    paired = [oracle.losses(int(m), indices, pairing="data") for m in (a, b)]
    apart = [oracle.losses(int(m), indices, pairing="none") for m in (a, b)]
    instances = [optuna_robust.make_instances({"model": int(m)}, 3, seed=5) for m in (a, b)]
    assert [i.data_seed for i in instances[0]] == [i.data_seed for i in instances[1]]
    assert np.corrcoef(*paired)[0, 1] == pytest.approx(rho, abs=0.06)
    assert np.corrcoef(*apart)[0, 1] == pytest.approx(0.0, abs=0.06)


def test_smoke_benchmark_finds_the_easy_best_and_the_trap_fools_one_instance(
    tmp_path: Path,
) -> None:
    run_study = importlib.import_module("studies.run").run_study
    report = run_study("selection_efficiency", "smoke", out=tmp_path)
    assert report.read_text().startswith("# selection_efficiency:")
    assert (tmp_path / "p_best.png").stat().st_size > 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    p_best = runs.groupby(["family", "method", "setting"])["best"].mean()
    sha = p_best["easy", "select SHA, pairing none", "min 1, max none"]
    single_trap = p_best["trap", "uniform", "1 each"]
    assert sha >= 0.75, f"select found the easy best in only {sha:.0%} of the sets"
    assert single_trap <= 0.25, f"one instance found the trap's best in {single_trap:.0%}"
    assert p_best["trap", "select SHA, pairing none", "min 1, max none"] > single_trap + 0.3
    # The trainings are counted by the train function itself: N (1 + (log2 N - 1) / 2) for
    # uncapped halving from one instance, 64 x 1 for one instance each.
    sha_runs = runs[runs["setting"] == "min 1, max none"]
    assert set(sha_runs["trainings"]) == {64 * (1 + 5 / 2)}
    assert set(runs.loc[runs["setting"] == "1 each", "trainings"]) == {64}
    assert runs["regret"].between(0, 1).all()
    # Budget-planned select never trains more than the budget it was given.
    planned = runs[runs["method"] == "select, budget-planned"]
    share = planned["setting"].str.removeprefix("max_trainings ").str.rstrip("%").astype(float)
    assert len(planned) and (planned["trainings"] <= np.floor(share / 100 * 64 * 50)).all()
    # In study.optimize the plan makes the same picks with the same trainings, set by set.
    keys = ["family", "rho", "seed", "setting"]
    in_optimize = runs[runs["method"] == "study.optimize, budget-planned"]
    both = in_optimize.merge(planned, on=keys, suffixes=("", "_select"))
    assert len(both) == len(planned) == len(in_optimize)
    assert (both["pick"] == both["pick_select"]).all()
    assert (both["trainings"] == both["trainings_select"]).all()
    assert f"made select's pick {len(both)} times" in report.read_text()
