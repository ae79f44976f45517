"""CaloData: loading ROOT files, clear errors for bad ones, the fixed split and the samples."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
from numpy.typing import NDArray
import pytest
import torch
import uproot

from optuna_robust.calo._sample import Sample
from optuna_robust.calo.data import CaloData
from optuna_robust.calo.data import CaloDataError
from optuna_robust.calo.data import expected_events_note


def _columns(n: int, seed: int = 0) -> dict[str, NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    return {
        "deposits": rng.random((n, 15, 15), dtype=np.float32),
        "energy": rng.uniform(1, 100, n).astype(np.float32),
        "x": rng.uniform(-20, 20, n).astype(np.float32),
        "y": rng.uniform(-20, 20, n).astype(np.float32),
    }


def _write(path: Path, columns: dict[str, object], tree: str = "events") -> Path:
    with uproot.recreate(path) as root_file:
        root_file.mktree(tree, columns)  # a TTree (plain assignment would write an RNTuple)
    return path


@pytest.fixture
def small_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "small.root", _columns(40))


def test_calo_data_loads_the_simulated_file_with_its_extra_truth(dataset_b_path: Path) -> None:
    data = CaloData.from_root(dataset_b_path)
    assert set(data.columns) == {"deposits", "energy", "x", "y", "theta", "phi", "e_t"}
    assert data.n_train + data.n_test == data.n_events
    assert data.source == str(dataset_b_path)
    for values in data.columns.values():
        assert values.dtype == torch.float32 and values.is_contiguous()
    rows = data.test_indices(100, seed=1)
    theta = data.columns["theta"][rows]  # the truth of exactly the sampled events
    assert theta.shape == (100,) and bool(((theta > 0.026) & (theta < 0.3)).all())


def test_calo_data_reads_every_event_in_steps(small_file: Path) -> None:
    data = CaloData.from_root(small_file, step_size=7)
    expected = _columns(40)
    for name, values in expected.items():
        np.testing.assert_array_equal(data.columns[name].numpy(), values)


def test_samples_follow_the_sample_contract(small_file: Path) -> None:
    data = CaloData.from_root(small_file)
    sample = data.training_sample(12, data_seed=0)
    assert isinstance(sample, Sample)
    assert sample.deposits.shape == (12, 15, 15)
    assert all(t.dtype == torch.float32 and t.shape[0] == 12 for t in sample)
    rows = data.training_indices(12, data_seed=0)
    torch.testing.assert_close(sample.energy, data.columns["energy"][rows])
    torch.testing.assert_close(sample.deposits, data.columns["deposits"][rows])


def test_split_is_fixed_by_split_seed_and_halves_the_events(small_file: Path) -> None:
    first, again = CaloData.from_root(small_file), CaloData.from_root(small_file)
    other = CaloData.from_root(small_file, split_seed=1)
    test_rows = first.test_indices().tolist()
    assert test_rows == again.test_indices().tolist()
    assert test_rows != other.test_indices().tolist()
    train_rows = set(first.training_indices(first.n_train, data_seed=0).tolist())
    assert (first.n_train, first.n_test) == (20, 20)
    assert not train_rows & set(test_rows)  # a bootstrap never reaches into the test half
    assert sorted(test_rows) == test_rows and len(set(test_rows)) == 20


def test_training_sample_is_a_deterministic_bootstrap(small_file: Path) -> None:
    data = CaloData.from_root(small_file)
    rows = data.training_indices(20, data_seed=5)
    assert rows.tolist() == data.training_indices(20, data_seed=5).tolist()
    assert rows.tolist() != data.training_indices(20, data_seed=6).tolist()
    assert len(set(rows.tolist())) < 20  # drawn with replacement: 20 of 20 repeats some
    assert rows.dtype == torch.int64


def test_test_sample_is_a_subset_without_replacement(small_file: Path) -> None:
    data = CaloData.from_root(small_file)
    rows = data.test_indices(15, seed=2)
    assert len(set(rows.tolist())) == 15
    assert set(rows.tolist()) <= set(data.test_indices().tolist())
    assert rows.tolist() == data.test_indices(15, seed=2).tolist()
    assert data.test_sample().energy.shape == (20,)  # None: the whole test half


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda data: data.test_sample(21), "between 1 and the 20 events of the test half"),
        (lambda data: data.test_sample(0), "between 1 and the 20 events of the test half"),
        (lambda data: data.training_sample(21, 0), "the 20 events of the training half"),
        (lambda data: data.training_sample(5, -1), "data_seed must be an integer >= 0"),
        (lambda data: data.test_sample(5, seed=1.5), "seed must be an integer >= 0"),
    ],
)
def test_samples_reject_sizes_beyond_the_half_and_bad_seeds(
    small_file: Path, call: object, message: str
) -> None:
    data = CaloData.from_root(small_file)
    with pytest.raises(ValueError, match=message):
        call(data)  # type: ignore[operator]


def test_branch_names_are_configurable_for_real_geant4_files(tmp_path: Path) -> None:
    columns = _columns(10)
    renamed = {"cells": columns["deposits"], "E": columns["energy"]}
    path = _write(tmp_path / "g4.root", {**renamed, "xpos": columns["x"], "ypos": columns["y"]})
    data = CaloData.from_root(
        path, branches={"deposits": "cells", "energy": "E", "x": "xpos", "y": "ypos"}
    )
    np.testing.assert_array_equal(data.columns["energy"].numpy(), columns["energy"])
    assert set(data.columns) == {"deposits", "energy", "x", "y"}


def test_flat_225_cell_deposits_are_read_row_by_row(tmp_path: Path) -> None:
    columns = _columns(6)
    flat = {**columns, "deposits": columns["deposits"].reshape(6, 225)}
    data = CaloData.from_root(_write(tmp_path / "flat.root", flat))
    np.testing.assert_array_equal(data.columns["deposits"].numpy(), columns["deposits"])


def test_float64_branches_are_converted_to_float32(tmp_path: Path) -> None:
    columns = {name: values.astype(np.float64) for name, values in _columns(6).items()}
    data = CaloData.from_root(_write(tmp_path / "f64.root", columns))
    assert all(values.dtype == torch.float32 for values in data.columns.values())


def test_missing_file_is_a_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.root"):
        CaloData.from_root(tmp_path / "nothing.root")


def test_a_file_that_is_not_root_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "notes.root"
    path.write_text("these are not calorimeter data\n")
    with pytest.raises(CaloDataError, match=r"notes\.root: not a readable ROOT file"):
        CaloData.from_root(path)


def test_a_file_without_a_tree_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "histogram.root"
    with uproot.recreate(path) as root_file:
        root_file["energy"] = np.histogram(np.arange(10.0), bins=5)
    with pytest.raises(CaloDataError, match="no TTree to read; the file holds .*TH1"):
        CaloData.from_root(path)


def test_an_rntuple_is_refused_with_the_way_out(tmp_path: Path) -> None:
    path = tmp_path / "rntuple.root"
    with uproot.recreate(path) as root_file:
        root_file["events"] = _columns(4)  # uproot 5.7 writes dictionaries as an RNTuple
    with pytest.raises(CaloDataError, match="RNTuple.*mktree"):
        CaloData.from_root(path)


def test_two_trees_need_a_tree_name(tmp_path: Path) -> None:
    path = tmp_path / "two.root"
    with uproot.recreate(path) as root_file:
        root_file.mktree("photons", _columns(4))
        root_file.mktree("electrons", _columns(6))
    with pytest.raises(CaloDataError, match="found 2 TTrees .*pass tree_name="):
        CaloData.from_root(path)
    assert CaloData.from_root(path, tree_name="electrons").n_events == 6
    with pytest.raises(CaloDataError, match="no TTree 'muons'"):
        CaloData.from_root(path, tree_name="muons")


def test_a_missing_branch_is_named_with_the_fix(tmp_path: Path) -> None:
    columns = _columns(4)
    del columns["energy"]
    path = _write(tmp_path / "no_energy.root", columns)
    with pytest.raises(
        CaloDataError, match=r"no branch 'energy' for the 'energy' column.*branches="
    ):
        CaloData.from_root(path)


def test_an_explicitly_named_optional_branch_must_exist(small_file: Path) -> None:
    with pytest.raises(CaloDataError, match="no branch 'angle' for the 'theta' column"):
        CaloData.from_root(small_file, branches={"theta": "angle"})


def test_unknown_logical_column_in_branches_is_refused(small_file: Path) -> None:
    with pytest.raises(ValueError, match="unknown logical column 'charge'"):
        CaloData.from_root(small_file, branches={"charge": "q"})


def test_wrong_deposit_shape_is_refused(tmp_path: Path) -> None:
    columns = {**_columns(4), "deposits": np.ones((4, 10, 10), np.float32)}
    with pytest.raises(CaloDataError, match=r"deposits must have shape .* \(4, 10, 10\)"):
        CaloData.from_root(_write(tmp_path / "small_grid.root", columns))


def test_variable_length_deposits_are_refused(tmp_path: Path) -> None:
    columns = {**_columns(2), "deposits": ak.Array([[1.0, 2.0], [3.0]])}
    with pytest.raises(CaloDataError, match="fixed-size numbers"):
        CaloData.from_root(_write(tmp_path / "jagged.root", columns))


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("deposits", np.nan, "1 events have NaN or infinite deposits, the first is event 3"),
        ("deposits", -0.5, "1 events have negative deposits, the first is event 3"),
        ("energy", 0.0, "1 events have non-positive energy, the first is event 3"),
        ("x", np.inf, "1 events have NaN or infinite x, the first is event 3"),
    ],
)
def test_bad_values_are_refused_naming_the_file_and_event(
    tmp_path: Path, column: str, value: float, message: str
) -> None:
    columns = _columns(8)
    if column == "deposits":
        columns[column][3, 7, 7] = value
    else:
        columns[column][3] = value
    path = _write(tmp_path / "bad.root", columns)
    with pytest.raises(CaloDataError, match=f"bad.root: {message}"):
        CaloData.from_root(path)


def test_a_file_with_fewer_events_than_it_was_written_for_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "truncated.root"
    with uproot.recreate(path) as root_file:
        # Asked for 100 events, the writer stopped after its first basket of 40.
        root_file.mktree("events", _columns(40), title=f"a simulation {expected_events_note(100)}")
    # Before: it loaded as a dataset of 40 events, without a warning.
    with pytest.raises(
        CaloDataError,
        match=r"truncated\.root: TTree 'events' holds 40 events but was written for 100",
    ):
        CaloData.from_root(path)


def test_a_file_with_its_expected_events_loads(tmp_path: Path) -> None:
    path = tmp_path / "complete.root"
    with uproot.recreate(path) as root_file:
        root_file.mktree("events", _columns(40), title=expected_events_note(40))
    assert CaloData.from_root(path).n_events == 40


def test_too_few_events_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "tiny.root", _columns(3))
    with pytest.raises(CaloDataError, match="tiny.root: TTree 'events' has 3 events, fewer than"):
        CaloData.from_root(path, min_events=4)
    with pytest.raises(CaloDataError, match="1 events, fewer than min_events=2"):
        CaloData({name: values[:1] for name, values in _columns(1).items()})


def test_calo_data_from_arrays_checks_columns() -> None:
    columns = _columns(4)
    with pytest.raises(
        CaloDataError, match=r"\['energy'\] are missing and \['mass'\] are unknown"
    ):
        CaloData(
            {"deposits": columns["deposits"], "x": columns["x"], "y": columns["y"], "mass": 1}
        )
    with pytest.raises(CaloDataError, match=r"x must have shape \(4,\)"):
        CaloData({**columns, "x": columns["x"][:3]})


def test_the_fingerprint_follows_the_events_and_the_split() -> None:
    base = CaloData(_columns(50)).fingerprint()
    assert CaloData(_columns(50)).fingerprint() == base
    assert CaloData(_columns(50), split_seed=1).fingerprint() != base
    assert CaloData(_columns(50, seed=1)).fingerprint() != base
    assert base["events"] == 50
