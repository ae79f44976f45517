"""The demo behind ``make demo``: a robust selection against a TPE NAS, end to end on a CPU.

1. simulate a small dataset A; 2. robust selection over a small space, gated by the
parametric baseline; 3. a TPE study in the same storage with the same number of trainings;
4. fresh instances of both winners; 5. the side-by-side table and what it shows, computed
from its numbers; 6. how to open the dashboard.
"""

from __future__ import annotations

from pathlib import Path
import time

import numpy as np
import optuna
import pandas as pd

from optuna_robust import instance_losses
from optuna_robust import robustness_report
from optuna_robust.calo.comparison import LEVEL
from optuna_robust.calo.comparison import compare
from optuna_robust.calo.data import CaloData
from optuna_robust.calo.experiments import NoWinner
from optuna_robust.calo.experiments import instance_records
from optuna_robust.calo.experiments import nas
from optuna_robust.calo.experiments import no_winner_reason
from optuna_robust.calo.experiments import open_storage
from optuna_robust.calo.experiments import parametric_baseline
from optuna_robust.calo.experiments import robust_selection
from optuna_robust.calo.experiments import robustness
from optuna_robust.calo.simulate import simulate
from optuna_robust.calo.spaces import small_space
from optuna_robust.calo.train import TrainSettings
from optuna_robust.visualization import attach_comparison

EVENTS = 20_000
FINAL_INSTANCES = 8
# Demo-scale training (1,000 examples, at most 20 epochs) leaves every network a few times
# worse than the parametric baseline, so the paper's 20 % gate would drop them all: the demo
# gates at 3x the baseline instead, and says so.
GATE_TOLERANCE = 2.0
SETTINGS = TrainSettings(
    min_epochs=6, window=3, tolerance=0.1, max_epochs=20, n_train=1_000, n_test=4_000
)


