# Set-up and entry points. Every target bootstraps .venv (Python 3.11 + pinned deps) when missing.
# `make help` lists the targets. Conda: `make VENV=$CONDA_PREFIX test` uses an activated Python 3.11
# environment instead of .venv (the pins are installed into it with pip).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
# The torch build: cpu (default), or a CUDA build from PyTorch's index, cu126 / cu128 / cu130 (a
# cluster: the newest CUDA its GPU driver supports, `nvidia-smi` shows it), or pypi: PyPI's own
# torch==2.13.0 (larger; runs on CPU and CUDA 13), also the fallback when PyTorch's index cannot be
# reached. Everything else comes at the exact versions of requirements/lock.txt.
TORCH  ?= cpu
TORCH_VERSION := 2.13.0
TORCH_INDEX   := https://download.pytorch.org/whl/$(TORCH)
STAMP  := $(VENV)/.installed-torch-$(TORCH)
# the pipeline: `make reproduce SCALE=smoke CORES=2`; SCALE defaults to params.yaml's `scale`, read
# (once, when a recipe first needs it, after the set-up) through the typed config: `iapo scales --default`
SCALE  ?= $(eval SCALE := $(shell $(BIN)/iapo --params params.yaml scales --default))$(SCALE)
CORES  ?= all
# `make gpu-check`: the device it checks (cuda, cuda:N; cpu runs it at small sizes), where it writes,
# and optionally a budget in seconds (GPU_CHECK_BUDGET: the steps that would not fit are skipped)
DEVICE ?= cuda
GPU_CHECK_OUT ?= results/gpu_check
GPU_CHECK_BUDGET ?=
# `make device-wheels`: the wheels a bare GPU machine needs for tools/gpu-check-bare, for its Python
# (DEVICE_PY, x86-64 Linux), into DEVICE_WHEELS/cp<version>/ (git-ignored)
DEVICE_PY ?= 3.12
DEVICE_WHEELS ?= .device-wheels
DEVICE_PINS = $(shell grep -v '^\#' requirements/device.txt | while read p; do grep -i "^$$p==" requirements/lock.txt; done)
# pytest-xdist workers of `make test` (the smoke workspace's tests start first, on one of them)
TEST_JOBS ?= 2
SNAKE   = $(BIN)/snakemake --config scale=$(SCALE)
# pipeline jobs call `iapo` (and DVC stages `iapo`) from this environment
export PATH := $(abspath $(BIN)):$(PATH)
# the DVC description of each scale: dvc.yaml (smoke) or workflow/dvc/<scale>/dvc.yaml
DVC_FILE = $(if $(filter smoke,$(SCALE)),dvc.yaml,workflow/dvc/$(SCALE)/dvc.yaml)
DVC_LOCK = $(patsubst %.yaml,%.lock,$(DVC_FILE))
# the summary tables a committed study keeps in git gzip-compressed (their .csv is git-ignored)
LARGE_TABLES := surface_2d optimizer_comparison modes_state

.PHONY: help setup lock test test-fast lint reproduce figures compress-tables dvc-record pull report rulegraph schema dry-run bench bench-audit gpu-check device-wheels clean

help:  ## list the targets
	@awk -F ':.*## ' '/^[a-z-]+:.*## / {printf "  make %-11s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The environment must run Python 3.11 (the pins are wheels for it); one made by another Python, or
# half-made because the `venv` module was missing, is named and removed, never silently reused.
NEED_PY := import sys; sys.exit(sys.version_info[:2] != (3, 11))
NEED_ENV := $(NEED_PY); import pip
NO_PY311 := needs Python 3.11 with its venv module: install python3.11 and python3.11-venv \
  (Debian/Ubuntu: apt install python3.11 python3.11-venv; or conda/pyenv), or pass PYTHON=/path/to/python3.11

setup: $(STAMP)  ## build .venv (or VENV=DIR) from requirements/lock.txt, torch build TORCH=cpu|cu126|cu128|cu130

$(STAMP): pyproject.toml requirements/lock.txt
	@case "$(TORCH)" in cpu|cu1[0-9][0-9]|pypi) ;; *) echo "make: TORCH=$(TORCH) is not a torch build: use \
	  cpu (the default), cu126, cu128 or cu130 (CUDA builds; on a cluster the newest its driver supports), \
	  or pypi (PyPI's torch, CPU and CUDA 13)" >&2; exit 2;; esac
	@if [ -e $(VENV) ] && ! $(BIN)/python -c '$(NEED_ENV)' 2>/dev/null; then \
	  if [ "$(VENV)" != .venv ]; then echo "make: $(VENV) is not a Python 3.11 environment with pip; make one with both (conda create -n iapo python=3.11 pip) and activate it" >&2; exit 2; fi; \
	  echo "make: .venv was made by another Python or is broken ($$($(BIN)/python --version 2>&1 || echo 'no python')); removing it" >&2; \
	  rm -rf .venv; fi
	@if [ ! -e $(VENV) ]; then \
	  $(PYTHON) -c '$(NEED_PY)' 2>/dev/null || { echo "make: $(PYTHON) is not Python 3.11; the set-up $(NO_PY311)" >&2; exit 2; }; \
	  $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "make: could not create $(VENV); the set-up $(NO_PY311)" >&2; exit 2; }; fi
	$(BIN)/python -m pip install --quiet pip==26.3
	$(BIN)/python -m pip install --quiet -r requirements/lock.txt
	@if [ "$(TORCH)" = pypi ]; then $(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION); \
	elif ! $(BIN)/python -m pip install --quiet --retries 2 --extra-index-url $(TORCH_INDEX) \
	    torch==$(TORCH_VERSION)+$(TORCH); then \
	  echo "make: torch==$(TORCH_VERSION)+$(TORCH) could not be installed (PyTorch's index $(TORCH_INDEX) \
	unreachable?); installing PyPI's torch==$(TORCH_VERSION) instead (larger; runs on CPU and CUDA 13)" >&2; \
	  $(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION); fi
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	@rm -f $(VENV)/.installed-torch-* && touch $(STAMP)

