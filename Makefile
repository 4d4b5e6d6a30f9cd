# ticktape — `make demo` and `make test` each set up the environment by themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help env demo test lint typecheck pytest notebooks bench clean

help:
	@echo "make demo       record the embedded exchange simulator for ~30 s, then show the archive"
	@echo "make test       lint, type checks, the test suite and the notebooks"
	@echo "make bench      benchmarks (writes BENCHMARKS.md; not part of CI)"

# The environment: a virtualenv with pinned versions (constraints.txt) and ticktape itself.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m replay.demo --root demo-archive --duration 30

LINT_PATHS := recorder replay tests $(wildcard benchmarks notebooks/*.py)

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

notebooks: $(STAMP)
	$(BIN)/python notebooks/run_all.py

test: lint typecheck pytest notebooks

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run --out BENCHMARKS.md

clean:
	rm -rf $(VENV) demo-archive .mypy_cache .ruff_cache .pytest_cache .hypothesis
