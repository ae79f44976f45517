"""package/pruners/robust is an OptunaHub registry entry: it loads, re-exports, its examples run.

The registry's rules (optunahub-registry template and tutorial): ``__init__.py`` imports what
the package offers, ``README.md`` opens with front matter (author, title, description, tags
with the category, optuna_versions, license "MIT License") and uses no HTML, ``LICENSE`` is
the MIT license with its holder filled in, and the examples call
``optunahub.load_module("pruners/robust")``.
"""

from __future__ import annotations

from pathlib import Path
import re
import runpy
import types

import optuna
import optunahub
import pytest
import yaml

import optuna_robust
from tests.test_docs import python_blocks

REGISTRY = Path(__file__).resolve().parents[1] / "package"
PACKAGE = "pruners/robust"
ENTRY = REGISTRY / PACKAGE


def _load_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``optunahub.load_module`` read this checkout instead of GitHub (no network)."""

    def load_module(package: str, **kwargs: object) -> types.ModuleType:
        assert package == PACKAGE and not kwargs, "examples must load the registered package"
        return optunahub.load_local_module(package=package, registry_root=str(REGISTRY))

    monkeypatch.setattr(optunahub, "load_module", load_module)


def _front_matter() -> dict[str, object]:
    text = (ENTRY / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must open with --- front matter ---"
    matter = yaml.safe_load(match.group(1))
    assert isinstance(matter, dict)
    return matter


def test_entry_has_the_files_the_registry_expects() -> None:
    for name in ("__init__.py", "README.md", "LICENSE", "example.py", "requirements.txt"):
        assert (ENTRY / name).is_file(), f"package/{PACKAGE}/{name} is missing"
    license_text = (ENTRY / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License\n") and "<COPYRIGHT HOLDER>" not in license_text
    requirements = (ENTRY / "requirements.txt").read_text(encoding="utf-8").split()
    assert requirements == ["optuna-robust"]


def test_load_local_module_reexports_the_public_api() -> None:
    module = optunahub.load_local_module(package=PACKAGE, registry_root=str(REGISTRY))
    assert module.RobustPruner is optuna_robust.RobustPruner
    assert module.RobustSampler is optuna_robust.RobustSampler
    for name in module.__all__:
        assert getattr(module, name) is getattr(optuna_robust, name)
    assert {"RobustPruner", "RobustSampler", "evaluate_instances", "select"} <= set(module.__all__)


def test_readme_front_matter_follows_the_template() -> None:
    matter = _front_matter()
    keys = ("author", "title", "description", "tags", "optuna_versions", "license")
    assert sorted(matter) == sorted(keys)
    for key in ("author", "title", "description", "license"):
        assert isinstance(matter[key], str) and matter[key], f"{key} must be a non-empty string"
    tags, versions = matter["tags"], matter["optuna_versions"]
    assert isinstance(tags, list) and "pruner" in tags  # the category's tag
    assert matter["license"] == "MIT License"
    assert isinstance(versions, list) and all(isinstance(v, str) for v in versions)
    assert optuna.__version__ in versions, (
        f"the example ran on Optuna {optuna.__version__}: add it to optuna_versions"
    )


def test_readme_has_the_template_sections_and_no_html() -> None:
    text = (ENTRY / "README.md").read_text(encoding="utf-8")
    for section in ("## Abstract", "## APIs", "## Installation", "## Example"):
        assert f"\n{section}\n" in text
    assert not re.search(r"<[a-zA-Z/][^>]*>", text), "the registry strips HTML tags"
    assert "load_local_module" not in text and "registry_root" not in text


def test_example_py_runs_with_the_registered_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _load_locally(monkeypatch)
    monkeypatch.chdir(tmp_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    namespace = runpy.run_path(str(ENTRY / "example.py"), run_name="__main__")
    study, grid_study = namespace["study"], namespace["grid_study"]
    assert 1e-3 < study.best_params["lr"] < 3e-2 and study.best_params["width"] >= 64
    assert len(grid_study.trials) == 16
    assert grid_study.best_params == {"lr": 0.01, "width": 128}


def test_readme_example_runs_with_the_registered_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _load_locally(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (block,) = [code for _, code in python_blocks(ENTRY / "README.md")]
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    study = namespace["study"]
    assert isinstance(study, optuna.Study)
    assert 3e-3 < study.best_params["lr"] < 3e-2
