# fedward: every target creates .venv and installs what it needs when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# One stamp per install profile; each re-runs when pyproject.toml changes.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
TEST_STAMP := $(VENV)/.installed-test

.PHONY: help demo test check fmt bench fuzz chaos clean

help:
	@echo "make demo    run a real federated experiment on this machine"
	@echo "make test    run the whole test suite"
	@echo "make check   format, lint, types, import contracts, fast tests"
	@echo "make bench   performance harness (writes benchmarks/results/)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The demo needs only the runtime: node + researcher code, upload server (no Jupyter).
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[node,uploads]'
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[dev]'
	touch $@ $(RUN_STAMP)

# The full suite also trains torch models, runs notebooks and drives a browser.
$(TEST_STAMP): pyproject.toml $(DEV_STAMP)
	$(PIP) install -q -e '.[dev,torch]'
	touch $@

demo: $(RUN_STAMP)
	$(BIN)/fedward demo

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q tests

fmt: $(DEV_STAMP)
	$(BIN)/ruff format src tests benchmarks

check: $(DEV_STAMP)
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -x tests/unit tests/contract

bench: $(TEST_STAMP)
	$(BIN)/python -m benchmarks.run

# Coverage-guided fuzzing of every parser of outside bytes (atheris), 100,000 inputs per
# target; writes benchmarks/results/fuzz.md. Not part of make test.
fuzz: $(DEV_STAMP)
	$(BIN)/python -m tests.fuzz.run

# Experiments under injected faults (broker and upload server killed, duplicated and
# reordered messages, nodes killed, full disks, researcher killed); prints the table and
# writes benchmarks/results/chaos.md. Needs root (tmpfs). A CI-sized slice is in make test.
chaos: $(TEST_STAMP)
	$(BIN)/python -m tests.chaos.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
