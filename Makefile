# Every target sets itself up from a fresh clone: a .venv, torch 2.13.0 (CPU) first, then ddiff.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH := torch==2.13.0

.PHONY: setup test test-all lint docs demo demo-guided clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

## test: set up (if needed) and run the default test suite (slow tests deselected)
test: setup
	$(PY) -m pytest -m "not slow" -q

## test-all: every test, slow ones included
test-all: setup
	$(PY) -m pytest -q

$(VENV)/.docs-installed: $(VENV)/.installed
	$(PIP) install --quiet -e ".[docs]"
	touch $@

## docs: build the documentation site with mkdocs --strict (fails on any warning; not --quiet,
## which hides the warnings and so never fails)
docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

## demo: set up (if needed) and run the DNA recipe on its shipped data (train, sample, infill,
## evaluate; writes runs/dna-<date-time>/report.md; a run never overwrites another)
demo: setup
	$(PY) -m ddiff.recipes.dna --out runs/dna-$$(date +%Y%m%d-%H%M%S)

## demo-guided: the DNA recipe on the shipped labelled windows (promoter / gene): a
## label-conditioned model, its noisy classifier, and the judged guidance comparison
demo-guided: setup
	$(PY) -m ddiff.recipes.dna --config recipes/dna-labelled.yaml --out runs/dna-labelled-$$(date +%Y%m%d-%H%M%S)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
