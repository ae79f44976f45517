"""Every study of the paper runs at smoke scale, and what it writes holds together.

Each study runs once per module; the tests then read its output: the report's header and
sections, its Markdown tables (numbers that parse and agree with each other), the figures it
links (real PNGs with something drawn, none missing, none left unlinked) and, for the studies
that keep an Optuna storage, the studies stored and the numbers the report quotes from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import math
from pathlib import Path
import re
import subprocess
import sys
from typing import Any

from matplotlib import image
import numpy as np
import optuna
import pytest

from optuna_robust import instance_losses
from optuna_robust.calo import experiments
from optuna_robust.calo.models import build_model
from studies._common import VERDICTS
from studies._common import load_config
from studies._common import settings
from studies.run import run_study

ROOT = Path(__file__).resolve().parent.parent
# Each study's "## " headings, in order, by their first words.
SECTIONS = {
    "activations": ["Each activation at its best grid point", "Compared with the paper"],
    "optimizers": ["Each optimizer at its best grid point", "Compared with the paper"],
    "selection": [
        "Tables 1-2",
        "Budget against exhaustive search",
        "Fig. 3",
        "Compared with the paper",
    ],
    "sample_size": ["Compared with the paper"],
    "baselines": ["Compared with the paper"],
    "init_vs_sampling": ["Fig. 7", "Variance decomposition", "Compared with the paper"],
    "nas_comparison": [
        "Robustness on fresh instances",
        "Trainings spent",
        "Compared with the paper",
    ],
    "dataset_shift": ["Compared with the paper"],
}
NAMES = list(SECTIONS)
# How many tables each report holds (selection: winners, budget, one re-ranking per task).
N_TABLES = {
    "activations": 2,
    "optimizers": 2,
    "selection": 5,
    "sample_size": 2,
    "baselines": 2,
    "init_vs_sampling": 3,
    "nas_comparison": 3,
    "dataset_shift": 2,
}
# Columns whose cells are losses or spreads of losses (>= 0, never NaN; inf is a diverged
# instance) and columns whose cells are counts.
LOSS_COLUMNS = ("mean", "median", "min", "max", "std", "IQR", "iqr")
COUNT_COLUMNS = ("instances", "trials", "trainings", "candidates", "rounds", "exhaustive")
# The storage a study keeps: {study name: kind}, and the config key of its fresh instances.
STORED = {
    "selection": (
        {
            "energy": "selection",
            "energy:robustness": "robustness",
            "position": "selection",
            "position:robustness": "robustness",
        },
        "final_instances",
    ),
    "nas_comparison": (
        {"robust": "selection", "nas": "nas", "nas:robustness": "robustness"},
        "instances",
    ),
    "dataset_shift": ({"A": "selection", "A:robustness": "robustness"}, "instances"),
}


@dataclass(frozen=True)
class SmokeRun:
    """What one smoke run of a study left behind."""

    name: str
    config: dict[str, Any]
    out: Path
    report: str

    def tables(self) -> list[list[dict[str, str]]]:
        return markdown_tables(self.report)

    def storage(self) -> optuna.storages.BaseStorage:
        return experiments.open_storage(f"sqlite:///{self.out / self.name}.db")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], SmokeRun]:
    """``smoke_run(name)``: the study's smoke run, made on the first call of the module."""
    runs: dict[str, SmokeRun] = {}

    def run(name: str) -> SmokeRun:
        if name not in runs:
            out = tmp_path_factory.mktemp(name)
            report = run_study(name, "smoke", out=out)
            assert report == out / "report.md"
            config = load_config(name, "smoke")
            runs[name] = SmokeRun(name, config, out, report.read_text(encoding="utf-8"))
        return runs[name]

    return run


