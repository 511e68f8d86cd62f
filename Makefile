# Two commands on a fresh machine: `make run` and `make test`.
# Each sets up ./.venv on first use (and again when pyproject.toml or
# requirements.lock change), then does its job.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test test-sqlite bench lock clean

$(INSTALLED): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $(INSTALLED)

## Create or migrate the database, load the demo if it is empty, verify, sign a checkpoint,
## serve the API and pages on 127.0.0.1:8000.
run: $(INSTALLED)
	$(BIN)/jifen db upgrade
	$(BIN)/jifen demo --if-empty
	$(BIN)/jifen staff demo
	$(BIN)/jifen db verify
	$(BIN)/jifen checkpoint >/dev/null
	$(BIN)/jifen serve

## The whole suite, on SQLite and PostgreSQL (CI=true makes a missing PostgreSQL fatal).
test: $(INSTALLED)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Benchmarks (not part of the test suite); results go in docs/BENCHMARKS.md.
bench: $(INSTALLED)
	$(BIN)/python benchmarks/ledger_core.py

## Re-pin requirements.lock from what the current resolution installs.
lock:
	rm -rf /tmp/jifen-lock-venv && $(PYTHON) -m venv /tmp/jifen-lock-venv
	/tmp/jifen-lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	/tmp/jifen-lock-venv/bin/python -m pip freeze --exclude-editable > requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis .benchmarks
