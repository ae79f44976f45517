"""Every study of the paper runs at smoke scale and writes a report whose figures exist."""

from __future__ import annotations

import importlib.util
from pathlib import Path
import re

import pytest

STUDIES = Path(__file__).resolve().parent.parent / "studies"
NAMES = [
    "activations",
    "optimizers",
    "selection",
    "sample_size",
    "baselines",
    "init_vs_sampling",
    "nas_comparison",
    "dataset_shift",
]


def _run_study():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("studies_run", STUDIES / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run_study


@pytest.mark.parametrize("name", NAMES)
def test_study_smoke_writes_report_with_its_figures(name: str, tmp_path: Path) -> None:
    report = _run_study()(name, "smoke", out=tmp_path)
    assert report == tmp_path / "report.md"
    text = report.read_text()
    assert text.startswith(f"# {name}:")
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert figures, f"{name}: the report links no figure"
    for figure in figures:
        path = tmp_path / figure
        assert path.is_file() and path.stat().st_size > 0, f"{name}: {figure} missing or empty"
