"""Every test the docs name as ``tests/<file>.py::<test>`` exists, so a reliability row points at
the test that really provokes its fault."""

from __future__ import annotations

from pathlib import Path
import re

import pytest

ROOT = Path(__file__).resolve().parent.parent
_TEST_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
NAMED = sorted(
    {
        match.groups()
        for page in (ROOT / "docs").glob("*.md")
        for match in _TEST_ID.finditer(page.read_text())
    }
)


def test_the_reliability_page_names_tests() -> None:
    page = (ROOT / "docs" / "reliability.md").read_text()
    assert len(_TEST_ID.findall(page)) >= 40


@pytest.mark.parametrize(("path", "name"), NAMED, ids=[f"{p}::{n}" for p, n in NAMED])
def test_a_test_named_in_the_docs_exists(path: str, name: str) -> None:
    source = ROOT / path
    assert source.is_file(), f"docs name {path}, which does not exist"
    assert re.search(rf"^def {name}\(", source.read_text(), re.M), f"{path} has no {name}"
