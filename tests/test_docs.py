"""The README documents every channel's schema as the code defines it."""

from __future__ import annotations

from pathlib import Path

from recorder.archive._schemadoc import BEGIN, END, render

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_schemas_are_current() -> None:
    text = README.read_text(encoding="utf-8")
    block = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert block == render(), "run: python -m recorder.archive._schemadoc --write README.md"


def test_readme_names_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
