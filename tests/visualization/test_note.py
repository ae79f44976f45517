"""The note Markdown as pure functions of the data: tables that fit, sections that replace."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from optuna_robust.visualization._note import CELL_PAD
from optuna_robust.visualization._note import ModelRow
from optuna_robust.visualization._note import markdown_table
from optuna_robust.visualization._note import models_table
from optuna_robust.visualization._note import replace_section
from optuna_robust.visualization._note import section_of
from optuna_robust.visualization._utils import varying_params

CONSTANT = {"optimizer": "Adam", "batch_size": 64, "l2": 0.0, "activation": "ReLU"}


def _plain(markdown: str) -> str:
    """The Markdown without the en spaces that pad table cells."""
    return markdown.replace(CELL_PAD, "")


def _row(label: str, losses: list[float], **params: object) -> ModelRow:
    return ModelRow(label, {**CONSTANT, **params}, np.asarray(losses, dtype=float))


def test_models_table_leaves_params_that_do_not_vary_out_of_the_columns() -> None:
    rows = [
        _row("3", [0.02, 0.021, 0.019], width=32, lr=0.01),
        _row("7", [0.03, 0.032], width=64, lr=0.01),
    ]
    shared, blank, table = map(_plain, models_table(rows))
    assert shared == (
        "Shared by every model below: activation=ReLU, batch_size=64, l2=0, lr=0.01, "
        "optimizer=Adam."
    )
    assert blank == ""
    lines = table.splitlines()
    assert lines[0] == "| trial | width | instances | mean | std |"
    assert lines[2] == "| 3 | 32 | 3 | 0.02 | 0.001 |"


def test_models_table_shows_no_spread_for_one_instance_and_infinity_for_divergence() -> None:
    rows = [_row("1", [0.5], width=8), _row("2", [0.2, math.inf, 0.3], width=16)]
    table = _plain(models_table(rows)[-1]).splitlines()
    assert table[2] == "| 1 | 8 | 1 | 0.5 | – |"  # one instance: no spread, not 0
    assert table[3] == "| 2 | 16 | 3 | ∞ | 0.07071 |"  # std over the finite ones


def test_models_table_with_links_and_states() -> None:
    row = ModelRow("4", {"w": 1}, np.array([0.1, 0.2]), [("page", "/p"), ("PNG", "/a")], "PRUNED")
    other = ModelRow("5", {"w": 2}, np.array([0.1, 0.3]), [("page", "/q")], "COMPLETE")
    table = _plain(models_table([row, other])[-1]).splitlines()
    assert table[0] == "| trial | state | w | instances | mean | std | files |"
    assert table[2].endswith("| [page](/p) · [PNG](/a) |")


def test_markdown_table_formats_missing_and_infinite_numbers() -> None:
    frame = pd.DataFrame({"a": [1, 2], "std": [0.123456, float("nan")], "x": ["p|q", "r"]})
    table = markdown_table(frame)
    # optuna-dashboard draws cells without padding: an en space each side parts the columns.
    assert (
        table.splitlines()[2]
        == f"| {CELL_PAD}1{CELL_PAD} | {CELL_PAD}0.1235{CELL_PAD} | {CELL_PAD}p\\|q{CELL_PAD} |"
    )
    assert _plain(table).splitlines() == [
        "| a | std | x |",
        "|:---:|:---:|:---:|",
        "| 1 | 0.1235 | p\\|q |",
        "| 2 | – | r |",
    ]


def test_varying_params_counts_a_missing_param_as_varying() -> None:
    varying, shared = varying_params([{"a": 1, "b": 2}, {"a": 1, "b": 3}, {"a": 1}])
    assert varying == ["b"] and shared == {"a": 1}


@pytest.mark.parametrize(
    ("note", "expected"),
    [
        ("", "## S\n\nnew\n"),
        ("## Robust selection\n\ntext\n", "## Robust selection\n\ntext\n\n## S\n\nnew\n"),
        (
            "# Title\n\n## S\n\nold\n### sub of old\n\nmore old\n## Next\n\nkept\n",
            "# Title\n\n## S\n\nnew\n\n## Next\n\nkept\n",
        ),
    ],
)
def test_replace_section_replaces_or_appends(note: str, expected: str) -> None:
    assert replace_section(note, "## S", "## S\n\nnew\n") == expected
    assert replace_section(note, "## S", None) == note
    assert section_of(expected, "## S") == "## S\n\nnew\n"
    assert section_of(note, "## Absent") is None
