"""The Markdown of the dashboard notes, as pure functions of the data: no storage, no files.

Tables stay narrow enough for a 1280 px browser window: params shared by every listed model
are stated once above the table, and only the params that vary get a column.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial
import pandas as pd

from optuna_robust._records import PHASES
from optuna_robust._records import WINNER_KEY
from optuna_robust._records import Phase
from optuna_robust._records import instance_losses
from optuna_robust._report import robustness_report
from optuna_robust._select import SelectionResult
from optuna_robust.visualization._utils import format_number
from optuna_robust.visualization._utils import format_value
from optuna_robust.visualization._utils import mean_loss
from optuna_robust.visualization._utils import spread
from optuna_robust.visualization._utils import varying_params

SELECTION_HEADING = "## Robust selection"
COMPARISON_HEADING = "## Robust selection vs TPE"
INSTANCE_GRAPH_TITLE = "Instance losses per model"
STATISTIC_GRAPH_TITLE = "Statistic over instances per model"
CELL_PAD = "\u2002"  # an en space


@dataclasses.dataclass(frozen=True)
class ModelRow:
    """One model in a note table: what is shown of it and where its files are.

    Attributes:
        label:
            What the first column says (``"12"``, ``"robust selection"``).
        params:
            The model's params.
        losses:
            Its instance losses.
        links:
            ``(text, url)`` pairs: its trial page, figure and records.
        state:
            Its trial state, or ``""`` for none.
    """

    label: str
    params: Mapping[str, Any]
    losses: np.ndarray
    links: Sequence[tuple[str, str]] = ()
    state: str = ""


def artifact_url(study_id: int, artifact_id: str, trial_id: int | None = None) -> str:
    """Where optuna-dashboard serves a study's (or, with ``trial_id``, a trial's) artifact."""
    if trial_id is None:
        return f"/artifacts/{study_id}/{artifact_id}"
    return f"/artifacts/{study_id}/{trial_id}/{artifact_id}"


def trial_page_url(study_id: int, number: int) -> str:
    """The optuna-dashboard page of trial ``number`` (its params, values and artifacts)."""
    return f"/dashboard/studies/{study_id}/trials?numbers={number}"


def note_page_url(study_id: int) -> str:
    """The optuna-dashboard page of a study's note."""
    return f"/dashboard/studies/{study_id}/note"


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table: floats with 4 significant digits, missing ones as –."""
    header = _table_row(str(c) for c in frame.columns)
    rule = "|" + "|".join(":---:" for _ in frame.columns) + "|"
    rows = []
    for row in frame.itertuples(index=False):
        cells = [format_number(v) if isinstance(v, float) else str(v) for v in row]
        rows.append(_table_row(cell.replace("|", "\\|") for cell in cells))
    return "\n".join([header, rule, *rows])


def _table_row(cells: Iterable[str]) -> str:
    # optuna-dashboard draws tables without cell padding, so "instances per model" ran into
    # "models": an en space each side (kept, where plain spaces are trimmed) parts the
    # columns, and centring lines headers up with their numbers.
    return "| " + " | ".join(f"{CELL_PAD}{cell}{CELL_PAD}" for cell in cells) + " |"


def params_text(params: Mapping[str, Any]) -> str:
    """``width=32, lr=0.01``."""
    return ", ".join(f"{k}={format_value(v)}" for k, v in params.items())


def models_table(rows: Sequence[ModelRow], *, first: str = "trial") -> list[str]:
    """Lines of a table of models: the shared params once, then a column per varying param.

    A model with one instance has no spread: its std reads "–", not 0.
    """
    varying, shared = varying_params([row.params for row in rows])
    lines = []
    if shared and len(rows) > 1:
        lines += [f"Shared by every model below: {params_text(shared)}.", ""]
    frame = pd.DataFrame(
        {
            first: [row.label for row in rows],
            **({"state": [row.state for row in rows]} if any(r.state for r in rows) else {}),
            **{name: [format_value(row.params.get(name, "")) for row in rows] for name in varying},
            "instances": [int(row.losses.size) for row in rows],
            "mean": [mean_loss(row.losses) for row in rows],
            "std": [spread(row.losses) for row in rows],
        }
    )
    if any(row.links for row in rows):
        frame["files"] = [" · ".join(f"[{text}]({url})" for text, url in r.links) for r in rows]
    lines.append(markdown_table(frame))
    return lines


def trial_note(
    trial: FrozenTrial,
    *,
    figure_url: str,
    links: Sequence[tuple[str, str]],
    baseline: float | None = None,
) -> str:
    """The note on a model's trial page: its figure at full width and its losses per phase."""
    winner = " (winner)" if WINNER_KEY in trial.system_attrs else ""
    lines = [f"### Instances of trial {trial.number}{winner}", ""]
    lines += [f"![Instance losses and loss curves of trial {trial.number}]({figure_url})", ""]
    phases = {phase: instance_losses(trial, phase=phase) for phase in PHASES}
    frame = pd.DataFrame(
        [
            {
                "phase": phase,
                "instances": int(losses.size),
                "mean": mean_loss(losses),
                "median": float(np.median(losses)),
                "std": spread(losses),
                "min": float(np.min(losses)),
                "max": float(np.max(losses)),
            }
            for phase, losses in phases.items()
            if losses.size
        ]
    )
    lines.append(markdown_table(frame))
    lines.append("")
    if baseline is not None:
        lines.append(f"Baseline loss: {format_number(baseline)}.")
    lines.append("Records: " + " · ".join(f"[{text}]({url})" for text, url in links) + ".")
    return "\n".join(lines) + "\n"


