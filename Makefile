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

ALL_STAMP := $(VENV)/.installed-all
# Where `make install-cli` puts the `fedward` command: /usr/local/bin is on every user's PATH
# and on sudo's secure_path. PREFIX=~/.local for a user without root.
PREFIX ?= /usr/local

.PHONY: help demo test check fmt bench clean system-deps install install-cli uninstall-cli \
	dist dist-check fuzz chaos compose-test compose-gpu docker-context

help:
	@echo "make demo         run a real federated experiment on this machine"
	@echo "make test         run the whole test suite (as root it installs the system packages)"
	@echo "make install      .venv with every component (fedward[all])"
	@echo "make install-cli  link $(PREFIX)/bin/fedward, so that fedward and sudo fedward work"
	@echo "make dist         sdist and wheel in dist/"
	@echo "make check        format, lint, types, import contracts, fast tests"
	@echo "make bench        performance harness (writes benchmarks/results/)"
	@echo "make compose-test the Docker deployment built, started and used (root; installs an engine)"

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

# Every component (node, researcher, uploads, GUI), for the machines of a deployment.
$(ALL_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[all]'
	touch $@ $(RUN_STAMP)

demo: $(RUN_STAMP)
	$(BIN)/fedward demo

# The system packages come first, so that a machine without them stops before any test.
test: system-deps $(TEST_STAMP)
	$(BIN)/python -m pytest -q tests

system-deps:
	@PYTHON=$(PYTHON) scripts/system-deps

install: $(ALL_STAMP)

install-cli:
	@test -x $(BIN)/fedward || { echo "no $(BIN)/fedward yet: run 'make install' first" >&2; exit 1; }
	mkdir -p $(PREFIX)/bin
	ln -sfn $(abspath $(BIN)/fedward) $(PREFIX)/bin/fedward
	@echo "$(PREFIX)/bin/fedward -> $(abspath $(BIN)/fedward)"

uninstall-cli:
	@if [ -L $(PREFIX)/bin/fedward ]; then rm $(PREFIX)/bin/fedward; echo "removed $(PREFIX)/bin/fedward"; fi

# sdist and wheel, built with the build tools of .venv (no download).
dist: $(DEV_STAMP)
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist . >/dev/null
	@ls dist

# What CI proves: the wheel installs into a clean virtual environment and runs.
dist-check: dist
	rm -rf .dist-check
	$(PYTHON) -m venv .dist-check
	.dist-check/bin/python -m pip install -q "$$(ls dist/fedward-*.whl)[all]"
	cd / && $(abspath .dist-check/bin/fedward) --version && $(abspath .dist-check/bin/fedward) --help >/dev/null
	rm -rf .dist-check

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

# The Docker deployment for real (tests/compose/, docs/docker.md): engine and compose set up
# by scripts/compose-engine, six services built and used, host network settings restored.
# Needs root. Not part of make test.
compose-test: $(TEST_STAMP)
	scripts/compose-test

# The build's optional inputs from this host: its extra CA certificates and CPU torch wheel.
docker-context:
	scripts/docker-context

# node-gpu's image (PyPI's torch with CUDA: 5.5 GB); not in compose-test for that reason.
# Then, in the image (no GPU needed): torch is a CUDA build and the node's command runs.
compose-gpu:
	scripts/compose-engine install
	scripts/compose-engine start
	scripts/docker-context >/dev/null
	BASE_IMAGE=$${BASE_IMAGE:-fedward/python:3.11-bookworm}; \
	  [ "$$BASE_IMAGE" != fedward/python:3.11-bookworm ] || scripts/compose-engine base-image; \
	  cd deploy/docker && BASE_IMAGE=$$BASE_IMAGE VPN_SERVER_PUBLIC_ADDR=$${VPN_SERVER_PUBLIC_ADDR:-vpnserver} \
	  docker compose --profile gpu build node-gpu \
	  && docker run --rm fedward/node-gpu:local python -c \
	       'import torch; assert torch.version.cuda, torch.__version__; print("torch", torch.__version__, "CUDA", torch.version.cuda)' \
	  && docker run --rm fedward/node-gpu:local fedward node start --help >/dev/null; \
	  status=$$?; cd ../.. && scripts/compose-engine stop; exit $$status

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dist build .dist-check
