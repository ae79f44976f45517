"""The core package's shape: no import cycle, light imports, Optuna internals in one module."""

from __future__ import annotations

import ast
from pathlib import Path
import re
import subprocess
import sys

import pytest

CORE = Path(__file__).resolve().parents[1] / "optuna_robust"
CORE_FILES = sorted(CORE.glob("*.py"))
# Private Optuna attributes the core may touch only through optuna_robust._optuna_compat.
OPTUNA_PRIVATE = {"_storage", "_study_id", "_trial_id", "_thread_local", "_backend"}


def _imports(path: Path) -> set[str]:
    """The optuna_robust modules that ``path`` imports (at any depth of the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("optuna_robust")}


def _module_name(path: Path) -> str:
    relative = path.relative_to(CORE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_the_import_graph_of_the_package_has_no_cycle() -> None:
    files = sorted(CORE.rglob("*.py"))
    modules = {_module_name(path): path for path in files}
    graph = {
        name: {target for target in _imports(path) if target in modules and target != name}
        for name, path in modules.items()
    }
    # The package __init__ re-exports; edges into it are the public API, not a layer.
    for targets in graph.values():
        targets.discard("optuna_robust")
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycle = trail[trail.index(target) :] + [target] if target in trail else [target]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, [*trail, target])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_core_imports_neither_the_application_nor_the_figures() -> None:
    for path in CORE_FILES:
        for target in _imports(path):
            assert not target.startswith(("optuna_robust.calo", "optuna_robust.visualization")), (
                f"{path.name} imports {target}"
            )
    for path in sorted((CORE / "visualization").glob("*.py")):
        for target in _imports(path):
            assert not target.startswith("optuna_robust.calo"), f"{path.name} imports {target}"


def test_importing_the_core_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, optuna_robust\n"
        "heavy = [m for m in ('matplotlib', 'plotly', 'torch', 'uproot', 'xgboost') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("path", CORE_FILES, ids=[p.name for p in CORE_FILES])
def test_core_modules_stay_readable(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 520


PACKAGE_FILES = sorted(CORE.rglob("*.py"))


@pytest.mark.parametrize(
    "path", PACKAGE_FILES, ids=[str(p.relative_to(CORE)) for p in PACKAGE_FILES]
)
def test_optuna_internals_are_used_only_in_the_compat_module(path: Path) -> None:
    if path.name == "_optuna_compat.py":
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):  # docstring examples are strings, not code
            assert node.attr not in OPTUNA_PRIVATE, (
                f"{path.name}:{node.lineno} uses Optuna's private .{node.attr}; go through "
                "optuna_robust._optuna_compat"
            )
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "optuna":
            private = [part for part in node.module.split(".") if part.startswith("_")]
            assert not private, f"{path.name}:{node.lineno} imports {node.module}"


def test_the_oldest_optuna_run_pins_pyprojects_lower_bound() -> None:
    root = CORE.parent
    pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    makefile = (root / "Makefile").read_text(encoding="utf-8")
    lower = re.search(r'"optuna>=([\d.]+)"', pyproject)
    pinned = re.search(r"OLDEST_OPTUNA := optuna==([\d.]+)", makefile)
    assert lower and pinned and lower.group(1) == pinned.group(1)
