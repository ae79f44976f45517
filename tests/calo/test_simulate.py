"""The fast simulation: its file format and reproducibility, and physics a wrong model would fail.

The reference values are those of the LHCb ECAL (docs/simulation.md): sigma/E = a/sqrt(E) (+) b
with a = 9-10 %, b ~ 1 %; E(3x3)/E ~ 0.96; a 14-15 GeV hottest cell at 100 GeV; an S-shaped
barycentre bias of about +-8 mm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
import pytest
import torch
import uproot

from optuna_robust.calo._sample import Sample
from optuna_robust.calo.baselines import baseline_loss
from optuna_robust.calo.simulate import simulate
from tests.calo.conftest import N_EVENTS_A
from tests.calo.conftest import Events
from tests.calo.conftest import read_events

CELL = 40.4
SAMPLING_FRACTION = 1 / 6


def _cluster_sum(events: Events) -> NDArray[np.float64]:
    return events["deposits"].sum(axis=(1, 2))


def _window_sum(events: Events, half: int) -> NDArray[np.float64]:
    """Sum of the (2 half + 1)^2 cells around each event's hottest cell."""
    deposits = events["deposits"]
    n = len(deposits)
    hottest = deposits.reshape(n, -1).argmax(axis=1)
    rows, cols = hottest // 15, hottest % 15
    offsets = np.arange(-half, half + 1)
    window = deposits[
        np.arange(n)[:, None, None],
        np.clip(rows[:, None] + offsets, 0, 14)[:, :, None],
        np.clip(cols[:, None] + offsets, 0, 14)[:, None, :],
    ]
    return window.sum(axis=(1, 2))


def _barycentre_x(events: Events) -> NDArray[np.float64]:
    """x of the 3x3 barycentre around the hottest cell, in mm."""
    deposits = events["deposits"]
    n = len(deposits)
    hottest = deposits.reshape(n, -1).argmax(axis=1)
    rows, cols = hottest // 15, hottest % 15
    offsets = np.arange(-1, 2)
    window = deposits[
        np.arange(n)[:, None, None],
        (rows[:, None] + offsets)[:, :, None],
        (cols[:, None] + offsets)[:, None, :],
    ]
    columns = window.sum(axis=1)
    return (cols - 7) * CELL + columns @ (offsets * CELL) / columns.sum(axis=1)


def _scaled_sum(events: Events) -> NDArray[np.float64]:
    """Energy from the cluster sum, scaled by least squares in the normalised metric."""
    cluster_sum, energy = _cluster_sum(events), events["energy"]
    return cluster_sum * cluster_sum.sum() / (cluster_sum**2 / energy).sum()


def test_simulate_writes_one_labelled_tree_of_fixed_size_branches(dataset_b_path: Path) -> None:
    with uproot.open(dataset_b_path) as root_file:
        assert root_file.keys(cycle=False) == ["events"]
        tree = root_file["events"]
        assert "NOT GEANT4" in tree.title
        assert "fast simulation" in tree.title
        arrays = tree.arrays(library="np")
    assert set(arrays) == {"deposits", "energy", "x", "y", "theta", "phi", "e_t"}
    assert arrays["deposits"].shape == (len(arrays["energy"]), 15, 15)
    assert all(values.dtype == np.float32 for values in arrays.values())


def test_simulate_dataset_a_has_no_transverse_energy_branch(events_a: Events) -> None:
    assert set(events_a) == {"deposits", "energy", "x", "y", "theta", "phi"}


def test_simulate_is_reproducible_for_a_seed_whatever_the_block_size(tmp_path: Path) -> None:
    files = [
        simulate(dataset="B", n_events=700, seed=3, out=tmp_path / f"{name}.root", **options)
        for name, options in [
            ("first", {"block_size": 256}),
            ("again", {"block_size": 256}),
            ("odd_blocks", {"block_size": 77}),
            ("one_block", {"block_size": 700}),
        ]
    ]
    reference = read_events(files[0])
    for path in files[1:]:
        events = read_events(path)
        for name, values in reference.items():
            np.testing.assert_array_equal(events[name], values, err_msg=f"{path.name}: {name}")


def test_simulate_differs_between_seeds(tmp_path: Path) -> None:
    first = read_events(simulate(dataset="A", n_events=50, seed=1, out=tmp_path / "1.root"))
    second = read_events(simulate(dataset="A", n_events=50, seed=2, out=tmp_path / "2.root"))
    assert not np.array_equal(first["energy"], second["energy"])
    assert not np.array_equal(first["deposits"], second["deposits"])


