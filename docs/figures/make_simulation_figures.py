"""Draw ``docs/figures/simulation_overview.png``: average clusters, resolution and S-shape.

Run (about a minute)::

    .venv/bin/python docs/figures/make_simulation_figures.py --events 100000 --seed 2024
"""

from __future__ import annotations

import argparse
from pathlib import Path
import tempfile

from matplotlib.colors import LogNorm
import matplotlib.pyplot as plt
import numpy as np

from optuna_robust.calo.baselines import CorrectedBarycentre
from optuna_robust.calo.baselines import fit_baseline
from optuna_robust.calo.data import CaloData
from optuna_robust.calo.simulate import simulate

CELL = 40.4
OUT = Path(__file__).with_name("simulation_overview.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = {
            dataset: CaloData.from_root(
                simulate(
                    dataset=dataset,
                    n_events=args.events,
                    seed=args.seed,
                    out=Path(folder) / f"{dataset}.root",
                )
            )
            for dataset in "AB"
        }
    figure, axes = plt.subplots(2, 2, figsize=(10, 8.4), layout="constrained")
    average_cluster(axes[0, 0], data["A"], "Dataset A, 45-55 GeV, normal incidence")
    average_cluster(axes[0, 1], data["B"], "Dataset B, θ > 0.2 rad, |φ| < 0.3 rad, > 5 GeV")
    resolution(axes[1, 0], data["A"])
    s_shape(axes[1, 1], data["A"])
    figure.suptitle("optuna-robust parametrised fast simulation (GFlash), not GEANT4")
    figure.savefig(OUT, dpi=90)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB)")


def average_cluster(axis: plt.Axes, data: CaloData, title: str) -> None:
    """Mean fraction of the cluster energy per cell, log colour scale."""
    columns = {name: values.numpy() for name, values in data.columns.items()}
    energy, deposits = columns["energy"], columns["deposits"]
    if "e_t" in columns:
        keep = (columns["theta"] > 0.2) & (np.abs(np.angle(np.exp(1j * columns["phi"]))) < 0.3)
        keep &= energy > 5
    else:
        keep = np.abs(energy - 50) < 5
    fractions = deposits[keep] / deposits[keep].sum(axis=(1, 2), keepdims=True)
    mean = fractions.mean(axis=0)
    extent = np.array([-7.5, 7.5, -7.5, 7.5]) * CELL
    image = axis.imshow(mean, origin="lower", extent=extent, norm=LogNorm(1e-6, 1), cmap="viridis")
    for row in range(6, 9):
        for col in range(6, 9):
            x, y = (col - 7) * CELL, (row - 7) * CELL
            colour = "black" if mean[row, col] > 0.1 else "white"
            axis.text(
                x, y, f"{mean[row, col]:.3f}", ha="center", va="center", fontsize=7, color=colour
            )
    axis.set(title=f"{title}\n{keep.sum():,} events", xlabel="x (mm)", ylabel="y (mm)")
    axis.set(xlim=(-4.5 * CELL, 4.5 * CELL), ylim=(-4.5 * CELL, 4.5 * CELL))
    plt.colorbar(image, ax=axis, label="mean fraction of the cluster energy")


def resolution(axis: plt.Axes, data: CaloData) -> None:
    """sigma/E of the scaled sum in energy bins, with the fit a/sqrt(E) (+) b."""
    train, test = data.training_sample(data.n_train, data_seed=0), data.test_sample()
    energy = test.energy.numpy().astype(np.float64)
    relative = fit_baseline("parametric", "energy", train).predict(test) / energy - 1
    n_bins = 16
    bins = np.digitize(energy, np.geomspace(1, 100, n_bins + 1)) - 1
    centre = np.array([np.mean(energy[bins == k]) for k in range(n_bins)])
    inverse = np.array([np.mean(1 / energy[bins == k]) for k in range(n_bins)])
    sigma = np.array([np.std(relative[bins == k]) for k in range(n_bins)])
    counts = np.bincount(bins, minlength=n_bins)[:n_bins]
    # Var(error/E) = a^2 <1/E> + b^2 in each bin; a variance estimate has sd sigma^2 sqrt(2/n).
    weight = np.sqrt(counts / 2) / sigma**2
    design = np.stack([inverse, np.ones(n_bins)], 1) * weight[:, None]
    (a2, b2), *_ = np.linalg.lstsq(design, sigma**2 * weight, rcond=None)
    grid = np.linspace(1, 100, 200)
    axis.errorbar(
        centre,
        100 * sigma,
        yerr=100 * sigma / np.sqrt(2 * counts),
        fmt="o",
        ms=3,
        label="scaled sum, test half",
    )
    axis.plot(
        grid,
        100 * np.sqrt(a2 / grid + b2),
        label=(f"fit: {100 * np.sqrt(a2):.1f} %/√E ⊕ {100 * np.sqrt(max(b2, 0)):.1f} %"),
    )
    axis.fill_between(
        grid,
        100 * np.sqrt(0.09**2 / grid + 0.01**2),
        100 * np.sqrt(0.10**2 / grid + 0.01**2),
        color="grey",
        alpha=0.3,
        label="LHCb ECAL: 9-10 %/√E ⊕ 1 %",
    )
    axis.set(
        xscale="log",
        xlabel="photon energy E (GeV)",
        ylabel="σ(E)/E (%)",
        title="Energy resolution, dataset A",
    )
    axis.legend(fontsize=8)


def s_shape(axis: plt.Axes, data: CaloData) -> None:
    """Barycentre bias against the true x, before and after the S-shape correction."""
    train, test = data.training_sample(data.n_train, data_seed=0), data.test_sample()
    x = test.x.numpy().astype(np.float64)
    corrected = CorrectedBarycentre.fit(train, CELL)
    raw = CorrectedBarycentre(shape_mm=1e6, cell_size=CELL)  # b -> infinity: no correction
    edges = np.linspace(-CELL / 2, CELL / 2, 21)
    bins = np.digitize(x, edges) - 1
    centre = (edges[1:] + edges[:-1]) / 2
    for baseline, label in [(raw, "3x3 barycentre"), (corrected, "with S-shape correction")]:
        error = baseline.predict(test) - x
        mean = np.array([np.mean(error[bins == k]) for k in range(20)])
        spread = np.array([np.std(error[bins == k]) for k in range(20)])
        rms = np.sqrt(np.mean(error**2))
        axis.plot(centre, mean, "o-", ms=3, label=f"{label}: RMS {rms:.2f} mm")
        axis.fill_between(centre, mean - spread, mean + spread, alpha=0.25)
    axis.axhline(0, color="black", lw=0.5)
    axis.set(
        xlabel="true x within the central cell (mm)",
        ylabel="x_reco - x_true (mm)",
        title=f"Position, dataset A (fitted b = {corrected.shape_mm:.1f} mm)",
    )
    axis.legend(fontsize=8)


if __name__ == "__main__":
    main()