lock:  ## re-resolve requirements/lock.txt from PyPI (after changing a pin in pyproject.toml; needs network)
	$(BIN)/python -m pip --isolated lock --quiet --index-url https://pypi.org/simple -e '.[dev]' -o pylock.toml
	$(BIN)/python requirements/make_lock.py pylock.toml > requirements/lock.txt
	@rm pylock.toml

lint: setup  ## ruff on src and tests
	$(BIN)/ruff check src tests

test: lint  ## ruff + the whole test suite on TEST_JOBS workers (what CI runs)
	$(BIN)/pytest -n $(TEST_JOBS) --dist worksteal

test-fast: setup  ## skip the slow (training) tests
	$(BIN)/pytest -n $(TEST_JOBS) --dist worksteal -m "not slow"

reproduce: setup  ## the whole pipeline, locally, at SCALE (default: params.yaml `scale`)
	$(SNAKE) --cores $(CORES)

figures: setup  ## rebuild what the run folders (or, without them, the summary tables) of SCALE allow; never trains
	$(BIN)/iapo rebuild-figures --scale $(SCALE) --cores $(CORES)

compress-tables: setup  ## gzip SCALE's large summary tables (LARGE_TABLES) to .csv.gz, the form git keeps them in
	@for t in $(LARGE_TABLES); do f=results/summary/$(SCALE)/$$t.csv; \
	  if [ -f $$f ]; then gzip -9 -n -k -f $$f && echo "$$f.gz ($$(du -h $$f.gz | cut -f1))"; fi; done

dvc-record: setup  ## record the finished pipeline at SCALE in dvc.lock and push it to the DVC remote
	$(BIN)/dvc commit --force $(DVC_FILE)
	$(BIN)/dvc push $(DVC_FILE)
	@echo "recorded: commit $(dir $(DVC_FILE))dvc.lock to git to share this state"

pull: setup  ## fetch the recorded results of SCALE from the DVC remote (a fresh clone: then `make figures`)
	@test -f $(DVC_LOCK) || { echo "make pull: $(DVC_LOCK) is missing: no results of scale $(SCALE) are \
	recorded in this clone, so there is nothing to fetch. This repository commits no dvc.lock (its mini study \
	is in git as summary tables: make figures SCALE=mini rebuilds its figures, notebooks and audit from them). \
	To share runs, record them with make dvc-record SCALE=$(SCALE) against your own DVC remote \
	(.dvc/config.local) and commit $(DVC_LOCK); or retrain them with make reproduce SCALE=$(SCALE)." >&2; exit 2; }
	$(BIN)/dvc pull $(DVC_FILE)

report: setup  ## HTML report of the pipeline at SCALE: results/report/<SCALE>.html
	@mkdir -p results/report
	$(SNAKE) --report results/report/$(SCALE).html

dry-run: setup  ## the job counts of each scale's whole DAG (`snakemake -n --forceall`)
	@for s in smoke mini paper; do echo "== scale $$s"; \
	  $(BIN)/snakemake -n --forceall --quiet rules --config scale=$$s 2>&1 \
	    | awk '/^Job stats/ {f = 1} f {print} /^total/ {exit}'; done

rulegraph: setup  ## docs/rulegraph.svg (needs graphviz `dot`)
	$(BIN)/snakemake --rulegraph --config scale=smoke | dot -Tsvg > docs/rulegraph.svg

schema: setup  ## workflow/schemas/params.schema.json from the typed models in iapo.config
	$(BIN)/iapo schema --out workflow/schemas/params.schema.json

bench: setup  ## time update / act (one thread) and write results/bench.json
	$(BIN)/iapo bench --json results/bench.json

bench-audit: setup  ## time `iapo audit` on SCALE's summary tables (3 runs) and write results/bench_audit.json
	$(BIN)/python workflow/scripts/bench_audit.py $(SCALE) 3 results/bench_audit.json

gpu-check: setup  ## every GPU check at once on DEVICE (default cuda; cpu: small sizes): GPU_CHECK_OUT/gpu_check-*.json, .md
	$(BIN)/iapo gpu-check --device $(DEVICE) --out $(GPU_CHECK_OUT) $(if $(GPU_CHECK_BUDGET),--budget-s $(GPU_CHECK_BUDGET))

device-wheels: setup  ## wheels of requirements/device.txt for a bare GPU machine's Python DEVICE_PY (tools/gpu-check-bare)
	@test "$(words $(DEVICE_PINS))" = "$$(grep -vc '^#' requirements/device.txt)" || { echo "make device-wheels: \
	some package of requirements/device.txt has no pin in requirements/lock.txt (found: $(DEVICE_PINS))" >&2; exit 2; }
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --implementation cp \
	  --python-version $(DEVICE_PY) --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
	  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -d $(DEVICE_WHEELS)/cp$(subst .,,$(DEVICE_PY)) $(DEVICE_PINS)
	@echo "written: $(DEVICE_WHEELS)/cp$(subst .,,$(DEVICE_PY))/ ($$(ls $(DEVICE_WHEELS)/cp$(subst .,,$(DEVICE_PY)) | wc -l) \
	wheels, $$(du -sh $(DEVICE_WHEELS)/cp$(subst .,,$(DEVICE_PY)) | cut -f1)); on the GPU machine: tools/gpu-check-bare RESULTS"

clean:  ## remove .venv and the caches (never an environment passed as VENV=…)
	rm -rf .venv .pytest_cache .ruff_cache src/*.egg-info
