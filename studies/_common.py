"""What every study shares: its config at a scale, its data files, its storage and its report.

A study is ``studies/<name>/study.py`` with ``run(config: dict, out: Path) -> str`` (the report
body in Markdown) plus ``config.toml`` with ``[smoke]``, ``[cpu]``, ``[long]`` (at most an hour
on the 2-core machine) and ``[paper]`` tables.
Run one with::

    .venv/bin/python -m studies.run <name> --scale cpu

which writes ``studies/<name>/report.md`` and its figures next to it (``--out DIR`` writes
elsewhere; the test suite runs every study at ``smoke`` scale into a temporary folder).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import math
from pathlib import Path
import time
import tomllib
from typing import Any

import numpy as np
import pandas as pd

from optuna_robust import Instance
from optuna_robust import make_instances
from optuna_robust.calo.comparison import CRITERIA
from optuna_robust.calo.comparison import LEVEL
from optuna_robust.calo.comparison import Difference
from optuna_robust.calo.comparison import compare
from optuna_robust.calo.comparison import student_quantile
from optuna_robust.calo.simulate import simulate
from optuna_robust.calo.train import TrainSettings

STUDIES = Path(__file__).resolve().parent
SCALES = ("smoke", "cpu", "long", "paper")
# Part of every cached file name: change it whenever the simulation's physics changes, so that
# no study reads a file of an older model (readout2: LHCb readout, B's truth at the shower's
# centre of gravity).
SIMULATION_VERSION = "readout2"
_SETTINGS_KEYS = (
    "min_epochs",
    "window",
    "tolerance",
    "max_epochs",
    "n_train",
    "n_test",
    "test_sample",
)


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


def size_figure(losses: pd.DataFrame, title: str, out: Path, name: str) -> str:
    """Boxplots of ``losses`` (``n_train``, ``model``, ``loss``) by training size, saved as
    ``out/<name>.png``; returns its Markdown link."""
    from optuna_robust.visualization import plot_loss_vs_training_size

    fig = plot_loss_vs_training_size(losses[["n_train", "model", "loss"]], log_y=True)
    fig.axes[0].set_title(title, fontsize="medium")
    fig.savefig(out / f"{name}.png", dpi=100)
    return f"![{title}]({name}.png)"


def storage_url(out: Path, name: str) -> str:
    """The SQLite storage of a study run, in its output folder."""
    return f"sqlite:///{out / (name + '.db')}"


_FAST_SIMULATION = "the fast simulation, not GEANT4"


def write_report(
    out: Path, config: Mapping[str, Any], body: str, seconds: float, command: str | None = None
) -> Path:
    """``report.md``: a header saying how it was made (``command``: by default the
    ``studies.run`` command of the config's scale), then the study's own body."""
    if command is None:
        command = f".venv/bin/python -m studies.run {config['name']} --scale {config['scale']}"
    header = (
        f"# {config['name']}: {config.get('title', '')}\n\n"
        f"Made with `{command}` in {seconds / 60:.1f} min on this machine "
        f"({time.strftime('%Y-%m-%d')}). Data: {config.get('data', _FAST_SIMULATION)}.\n\n"
    )
    path = out / "report.md"
    path.write_text(header + body.strip() + "\n")
    return path


def markdown(frame: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table, floats to 4 significant digits."""
    rows = [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row] for row in frame.values]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|---" * frame.shape[1] + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


# The paper's criteria, fixed before any run and the same in every study: performance is the
# mean test loss of a model's instances (CRITERIA["mean"]), robustness their spread, ranked by
# the standard deviation (CRITERIA["std"]); a difference counts when its 95 % interval
# (LEVEL) excludes zero (calo/comparison.py).
__all__ = ["CRITERIA", "LEVEL", "Difference", "compare", "student_quantile"]
VERDICTS = ("reproduced", "direction only", "not reproduced", "not tested at this scale")


def criteria_table(losses: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """Per model: instances, mean, std, and the rank by each criterion (1 = best).

    The rows keep the order of ``losses``; a model with a diverged instance has mean and std
    ``inf``.
    """
    rows = []
    for model, values in losses.items():
        array = np.asarray(values, dtype=float)
        finite = bool(np.all(np.isfinite(array)))
        rows.append(
            {
                "model": model,
                "instances": array.size,
                "mean": float(array.mean()) if finite else math.inf,
                "std": float(array.std(ddof=1)) if finite and array.size > 1 else math.inf,
            }
        )
    table = pd.DataFrame(rows)
    for criterion in CRITERIA:
        table[f"rank by {criterion}"] = table[criterion].rank(method="min").astype(int)
    return table


def verdict(*, tested: bool, agrees: bool, decided: bool) -> str:
    """The report's word for one finding of the paper, from the numbers.

    Args:
        tested:
            This scale can show the finding at all (its sizes, instances or space reach it).
        agrees:
            The estimates point the paper's way.
        decided:
            ... and the intervals establish it.
    """
    if not tested:
        return VERDICTS[3]
    if not agrees:
        return VERDICTS[2]
    return VERDICTS[0] if decided else VERDICTS[1]


def findings_table(findings: Sequence[Mapping[str, str]]) -> str:
    """The "Compared with the paper" table: finding, the paper, here (the numbers), verdict."""
    return markdown(pd.DataFrame(findings, columns=["finding", "paper", "here", "verdict"]))


def robust_from(losses_by_size: Mapping[int, Sequence[float]], tolerance: float) -> int | None:
    """Smallest training size whose instances are shown to be as good as at every larger size.

    A size qualifies when, against every larger size, the 95 % interval of the difference of
    mean losses lies below ``tolerance`` times the larger size's mean (shown close, not merely
    not shown different) and its spread is not decidedly larger (:func:`compare`). The largest
    size has nothing to be compared with and never qualifies: ``None`` means that no size was
    shown to have reached the loss of the larger ones.
    """
    sizes = sorted(losses_by_size)
    for k, size in enumerate(sizes[:-1]):
        larger = [losses_by_size[other] for other in sizes[k + 1 :]]
        close = all(
            compare(losses_by_size[size], values, "mean").high
            <= tolerance * float(np.mean(values))
            for values in larger
        )
        steady = all(compare(losses_by_size[size], values, "std").low <= 0 for values in larger)
        if close and steady:
            return size
    return None


def lead_finding(
    losses: Mapping[str, Sequence[float]],
    expected: Sequence[str],
    criterion: str,
    *,
    finding: str,
    paper: str,
    tested: bool,
) -> dict[str, str]:
    """The finding "the models ``expected`` rank first by ``criterion``", with its verdict.

    It agrees when the best ``len(expected)`` models by the criterion are ``expected``; it is
    decided when each of them is decidedly better than every other model.
    """
    table = criteria_table(losses).sort_values([f"rank by {criterion}", "model"])
    top = list(table["model"][: len(expected)])
    others = [model for model in losses if model not in expected]
    decided = all(
        compare(losses[model], losses[other], criterion).high < 0
        for model in expected
        for other in others
    )
    ranks = ", ".join(f"{r.model} {getattr(r, criterion):.4g}" for r in table.itertuples())
    return {
        "finding": finding,
        "paper": paper,
        "here": f"by {criterion}: {ranks}",
        "verdict": verdict(tested=tested, agrees=set(top) == set(expected), decided=decided),
    }
