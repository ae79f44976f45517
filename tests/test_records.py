"""The instance/record protocol: keys, records, series, seeds and reuse after a crash."""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.trial import TrialState
import pytest

import optuna_robust
from optuna_robust import Instance
from optuna_robust import _records


def test_record_keys_sort_by_index_and_phase() -> None:
    keys = [_records.record_key("selection", i) for i in (10, 2, 100)]
    assert sorted(keys) == [_records.record_key("selection", i) for i in (2, 10, 100)]
    assert _records.record_key("final", 3) == "robust:final:000003"
    assert _records.extras_key("final", 3) == "robust:extras:final:000003"
    assert _records.rung_key(2) == "robust:rung_2"


def test_make_record_keeps_seeds_and_extras_and_stores_divergence_as_inf() -> None:
    instance = Instance(index=4, data_seed=7, init_seed=9)
    record = _records.make_record(instance, {"loss": np.float32(0.25), "epochs": np.int64(3)})
    assert record == {"loss": 0.25, "data_seed": 7, "init_seed": 9, "epochs": 3}
    assert _records.make_record(instance, math.nan)["loss"] == "inf"
    assert _records.make_record(instance, {"loss": math.inf})["loss"] == "inf"
    with pytest.raises(ValueError, match="without a 'loss' key for instance 4"):
        _records.make_record(instance, {"epochs": 3})
    with pytest.raises(ValueError, match="must return a float loss"):
        _records.make_record(instance, [0.1])


def test_check_results_wants_one_result_per_instance() -> None:
    instances = [Instance(index=i, data_seed=i, init_seed=i) for i in range(3)]
    assert _records.check_results((1.0, 2.0, 3.0), instances) == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="returned 2 results for 3 instances"):
        _records.check_results([1.0, 2.0], instances)
    with pytest.raises(ValueError, match="returned dict"):
        _records.check_results({"loss": 1.0}, instances)


def test_series_are_stored_apart_and_merged_back() -> None:
    batch = {0: {"loss": 1.0, "curve": [3.0, 1.0]}, 1: {"loss": 2.0}}
    user_attrs, system_attrs = _records.record_attrs("selection", batch)
    assert user_attrs == {
        "robust:selection:000000": {"loss": 1.0},
        "robust:selection:000001": {"loss": 2.0},
    }
    assert system_attrs == {"robust:extras:selection:000000": {"curve": [3.0, 1.0]}}
    trial = optuna.trial.create_trial(value=1.0, user_attrs=user_attrs, system_attrs=system_attrs)
    assert _records.records(trial, "selection") == [{"loss": 1.0}, {"loss": 2.0}]
    assert _records.records(trial, "selection", extras=True) == [
        {"loss": 1.0, "curve": [3.0, 1.0]},
        {"loss": 2.0},
    ]
    assert optuna_robust.instance_losses(trial).tolist() == [1.0, 2.0]


def test_instance_losses_reads_each_phase_in_index_order() -> None:
    attrs = {
        _records.record_key("final", 1): {"loss": 5.0},
        _records.record_key("final", 0): {"loss": 4.0},
        _records.record_key("selection", 0): {"loss": "inf"},
    }
    trial = optuna.trial.create_trial(value=1.0, user_attrs=attrs)
    assert optuna_robust.instance_losses(trial, phase="final").tolist() == [4.0, 5.0]
    assert optuna_robust.instance_losses(trial, phase="all").tolist() == [math.inf, 4.0, 5.0]
    with pytest.raises(ValueError, match="phase must be"):
        optuna_robust.instance_losses(trial, phase="test")  # type: ignore[arg-type]


def test_make_instances_pairs_data_seeds_only_with_pairing_data() -> None:
    a = optuna_robust.make_instances({"x": 1}, 3, seed=5)
    b = optuna_robust.make_instances({"x": 2}, 3, seed=5)
    assert [i.data_seed for i in a] == [i.data_seed for i in b]
    assert all(i.init_seed != j.init_seed for i, j in zip(a, b))
    c = optuna_robust.make_instances({"x": 2}, 3, seed=5, pairing="none")
    assert all(i.data_seed != j.data_seed for i, j in zip(a, c))
    final = optuna_robust.make_instances({"x": 1}, range(1, 3), seed=5, phase="final")
    assert [i.index for i in final] == [1, 2] and final[0] != a[1]
    with pytest.raises(ValueError, match="pairing must be"):
        optuna_robust.make_instances({"x": 1}, 1, seed=5, pairing="both")
    with pytest.raises(ValueError, match="phase must be"):
        optuna_robust.make_instances({"x": 1}, 1, seed=5, phase="test")  # type: ignore[arg-type]


def test_reusable_records_come_only_from_interrupted_trials_of_the_same_model() -> None:
    def failed(params: dict[str, int], *, error: bool) -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(
            state=TrialState.FAIL,
            params=params,
            distributions={"x": optuna.distributions.CategoricalDistribution([1, 2])},
            user_attrs={_records.record_key("selection", 0): {"loss": params["x"]}},
            system_attrs={
                _records.extras_key("selection", 0): {"curve": [1.0]},
                **({_records.ERROR_KEY: "boom"} if error else {}),
            },
        )

    trials = [failed({"x": 1}, error=False), failed({"x": 2}, error=False)]
    user_attrs, system_attrs = _records.reusable_records(trials, {"x": 1})
    assert user_attrs == {"robust:selection:000000": {"loss": 1}}
    assert system_attrs == {"robust:extras:selection:000000": {"curve": [1.0]}}
    # A model whose train_fn raised is broken, not interrupted: nothing to reuse.
    assert _records.reusable_records([failed({"x": 1}, error=True)], {"x": 1}) == ({}, {})