def run_demo(*, storage: str, study_prefix: str, seed: int, workdir: str | Path) -> pd.DataFrame:
    """Run the whole demo and print its table; return the table.

    Raises:
        NoWinner: The robust selection ended without a winner; the message says why.
    """
    start = time.perf_counter()
    open_storage(storage)
    data_path = Path(workdir) / f"demo_A_{EVENTS}_seed{seed}.root"
    if not data_path.exists():
        print(f"1. Simulating {EVENTS} photons of dataset A -> {data_path}")
        simulate(dataset="A", n_events=EVENTS, seed=seed, out=data_path)
    data = CaloData.from_root(data_path)
    baseline = parametric_baseline(
        data, task="energy", n_train=SETTINGS.n_train, n_test=SETTINGS.n_test, seed=seed
    )
    artifacts = Path(workdir) / "artifacts"
    candidates = small_space()
    print(
        f"2. Robust selection over {len(candidates)} candidates; baseline loss {baseline:.4g}, "
        f"gate at {1 + GATE_TOLERANCE:.0f}x it (short demo training)"
    )
    selection = robust_selection(
        storage=storage,
        study_name=f"{study_prefix}-robust",
        data_path=data_path,
        task="energy",
        candidates=candidates,
        settings=SETTINGS,
        baseline=baseline,
        baseline_tolerance=GATE_TOLERANCE,
        final_instances=FINAL_INSTANCES,
        seed=seed,
        artifact_dir=artifacts,
    )
    print(selection.rounds.to_string(index=False))
    if not selection.winners:
        reason = no_winner_reason(
            storage,
            f"{study_prefix}-robust",
            baseline=baseline,
            baseline_tolerance=GATE_TOLERANCE,
        )
        raise NoWinner(f"{reason}; the demo cannot compare winners")
    budget = selection.budget.selection_instances
    print(f"3. TPE NAS in the same storage with the same {budget} trainings")
    tpe = nas(
        storage=storage,
        study_name=f"{study_prefix}-tpe",
        data_path=data_path,
        task="energy",
        n_trials=budget,
        settings=SETTINGS,
        seed=seed,
    )
    print(
        f"4. {FINAL_INSTANCES} fresh instances of the TPE winner (trial {tpe.best_trial.number})"
    )
    tpe_measured = robustness(
        storage=storage,
        study_name=tpe.study_name,
        trial_number=tpe.best_trial.number,
        data_path=data_path,
        task="energy",
        n_instances=FINAL_INSTANCES,
        settings=SETTINGS,
        seed=seed,
    )
    attach_comparison(
        optuna.load_study(storage=storage, study_name=f"{study_prefix}-robust"),
        tpe,
        optuna.load_study(storage=storage, study_name=f"{tpe.study_name}:robustness"),
        artifact_dir=artifacts,
    )
    rows = [
        _row("robust selection", selection.winners[0], budget + FINAL_INSTANCES),
        _row("TPE NAS", tpe_measured, len(tpe.trials) + FINAL_INSTANCES, tpe.best_trial.number),
    ]
    table = pd.DataFrame(rows)
    print("\n5. Loss of each winner on the same number of fresh instances (lower is better):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"   parametric baseline: {baseline:.4g}")
    measured = {"robust selection": selection.winners[0], "TPE NAS": tpe_measured}
    for line in what_it_shows(measured, baseline, SETTINGS):
        print(f"   {line}")
    print(f"   figures and instance records: {artifacts}/ (attached to the studies and trials;")
    print("   the robust-versus-TPE comparison is on the TPE study's note)")
    shown = without_password(storage)
    print(f"\n6. Open the dashboard:\n   optuna-dashboard {shown} --artifact-dir {artifacts}")
    print(f"\nDone in {time.perf_counter() - start:.0f} s.")
    return table


def without_password(storage: str) -> str:
    """``storage`` with a password in its URL masked, for printing (a terminal log is shared)."""
    import sqlalchemy  # Optuna's RDB storage depends on it

    try:
        return sqlalchemy.engine.make_url(storage).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:  # not a database URL (a journal file, say)
        return storage


def _row(
    name: str, trial: optuna.trial.FrozenTrial, trainings: int, number: int | None = None
) -> dict[str, object]:
    """One line of the table: ``number`` is the trial of the original study, if not ``trial``."""
    report = robustness_report([trial], phase="final").iloc[0]
    stats = {s: float(report[s]) for s in ("mean", "median", "std", "max")}
    trial_number = trial.number if number is None else number
    return {"model": name, "trial": trial_number, **stats, "trainings": trainings}


def what_it_shows(
    trials: dict[str, optuna.trial.FrozenTrial], baseline: float, settings: TrainSettings
) -> list[str]:
    """What the table shows, from its numbers: which model is steadier and by how much,
    whether that is beyond the noise of the instances, and how both compare with the
    parametric baseline, with the reason the trainings give."""
    losses = {name: instance_losses(trial, phase="final") for name, trial in trials.items()}
    (first, a), (second, b) = losses.items()
    n = min(a.size, b.size)
    lines = []
    for statistic in ("std", "max"):
        value = {
            name: float(np.std(x, ddof=1) if statistic == "std" else np.max(x))
            for name, x in losses.items()
        }
        steadier, other = sorted(value, key=lambda name: value[name])
        lines.append(
            f"Steadier by {statistic}: {steadier} ({value[steadier]:.3g} against "
            f"{value[other]:.3g}, {value[other] / value[steadier]:.2f}x)."
        )
    spread = compare(a, b, "std")
    lines.append(
        f"Beyond the noise of {n} instances? "
        + ("Yes" if spread.decided else "No")
        + f": the Brown-Forsythe {LEVEL:.0%} interval for the difference in spread ({first} "
        f"- {second}) is [{spread.low:+.3g}, {spread.high:+.3g}]"
        + ("." if spread.decided else ", which holds zero.")
    )
    worse = {name: float(np.mean(x)) / baseline for name, x in losses.items()}
    if all(ratio > 1 for ratio in worse.values()):
        stops = [r.get("stop_reason") for t in trials.values() for r in instance_records(t)]
        capped = sum(reason == "max_epochs" for reason in stops)
        lines.append(
            "Against the parametric baseline: both nets are worse ("
            + ", ".join(f"{name} {ratio:.2f}x its loss" for name, ratio in worse.items())
            + f"). They trained on {settings.n_train:,} examples for at most "
            f"{settings.max_epochs} epochs (the paper: 32,000 and >= 100), and {capped} of "
            f"{len(stops)} instances were stopped by that cap before their loss flattened; "
            "the scaled sum has one parameter to fit."
        )
    else:
        lines.append(
            "Against the parametric baseline: "
            + ", ".join(f"{name} {ratio:.2f}x its loss" for name, ratio in worse.items())
            + "."
        )
    return lines
