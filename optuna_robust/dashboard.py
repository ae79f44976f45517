"""Attach a robust selection's results to its study, so optuna-dashboard shows them as they are.

``optuna-dashboard sqlite:///robust.db --artifact-dir artifacts`` then shows the study note (the
rounds, the budget, the winners' robustness and embedded figures), an interactive plot of the
instance losses per model, and each attached model's boxplot and instance records as artifacts.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import json
import math
import os
from pathlib import Path
import tempfile
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial
import pandas as pd

from optuna_robust._imports import import_optional
from optuna_robust._pruner import RobustPruner
from optuna_robust._records import PHASES
from optuna_robust._records import WINNER_KEY
from optuna_robust._records import Phase
from optuna_robust._records import instance_losses
from optuna_robust._records import records
from optuna_robust._report import robustness_report
from optuna_robust._select import SelectionResult
from optuna_robust.plots import _format_value
from optuna_robust.plots import _plot_trial
from optuna_robust.plots import plot_instance_losses
from optuna_robust.plots import plot_selection_funnel

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["SelectionArtifacts", "TrialArtifacts", "attach_selection", "attach_trial"]

GRAPH_OBJECT_ID = "robust-instance-losses"
# Where optuna.artifacts.upload_artifact keeps an artifact's metadata (study system attrs).
_ARTIFACT_ATTR_PREFIX = "artifacts:"
_DPI = 100


@dataclasses.dataclass(frozen=True)
class TrialArtifacts:
    """The artifacts :func:`attach_trial` uploaded for one model (ids of study artifacts).

    Attributes:
        trial:
            The trial number.
        boxplot:
            The PNG of its instance losses, one box per phase.
        records_csv:
            Its instance records as a table: phase, index, loss, seeds and scalar extras.
        records_json:
            Its params and full instance records, per-epoch curves included.
    """

    trial: int
    boxplot: str
    records_csv: str
    records_json: str


@dataclasses.dataclass(frozen=True)
class SelectionArtifacts:
    """What :func:`attach_selection` attached to the study.

    Attributes:
        note:
            The Markdown of the study note.
        funnel:
            Artifact id of the selection funnel PNG.
        winners_boxplot:
            Artifact id of the PNG of the winners' final instance losses.
        rounds_csv:
            Artifact id of the round table as CSV.
        trials:
            The artifacts of each attached model, winners first.
        graph_object_id:
            Id of the interactive plotly figure of instance losses per model.
    """

    note: str
    funnel: str
    winners_boxplot: str
    rounds_csv: str
    trials: list[TrialArtifacts]
    graph_object_id: str


def attach_selection(
    study: optuna.Study,
    result: SelectionResult,
    *,
    artifact_dir: str | os.PathLike[str],
    max_trials: int = 20,
) -> SelectionArtifacts:
    """Attach a selection's summary, figures and instance records to its study.

    Writes a study note with the round table, the budget (instances trained against the
    exhaustive search), the winners' robustness over their final instances and two embedded
    figures (the funnel and the winners' boxplot); uploads each attached model's boxplot and
    instance records (CSV and JSON) as study artifacts; and saves an interactive plotly figure
    of the instance losses per model (hover a point for the model's params and the instance).
    Only the winners and the best models of the last rounds are attached, ``max_trials`` in
    all, never the thousands of models pruned in the first rounds. Calling it again replaces
    what it attached before (same artifact ids), so nothing piles up.

    Example:

        .. code-block:: python

            import optuna
            import optuna_dashboard
            import optuna_robust
            from optuna_robust.dashboard import attach_selection

            space = {"width": [8, 16, 32], "lr": [0.001, 0.01]}
            study = optuna.create_study(
                sampler=optuna_robust.RobustSampler(space, seed=0),
                pruner=optuna_robust.RobustPruner(statistic="mean"),
            )


            def train_fn(params, instances):
                return [params["lr"] * 10 + 1 / params["width"] + (i.init_seed % 9) / 300
                        for i in instances]


            result = optuna_robust.select(study, train_fn, final_instances=10)
            attached = attach_selection(study, result, artifact_dir="artifacts", max_trials=1)
            assert "Budget" in optuna_dashboard.get_note(study)
            # then: optuna-dashboard <storage URL> --artifact-dir artifacts

    Args:
        study:
            The study the selection ran on.
        result:
            What :func:`~optuna_robust.select` returned for it.
        artifact_dir:
            Directory of the :class:`~optuna.artifacts.FileSystemArtifactStore`; created if
            missing. Pass the same to ``optuna-dashboard --artifact-dir``.
        max_trials:
            How many models get their own boxplot, records and a place in the interactive
            figure: the winners, then the models that got the most instances (ties: the lower
            statistic).

    Returns:
        The note and the ids of what was attached.

    Raises:
        ValueError: An argument has the wrong type or range, or a winner is not from ``study``.
    """
    _check_study(study)
    if not isinstance(result, SelectionResult):
        raise ValueError(
            f"result must be the SelectionResult of optuna_robust.select but got "
            f"{type(result).__name__}."
        )
    if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 0:
        raise ValueError(f"max_trials must be an integer >= 0 but got {max_trials!r}.")
    store = _store(artifact_dir)
    for winner in result.winners:
        _checked_trial(study, winner)
    trials = _best_trials(study, result, max_trials)
    baseline = study.pruner.baseline if isinstance(study.pruner, RobustPruner) else None

    attached = [_attach_trial(study, t, store, baseline) for t in trials]
    funnel = _upload_figure(study, store, plot_selection_funnel(result), "selection-funnel.png")
    winner_phase: Phase = "final" if result.budget.final_instances else "selection"
    winners_figure = (
        plot_instance_losses(result.winners, phase=winner_phase, baseline=baseline)
        if result.winners
        else None
    )
    winners_boxplot = (
        _upload_figure(study, store, winners_figure, "selection-winners.png")
        if winners_figure is not None
        else ""
    )
    rounds_csv = _upload_bytes(
        study, store, result.rounds.to_csv(index=False).encode(), "selection-rounds.csv"
    )
    graph_id = _save_interactive(study, trials)
    note = _selection_note(
        study, result, funnel, winners_boxplot, rounds_csv, trials, attached, winner_phase
    )
    optuna_dashboard = import_optional("optuna_dashboard")
    optuna_dashboard.save_note(study, note)
    return SelectionArtifacts(note, funnel, winners_boxplot, rounds_csv, attached, graph_id)


def attach_trial(
    study: optuna.Study,
    trial: FrozenTrial | int,
    *,
    artifact_dir: str | os.PathLike[str],
) -> TrialArtifacts:
    """Upload one model's boxplot and instance records as artifacts of its study.

    The artifacts belong to the study (Optuna cannot attach artifacts to a finished trial) and
    are named after the trial: ``trial-00042-instances.png``, ``.csv`` and ``.json``. Calling
    it again replaces them in place.

    Example:

        .. code-block:: python

            import optuna
            import optuna_robust
            from optuna_robust.dashboard import attach_trial

            study = optuna.create_study(
                sampler=optuna_robust.RobustSampler({"lr": [0.01, 0.1]}, seed=0),
                pruner=optuna_robust.RobustPruner(max_instances=4),
            )


            def objective(trial):
                lr = trial.suggest_categorical("lr", [0.01, 0.1])
                return optuna_robust.evaluate_instances(
                    trial, lambda instances: [lr + i.index / 100 for i in instances]
                )


            study.optimize(objective)
            attached = attach_trial(study, study.best_trial, artifact_dir="artifacts")
            names = {a.filename for a in optuna.artifacts.get_all_artifact_meta(study)}
            assert "trial-00000-instances.png" in names or "trial-00001-instances.png" in names

    Args:
        study:
            The study of the trial.
        trial:
            The trial, or its number.
        artifact_dir:
            Directory of the :class:`~optuna.artifacts.FileSystemArtifactStore`; created if
            missing.

    Returns:
        The ids of the uploaded artifacts.

    Raises:
        ValueError: The trial is not from ``study`` or has no instance records.
    """
    _check_study(study)
    if isinstance(trial, int) and not isinstance(trial, bool):
        try:
            trial_id = study._storage.get_trial_id_from_study_id_trial_number(
                study._study_id, trial
            )
        except KeyError:
            raise ValueError(f"Study {study.study_name!r} has no trial number {trial}.") from None
        trial = study._storage.get_trial(trial_id)
    frozen = _checked_trial(study, trial)
    store = _store(artifact_dir)
    baseline = study.pruner.baseline if isinstance(study.pruner, RobustPruner) else None
    return _attach_trial(study, frozen, store, baseline)


# --- helpers -------------------------------------------------------------------------------


def _check_study(study: object) -> None:
    if not isinstance(study, optuna.Study):
        raise ValueError(f"study must be an optuna.Study but got {type(study).__name__}.")


def _checked_trial(study: optuna.Study, trial: object) -> FrozenTrial:
    if not isinstance(trial, FrozenTrial):
        raise ValueError(f"trial must be a FrozenTrial or a number but got {trial!r}.")
    try:
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(
            study._study_id, trial.number
        )
    except KeyError:
        trial_id = None
    # Ids alone can coincide across storages: the start time and params pin the trial down.
    stored = None if trial_id is None else study._storage.get_trial(trial_id)
    if (
        stored is None
        or trial_id != trial._trial_id
        or stored.datetime_start != trial.datetime_start
        or stored.params != trial.params
    ):
        raise ValueError(
            f"Trial {trial.number} (id {trial._trial_id}) is not a trial of study "
            f"{study.study_name!r}; pass the study the selection ran on."
        )
    return trial


def _store(artifact_dir: str | os.PathLike[str]) -> optuna.artifacts.FileSystemArtifactStore:
    if not isinstance(artifact_dir, str | os.PathLike):
        raise ValueError(f"artifact_dir must be a directory path but got {artifact_dir!r}.")
    path = Path(artifact_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"artifact_dir {str(path)!r} exists and is not a directory.")
    path.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(path)


def _best_trials(
    study: optuna.Study, result: SelectionResult, max_trials: int
) -> list[FrozenTrial]:
    """The winners, then the models that went furthest (most instances, lower statistic)."""
    winners = {t.number for t in result.winners}
    all_trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in all_trials}
    candidates = []
    for trial in all_trials:
        if trial.number in winners:
            continue
        steps = trial.intermediate_values
        if not steps:
            continue
        last = max(steps)
        value = steps[last]
        candidates.append((-last, value if math.isfinite(value) else math.inf, trial.number))
    candidates.sort()
    others = [by_number[n] for _, _, n in candidates]
    keep = max(max_trials - len(result.winners), 0)
    return [by_number[t.number] for t in result.winners] + others[:keep]


def _existing_artifacts(study: optuna.Study) -> dict[str, str]:
    """Filename -> artifact id of the study's artifacts (skipping ones deleted in the UI)."""
    found = {}
    for key, value in study._storage.get_study_system_attrs(study._study_id).items():
        if key.startswith(_ARTIFACT_ATTR_PREFIX):
            meta = json.loads(value) if isinstance(value, str) else None
            if isinstance(meta, dict) and "filename" in meta:
                found[meta["filename"]] = meta["artifact_id"]
    return found


def _upload_bytes(
    study: optuna.Study,
    store: optuna.artifacts.FileSystemArtifactStore,
    content: bytes,
    filename: str,
) -> str:
    """Upload ``content`` as study artifact ``filename``, replacing one of the same name."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / filename
        path.write_bytes(content)
        existing = _existing_artifacts(study).get(filename)
        if existing is not None:
            with path.open("rb") as file:
                store.write(existing, file)
            return existing
        artifact_id: str = optuna.artifacts.upload_artifact(
            study_or_trial=study, file_path=str(path), artifact_store=store
        )
        return artifact_id


def _upload_figure(
    study: optuna.Study,
    store: optuna.artifacts.FileSystemArtifactStore,
    figure: Figure,
    filename: str,
) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / filename
        figure.savefig(path, dpi=_DPI)
        return _upload_bytes(study, store, path.read_bytes(), filename)


def _records_table(trial: FrozenTrial) -> pd.DataFrame:
    rows = []
    for phase in PHASES:
        for index, record in enumerate(records(trial, phase)):
            row: dict[str, Any] = {"phase": phase, "index": index}
            row.update({k: v for k, v in record.items() if not isinstance(v, list | dict)})
            rows.append(row)
    return pd.DataFrame(rows)


def _attach_trial(
    study: optuna.Study,
    trial: FrozenTrial,
    store: optuna.artifacts.FileSystemArtifactStore,
    baseline: float | None,
) -> TrialArtifacts:
    stem = f"trial-{trial.number:05d}-instances"
    boxplot = _upload_figure(study, store, _plot_trial(trial, baseline=baseline), f"{stem}.png")
    table = _records_table(trial)
    records_csv = _upload_bytes(study, store, table.to_csv(index=False).encode(), f"{stem}.csv")
    document: dict[str, Any] = {
        "trial": trial.number,
        "state": trial.state.name,
        "params": trial.params,
        **{phase: records(trial, phase, series=True) for phase in PHASES},
    }
    content = json.dumps(document, indent=1, default=str).encode()
    records_json = _upload_bytes(study, store, content, f"{stem}.json")
    return TrialArtifacts(trial.number, boxplot, records_csv, records_json)


def _artifact_url(study: optuna.Study, artifact_id: str) -> str:
    # The route optuna-dashboard serves study artifacts on (what its own note editor inserts).
    return f"/artifacts/{study._study_id}/{artifact_id}"


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_format_value(v)}" for k, v in params.items())


def _number(value: float) -> str:
    return "∞" if not math.isfinite(value) else f"{value:.4g}"


def _markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    # Centred: optuna-dashboard draws tables without cell padding, so headers and numbers
    # that share their centre line read best.
    rule = "|" + "|".join(":---:" for _ in frame.columns) + "|"
    rows = []
    for row in frame.itertuples(index=False):
        cells = [_number(v) if isinstance(v, float) else str(v) for v in row]
        cells = [cell.replace("|", "\\|") for cell in cells]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows])


def _selection_note(
    study: optuna.Study,
    result: SelectionResult,
    funnel: str,
    winners_boxplot: str,
    rounds_csv: str,
    trials: Sequence[FrozenTrial],
    attached: Sequence[TrialArtifacts],
    winner_phase: Phase,
) -> str:
    budget = result.budget
    rounds = result.rounds
    candidates = int(rounds["models"].iloc[0]) if not rounds.empty else 0
    lines = ["## Robust selection", ""]
    if result.winners:
        report = robustness_report(result.winners, phase=winner_phase)
        for winner in result.winners:
            row = report.loc[report["trial"] == winner.number].iloc[0]
            lines.append(
                f"* Winner **trial {winner.number}** ({_params_text(winner.params)}): mean test "
                f"loss {_number(row['mean'])}, std {_number(row['std'])} over "
                f"{int(row['instances'])} {winner_phase} instances."
            )
    else:
        lines.append("No model survived the selection: check the baseline gate.")
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
        f"![Selection funnel]({_artifact_url(study, funnel)})",
        "",
        "### Rounds",
        "",
        "Each model's intermediate values are its statistic after 1, 2, 4, … instances "
        "(step = instances), so the intermediate-values plot shows the halving.",
        "",
    ]
    table = rounds.rename(
        columns={
            "instances_per_model": "instances per model",
            "instances": "instances trained",
        }
    )
    lines += [_markdown_table(table), "", f"[Rounds as CSV]({_artifact_url(study, rounds_csv)})"]
    if result.winners:
        report = robustness_report(result.winners, phase=winner_phase)
        report = report.drop(columns=["statistic", "state"])
        report.columns = [c.removeprefix("params_") for c in report.columns]
        lines += [
            "",
            f"### Winners' robustness ({winner_phase} instances)",
            "",
            _markdown_table(report),
            "",
            f"![Winners' instance losses]({_artifact_url(study, winners_boxplot)})",
        ]
    if attached:
        lines += [
            "",
            "### Best models of the last rounds",
            "",
            f"The interactive plot *{_GRAPH_TITLE}* on the study's main page shows every "
            "instance of these models (hover a point for the model's params and the instance). "
            "Mean and std below are over all of a model's instances, selection and final.",
            "",
            "| trial | state | params | instances | mean | std | figure | records |",
            "|:---:|:---:|:---|:---:|:---:|:---:|:---:|:---:|",
        ]
        for trial, artifacts in zip(trials, attached):
            losses = instance_losses(trial, phase="all")
            finite = losses[np.isfinite(losses)]
            mean = float(np.mean(losses)) if finite.size == losses.size else math.inf
            std = float(np.std(finite, ddof=1)) if finite.size > 1 else 0.0
            state = trial.state.name + (" (winner)" if WINNER_KEY in trial.system_attrs else "")
            lines.append(
                f"| {trial.number} | {state} | {_params_text(trial.params)} | {losses.size} | "
                f"{_number(mean)} | {_number(std)} | "
                f"[PNG]({_artifact_url(study, artifacts.boxplot)}) | "
                f"[CSV]({_artifact_url(study, artifacts.records_csv)}) · "
                f"[JSON]({_artifact_url(study, artifacts.records_json)}) |"
            )
    return "\n".join(lines) + "\n"


_GRAPH_TITLE = "Instance losses per model"


def _save_interactive(study: optuna.Study, trials: Sequence[FrozenTrial]) -> str:
    """A plotly box per model with every instance as a point; hover shows the params."""
    go = import_optional("plotly.graph_objects")
    figure = go.Figure()
    for trial in trials:
        params = "<br>".join(f"{k}={_format_value(v)}" for k, v in trial.params.items())
        winner = WINNER_KEY in trial.system_attrs
        losses, custom = [], []
        for phase in PHASES:
            for index, record in enumerate(records(trial, phase)):
                loss = float(record["loss"])
                if math.isfinite(loss):
                    losses.append(loss)
                    custom.append([phase, index])
        figure.add_trace(
            go.Box(
                y=losses,
                name=f"#{trial.number}",
                customdata=custom,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker={"size": 4},
                line={"width": 1},
                fillcolor="rgba(31,119,180,0.35)" if winner else "rgba(160,160,160,0.35)",
                marker_color="rgb(31,119,180)" if winner else "rgb(110,110,110)",
                hoveron="points",
                hovertemplate=(
                    f"<b>trial {trial.number}</b> ({trial.state.name}"
                    f"{', winner' if winner else ''})<br>{params}<br>"
                    "%{customdata[0]} instance %{customdata[1]}<br>"
                    "test loss %{y:.5g}<extra></extra>"
                ),
            )
        )
    figure.update_layout(
        title={"text": f"{_GRAPH_TITLE} (hover for params)"},
        xaxis_title="model (trial)",
        yaxis_title="test loss",
        showlegend=False,
        template="plotly_white",
        height=450,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
    )
    optuna_dashboard = import_optional("optuna_dashboard")
    graph_id: str = optuna_dashboard.save_plotly_graph_object(
        study, figure, graph_object_id=GRAPH_OBJECT_ID
    )
    return graph_id