def selection_note(
    result: SelectionResult,
    *,
    winner_phase: Phase,
    funnel_url: str,
    winners_url: str | None,
    models: Sequence[ModelRow],
    baseline: float | None = None,
) -> str:
    """The study note of a selection: winners, budget, rounds, robustness, best models."""
    budget = result.budget
    rounds = result.rounds
    candidates = int(rounds["models"].iloc[0]) if not rounds.empty else 0
    lines = [SELECTION_HEADING, ""]
    report = robustness_report(result.winners, phase=winner_phase) if result.winners else None
    if report is not None:
        for winner in result.winners:
            row = report.loc[report["trial"] == winner.number].iloc[0]
            std = format_number(row["std"]) if row["instances"] > 1 else format_number(None)
            lines.append(
                f"* Winner **trial {winner.number}** ({params_text(winner.params)}): mean test "
                f"loss {format_number(row['mean'])}, std {std} over "
                f"{int(row['instances'])} {winner_phase} instances."
            )
    else:
        lines.append("No model survived the selection: check the baseline gate.")
    if baseline is not None:
        lines.append(f"* Baseline loss: {format_number(baseline)}.")
    final_per_model = budget.exhaustive // candidates if candidates else 0
    lines += [
        "",
        "### Budget",
        "",
        f"{budget.selection_instances:,} selection instances + {budget.final_instances:,} final "
        f"instances = **{budget.instances:,} trainings**, against {budget.exhaustive:,} for an "
        f"exhaustive search with the same guarantee ({candidates:,} models × "
        f"{final_per_model:,} instances): **{budget.fraction:.1%}**.",
        "",
        f"![Selection funnel]({funnel_url})",
        "",
        "### Rounds",
        "",
        "Each model's intermediate values are its statistic after 1, 2, 4, … instances "
        f"(step = instances); the plot *{STATISTIC_GRAPH_TITLE}* on the study's main page "
        "shows the same on an axis of instances.",
        "",
        markdown_table(
            rounds.rename(
                columns={
                    "instances_per_model": "instances per model",
                    "instances": "instances trained",
                }
            )
        ),
    ]
    if report is not None:
        lines += ["", f"### Winners' robustness ({winner_phase} instances)", ""]
        lines.append(_robustness_table(report, result.winners))
        if winners_url is not None:
            lines += ["", f"![Winners' instance losses]({winners_url})"]
    if models:
        lines += [
            "",
            "### Best models of the last rounds",
            "",
            f"The plot *{INSTANCE_GRAPH_TITLE}* on the study's main page shows every instance "
            "of these models (hover a point for its params). Mean and std are over all of a "
            "model's instances, selection and final; each trial's page holds its figure and "
            "records.",
            "",
            *models_table(models),
        ]
    return "\n".join(lines) + "\n"


