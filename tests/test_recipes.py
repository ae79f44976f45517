"""Every recipe of docs/recipes/ runs, and its robust pick beats an underfitting model.

The thresholds are the fresh-instance accuracies measured when the recipes were written
(scikit-learn 0.971, XGBoost 0.936, LightGBM 0.951), less a margin for library versions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_docs import DOCS
from tests.test_docs import python_blocks

RECIPES = DOCS / "recipes"
THRESHOLDS = {"sklearn.md": 0.95, "xgboost.md": 0.92, "lightgbm.md": 0.93}


def test_every_recipe_has_a_threshold() -> None:
    assert sorted(p.name for p in RECIPES.glob("*.md")) == sorted(THRESHOLDS)


@pytest.mark.parametrize("name", sorted(THRESHOLDS))
def test_recipe_runs_and_its_pick_is_accurate_on_fresh_instances(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    page = RECIPES / name
    namespace: dict[str, object] = {"__name__": f"recipe_{page.stem}"}
    blocks = python_blocks(page)
    assert len(blocks) >= 3, f"{name} needs a before, an after and a check"
    for line, code in blocks:
        exec(compile("\n" * (line - 1) + code, str(page), "exec"), namespace)
    winner, bad = namespace["winner_accuracy"], namespace["bad_accuracy"]
    assert isinstance(winner, float) and isinstance(bad, float)
    assert winner >= THRESHOLDS[name]
    assert winner >= bad + 0.1


@pytest.mark.parametrize("name", sorted(THRESHOLDS))
def test_recipe_instances_use_both_seeds(name: str) -> None:
    text = (RECIPES / name).read_text(encoding="utf-8")
    assert "instance.data_seed" in text and "instance.init_seed" in text
    assert 'direction="maximize"' in text