def test_simulate_writes_configured_branch_names(tmp_path: Path) -> None:
    branches = {"deposits": "cells", "energy": "E", "x": "x0"}
    path = simulate(dataset="A", n_events=10, seed=0, out=tmp_path / "a.root", branches=branches)
    assert set(read_events(path)) == {"cells", "E", "x0", "y", "theta", "phi"}


def test_simulate_total_energy_is_visible_energy_over_sampling_fraction(tmp_path: Path) -> None:
    # Same seed: same showers and the same Gamma draws, only the unit of the deposits differs.
    options = {"dataset": "A", "n_events": 200, "seed": 4, "progress_bar": False}
    visible = read_events(simulate(out=tmp_path / "v.root", **options))  # type: ignore[arg-type]
    total = read_events(simulate(out=tmp_path / "t.root", visible=False, **options))  # type: ignore[arg-type]
    expected = visible["deposits"] / SAMPLING_FRACTION
    # Up to float32 rounding, which Gamma draws with tiny shapes amplify: hence an absolute
    # tolerance of 1e-12 GeV, far below anything a detector could see.
    np.testing.assert_allclose(total["deposits"], expected, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dataset": "C"}, "dataset must be 'A' or 'B' but got 'C'"),
        ({"n_events": 0}, "n_events must be an integer >= 1 but got 0"),
        ({"n_events": 2.5}, "n_events must be an integer >= 1 but got 2.5"),
        ({"seed": -1}, "seed must be an integer >= 0 but got -1"),
        ({"block_size": 0}, "block_size must be an integer between 1 and 10000 but got 0"),
        ({"cell_size": -40.4}, "cell_size must be a positive number of mm but got -40.4"),
        ({"cell_size": float("nan")}, "cell_size must be a positive number of mm but got nan"),
        ({"branches": {"e_t": "ET"}}, "unknown logical column 'e_t'"),
        ({"branches": {"x": "y"}}, "distinct branch names"),
        ({"branches": {"x": ""}}, "non-empty string"),
    ],
)
def test_simulate_rejects_bad_arguments_naming_the_value(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    arguments = {"dataset": "A", "n_events": 10, "seed": 0, "out": tmp_path / "a.root", **options}
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        simulate(**arguments)  # type: ignore[arg-type]
    assert not (tmp_path / "a.root").exists()


def test_simulate_refuses_a_missing_output_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        simulate(dataset="A", n_events=10, seed=0, out=tmp_path / "no" / "a.root")


def test_dataset_a_truth_is_uniform_over_energy_and_the_central_cell(events_a: Events) -> None:
    energy, x, y = events_a["energy"], events_a["x"], events_a["y"]
    assert 1 <= energy.min() and energy.max() <= 100
    assert abs(np.mean(energy) - 50.5) < 1.0  # uniform: mean 50.5 GeV, sd 28.6 / sqrt(n)
    assert np.abs(x).max() <= CELL / 2 and np.abs(y).max() <= CELL / 2
    assert abs(np.std(x) - CELL / np.sqrt(12)) < 0.3
    assert np.all(events_a["theta"] == 0)


def test_dataset_b_spectrum_falls_with_energy_tied_to_the_angle(events_b: Events) -> None:
    energy, theta, e_t = events_b["energy"], events_b["theta"], events_b["e_t"]
    assert 1 <= energy.min() and energy.max() <= 100
    assert 0.026 <= theta.min() and theta.max() <= 0.30
    np.testing.assert_allclose(e_t, energy * np.sin(theta), rtol=1e-5)
    counts, _ = np.histogram(energy, bins=[1, 5, 10, 20, 50, 100])
    assert np.all(np.diff(counts) < 0)  # falling
    assert np.median(energy) < 10
    # No pile-up at the range limits (the spectrum is truncated, not clipped).
    assert np.mean(energy < 1.01) < 0.01 and np.mean(energy > 99) < 0.01


def test_scaled_sum_resolution_has_lhcb_stochastic_and_constant_terms(showers_a: Events) -> None:
    energy = showers_a["energy"]
    relative_error = _scaled_sum(showers_a) / energy - 1
    bins = np.digitize(energy, np.linspace(1, 100, 12)) - 1
    # Var(error/E) in a bin is a^2 <1/E> + b^2 whatever the bin width: fit a^2 and b^2.
    inverse_energy = np.array([np.mean(1 / energy[bins == k]) for k in range(11)])
    variance = np.array([np.var(relative_error[bins == k]) for k in range(11)])
    design = np.stack([inverse_energy, np.ones(11)], axis=1)
    (a_squared, b_squared), *_ = np.linalg.lstsq(design, variance, rcond=None)
    assert 0.09 <= np.sqrt(a_squared) <= 0.10
    assert b_squared <= 0.015**2


def test_scaled_sum_is_linear_within_one_percent_from_2_to_100_gev(showers_a: Events) -> None:
    energy = showers_a["energy"]
    response = _scaled_sum(showers_a) / energy
    edges = np.linspace(2, 100, 8)
    bins = np.digitize(energy, edges) - 1
    means = np.array([np.mean(response[bins == k]) for k in range(len(edges) - 1)])
    assert np.all(np.abs(means - 1) < 0.01), means


def test_cluster_containment_in_3x3_and_5x5_cells(showers_a: Events) -> None:
    cluster_sum = _cluster_sum(showers_a)
    # LHCb: E(3x3)/E ~ 0.96 and E(5x5)/E ~ 0.99; tolerance +-0.01.
    assert abs(np.mean(_window_sum(showers_a, 1) / cluster_sum) - 0.96) <= 0.01
    assert abs(np.mean(_window_sum(showers_a, 2) / cluster_sum) - 0.99) <= 0.01
    # The 15x15 grid holds all but about 1 % of the visible energy.
    containment = cluster_sum / (SAMPLING_FRACTION * showers_a["energy"])
    assert 0.98 <= np.mean(containment) <= 1.0


def test_hottest_cell_holds_about_14_gev_of_a_100_gev_photon(showers_a: Events) -> None:
    energy, x, y = showers_a["energy"], showers_a["x"], showers_a["y"]
    hottest = showers_a["deposits"].reshape(len(energy), -1).max(axis=1)
    central = (energy > 80) & (np.abs(x) < 4) & (np.abs(y) < 4)
    assert central.sum() >= 20
    at_100_gev = np.median(hottest[central] * 100 / energy[central])
    # The reference says 14-15 GeV; this parametrisation gives 14.0 at the exact centre, and
    # hits up to 4 mm off centre lose a little: the bound is widened to 13.5-15 GeV.
    assert 13.5 <= at_100_gev <= 15.0
    assert hottest.max() <= 15.0  # the paper's dataset A spans 0-14 GeV


def test_raw_barycentre_bias_is_an_odd_s_shape_of_about_8_mm(showers_a: Events) -> None:
    x = showers_a["x"]
    bias = _barycentre_x(showers_a) - x
    edges = np.linspace(-CELL / 2, CELL / 2, 11)
    bins = np.digitize(x, edges) - 1
    profile = np.array([np.mean(bias[bins == k]) for k in range(10)])
    # Pulled towards the cell centre: positive bias left of it, negative right of it.
    assert np.all(profile[:5] > 0) and np.all(profile[5:] < 0)
    np.testing.assert_allclose(profile, -profile[::-1], atol=0.5)  # odd in x
    assert 6.5 <= np.abs(profile).max() <= 9.5


def test_s_shape_correction_cuts_the_rms_position_error_fivefold(showers_a: Events) -> None:
    x, barycentre = showers_a["x"], _barycentre_x(showers_a)
    seed = np.round(barycentre / CELL) * CELL  # centre of the hottest cell (A: always 0)
    half = CELL / 2

    def corrected(b: float) -> NDArray[np.float64]:
        return seed + b * np.arcsinh((barycentre - seed) / half * np.sinh(half / b))

    fit, check = slice(0, N_EVENTS_A // 2), slice(N_EVENTS_A // 2, None)
    shapes = np.geomspace(0.05, 0.5, 91) * CELL
    b = shapes[np.argmin([np.mean((corrected(b)[fit] - x[fit]) ** 2) for b in shapes])]
    raw_rms = np.sqrt(np.mean((barycentre[check] - x[check]) ** 2))
    corrected_rms = np.sqrt(np.mean((corrected(b)[check] - x[check]) ** 2))
    assert 0.10 <= b / CELL <= 0.15  # LHCb's range
    assert raw_rms >= 5 * corrected_rms


def test_position_error_falls_with_energy(showers_a: Events) -> None:
    energy, x, barycentre = showers_a["energy"], showers_a["x"], _barycentre_x(showers_a)
    # Noise on the barycentre: the spread of its residual at fixed x shrinks like 1/sqrt(E).
    residual = barycentre - x - np.polyval(np.polyfit(x, barycentre - x, 9), x)
    low, high = (energy < 10), (energy > 50)
    ratio = np.std(residual[low]) / np.std(residual[high])
    expected = np.sqrt(np.mean(1 / energy[low]) / np.mean(1 / energy[high]))
    assert 0.6 * expected <= ratio <= 1.2 * expected


def _along_phi(events: Events) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each cell's distance from the stored (x, y) along and across phi, in mm."""
    centres = (np.arange(15) - 7) * CELL
    grid_x, grid_y = np.meshgrid(centres, centres)  # [row = y, column = x]
    dx = grid_x - events["x"][:, None, None]
    dy = grid_y - events["y"][:, None, None]
    cos, sin = np.cos(events["phi"])[:, None, None], np.sin(events["phi"])[:, None, None]
    return dx * cos + dy * sin, dy * cos - dx * sin


def test_dataset_b_truth_is_the_image_of_the_energy_barycentre(showers_b: Events) -> None:
    # B's (x, y) is where the shower axis crosses the depth of the shower's centre of gravity,
    # so the 15x15 barycentre sits on it at every angle (up to the cells' S-shape, which
    # averages out over the central cell); the photon entered (1 + t_cog) X0 sin(theta)
    # upstream along phi.
    deposits, theta = showers_b["deposits"], showers_b["theta"]
    along, across = _along_phi(showers_b)
    total = deposits.sum(axis=(1, 2))
    shift = (deposits * along).sum(axis=(1, 2)) / total
    sideways = (deposits * across).sum(axis=(1, 2)) / total
    bins = np.digitize(theta, np.linspace(0.026, 0.30, 6)) - 1
    assert all(abs(np.mean(shift[bins == k])) < 1.0 for k in range(5))  # mm, of 40.4
    assert abs(np.mean(sideways)) < 0.5


def test_dataset_b_showers_trail_downstream_more_at_larger_theta(showers_b: Events) -> None:
    # The longitudinal profile (a Gamma, skewed to depth) projected along phi: the cluster's
    # third moment along phi is positive and grows with theta.
    deposits, theta = showers_b["deposits"], showers_b["theta"]
    along, _ = _along_phi(showers_b)
    total = deposits.sum(axis=(1, 2))
    mean = (deposits * along).sum(axis=(1, 2)) / total
    third = (deposits * (along - mean[:, None, None]) ** 3).sum(axis=(1, 2)) / total
    bins = np.digitize(theta, np.linspace(0.026, 0.30, 6)) - 1
    skew = np.array([np.median(third[bins == k]) for k in range(5)])
    assert np.all(np.diff(skew) > 0) and skew[-1] > 0


def test_dataset_b_clusters_are_elongated_along_phi(showers_b: Events) -> None:
    deposits = showers_b["deposits"]
    along, across = _along_phi(showers_b)
    total = deposits.sum(axis=(1, 2))
    along_mean = (deposits * along).sum(axis=(1, 2)) / total
    across_mean = (deposits * across).sum(axis=(1, 2)) / total
    spread_along = (deposits * (along - along_mean[:, None, None]) ** 2).sum(axis=(1, 2))
    spread_across = (deposits * (across - across_mean[:, None, None]) ** 2).sum(axis=(1, 2))
    large_angle = showers_b["theta"] > 0.2
    assert np.median(spread_along[large_angle] / spread_across[large_angle]) > 1.2


def _gev_per_count(events: Events) -> NDArray[np.float64]:
    """The visible GeV of one ADC count: LHCb sets the gain in E_T at the module's angle."""
    sin = np.sin(np.where(events["theta"] > 0, events["theta"], 0.1))  # A: a module at 0.1 rad
    return SAMPLING_FRACTION * 1e-3 * (2.5 + 1.75 * sin) / sin


@pytest.mark.parametrize("name", ["events_a", "events_b"])
def test_readout_gives_whole_adc_counts_zero_suppressed_around_seeds(
    name: str, request: pytest.FixtureRequest
) -> None:
    events: Events = request.getfixturevalue(name)
    counts = events["deposits"] / _gev_per_count(events)[:, None, None]
    np.testing.assert_allclose(counts, np.rint(counts), atol=1e-3)
    counts = np.rint(counts)
    assert counts.min() == 0 and counts.max() <= 4095
    # Read out: the 3x3 around every cell of >= 20 counts and around the hottest cell.
    seeds = counts >= 20
    n = len(counts)
    seeds.reshape(n, -1)[np.arange(n), counts.reshape(n, -1).argmax(axis=1)] = True
    padded = np.pad(seeds, ((0, 0), (1, 1), (1, 1)))
    near_seed = np.zeros_like(seeds)
    for dy in range(3):
        for dx in range(3):
            near_seed |= padded[:, dy : dy + 15, dx : dx + 15]
    assert not np.any(counts[~near_seed])
    # Noise reaches the read-out cells: some hold a few counts where no shower energy could.
    assert np.mean((counts > 0) & (counts < 3)) > 0.001


def test_readout_resolution_keeps_the_lhcb_terms(events_a: Events) -> None:
    # With noise, gain spread and zero suppression the scaled sum keeps sigma/E near the LHCb
    # ECAL's 9-10 %/sqrt(E) (+) 0.8-1 %, plus a noise term c/E. Measured on these events:
    # a = 10.6 % (the 9.4 % of the sampling, plus the fluctuating losses of cells not read
    # out), b = 0.9 %, c = 0.12 GeV.
    energy = events_a["energy"]
    relative_error = _scaled_sum(events_a) / energy - 1
    bins = np.digitize(energy, np.linspace(1, 100, 12)) - 1
    inverse_energy = np.array([np.mean(1 / energy[bins == k]) for k in range(11)])
    inverse_square = np.array([np.mean(1 / energy[bins == k] ** 2) for k in range(11)])
    variance = np.array([np.var(relative_error[bins == k]) for k in range(11)])
    design = np.stack([inverse_energy, np.ones(11), inverse_square], axis=1)
    (a_squared, b_squared, c_squared), *_ = np.linalg.lstsq(design, variance, rcond=None)
    assert 0.09 <= np.sqrt(a_squared) <= 0.11
    assert 0.006**2 <= b_squared <= 0.015**2  # leakage and the 1 % gain spread
    assert c_squared >= 0  # the noise adds, it does not subtract


def test_readout_noise_in_energy_grows_towards_the_beam(events_b: Events) -> None:
    # A count is (2.5 + 1.75 sin theta) / sin theta MeV: at equal energy, photons at small
    # angles are measured with coarser, noisier counts.
    energy, theta = events_b["energy"], events_b["theta"]
    relative_error = _scaled_sum(events_b) / energy - 1
    band = (energy > 5) & (energy < 20)
    near, far = band & (theta < 0.07), band & (theta > 0.15)
    assert near.sum() > 200 and far.sum() > 200
    assert np.var(relative_error[near]) > 1.2 * np.var(relative_error[far])


def _parametric_losses(events: Events) -> tuple[float, float]:
    """The parametric baselines' (energy, position) losses: fitted on one half, tested on the
    other."""
    sample = Sample(
        *(torch.from_numpy(events[k]).float() for k in ("deposits", "energy", "x", "y"))
    )
    half = len(events["energy"]) // 2
    train = Sample(*(column[:half] for column in sample))
    test = Sample(*(column[half:] for column in sample))
    energy = baseline_loss("parametric", "energy", train, test)
    return energy, baseline_loss("parametric", "position", train, test)


def test_dataset_b_is_as_hard_as_a_for_energy_and_harder_for_position(
    events_a: Events, events_b: Events
) -> None:
    energy_a, position_a = _parametric_losses(events_a)
    energy_b, position_b = _parametric_losses(events_b)
    # Energy, in the normalised loss: B's soft photons pay the noise term (c/E, larger at
    # small angles) about what A's hard ones pay the constant term (b^2 E): 0.92-0.96 measured.
    assert 0.8 <= energy_b / energy_a <= 1.25
    # Position: B's softer spectrum and its skewed inclined showers, which the 3x3 window
    # cuts, make the corrected barycentre about 7.5 times worse (docs/simulation.md splits the
    # factor); with the front-face truth of earlier versions it was 346 times worse (a shift
    # along phi that the angle, unknown to the baseline, sets).
    assert 4 <= position_b / position_a <= 12
