"""The search spaces: the paper's sizes, valid candidates, TOML space files and the NAS space."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
import json
from pathlib import Path
from typing import Any

import optuna
import pytest

from optuna_robust.calo.models import ACTIVATIONS
from optuna_robust.calo.models import OPTIMIZERS
from optuna_robust.calo.models import ModelConfig
from optuna_robust.calo.spaces import SPACE_NAMES
from optuna_robust.calo.spaces import activation_space
from optuna_robust.calo.spaces import load_space
from optuna_robust.calo.spaces import nas_space_size
from optuna_robust.calo.spaces import optimizer_space
from optuna_robust.calo.spaces import paper_selection_space
from optuna_robust.calo.spaces import product
from optuna_robust.calo.spaces import small_space
from optuna_robust.calo.spaces import suggest_nas
from optuna_robust.calo.spaces import tiny_space

SIZES = {
    "paper": 6_912,  # paper 3.10: 2^8 * 3^3
    "activations": 7 * 4 * 4,  # Fig. 2: activations x lr x batch size
    "optimizers": 2 * 7 * 4 * 6 * 4,  # Fig. 13: nets x optimizers x lr x batch size x L2
    "small": 16,
    "tiny": 2,
}


def _distinct(candidates: Sequence[dict[str, Any]]) -> int:
    return len({json.dumps(candidate, sort_keys=True) for candidate in candidates})


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_named_space_has_its_size_and_only_distinct_valid_candidates(name: str) -> None:
    candidates = load_space(name)
    assert len(candidates) == SIZES[name]
    assert _distinct(candidates) == len(candidates)
    for candidate in candidates:
        ModelConfig.from_dict(candidate)  # raises, naming the bad value


def test_paper_grid_is_the_reconstruction_its_docstring_states() -> None:
    candidates = paper_selection_space()
    for candidate in candidates:
        assert candidate["n_conv"] == 2 and candidate["activation"] == "ReLU"
        assert candidate["conv2_kernel"] == candidate["conv1_kernel"] in (3, 5, 7)
        widths = [candidate[f"fc{layer}_units"] for layer in range(1, candidate["n_fc"] + 1)]
        assert widths == [64, 32, 16, 8][: candidate["n_fc"]]
    assert {c["optimizer"] for c in candidates} == {"NAdam", "AdamW"}
    assert {c["n_fc"] for c in candidates} == {2, 3, 4}
    assert sum(c["inductive_bias"] for c in candidates) == len(candidates) // 2


def test_activation_and_optimizer_grids_cover_every_choice_of_the_family() -> None:
    assert {c["activation"] for c in activation_space()} == set(ACTIVATIONS)
    assert {c["optimizer"] for c in activation_space()} == {"Adam"}
    assert {c["optimizer"] for c in optimizer_space()} == set(OPTIMIZERS)
    assert {c["activation"] for c in optimizer_space()} == {"ReLU"}


def test_small_spaces_vary_what_their_docstrings_say() -> None:
    varied = {key for key in small_space()[0] if len({str(c[key]) for c in small_space()}) > 1}
    assert varied == {"inductive_bias", "optimizer", "lr", "batch_size"}
    assert [c["lr"] for c in tiny_space()] == [0.003, 0.3]


def test_product_merges_fixed_params_into_every_combination() -> None:
    assert product({"lr": [0.1, 0.2], "l2": [0.0]}, n_fc=1) == [
        {"n_fc": 1, "lr": 0.1, "l2": 0.0},
        {"n_fc": 1, "lr": 0.2, "l2": 0.0},
    ]


def _space_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.toml"
    path.write_text(text)
    return path


def test_load_space_reads_fixed_space_and_listed_candidates(tmp_path: Path) -> None:
    path = _space_file(
        tmp_path,
        '[fixed]\nn_conv = 1\nactivation = "prelu"\n\n'
        "[space]\nlr = [0.001, 0.01]\nbatch_size = [32, 64]\n\n"
        "[[candidates]]\nlr = 0.1\nn_fc = 3\n",
    )
    candidates = load_space(path)
    assert len(candidates) == 2 * 2 + 1
    assert candidates[-1] == {"n_conv": 1, "activation": "prelu", "lr": 0.1, "n_fc": 3}
    assert all(ModelConfig.from_dict(c).activation == "PReLU" for c in candidates)
    assert load_space(str(path)) == candidates


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[space]\nlearning_rate = [0.001]\n",
            "unknown key 'learning_rate' in [space]; did you mean 'lr'?",
        ),
        (
            "[fixed]\nbatch_sise = 32\n[space]\nlr = [0.1]\n",
            "unknown key 'batch_sise' in [fixed]; did you mean 'batch_size'?",
        ),
        ("[[candidates]]\nzzz = 1\n", "unknown key 'zzz' in [[candidates]]; known keys: ["),
        ("[spaces]\nlr = [0.1]\n", "unknown table(s) ['spaces']; use [space], [fixed]"),
        ("[space]\nlr = 0.1\n", "[space] lr must be a non-empty list of choices but is 0.1"),
        ("[space]\nlr = []\n", "[space] lr must be a non-empty list of choices but is []"),
        ("[fixed]\nn_conv = 1\n", "defines no candidate: add [space] or [[candidates]]"),
        ("[space]\nconv1_kernel = [3, 4]\n", "conv1_kernel must be 3, 5 or 7 but got 4"),
        ("[space\nlr = [0.1]\n", "is not valid TOML"),
    ],
)
def test_load_space_file_errors_name_the_file_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _space_file(tmp_path, text)
    with pytest.raises(ValueError) as error:
        load_space(path)
    assert str(error.value).startswith(f"Space file {path}")
    assert message in str(error.value)


def test_load_space_refuses_unknown_names_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"Unknown space 'papr': use one of paper, small"):
        load_space("papr")
    missing = tmp_path / "missing.toml"
    with pytest.raises(ValueError, match=r"missing\.toml does not exist"):
        load_space(missing)


class _PathTrial:
    """A stand-in trial that answers each ``suggest_categorical`` with the choice ``path`` picks
    (the first one past its end), and records how many choices each call had."""

    def __init__(self, path: list[int]) -> None:
        self.path = path
        self.sizes: list[int] = []
        self.names: list[str] = []

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        depth = len(self.sizes)
        self.sizes.append(len(choices))
        self.names.append(name)
        return choices[self.path[depth] if depth < len(self.path) else 0]


def _every_suggestion(suggest: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
    """What ``suggest`` returns on every path through its (conditional) choices, depth first."""
    suggestions, path = [], []
    while True:
        trial = _PathTrial(path)
        suggestions.append(suggest(trial))
        assert len(set(trial.names)) == len(trial.names), f"a param suggested twice: {trial.names}"
        path = path + [0] * (len(trial.sizes) - len(path))
        while path and path[-1] + 1 == trial.sizes[len(path) - 1]:
            path.pop()
        if not path:
            return suggestions
        path[-1] += 1


def test_suggest_nas_space_has_the_papers_9477_models() -> None:
    suggestions = _every_suggestion(suggest_nas)
    assert nas_space_size() == 9_477
    assert len(suggestions) == nas_space_size()
    assert _distinct(suggestions) == len(suggestions)
    for suggestion in suggestions:
        config = ModelConfig.from_dict(suggestion)
        assert config.n_conv == 2 and config.fc_units[0] == 128


def test_suggest_nas_with_a_real_trial_suggests_only_the_layers_in_use() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        config = suggest_nas(trial)
        ModelConfig.from_dict(config)
        hidden = {f"fc{layer}_units" for layer in range(2, config["n_fc"] + 1)}
        assert {k for k in trial.params if k.startswith("fc")} == hidden
        assert all(config[name] == value for name, value in trial.params.items())
        study.tell(trial, 0.0)
