"""attach_comparison: the robust winner beside TPE's picks, on the TPE, robustness and
selection studies."""

from __future__ import annotations

from pathlib import Path

import optuna
import optuna_dashboard
import pytest

import optuna_robust
from optuna_robust.visualization import attach_comparison
from optuna_robust.visualization import attach_selection
from optuna_robust.visualization._note import CELL_PAD
from tests.visualization._selection import FINAL_INSTANCES
from tests.visualization._selection import run_selection
from tests.visualization._selection import run_tpe_and_robustness

HEADING = "## Robust selection vs TPE"


Studies = tuple[optuna.Study, optuna.Study, optuna.Study, optuna_robust.SelectionResult]


@pytest.fixture
def three_studies() -> Studies:
    storage = optuna.storages.InMemoryStorage()
    robust, result = run_selection(storage, study_name="demo-robust")  # type: ignore[arg-type]
    tpe, robustness = run_tpe_and_robustness(storage, prefix="demo")
    return robust, tpe, robustness, result


def _artifact_names(study: optuna.Study) -> list[str]:
    return [m.filename for m in optuna.artifacts.get_all_artifact_meta(study)]


def test_attach_comparison_writes_the_note_and_figure_on_every_study(
    three_studies: Studies, tmp_path: Path
) -> None:
    robust, tpe, robustness, _ = three_studies
    attached = attach_comparison(robust, tpe, robustness, artifact_dir=tmp_path)
    winner = next(t for t in robust.trials if t.system_attrs.get("robust:winner_rank") == 0)
    best_tpe = tpe.best_trial
    note = optuna_dashboard.get_note(tpe)
    assert note == attached.note
    assert note.startswith(HEADING)
    table = [line for line in note.replace(CELL_PAD, "").splitlines() if line.startswith("| ")]
    assert table[0] == "| model | instances | mean | median | std | max |"
    winner_losses = optuna_robust.instance_losses(winner, phase="final")
    assert table[1].startswith(
        f"| robust selection (demo-robust #{winner.number}) | {FINAL_INSTANCES} | "
        f"{winner_losses.mean():.4g} |"
    )
    assert table[2].startswith(f"| TPE #{best_tpe.number} | {FINAL_INSTANCES} |")
    assert f"* TPE #{best_tpe.number}: " in note  # its params, as a wrapped line
    # The figure: one PNG on the TPE study and one on the robustness study, each embedded.
    assert _artifact_names(tpe) == ["robust-vs-tpe.png"]
    assert _artifact_names(robustness) == ["robust-vs-tpe.png"]
    figure = attached.figures["demo-tpe"]
    assert f"![Robust selection vs TPE](/artifacts/{tpe._study_id}/{figure})" in note
    assert (tmp_path / figure).read_bytes()[:4] == b"\x89PNG"
    other = optuna_dashboard.get_note(robustness)
    assert f"/artifacts/{robustness._study_id}/{attached.figures['demo-tpe:robustness']}" in other
    # The selection study's note gets the section too, linked to the TPE study's note.
    selection_note = optuna_dashboard.get_note(robust)
    assert HEADING in selection_note
    assert f"[demo-tpe note](/dashboard/studies/{tpe._study_id}/note)" in selection_note
    assert f"/artifacts/{tpe._study_id}/{figure}" in selection_note


def test_attach_comparison_keeps_the_rest_of_the_notes_and_replaces_itself(
    three_studies: Studies, tmp_path: Path
) -> None:
    robust, tpe, robustness, result = three_studies
    optuna_dashboard.save_note(tpe, "# My TPE notes\n\nwritten by hand\n")
    attach_selection(robust, result, artifact_dir=tmp_path)
    first = attach_comparison(robust, tpe, robustness, artifact_dir=tmp_path)
    again = attach_comparison(robust, tpe, robustness, artifact_dir=tmp_path)
    assert again.figures == first.figures  # replaced in place
    note = optuna_dashboard.get_note(tpe)
    assert note.startswith("# My TPE notes\n\nwritten by hand\n")
    assert note.count(HEADING) == 1
    selection_note = optuna_dashboard.get_note(robust)
    assert selection_note.startswith("## Robust selection\n")
    assert selection_note.count(HEADING) == 1
    # attach_selection again keeps the comparison at the end of the selection note.
    attach_selection(robust, result, artifact_dir=tmp_path)
    assert optuna_dashboard.get_note(robust).count(HEADING) == 1
    assert len(_artifact_names(tpe)) == 1


def test_attach_comparison_without_a_robustness_study_uses_tpe_instances(
    three_studies: Studies, tmp_path: Path
) -> None:
    robust, tpe, _, _ = three_studies
    attached = attach_comparison(robust, tpe, artifact_dir=tmp_path, max_models=2)
    plain = attached.note.replace(CELL_PAD, "")
    rows = [line for line in plain.splitlines() if line.startswith("| TPE #")]
    assert len(rows) == 2
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1] == "1" and cells[4] == "–"  # one instance each: no spread, not 0
    assert list(attached.figures) == ["demo-tpe"]


def test_attach_comparison_refuses_a_study_without_a_winner(tmp_path: Path) -> None:
    storage = optuna.storages.InMemoryStorage()
    tpe, _ = run_tpe_and_robustness(storage, prefix="x", n_trials=2)
    with pytest.raises(ValueError, match="holds no winner of optuna_robust.select"):
        attach_comparison(tpe, tpe, artifact_dir=tmp_path)
    with pytest.raises(ValueError, match="max_models must be a positive integer but got 0"):
        attach_comparison(tpe, tpe, artifact_dir=tmp_path, max_models=0)
    with pytest.raises(ValueError, match="study must be an optuna.Study"):
        attach_comparison(tpe, "tpe", artifact_dir=tmp_path)  # type: ignore[arg-type]
