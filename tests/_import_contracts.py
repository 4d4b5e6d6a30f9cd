"""A custom import-linter contract: one package may use only another's public modules.

import-linter's ``forbidden`` contract cannot name "every private module" (a wildcard must stand
for a whole module name), so this contract does: a direct import from ``source_modules`` into
``public_of`` is allowed only if no part of the imported module's name starts with ``_``.
Loaded by ``lint-imports`` through ``contract_types`` in ``pyproject.toml``.
"""

from __future__ import annotations

from typing import Any

from importlinter import Contract, ContractCheck, fields, output


class PublicApiContract(Contract):
    """``source_modules`` import from ``public_of`` only through its public modules."""

    source_modules = fields.ListField(subfield=fields.ModuleField())
    public_of = fields.ModuleField()

    def check(self, graph: Any, verbose: bool) -> ContractCheck:
        # The fields are parsed into values on the instance (import-linter's field objects
        # are descriptors only in the class body).
        target: str = self.public_of.name  # type: ignore[attr-defined]
        sources: list[Any] = self.source_modules  # type: ignore[assignment]
        bad: list[dict[str, Any]] = []
        for source in sources:
            importers = {source.name} | graph.find_descendants(source.name)
            for importer in sorted(importers):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    if imported != target and not imported.startswith(target + "."):
                        continue
                    if any(part.startswith("_") for part in imported.split(".")[1:]):
                        details = graph.get_import_details(importer=importer, imported=imported)
                        lines = [d["line_number"] for d in details]
                        bad.append({"importer": importer, "imported": imported, "lines": lines})
        return ContractCheck(kept=not bad, metadata={"bad": bad})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for item in check.metadata["bad"]:
            lines = ", ".join(f"l.{n}" for n in item["lines"])
            output.print_error(f"{item['importer']} -> {item['imported']} ({lines})", bold=False)
            output.new_line()
