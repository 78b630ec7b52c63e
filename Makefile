# fedward: every target creates .venv and installs what it needs when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test check fmt lint types contracts fast-test bench clean help

help:
	@echo "make demo    run a real federated experiment on this machine"
	@echo "make test    run the whole test suite"
	@echo "make check   format, lint, types, import contracts, fast tests"
	@echo "make bench   performance harness (writes benchmarks/results/)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip setuptools wheel >/dev/null
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

$(VENV)/.installed-torch: $(STAMP)
	$(BIN)/pip install -q -e '.[dev,torch,notebooks]'
	touch $@

demo: $(STAMP)
	$(BIN)/fedward demo

test: $(VENV)/.installed-torch
	$(BIN)/python -m pytest -q tests

fmt: $(STAMP)
	$(BIN)/ruff format src tests benchmarks

check: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -x tests/unit tests/contract

bench: $(VENV)/.installed-torch
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .fedward-demo .pytest_cache .mypy_cache .ruff_cache
