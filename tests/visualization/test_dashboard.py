"""attach_selection: the note, study artifacts and plotly figures a selection leaves behind."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import optuna_dashboard
import pandas as pd
import pytest

import optuna_robust
from optuna_robust.visualization import SelectionArtifacts
from optuna_robust.visualization import TrialArtifactsCallback
from optuna_robust.visualization import attach_selection
from optuna_robust.visualization._dashboard import GRAPH_OBJECT_ID
from optuna_robust.visualization._dashboard import STATISTIC_GRAPH_OBJECT_ID
from optuna_robust.visualization._note import CELL_PAD
from tests.visualization._selection import FINAL_INSTANCES
from tests.visualization._selection import N_CANDIDATES
from tests.visualization._selection import curve_train
from tests.visualization._selection import run_selection

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def attached(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[optuna.Study, optuna_robust.SelectionResult, SelectionArtifacts, Path]:
    # Each model's files go on its trial while select still holds it open; by the time
    # attach_selection runs every trial is finished, and the storage (in memory or SQLite
    # alike) refuses attributes on finished trials: attach_selection writes only to the study.
    artifact_dir = tmp_path_factory.mktemp("artifacts")
    study, result = run_selection(callbacks=[TrialArtifactsCallback(artifact_dir)])
    artifacts = attach_selection(study, result, artifact_dir=artifact_dir, max_trials=4)
    return study, result, artifacts, artifact_dir


def study_note_from_system_attrs(study: optuna.Study) -> str:
    """The study note as optuna-dashboard stores it: version plus 2,045-character chunks."""
    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert attrs["dashboard:note_ver"] >= 1
    chunks = {k: v for k, v in attrs.items() if k.startswith("dashboard:note_str:")}
    return "".join(chunks[f"dashboard:note_str:{i}"] for i in range(len(chunks)))


def test_attach_selection_writes_the_study_note(
    attached: tuple[optuna.Study, optuna_robust.SelectionResult, SelectionArtifacts, Path],
) -> None:
    study, result, artifacts, _ = attached
    stored = study_note_from_system_attrs(study)
    assert stored == artifacts.note == optuna_dashboard.get_note(study)
    note = stored.replace(CELL_PAD, "")  # table cells are padded with en spaces
    budget = result.budget
    assert f"**{budget.instances:,} trainings**" in note
    assert f"against {budget.exhaustive:,} for an exhaustive search" in note
    assert f"({N_CANDIDATES} models × {FINAL_INSTANCES} instances)" in note
    assert f"**{budget.fraction:.1%}**" in note
    for winner in result.winners:
        assert f"Winner **trial {winner.number}**" in note
    # The round table: a header, a rule and one row per round.
    table = [line for line in note.splitlines() if line.startswith("| ") and "survivors" in line]
    assert len(table) == 1
    start = note.splitlines().index(table[0])
    rows = note.splitlines()[start + 2 : start + 2 + len(result.rounds)]
    assert [int(row.split("|")[1]) for row in rows] == result.rounds["round"].tolist()
    # The winners' robustness table comes from robustness_report over the final instances.
    report = optuna_robust.robustness_report(result.winners, phase="final")
    assert f"| {FINAL_INSTANCES} | {report['mean'].iloc[0]:.4g} |" in note
    # Both figures are embedded the way optuna-dashboard serves study artifacts.
    prefix = f"/artifacts/{study._study_id}/"
    assert f"![Selection funnel]({prefix}{artifacts.funnel})" in note
    assert f"![Winners' instance losses]({prefix}{artifacts.winners_boxplot})" in note
    # The table of attached models: the winners and the two best pruned ones, with links.
    assert note.count("| COMPLETE (winner) |") == 2
    assert note.count("| PRUNED |") == 2
    trial_ids = {t.number: t._trial_id for t in study.trials}
    for files in artifacts.trials:
        on_trial = f"{prefix}{trial_ids[files.trial]}/"
        assert f"[PNG]({on_trial}{files.boxplot})" in note
        assert f"[CSV]({on_trial}{files.records_csv})" in note
        assert f"[page](/dashboard/studies/{study._study_id}/trials?numbers={files.trial})" in note


def test_attach_selection_keeps_the_study_artifacts_few_and_the_models_on_their_trials(
    attached: tuple[optuna.Study, optuna_robust.SelectionResult, SelectionArtifacts, Path],
) -> None:
    study, result, artifacts, artifact_dir = attached
    metas = {m.artifact_id: m for m in optuna.artifacts.get_all_artifact_meta(study)}
    assert {m.filename for m in metas.values()} == {
        "selection-funnel.png",
        "selection-winners.png",
    }
    assert metas[artifacts.funnel].mimetype == "image/png"
    assert (artifact_dir / artifacts.funnel).read_bytes()[:8] == PNG
    numbers = [t.trial for t in artifacts.trials]
    assert len(numbers) == 4
    assert numbers[:2] == [t.number for t in result.winners]  # winners first
    assert all(t.on_trial for t in artifacts.trials)

    winner = result.winners[0]
    on_winner = optuna.artifacts.get_all_artifact_meta(winner, storage=study._storage)
    stem = f"trial-{winner.number:05d}-instances"
    assert {m.filename for m in on_winner} == {f"{stem}.{ext}" for ext in ("png", "csv", "json")}
    files = artifacts.trials[0]
    assert (artifact_dir / files.boxplot).read_bytes()[:8] == PNG
    table = pd.read_csv(artifact_dir / files.records_csv)
    selection = optuna_robust.instance_losses(winner, phase="selection")
    assert table["phase"].value_counts().to_dict() == {
        "selection": len(selection),
        "final": FINAL_INSTANCES,
    }
    assert {"loss", "data_seed", "init_seed", "epochs", "seconds"} <= set(table.columns)
    assert "curve" not in table.columns  # lists live in the JSON
    document = json.loads((artifact_dir / files.records_json).read_text())
    assert document["params"] == winner.params
    assert document["winner"] is True
    assert len(document["final"]) == FINAL_INSTANCES
    assert document["final"][0]["curve"]


def test_trial_artifacts_callback_skips_models_below_min_instances(
    attached: tuple[optuna.Study, optuna_robust.SelectionResult, SelectionArtifacts, Path],
) -> None:
    study, _, _, _ = attached
    for trial in study.trials:
        metas = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
        instances = optuna_robust.instance_losses(trial, phase="all").size
        assert len(metas) == (3 if instances >= 2 else 0), (trial.number, instances)
    assert any(optuna_robust.instance_losses(t).size == 1 for t in study.trials)  # premise


def test_attach_selection_saves_an_interactive_figure_with_params_on_hover(
    attached: tuple[optuna.Study, optuna_robust.SelectionResult, SelectionArtifacts, Path],
) -> None:
    study, result, artifacts, _ = attached
    assert artifacts.graph_object_id == GRAPH_OBJECT_ID
    attrs = study._storage.get_study_system_attrs(study._study_id)
    prefix = f"dashboard:plot_data:{GRAPH_OBJECT_ID}:"
    chunks = {k: v for k, v in attrs.items() if k.startswith(prefix)}
    figure = json.loads("".join(chunks[f"{prefix}{i}"] for i in range(len(chunks))))
    traces = figure["data"]
    assert [t["name"] for t in traces] == [f"#{n}" for n in (t.trial for t in artifacts.trials)]
    assert all(t["type"] == "box" and t["boxpoints"] == "all" for t in traces)
    winner = result.winners[0]
    assert "width=" in traces[0]["hovertemplate"]
    assert "learning_rate=" in traces[0]["hovertemplate"]
    assert f"trial {winner.number}" in traces[0]["hovertemplate"]
    assert len(traces[0]["y"]) == len(optuna_robust.instance_losses(winner, phase="all"))
    assert figure["layout"]["yaxis"]["title"]["text"] == "test loss"
    # The four models that got furthest lie within a factor of 20: a linear axis.
    assert figure["layout"]["yaxis"]["type"] == "linear"

    prefix = f"dashboard:plot_data:{STATISTIC_GRAPH_OBJECT_ID}:"
    chunks = {k: v for k, v in attrs.items() if k.startswith(prefix)}
    statistic = json.loads("".join(chunks[f"{prefix}{i}"] for i in range(len(chunks))))
    assert artifacts.statistic_graph_object_id == STATISTIC_GRAPH_OBJECT_ID
    assert statistic["layout"]["xaxis"]["title"]["text"] == "instances"
    first = statistic["data"][0]
    assert first["name"] == f"#{winner.number}"
    assert first["x"] == sorted(winner.intermediate_values)


def test_attach_selection_twice_replaces_in_place(
    attached: tuple[optuna.Study, optuna_robust.SelectionResult, SelectionArtifacts, Path],
) -> None:
    study, result, first, artifact_dir = attached
    before = len(optuna.artifacts.get_all_artifact_meta(study))
    files_before = sorted(artifact_dir.iterdir())
    # max_trials below the number of winners still attaches every winner.
    again = attach_selection(study, result, artifact_dir=artifact_dir, max_trials=1)
    assert [t.trial for t in again.trials] == [t.number for t in result.winners]
    assert again.funnel == first.funnel
    assert again.trials == first.trials[:2]  # the same trial artifacts, found again
    assert len(optuna.artifacts.get_all_artifact_meta(study)) == before
    assert sorted(artifact_dir.iterdir()) == files_before  # no new file, no partial left
    assert optuna_dashboard.get_note(study) == again.note
    assert again.note.replace(CELL_PAD, "").count("| PRUNED |") == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_trials": -1}, "max_trials must be an integer >= 0"),
        ({"max_trials": 2.5}, "max_trials must be an integer >= 0"),
        ({"artifact_dir": 3}, "artifact_dir must be a directory path"),
    ],
)
def test_attach_selection_rejects_bad_arguments(
    tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    study, result = run_selection()
    arguments: dict[str, object] = {"artifact_dir": tmp_path, **kwargs}
    with pytest.raises(ValueError, match=match):
        attach_selection(study, result, **arguments)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="SelectionResult"):
        attach_selection(study, result.rounds, artifact_dir=tmp_path)  # type: ignore[arg-type]
    other, _ = run_selection()
    with pytest.raises(ValueError, match="is not a trial of study"):
        attach_selection(other, result, artifact_dir=tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is not a directory"):
        attach_selection(study, result, artifact_dir=tmp_path / "file")


def test_attach_selection_when_no_model_passes_the_gate(tmp_path: Path) -> None:
    study = optuna.create_study(
        sampler=optuna_robust.RobustSampler({"width": [8, 16], "learning_rate": [0.01]}, seed=0),
        pruner=optuna_robust.RobustPruner(baseline=1e-6),
    )
    result = optuna_robust.select(study, curve_train, final_instances=3, seed=0)
    assert result.winners == []  # the premise: the gate dropped every model
    artifacts = attach_selection(study, result, artifact_dir=tmp_path, max_trials=1)
    assert "No model survived the selection" in artifacts.note
    assert artifacts.winners_boxplot == ""
    assert artifacts.trials == []  # no callback attached any model's files
    best = min(study.trials, key=lambda t: t.intermediate_values[1])
    assert f"| {best.number} | PRUNED |" in artifacts.note.replace(CELL_PAD, "")


def test_interactive_figures_use_a_log_axis_and_the_baseline_where_losses_span_decades() -> None:
    from optuna_robust.visualization._interactive import instance_losses_figure
    from optuna_robust.visualization._interactive import statistic_figure

    def trial(number: int, losses: list[float]) -> optuna.trial.FrozenTrial:
        records = {f"robust:selection:{i:06d}": {"loss": x} for i, x in enumerate(losses)}
        values = {k: float(np.mean(losses[:k])) for k in (1, 2, 4) if k <= len(losses)}
        made = optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED, user_attrs=records, intermediate_values=values
        )
        made.number = number
        return made

    trials = [trial(0, [0.02, 0.021, 0.019, 0.02]), trial(1, [0.8, 0.9])]
    for figure in (instance_losses_figure(trials, 0.03), statistic_figure(trials, 0.03)):
        layout = figure.to_plotly_json()["layout"]
        assert layout["yaxis"]["type"] == "log"
        (line,) = layout["shapes"]
        assert line["y0"] == line["y1"] == 0.03 and line["line"]["dash"] == "dash"
        (label,) = layout["annotations"]
        # On a log axis plotly places annotations by log10 of the value: at the line.
        assert label["text"] == "baseline 0.03" and label["y"] == pytest.approx(math.log10(0.03))
    statistic = statistic_figure(trials, None).to_plotly_json()["layout"]
    assert statistic["xaxis"]["title"]["text"] == "instances"
    assert list(statistic["xaxis"]["tickvals"]) == [1, 2, 4]
    near = [trial(0, [0.02, 0.021]), trial(1, [0.03, 0.035])]
    assert (
        instance_losses_figure(near, None).to_plotly_json()["layout"]["yaxis"]["type"] == "linear"
    )


def test_attach_selection_note_states_constant_params_once(tmp_path: Path) -> None:
    space = {"width": [8, 16, 32], "learning_rate": [0.001, 0.01], "batch_size": [64]}
    study, result = run_selection(space=space)
    note = attach_selection(study, result, artifact_dir=tmp_path, max_trials=4).note
    note = note.replace(CELL_PAD, "")
    assert "Shared by every model below: batch_size=64." in note
    header = next(line for line in note.splitlines() if line.startswith("| trial | state |"))
    assert header == ("| trial | state | learning_rate | width | instances | mean | std | files |")
