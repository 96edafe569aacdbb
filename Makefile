# omnicanal: the two commands are `make demo` and `make test`; each sets itself up.
# Set-up is idempotent: a second run reuses the venv (re-synced only when the lock
# or a pyproject changes) and Airflow's metadata DB.

SHELL := /bin/bash
PYTHON ?= python3
TOOLS := .omnicanal/tools
VENV := .venv
BIN := $(VENV)/bin
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
STAMP := $(VENV)/.omnicanal-synced
PYPROJECTS := pyproject.toml uv.lock $(wildcard taps/*/pyproject.toml targets/*/pyproject.toml)

.PHONY: setup demo test lint sql-lint pytest ui docs warehouse-down clean help

help:
	@echo "make demo   - set up, then run the whole pipeline on embedded defaults"
	@echo "make test   - set up, then ruff, sqlfluff and pytest"
	@echo "make ui     - the Airflow UI on http://127.0.0.1:8080 with the sandbox and warehouse"
	@echo "make docs   - the dbt docs site (models, columns, lineage) on http://127.0.0.1:$(DOCS_PORT)"
	@echo "make clean  - stop the embedded warehouse and remove .venv and .omnicanal"

# uv: the one on PATH, or installed with pip into a private venv (Python 3.11 only).
$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv

# Bytecode compiled once at set-up (~10 s): with PYTHONDONTWRITEBYTECODE set, as on many
# CI machines, every tap, dbt and Airflow task process would otherwise recompile its
# imports at each start (tap-square --about: 0.55 s instead of 1.2-1.6 s). The project's own
# packages (editable installs, which uv does not compile) are compiled too: each tap start
# otherwise compiled its tap and tapkit again (~0.02-0.03 s of CPU a run).
$(STAMP): $(PYPROJECTS) | $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	$(BIN)/python -m compileall -q include taps targets
	@touch $@

setup: $(STAMP)

demo: setup
	$(BIN)/omnicanal demo

ui: setup
	$(BIN)/omnicanal ui

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The dbt templater compiles the models, so it needs the warehouse's profile variables;
# sqlfluff only takes the dbt templater from the .sqlfluff of the folder it runs in; an
# empty database keeps the rendering (is_incremental, extensions) the same on every run.
# Parsing and the layout rules, not dbt, take the time (~4 s a model on a busy core):
# one linting process per core (the templating stays in the first).
sql-lint: setup
	cd dbt_project && ../$(BIN)/omnicanal env --fresh-database omnicanal_sqllint -- \
		../$(BIN)/sqlfluff lint models --disable-progress-bar --processes 0

# The suite runs on PYTEST_WORKERS pytest-xdist workers (0: one process): tests/conftest.py
# groups the tests that share a costly set-up and orders the groups longest first, which
# --no-loadscope-reorder keeps. On this 2-core machine two workers took 23.7 min of pytest
# against 37.9 min for one process. Order- and clock-dependent tests that the parallel
# runs found (2026-11-29/30) are fixed; see the closing notes.
PYTEST_WORKERS ?= 2
pytest: setup
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder

test: lint sql-lint pytest

# The dbt docs site: lineage from the raw sources through staging and identity to the
# marts and the syncs' exposures, with the columns of what the warehouse has built.
DOCS_PORT ?= 8081
docs: setup
	$(BIN)/omnicanal dbt docs generate
	$(BIN)/omnicanal dbt docs serve --host 127.0.0.1 --port $(DOCS_PORT) --no-browser

warehouse-down:
	-$(BIN)/omnicanal warehouse down

clean: warehouse-down
	rm -rf $(VENV) .omnicanal
