"""What every study shares: its config at a scale, its data files, its storage and its report.

A study is ``studies/<name>/study.py`` with ``run(config: dict, out: Path) -> str`` (the report
body in Markdown) plus ``config.toml`` with ``[smoke]``, ``[cpu]`` and ``[paper]`` tables.
Run one with::

    .venv/bin/python -m studies.run <name> --scale cpu

which writes ``studies/<name>/report.md`` and its figures next to it (``--out DIR`` writes
elsewhere; the test suite runs every study at ``smoke`` scale into a temporary folder).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
import time
import tomllib
from typing import Any

import pandas as pd

from optuna_robust import Instance
from optuna_robust import make_instances
from optuna_robust.calo.simulate import simulate
from optuna_robust.calo.train import TrainSettings

STUDIES = Path(__file__).resolve().parent
SCALES = ("smoke", "cpu", "paper")
# Part of every cached file name: change it whenever the simulation's physics changes, so that
# no study reads a file of an older model (readout2: LHCb readout, B's truth at the shower's
# centre of gravity).
SIMULATION_VERSION = "readout2"
_SETTINGS_KEYS = ("min_epochs", "window", "tolerance", "max_epochs", "n_train", "n_test")


def load_config(name: str, scale: str) -> dict[str, Any]:
    """The ``[scale]`` table of ``studies/<name>/config.toml``, over its ``[common]`` table."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES} but got {scale!r}.")
    path = STUDIES / name / "config.toml"
    if not path.exists():
        known = sorted(p.parent.name for p in STUDIES.glob("*/config.toml"))
        raise ValueError(f"Unknown study {name!r}; the studies are {known}.")
    document = tomllib.loads(path.read_text())
    if scale not in document:
        raise ValueError(f"{path} has no [{scale}] table.")
    return {**document.get("common", {}), **document[scale], "scale": scale, "name": name}


def settings(config: Mapping[str, Any], **overrides: Any) -> TrainSettings:
    """The trainer settings of a config (its ``min_epochs``, ``n_train``, ... keys)."""
    values = {key: config[key] for key in _SETTINGS_KEYS if key in config}
    return TrainSettings(**{**values, **overrides})


def data_folder(config: Mapping[str, Any], out: Path) -> Path:
    """Where a study's simulated files go: its own output for smoke runs, else a shared cache."""
    return out / "data" if config["scale"] == "smoke" else STUDIES / "data"


def fresh_instances(config: Mapping[str, Any], model: Mapping[str, Any]) -> list[Instance]:
    """``config["instances"]`` independent instances of ``model``, seeded like final ones."""
    return make_instances(
        model, config["instances"], seed=config["seed"], phase="final", pairing="none"
    )


def dataset(dataset_name: str, n_events: int, seed: int, folder: Path) -> Path:
    """A simulated ROOT file, made once and reused (file names carry every input)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dataset_name}_{n_events}_seed{seed}_{SIMULATION_VERSION}.root"
    if not path.exists():
        simulate(dataset=dataset_name, n_events=n_events, seed=seed, out=path)
    return path


def storage_url(out: Path, name: str) -> str:
    """The SQLite storage of a study run, in its output folder."""
    return f"sqlite:///{out / (name + '.db')}"


def write_report(out: Path, config: Mapping[str, Any], body: str, seconds: float) -> Path:
    """``report.md``: a header saying how it was made, then the study's own body."""
    command = f".venv/bin/python -m studies.run {config['name']} --scale {config['scale']}"
    header = (
        f"# {config['name']}: {config.get('title', '')}\n\n"
        f"Made with `{command}` in {seconds / 60:.1f} min on this machine "
        f"({time.strftime('%Y-%m-%d')}). Data: the fast simulation, not GEANT4.\n\n"
    )
    path = out / "report.md"
    path.write_text(header + body.strip() + "\n")
    return path


def markdown(frame: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table, floats to 4 significant digits."""
    rows = [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row] for row in frame.values]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|---" * frame.shape[1] + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
