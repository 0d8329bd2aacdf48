# Two commands matter: `make run` and `make test`. Everything they need they install themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

export TOCSIN_DATABASE_URL ?= sqlite+aiosqlite:///./var/tocsin.db

.PHONY: run test lint typecheck unit e2e bench deps system-deps postgres clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(DEVSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(STAMP)

deps: $(STAMP)

## make run: install, migrate the SQLite database under ./var/, serve on 127.0.0.1:8080
run: $(STAMP)
	@mkdir -p var
	$(BIN)/tocsin serve

## make test: lint, type-check and the whole suite on SQLite and PostgreSQL
test: $(DEVSTAMP) system-deps postgres lint typecheck
	$(BIN)/python -m pytest -q

lint: $(DEVSTAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(DEVSTAMP)
	$(BIN)/mypy

system-deps:
	@scripts/system-deps.sh

postgres:
	@scripts/postgres.sh

bench: $(DEVSTAMP) system-deps postgres
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
