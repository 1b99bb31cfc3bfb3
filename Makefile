# The two commands a newcomer needs: `make run` and `make test`. Each creates .venv and installs
# what it needs by itself.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; \
	then echo $$p; break; fi; done)
VENV ?= .venv
BIN := $(VENV)/bin
# The browser tests start the app from this second environment, installed exactly as `make run`
# installs .venv (the `workbench` extra, not the test one), so a page that needs a test-only
# package fails in CI instead of on a user's first `make run`.
RUN_VENV := .venv-run

.PHONY: run run-env test lint bench system-deps clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is needed: install it (e.g. apt-get install python3) and run make again."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.workbench-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[workbench]'
	@touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@ $(VENV)/.workbench-installed

## run: start the collectors service and the app on http://localhost:8501 (demo data by default)
run: $(VENV)/.workbench-installed
	$(BIN)/workbench up

## test: lint, then every test (unit, app, integration with PostgreSQL, browser with Chromium)
test: $(VENV)/.test-installed run-env system-deps lint
	WORKBENCH_RUN_VENV=$(RUN_VENV) $(BIN)/python -m pytest $(PYTEST_ARGS)

## run-env: the environment `make run` would build, for the browser tests
run-env:
	@$(MAKE) --no-print-directory VENV=$(RUN_VENV) $(RUN_VENV)/.workbench-installed

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

system-deps:
	@bash scripts/system-deps.sh

bench: $(VENV)/.test-installed
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(RUN_VENV) .pytest_cache .ruff_cache
