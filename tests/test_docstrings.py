"""Every Example block in a public docstring runs, so the docs cannot rot."""

from __future__ import annotations

import inspect
import textwrap

import pytest

import optuna_robust


def _examples(obj: object) -> list[str]:
    doc = inspect.getdoc(obj) or ""
    blocks, lines, inside, indent = [], [], False, 0
    for line in doc.splitlines() + [""]:
        if line.strip() == ".. code-block:: python":
            inside, lines, indent = True, [], len(line) - len(line.lstrip())
            continue
        if inside and line.strip() and len(line) - len(line.lstrip()) <= indent:
            blocks.append(textwrap.dedent("\n".join(lines)))
            inside = False
        elif inside:
            lines.append(line)
    if inside:
        blocks.append(textwrap.dedent("\n".join(lines)))
    return blocks


PUBLIC = [getattr(optuna_robust, name) for name in optuna_robust.__all__]
EXAMPLES = [
    pytest.param(code, id=f"{obj.__name__}-{k}")
    for obj in PUBLIC
    for k, code in enumerate(_examples(obj))
]


def test_every_public_name_with_behaviour_has_an_example() -> None:
    documented = {obj.__name__ for obj in PUBLIC if _examples(obj)}
    expected = {"RobustSampler", "RobustPruner", "evaluate_instances", "select"}
    expected |= {"instance_losses", "robustness_report"}
    assert expected <= documented


@pytest.mark.parametrize("code", EXAMPLES)
def test_docstring_example_runs(code: str) -> None:
    exec(compile(code, "<docstring>", "exec"), {})
