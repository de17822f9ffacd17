# Set-up and entry points. Every target bootstraps .venv (Python 3.11 + pinned deps) when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
RUNS   := results/runs

.PHONY: setup test test-fast lint reproduce bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

lint: setup
	$(BIN)/ruff check src tests

test: lint  ## ruff + the whole test suite (what CI runs)
	$(BIN)/pytest

test-fast: setup  ## skip the slow (training) tests
	$(BIN)/pytest -m "not slow"

reproduce: setup  ## the main job (until the pipeline lands: both agents at smoke scale)
	@for variant in direct iterative; do \
	  $(BIN)/iapo train --env InvertedPendulum-v2 --variant $$variant --seed 0 --scale smoke \
	    --out $(RUNS)/InvertedPendulum-v2/$$variant/seed0 || exit 1; \
	done
	@echo "outputs: $(RUNS)/InvertedPendulum-v2/{direct,iterative}/seed0/ (metrics.csv, eval.csv, checkpoints/, run.json)"

bench: setup  ## time update / act (one thread) and write results/bench.json
	$(BIN)/iapo bench --json results/bench.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