def markdown_tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table of ``text`` as rows of ``{column: cell}``; refuses ragged rows."""
    lines = text.splitlines()
    tables = []
    for i, line in enumerate(lines[:-1]):
        if not (line.startswith("|") and re.fullmatch(r"\|(-+\|)+", lines[i + 1])):
            continue
        header = _cells(line)
        rows = []
        for row_line in lines[i + 2 :]:
            if not row_line.startswith("|"):
                break
            row = _cells(row_line)
            assert len(row) == len(header), f"ragged row {row_line!r} under {header}"
            rows.append(dict(zip(header, row, strict=True)))
        tables.append(rows)
    return tables


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _row_for(table: list[dict[str, str]], column: str, value: str) -> dict[str, str]:
    matches = [row for row in table if row[column] == value]
    assert len(matches) == 1, f"{len(matches)} rows with {column} = {value!r} in {table}"
    return matches[0]


@pytest.mark.parametrize("name", NAMES)
def test_smoke_report_has_its_header_and_sections(
    name: str, smoke_run: Callable[[str], SmokeRun]
) -> None:
    run = smoke_run(name)
    lines = run.report.splitlines()
    assert lines[0] == f"# {name}: {run.config['title']}"
    assert lines[2].startswith(f"Made with `.venv/bin/python -m studies.run {name} --scale smoke`")
    headings = [line[3:] for line in lines if line.startswith("## ")]
    assert len(headings) == len(SECTIONS[name]), headings
    for heading, expected in zip(headings, SECTIONS[name], strict=True):
        assert heading.startswith(expected), f"{heading!r} is not {expected!r}"
    assert lines[-1] == "This is a smoke run: its numbers mean nothing."


@pytest.mark.parametrize("name", NAMES)
def test_smoke_report_tables_hold_numbers_that_agree(
    name: str, smoke_run: Callable[[str], SmokeRun]
) -> None:
    tables = smoke_run(name).tables()
    assert len(tables) == N_TABLES[name]
    for table in tables:
        assert table, "a table without rows"
        for row in table:
            losses = {c: float(row[c]) for c in LOSS_COLUMNS if c in row}
            for column, value in losses.items():
                assert not math.isnan(value) and value >= 0, f"{column} = {value} in {row}"
            for column in COUNT_COLUMNS:
                if column in row:
                    assert int(row[column]) >= 0, f"{column} in {row}"
            # The table rounds to 4 significant digits, which keeps the order of numbers.
            ordered = [losses[c] for c in ("min", "median", "max") if c in losses]
            assert ordered == sorted(ordered), row
            if {"min", "mean", "max"} <= set(losses):
                assert losses["min"] <= losses["mean"] <= losses["max"], row


@pytest.mark.parametrize("name", NAMES)
def test_smoke_report_ends_with_computed_verdicts(
    name: str, smoke_run: Callable[[str], SmokeRun]
) -> None:
    run = smoke_run(name)
    findings = run.tables()[-1]  # the "Compared with the paper" table
    assert findings and set(findings[0]) == {"finding", "paper", "here", "verdict"}
    # A smoke run cannot test the paper: every verdict says so, none is typed by hand.
    assert {row["verdict"] for row in findings} == {"not tested at this scale"}
    assert VERDICTS[3] == "not tested at this scale"
    compared = run.report[run.report.index("## Compared with the paper") :]
    assert "| verdict |" in compared


@pytest.mark.parametrize("name", NAMES)
def test_smoke_figures_are_drawn_pngs_and_all_linked(
    name: str, smoke_run: Callable[[str], SmokeRun]
) -> None:
    run = smoke_run(name)
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", run.report)
    assert linked, "the report links no figure"
    assert sorted(linked) == sorted(path.name for path in run.out.glob("*.png"))
    for figure in linked:
        path = run.out / figure
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{figure} is not a PNG"
        pixels = image.imread(path)
        assert min(pixels.shape[:2]) >= 100, f"{figure} is {pixels.shape}"
        assert np.ptp(pixels[..., :3]) > 0, f"{figure} is a blank canvas"


@pytest.mark.parametrize("name", ["selection", "nas_comparison"])
def test_smoke_robustness_table_quotes_its_storage(
    name: str, smoke_run: Callable[[str], SmokeRun]
) -> None:
    run = smoke_run(name)
    kinds, final_key = STORED[name]
    storage = run.storage()
    assert experiments.summarise(storage).set_index("name")["kind"].to_dict() == kinds
    measured = experiments.robustness_table(storage)
    report = run.tables()[0]  # the winners measured on fresh instances
    assert sorted(row["model"] for row in report) == sorted(measured["model"])
    for row in report:
        stored = measured[measured["model"] == row["model"]].iloc[0]
        assert int(row["instances"]) == stored["instances"] == run.config[final_key]
        assert math.isclose(float(row["mean"]), stored["mean"], rel_tol=1e-3), row


def test_smoke_nas_comparison_trainings_match_its_storage(
    smoke_run: Callable[[str], SmokeRun],
) -> None:
    run = smoke_run("nas_comparison")
    summary = experiments.summarise(run.storage()).set_index("name")
    spent = run.tables()[1]
    assert sorted(row["study"] for row in spent) == sorted(summary.index)
    for row in spent:
        assert int(row["trials"]) == summary.loc[row["study"], "trials"]
        assert int(row["trainings"]) == summary.loc[row["study"], "trainings"]
    selection = summary.loc["robust"]
    assert selection["trainings"] > run.config["instances"]  # the selection, then the finals


def test_smoke_dataset_shift_retrains_the_stored_winner_on_b(
    smoke_run: Callable[[str], SmokeRun],
) -> None:
    run = smoke_run("dataset_shift")
    kinds, final_key = STORED["dataset_shift"]
    storage = run.storage()
    assert experiments.summarise(storage).set_index("name")["kind"].to_dict() == kinds
    winner = optuna.load_study(study_name="A", storage=storage).best_trial
    retrained = optuna.load_study(study_name="A:robustness", storage=storage).trials
    assert len(retrained) == 1
    assert retrained[0].system_attrs[experiments.SOURCE_KEY] == f"A#{winner.number}"
    assert re.findall(r"winner: trial (\d+)\b", run.report) == [str(winner.number)]
    table = run.tables()[0]
    for label, trial in (("winner on A", winner), ("winner on B", retrained[0])):
        losses = instance_losses(trial, phase="final")
        row = _row_for(table, "model", label)
        assert int(row["instances"]) == losses.size == run.config[final_key]
        assert math.isclose(float(row["mean"]), float(np.mean(losses)), rel_tol=1e-3), row
    for label in ("parametric on A", "parametric on B"):
        assert int(_row_for(table, "model", label)["instances"]) == run.config[final_key]


def _keys(table: dict[str, Any]) -> set[str]:
    """Every key path of a config table, nested tables flattened, model names left out."""
    keys = set()
    for key, value in table.items():
        if key == "models" or not isinstance(value, dict):
            keys.add(key)
        else:
            keys |= {f"{key}.{inner}" for inner in _keys(value)}
    return keys


@pytest.mark.parametrize("name", NAMES)
def test_long_scale_is_a_complete_valid_config(name: str) -> None:
    """``--scale long`` holds every key the cpu scale does, with valid settings and models."""
    long, cpu = load_config(name, "long"), load_config(name, "cpu")
    assert _keys(long) - {"scale"} == _keys(cpu) - {"scale"}
    trained = settings(long)
    assert trained.min_epochs >= 100  # the paper trains every instance 100 epochs at least
    models = long.get("models", {})
    for model in _model_configs(models):
        build_model(model, "position" if model.get("activation") == "PReLU" else "energy")
    if name == "sample_size":
        assert long["max_size"] >= 16_000 and all(len(m) == 2 for m in models.values())
    if name == "init_vs_sampling":
        assert long["n_data"] * long["n_init"] > cpu["n_data"] * cpu["n_init"]


def _model_configs(models: Any) -> list[dict[str, Any]]:
    """The model configs of a ``models`` table, whatever its nesting ([name, config] lists too)."""
    if isinstance(models, list):
        return [item for item in models if isinstance(item, dict)]
    if (
        isinstance(models, dict)
        and models
        and all(not isinstance(v, dict | list) for v in models.values())
    ):
        return [models]
    return [config for value in models.values() for config in _model_configs(value)]


def test_run_study_refuses_an_unknown_study_and_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"Unknown study 'selecton'; the studies are \[.*"):
        run_study("selecton", "smoke", out=tmp_path)
    assert not any(tmp_path.iterdir())


def test_studies_run_as_a_module_from_the_repository_root() -> None:
    """The documented command, ``python -m studies.run``, needs no change to ``sys.path``."""
    result = subprocess.run(
        [sys.executable, "-m", "studies.run", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--scale {smoke,cpu,long,paper}" in result.stdout


def test_baselines_spread_rows_show_the_intervals_their_verdicts_use(
    smoke_run: Callable[[str], SmokeRun],
) -> None:
    # The verdict compares spreads by Brown-Forsythe; a row that showed only the std could
    # contradict its own verdict (position A at 8,000: std 0.089 vs 0.101, "direction only").
    run = smoke_run("baselines")
    findings = run.tables()[-1]
    spread = [row for row in findings if "spreads more" in row["finding"]]
    assert spread
    for row in spread:
        assert row["here"].count("spread difference [") == len(run.config["sizes"]), row
