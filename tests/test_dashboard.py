"""optuna_robust.dashboard: the note, artifacts and plotly figure a selection leaves behind."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import optuna_dashboard
import pandas as pd
import pytest

import optuna_robust
from optuna_robust.dashboard import GRAPH_OBJECT_ID
from optuna_robust.dashboard import SelectionArtifacts
from optuna_robust.dashboard import attach_selection
from optuna_robust.dashboard import attach_trial
from tests.test_plots import FINAL_INSTANCES
from tests.test_plots import N_CANDIDATES
from tests.test_plots import curve_train
from tests.test_plots import run_selection

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def attached(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[optuna.Study, optuna_robust.SelectionResult, SelectionArtifacts, Path]:
    # Every trial is COMPLETE or PRUNED by now, and the storage (in memory or SQLite alike)
    # refuses attributes on finished trials: attach_selection must only write to the study.
    study, result = run_selection()
    artifact_dir = tmp_path_factory.mktemp("artifacts")
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
    note = study_note_from_system_attrs(study)
    assert note == artifacts.note == optuna_dashboard.get_note(study)
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
    for files in artifacts.trials:
        assert f"[PNG]({prefix}{files.boxplot})" in note
        assert f"[CSV]({prefix}{files.records_csv})" in note


def test_attach_selection_uploads_study_artifacts(
    attached: tuple[optuna.Study, optuna_robust.SelectionResult, SelectionArtifacts, Path],
) -> None:
    study, result, artifacts, artifact_dir = attached
    metas = {m.artifact_id: m for m in optuna.artifacts.get_all_artifact_meta(study)}
    names = {m.filename for m in metas.values()}
    numbers = [t.trial for t in artifacts.trials]
    assert len(numbers) == 4
    assert numbers[:2] == [t.number for t in result.winners]  # winners first
    expected = {"selection-funnel.png", "selection-winners.png", "selection-rounds.csv"}
    for number in numbers:
        expected |= {f"trial-{number:05d}-instances.{ext}" for ext in ("png", "csv", "json")}
    assert names == expected
    assert metas[artifacts.funnel].mimetype == "image/png"
    for artifact_id in metas:
        assert (artifact_dir / artifact_id).is_file()
    assert (artifact_dir / artifacts.funnel).read_bytes()[:8] == PNG
    rounds = pd.read_csv(artifact_dir / artifacts.rounds_csv)
    pd.testing.assert_frame_equal(rounds, result.rounds, check_dtype=False)

    winner = result.winners[0]
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
    assert len(document["final"]) == FINAL_INSTANCES
    assert document["final"][0]["curve"]


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


def test_attach_selection_twice_replaces_in_place(
    attached: tuple[optuna.Study, optuna_robust.SelectionResult, SelectionArtifacts, Path],
) -> None:
    study, result, first, artifact_dir = attached
    before = len(optuna.artifacts.get_all_artifact_meta(study))
    # max_trials below the number of winners still attaches every winner.
    again = attach_selection(study, result, artifact_dir=artifact_dir, max_trials=1)
    assert [t.trial for t in again.trials] == [t.number for t in result.winners]
    assert again.funnel == first.funnel
    assert again.trials == first.trials[:2]  # same artifact ids: replaced, not added
    assert len(optuna.artifacts.get_all_artifact_meta(study)) == before
    assert len(list(artifact_dir.iterdir())) == before
    assert optuna_dashboard.get_note(study) == again.note
    assert again.note.count("| PRUNED |") == 0


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


def test_attach_trial_by_number_or_trial(tmp_path: Path) -> None:
    study, result = run_selection()
    winner = result.winners[0]
    by_trial = attach_trial(study, winner, artifact_dir=tmp_path)
    by_number = attach_trial(study, winner.number, artifact_dir=tmp_path)
    assert by_trial == by_number
    assert by_trial.trial == winner.number
    names = {m.filename for m in optuna.artifacts.get_all_artifact_meta(study)}
    assert names == {
        f"trial-{winner.number:05d}-instances.{ext}" for ext in ("png", "csv", "json")
    }
    with pytest.raises(ValueError, match="has no trial number 999"):
        attach_trial(study, 999, artifact_dir=tmp_path)
    other = optuna.create_study()
    other.add_trial(optuna.trial.create_trial(value=1.0))
    with pytest.raises(ValueError, match="no instance records"):
        attach_trial(other, 0, artifact_dir=tmp_path)


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
    best = min(study.trials, key=lambda t: t.intermediate_values[1])
    assert [t.trial for t in artifacts.trials] == [best.number]
