"""Small simulated datasets A and B, written once per test session.

``events_*`` are read out like the LHCb ECAL (the default); ``showers_*`` are the same showers
without the readout, as GEANT4 would give them: the shower model's own checks use those.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
import pytest
import uproot

from optuna_robust.calo.simulate import simulate

Events = dict[str, NDArray[np.float64]]

# Enough events for the physics checks to resolve a percent-level effect, few enough to keep
# the simulation at a few seconds.
N_EVENTS_A = 16_000
N_EVENTS_B = 8_000


def read_events(path: Path) -> Events:
    """Every branch of the file's ``events`` tree, as float64 numpy arrays."""
    with uproot.open(path) as root_file:
        arrays = root_file["events"].arrays(library="np")
    return {name: values.astype(np.float64) for name, values in arrays.items()}


@pytest.fixture(scope="session")
def dataset_a_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("calo") / "dataset_a.root"
    return simulate(dataset="A", n_events=N_EVENTS_A, seed=11, out=out, progress_bar=False)


@pytest.fixture(scope="session")
def dataset_b_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("calo") / "dataset_b.root"
    return simulate(dataset="B", n_events=N_EVENTS_B, seed=12, out=out, progress_bar=False)


@pytest.fixture(scope="session")
def events_a(dataset_a_path: Path) -> Events:
    return read_events(dataset_a_path)


@pytest.fixture(scope="session")
def events_b(dataset_b_path: Path) -> Events:
    return read_events(dataset_b_path)


def _showers(factory: pytest.TempPathFactory, dataset: str, n_events: int, seed: int) -> Events:
    out = factory.mktemp("calo") / f"showers_{dataset}.root"
    path = simulate(
        dataset=dataset,
        n_events=n_events,
        seed=seed,
        out=out,
        progress_bar=False,
        electronics=False,
    )
    return read_events(path)


@pytest.fixture(scope="session")
def showers_a(tmp_path_factory: pytest.TempPathFactory) -> Events:
    return _showers(tmp_path_factory, "A", N_EVENTS_A, 11)


@pytest.fixture(scope="session")
def showers_b(tmp_path_factory: pytest.TempPathFactory) -> Events:
    return _showers(tmp_path_factory, "B", N_EVENTS_B, 12)
