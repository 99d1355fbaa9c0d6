# The two commands a new user runs: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config/example.yaml

.PHONY: run test test-slow install install-test sysdeps bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test sysdeps

# System tools the tests drive as real peers; installed only when missing and we are root.
sysdeps:
	@bash tools/install-sysdeps.sh

# Bytecode compiled ahead: where it is not written at import (PYTHONDONTWRITEBYTECODE, as container images often
# set, or a read-only tree) every start would compile the whole node again (half a second); up to date, a no-op.
run: install
	@$(BIN)/python -m compileall -q softswitch acd media > /dev/null
	$(BIN)/softswitch serve --config $(CONFIG)

test: install-test
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: install-test
	$(BIN)/python -m pytest -q -m slow

bench: install-test
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