def comparison_section(
    rows: Sequence[ModelRow],
    *,
    figure_url: str,
    baseline: float | None = None,
    see_also: Sequence[tuple[str, str]] = (),
) -> str:
    """The note section that sets the robust winner beside the models a TPE search picked.

    Args:
        rows:
            The robust winner first, then the TPE models, each with its fresh instances.
        figure_url:
            Where the :func:`plot_robust_vs_tpe` figure is served.
        baseline:
            The baseline loss, stated under the table.
        see_also:
            ``(text, url)`` links to the other studies' pages.
    """
    lines = [
        COMPARISON_HEADING,
        "",
        "Each model measured on fresh instances (lower is better): the robust winner's final "
        "instances beside the models a TPE search picked.",
        "",
    ]
    frame = pd.DataFrame(
        {
            "model": [row.label for row in rows],
            "instances": [int(row.losses.size) for row in rows],
            "mean": [mean_loss(row.losses) for row in rows],
            "median": [float(np.median(row.losses)) for row in rows],
            "std": [spread(row.losses) for row in rows],
            "max": [float(np.max(row.losses)) for row in rows],
        }
    )
    lines.append(markdown_table(frame))
    if baseline is not None:
        lines += ["", f"Baseline loss: {format_number(baseline)}."]
    lines += ["", f"![Robust selection vs TPE]({figure_url})", "", "Params:", ""]
    lines += [f"* {row.label}: {params_text(row.params)}" for row in rows]
    if see_also:
        lines += ["", "See also: " + " · ".join(f"[{text}]({url})" for text, url in see_also)]
    return "\n".join(lines) + "\n"


def replace_section(note: str, heading: str, section: str | None) -> str:
    """``note`` with its section under ``heading`` replaced by ``section`` (appended if absent).

    A section runs to the next heading of its level or above. ``None`` keeps the note as is.
    """
    if section is None:
        return note
    lines = note.splitlines()
    span = _section_span(lines, heading)
    if span is None:
        kept = note.rstrip("\n")
        return (kept + "\n\n" if kept else "") + section
    before = "\n".join(lines[: span[0]]).rstrip("\n")
    after = "\n".join(lines[span[1] :]).strip("\n")
    parts = [part for part in (before, section.rstrip("\n"), after) if part]
    return "\n\n".join(parts) + "\n"


def section_of(note: str, heading: str) -> str | None:
    """The section of ``note`` under ``heading``, or ``None`` if it has none."""
    lines = note.splitlines()
    span = _section_span(lines, heading)
    if span is None:
        return None
    return "\n".join(lines[span[0] : span[1]]).rstrip("\n") + "\n"


def _section_span(lines: list[str], heading: str) -> tuple[int, int] | None:
    level = len(heading) - len(heading.lstrip("#"))
    start = next((k for k, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        return None
    end = start + 1
    while end < len(lines):
        hashes = len(lines[end]) - len(lines[end].lstrip("#"))
        if 0 < hashes <= level and lines[end][hashes : hashes + 1] == " ":
            break
        end += 1
    return start, end


def _robustness_table(report: pd.DataFrame, winners: Sequence[FrozenTrial]) -> str:
    """The winners' statistics, best first, with a column per param that differs among them."""
    params = {w.number: w.params for w in winners}
    varying, _ = varying_params(list(params.values()))
    frame = report[["trial", "instances", "mean", "median", "std", "iqr", "min", "max"]].copy()
    frame["std"] = frame["std"].where(frame["instances"] > 1)  # one instance: no spread
    for name in varying:
        frame[name] = [format_value(params[n].get(name, "")) for n in frame["trial"]]
    return markdown_table(frame)
