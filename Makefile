# Two commands do everything on a fresh clone: `make run` and `make test`.
# Each creates the virtualenv and installs the project on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run poll test lint pytest clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch is pinned in the same command: the CPU wheel; anything else pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0 -e '.[dev]'
	touch $@

install: $(STAMP)

## Run the monitor on ./feeds.toml until Ctrl-C (SQLite under ./data by default).
run: $(STAMP)
	$(BIN)/monitor run

## Poll every feed once and print a summary.
poll: $(STAMP)
	$(BIN)/monitor poll --once

## Lint, type-check and run the whole test suite.
test: lint pytest

lint: $(STAMP)
	$(BIN)/ruff check monitor storage alerts tests
	$(BIN)/mypy

# Three workers on two cores: much of the suite waits on subprocesses, servers and sockets.
PYTEST_WORKERS ?= 3
pytest: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
