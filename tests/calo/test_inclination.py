"""Dataset A is pinned bit for bit, and what inclination does to dataset B.

Changes to the simulation's treatment of inclined photons (dataset B) must leave dataset A,
at normal incidence, exactly as it was: the first test pins a hash of a small A simulation.

The others pin why B is not harder than A for the parametric energy baseline and why its
position factor is far above the paper's 2.3 (docs/simulation.md, *B against A*): B's
per-event losses are compared with A's at the same energies (A's losses averaged in bins of
energy and weighted with B's events), which takes B's softer spectrum out of the comparison.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
import pytest
import torch

from optuna_robust.calo._sample import Sample
from optuna_robust.calo.baselines import fit_baseline
from optuna_robust.calo.simulate import simulate
from tests.calo.conftest import Events
from tests.calo.conftest import read_events

# sha256 of every branch of a 600-event A file (seed 2024), in name order, as float32 bytes.
# Measured on the code before any inclination-only change (x86-64, numpy 2, torch's SLEEF
# atan); a platform with another libm may differ in the last bit and must re-pin it once.
_A_HASHES = {
    True: "c247fe293419b902df0524255f3fdba66339d7e762dcf19879912159bd4282db",
    False: "d3b685184fa273c9a17d55643d6dd526561aad3d2206b78ad8868df03ab4a3d1",
}


@pytest.mark.parametrize("electronics", [True, False])
def test_dataset_a_is_bit_identical_to_its_pinned_hash(tmp_path: Path, electronics: bool) -> None:
    path = simulate(
        dataset="A",
        n_events=600,
        seed=2024,
        out=tmp_path / "a.root",
        progress_bar=False,
        electronics=electronics,
    )
    events = read_events(path)
    digest = hashlib.sha256()
    for name in sorted(events):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(events[name].astype(np.float32)).tobytes())
    assert digest.hexdigest() == _A_HASHES[electronics]


_EDGES = np.geomspace(1.0, 100.0, 21)  # 20 energy bins of equal width in ln E


def _test_half_losses(events: Events) -> dict[str, NDArray[np.float64]]:
    """Per-event parametric losses on the second half, the baselines fitted on the first."""
    sample = Sample(
        *(torch.from_numpy(events[k]).float() for k in ("deposits", "energy", "x", "y"))
    )
    half = len(events["energy"]) // 2
    train = Sample(*(column[:half] for column in sample))
    test = Sample(*(column[half:] for column in sample))
    energy, x = events["energy"][half:], events["x"][half:]
    predicted_energy = np.asarray(fit_baseline("parametric", "energy", train).predict(test))
    predicted_x = np.asarray(fit_baseline("parametric", "position", train).predict(test))
    return {
        "energy": energy,
        "theta": events["theta"][half:],
        "energy_loss": (predicted_energy - energy) ** 2 / energy,
        "position_loss": (predicted_x - x) ** 2,
    }


@pytest.fixture(scope="module")
def losses(events_a: Events, events_b: Events) -> dict[str, dict[str, NDArray[np.float64]]]:
    return {"A": _test_half_losses(events_a), "B": _test_half_losses(events_b)}


def _a_at_energies_of(
    a: dict[str, NDArray[np.float64]], energy: NDArray[np.float64], key: str
) -> float:
    """A's mean loss ``key`` at the given energies: A's bin means, averaged over them."""
    bins_a = np.clip(np.digitize(a["energy"], _EDGES) - 1, 0, 19)
    counts = np.bincount(bins_a, minlength=20)
    means = np.bincount(bins_a, a[key], 20) / np.maximum(counts, 1)
    assert counts.min() >= 15  # every bin is populated (1-1.26 GeV holds ~21 of 8,000)
    return float(np.mean(means[np.clip(np.digitize(energy, _EDGES) - 1, 0, 19)]))


def test_energy_is_harder_near_the_beam_and_easier_far_from_it_than_a(
    losses: dict[str, dict[str, NDArray[np.float64]]],
) -> None:
    # LHCb sets each cell's gain in E_T: a count is (2.5 + 1.75 sin theta) / sin theta MeV of
    # energy, 44-98 MeV below 0.07 rad and 9-18 MeV above 0.15 rad, against A's 26.7 (a module
    # at 0.1 rad). Noise and zero suppression scale with the count, so at equal energies B is
    # worse than A near the beam (measured 1.35x) and better far from it (0.78x), where more
    # than half of B's photons are; together they leave B below A.
    a, b = losses["A"], losses["B"]
    for low, high, check in ((0.026, 0.07, lambda r: r > 1.15), (0.15, 0.30, lambda r: r < 0.9)):
        band = (b["theta"] >= low) & (b["theta"] < high)
        ratio = b["energy_loss"][band].mean() / _a_at_energies_of(
            a, b["energy"][band], "energy_loss"
        )
        assert check(ratio), f"theta {low}-{high}: B / A at the same energies = {ratio:.3f}"


def test_b_is_easier_than_a_for_energy_with_lhcb_readout_and_this_spectrum(
    losses: dict[str, dict[str, NDArray[np.float64]]],
) -> None:
    # No named inclination effect makes B harder for the scaled sum (docs/simulation.md):
    # at equal gain and energy B's showers, 25/cos(theta) X0 deep, leak less out of the back
    # (-4 %), and its E_T gain is finer where most of its photons are (-4 %). Measured 0.91;
    # should a change make B harder, this test says so and the docs must follow.
    a, b = losses["A"], losses["B"]
    assert 0.8 <= b["energy_loss"].mean() / a["energy_loss"].mean() < 1.0


def test_the_soft_spectrum_sets_most_of_the_position_factor(
    losses: dict[str, dict[str, NDArray[np.float64]]],
) -> None:
    # The barycentre's error grows fast at low energy (noise, coarse counts), and B's photons
    # are soft (<E> ~ 10 GeV against A's 50): A's own errors at B's energies are already 5.9x
    # A's loss, the inclination adds 1.25x on top. So the paper's 2.3 is out of reach of any
    # inclination effect while B's spectrum is E_T ~ Exp(1 GeV); it would take a B that is
    # more precise than A at equal energies.
    a, b = losses["A"], losses["B"]
    a_at_b = _a_at_energies_of(a, b["energy"], "position_loss")
    spectrum = a_at_b / a["position_loss"].mean()
    inclination = b["position_loss"].mean() / a_at_b
    assert spectrum >= 4, f"spectrum factor {spectrum:.2f}"
    assert 1.0 < inclination <= 1.6, f"inclination factor {inclination:.2f}"
