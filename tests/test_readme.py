"""The README's code runs, and its install lines name every extra that pyproject.toml offers."""

from __future__ import annotations

from pathlib import Path
import re
import tomllib

import pytest

from tests.test_docs import python_blocks

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_readme_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(README)
    assert blocks
    namespace: dict[str, object] = {"__name__": "readme"}
    for line, code in blocks:
        exec(compile("\n" * (line - 1) + code, str(README), "exec"), namespace)


def test_readme_installs_and_explains_every_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    text = README.read_text(encoding="utf-8")
    last_cells = [row.split("|")[-2] for row in text.splitlines() if row.startswith("| ")]
    table = {re.sub(r"\W", "", cell.split()[0]) for cell in last_cells if cell.strip()}
    installed = set(re.findall(r'pip install "optuna-robust\[(\w+)\]"', text))
    for extra in set(extras) - {"dev"}:
        assert extra in table, f"the README's feature table does not say what needs [{extra}]"
    assert installed == set(extras) - {"dev"}
    assert "pip install optuna-robust " in text and "torch==2.13.0" in text
