"""Every ```python block of docs/*.md runs, and the API page covers every public name.

Blocks of one file share a namespace and run in order, in a fresh temporary directory, so a page
reads as one session. ```bash blocks are shell commands and are not run.
"""

from __future__ import annotations

from pathlib import Path
import re
import textwrap

import pytest

import optuna_robust
from optuna_robust import visualization
from tests.test_docstrings import _examples

DOCS = Path(__file__).resolve().parent.parent / "docs"
DOC_PAGES = sorted(DOCS.glob("*.md"))
_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<code>.*?)^(?P=indent)```", re.M | re.S
)


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """``(first line, code)`` of every ```python block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start("code")) + 1
        blocks.append((line, textwrap.dedent(match.group("code"))))
    return blocks


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda page: page.name)
def test_python_blocks_of_the_page_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for line, code in python_blocks(page):
        # Leading newlines make tracebacks point at the block's lines in the Markdown file.
        compiled = compile("\n" * (line - 1) + code, str(page), "exec")
        exec(compiled, namespace)


def test_the_user_guide_pages_exist_with_code() -> None:
    for name in ("index.md", "quickstart.md", "concepts.md", "api.md"):
        assert python_blocks(DOCS / name), f"docs/{name} has no ```python block"


PUBLIC = [(name, getattr(optuna_robust, name)) for name in optuna_robust.__all__] + [
    (f"visualization.{name}", getattr(visualization, name)) for name in visualization.__all__
]


@pytest.mark.parametrize(("name", "obj"), PUBLIC, ids=[name for name, _ in PUBLIC])
def test_api_page_documents_every_public_name(name: str, obj: object) -> None:
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    short = name.rsplit(".", 1)[-1]
    heading = re.search(rf"^#+ .*`[\w.]*\b{re.escape(short)}\b`", api, re.M)
    assert heading, f"docs/api.md has no heading for {name}"
    section = re.split(r"\n#{1,6} ", api[heading.end() :], maxsplit=1)[0]
    assert "```python" in section, f"the {name} section of docs/api.md has no runnable example"


EXAMPLES = [
    pytest.param(code, id=f"visualization.{name}-{k}")
    for name in visualization.__all__
    for k, code in enumerate(_examples(getattr(visualization, name)))
]


@pytest.mark.parametrize("code", EXAMPLES)
def test_docstring_examples_of_visualization_run(
    code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<docstring>", "exec"), {})


def test_index_figure_is_committed_small_and_shown() -> None:
    figures = sorted((DOCS / "figures").glob("index_*.png"))
    assert figures, "run: python docs/figures/make_index_figure.py"
    for figure in figures:
        assert figure.stat().st_size < 150_000, f"{figure.name} is over 150 kB"
        assert f"figures/{figure.name}" in (DOCS / "index.md").read_text(encoding="utf-8")
