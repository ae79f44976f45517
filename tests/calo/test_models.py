"""The model family: configuration checks, the reference network, He init, inductive bias."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from optuna_robust.calo.models import ACTIVATIONS
from optuna_robust.calo.models import CELL_SIZE_MM
from optuna_robust.calo.models import ModelConfig
from optuna_robust.calo.models import build_model
from optuna_robust.calo.models import count_parameters
from optuna_robust.calo.models import inductive_features


def test_model_config_defaults_are_a_paper_sized_model() -> None:
    config = ModelConfig()
    assert config.conv_layers == ((32, 5), (16, 3))
    assert config.fc_units == (64, 64)
    assert config.feature_map_sizes() == (7, 3)
    # conv 1x32x5x5 + 32, conv 32x16x3x3 + 16, fc 144x64 + 64, fc 64x64 + 64, out 64 + 1.
    assert count_parameters({}) == 832 + 4624 + 9280 + 4160 + 65 == 18_961
    assert count_parameters({}) <= 24_000


def test_model_config_from_dict_round_trips_and_normalises_names() -> None:
    config = ModelConfig.from_dict({"activation": "leakyrelu", "optimizer": "adamw", "lr": 1})
    assert (config.activation, config.optimizer, config.lr) == ("LeakyReLU", "AdamW", 1.0)
    assert ModelConfig.from_dict(config.as_dict()) == config
    assert ModelConfig.from_dict(config) is config


def test_model_config_ignores_layers_beyond_their_count() -> None:
    config = ModelConfig.from_dict({"n_conv": 1, "conv2_kernel": 7, "n_fc": 1, "fc4_units": 3})
    assert config.conv_layers == ((32, 5),)
    assert config.fc_units == (64,)


def test_model_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"Unknown model parameter\(s\) \['dropout', 'width'\]"):
        ModelConfig.from_dict({"dropout": 0.5, "width": 3, "lr": 0.1})


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_conv": 3}, "n_conv must be 1 or 2 but got 3"),
        ({"n_conv": True}, "n_conv must be an integer but got True"),
        ({"conv1_filters": 2.5}, "conv1_filters must be an integer but got 2.5"),
        ({"conv1_filters": 0}, "conv1_filters must be at least 1 but got 0"),
        ({"conv2_kernel": 4}, "conv2_kernel must be 3, 5 or 7 but got 4"),
        ({"padding": "full"}, "padding must be 'same' or 'valid' but got 'full'"),
        ({"pooling": "yes"}, "pooling must be True or False but got 'yes'"),
        ({"n_fc": 5}, "n_fc must be between 1 and 4 but got 5"),
        ({"n_fc": 3, "fc3_units": 0}, "fc3_units must be at least 1 but got 0"),
        ({"activation": "Swish"}, r"activation must be one of \[.*'GELU'\] but got 'Swish'"),
        ({"optimizer": "LBFGS"}, r"optimizer must be one of \[.*\] but got 'LBFGS'"),
        ({"lr": 0}, "lr must be a positive finite number but got 0.0"),
        ({"lr": "0.1"}, "lr must be a number but got '0.1'"),
        ({"lr": float("nan")}, "lr must be a positive finite number but got nan"),
        ({"batch_size": 0}, "batch_size must be at least 1 but got 0"),
        ({"l2": -0.1}, "l2 must be a finite number >= 0 but got -0.1"),
        ({"inductive_bias": 1}, "inductive_bias must be True or False but got 1"),
        (
            {"padding": "valid", "conv1_kernel": 7, "conv2_kernel": 7},
            "no cell left after convolutional layer 2",
        ),
    ],
)
def test_model_config_rejects_bad_values(params: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ModelConfig.from_dict(params)


@pytest.mark.parametrize("task", ["energy", "position"])
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"n_conv": 1, "n_fc": 1, "inductive_bias": True},
        {"padding": "valid", "pooling": False, "n_fc": 4, "inductive_bias": True},
        {"conv1_kernel": 7, "conv2_kernel": 5, "n_fc": 3, "activation": "PReLU"},
    ],
)
def test_build_model_predicts_one_number_per_event(task: str, params: dict[str, Any]) -> None:
    model = build_model(params, task, init_seed=1)
    assert model(torch.rand(5, 15, 15)).shape == (5,)
    assert count_parameters(params, task) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("task", "n_extra"), [("energy", 1), ("position", 2)])
@pytest.mark.parametrize("n_fc", [1, 2])
def test_inductive_bias_enters_after_the_first_fully_connected_layer(
    task: str, n_extra: int, n_fc: int
) -> None:
    model = build_model({"inductive_bias": True, "n_fc": n_fc, "fc1_units": 10}, task)
    after_first = model.fcs[1] if n_fc == 2 else model.output
    assert after_first.in_features == 10 + n_extra
    plain = build_model({"inductive_bias": False, "n_fc": n_fc, "fc1_units": 10}, task)
    assert count_parameters(model.config, task) == count_parameters(plain.config, task) + (
        n_extra * (after_first.out_features)
    )


def test_inductive_features_are_the_sum_and_the_barycentre() -> None:
    deposits = torch.zeros(3, 15, 15)
    deposits[0, 7, 7] = 10.0  # the central cell
    deposits[1, 2, 9] = 3.0  # row 2 (y), column 9 (x)
    deposits[1, 2, 11] = 1.0
    energy = inductive_features(deposits, "energy")
    assert energy.tolist() == [[10.0], [4.0], [0.0]]
    position = inductive_features(deposits, "position")
    x_expected = (3.0 * 2 + 1.0 * 4) / 4 * CELL_SIZE_MM
    torch.testing.assert_close(
        position,
        torch.tensor([[0.0, 0.0], [x_expected, -5 * CELL_SIZE_MM], [0.0, 0.0]]),
    )


def test_build_model_is_seeded_and_leaves_the_global_generator_alone() -> None:
    state = torch.get_rng_state()
    first = build_model({}, "energy", init_seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    second = build_model({}, "energy", init_seed=7)
    other = build_model({}, "energy", init_seed=8)
    for a, b, c in zip(first.parameters(), second.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)
        assert a.abs().sum() == 0 or not torch.equal(a, c)


def test_build_model_uses_he_initialisation_and_prelu_per_neuron() -> None:
    params = {"conv1_filters": 64, "conv2_filters": 64, "fc1_units": 128, "fc2_units": 96}
    model = build_model({**params, "activation": "PReLU"}, "energy", init_seed=3)
    for layer in [*model.convs, *model.fcs]:
        fan_in = layer.weight[0].numel()
        std = float(layer.weight.detach().std())
        assert std == pytest.approx((2 / fan_in) ** 0.5, rel=0.1)
        assert torch.count_nonzero(layer.bias) == 0
    slopes = [activation.weight for activation in model.conv_activations] + [
        activation.weight for activation in model.fc_activations
    ]
    assert [s.numel() for s in slopes] == [64, 64, 128, 96]  # one per channel / neuron
    assert all(bool((s == 0.25).all()) for s in slopes)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_build_model_applies_the_activation(activation: str) -> None:
    model = build_model({"activation": activation}, "energy", init_seed=0)
    expected = "PReLU" if activation == "PReLU" else activation
    assert type(model.fc_activations[0]).__name__ == expected
