"""The structure a newcomer relies on: no import cycles, files of one concern.

The layer order itself is held by import-linter (``make lint``, contracts in pyproject.toml);
what it cannot say is checked here with the same import graph (grimp), which also sees
imports inside functions, so a cycle cannot hide behind a lazy import.
"""

from __future__ import annotations

from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent

# Files allowed over the ~600-line guide, each with the reason it is one concern anyway.
LONG_FILES: dict[str, str] = {
    "recorder/capture/_bookkeeper.py": "one keeper holding both venue families' book procedures;"
    " they move behind the venue contract next (issue #14)",
}


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("recorder", "replay")


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles = sorted(
        (a, b)
        for a in graph.modules
        for b in graph.find_modules_directly_imported_by(a)
        if graph.chain_exists(importer=b, imported=a)
    )
    assert cycles == [], "import cycles (a imports b, and b leads back to a):\n" + "\n".join(
        f"  {a} -> {b}" for a, b in cycles
    )


def test_files_stay_small() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for pkg in ("recorder", "replay")
        for p in (ROOT / pkg).rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600
    }
    unexplained = {f: n for f, n in long.items() if f not in LONG_FILES}
    assert unexplained == {}, f"files over 600 lines: {unexplained}"
    stale = sorted(set(LONG_FILES) - set(long))
    assert stale == [], f"LONG_FILES names files that are no longer long: {stale}"
