"""The quickstart runs twice in the same folder, as a user reruns it: no DuplicatedStudyError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.test_docs import DOCS
from tests.test_docs import python_blocks


def _run(page: Path) -> dict[str, object]:
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for line, code in python_blocks(page):
        exec(compile("\n" * (line - 1) + code, str(page), "exec"), namespace)
    return namespace


def _stored(url: str) -> list[tuple[int, str, int]]:
    study = optuna.load_study(study_name="quickstart", storage=url)
    return [(t.number, t.state.name, len(t.user_attrs)) for t in study.trials]


def test_quickstart_runs_twice_and_the_second_run_trains_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    page = DOCS / "quickstart.md"
    first = _run(page)
    stored = _stored("sqlite:///robust.db")
    second = _run(page)
    assert _stored("sqlite:///robust.db") == stored  # no new trial, no new instance
    results: list[Any] = [first["small_result"], second["small_result"]]
    assert results[0].winners[0].params == results[1].winners[0].params
