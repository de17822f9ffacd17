# Shared by every rule file: config validation, the scale's run grid, and where each product lives.
# Paths come from iapo.layout (also the defaults of the `iapo` commands); the rules only wire them.

import ast
import os
import re
import sys

from pydantic import ValidationError
from snakemake.utils import min_version, validate

from iapo import layout
from iapo.config import ConfigError, Params, check_pipeline_config, describe_errors, resolve
from iapo.layout import RUNS_ROOT
from iapo.resources import train_mem_mb
from iapo.summary import SUMMARY_FILES, RunKey, run_grid

min_version("9.0")

# Jobs call `iapo` from the environment Snakemake runs in (also when the venv is not activated).
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

# ---------------------------------------------------------------- config
# A bad --config or params.yaml stops the workflow before any job with one paragraph and exit code 2:
# 1. `--config` keys: only `scale` is honoured (the jobs read every other setting from params.yaml
#    themselves), so any other key is refused rather than ignored.
# 2. The typed model `iapo` itself loads params.yaml with: unknown keys, types, values, and the
#    cross-checks a JSON schema cannot express (a scale naming an unknown env, …).
def refuse(message):
    print(f"iapo pipeline: error: {message}", file=sys.stderr)
    sys.exit(2)


try:
    check_pipeline_config(dict(workflow.config_settings.config), list(workflow.config_settings.configfiles))
    PARAMS = Params.model_validate(dict(config))
except ConfigError as err:
    refuse(err)
except ValidationError as err:
    refuse("params.yaml (with --config overrides) is invalid:\n" + describe_errors(err))
# 3. The JSON schema generated from the same models (`make schema`): the workflow's declared interface.
validate(config, schema="../schemas/params.schema.json", set_default=False)

SCALE = config["scale"]  # `--config scale=smoke|mini|paper`; default from params.yaml
RUNS = run_grid(PARAMS, SCALE)


wildcard_constraints:
    scale=r"[A-Za-z0-9_]+",
    env=r"[A-Za-z0-9]+-v\d+",
    variant=r"[A-Za-z0-9_]+",
    seed=r"\d+",


# ---------------------------------------------------------------- paths
def run_root(scale):
    """results/runs/<scale>: one folder per run below it (each a DVC-versioned unit)."""
    return f"{RUNS_ROOT}/{scale}"


# results/runs/{scale}/{env}/{variant}/seed{seed}: the folder `iapo train --out` writes.
RUN_DIR = str(RunKey("{env}", "{variant}", "{seed}").folder("{scale}", RUNS_ROOT))


def run_done(scale, key):
    """run.json of one run: written last by `iapo train`, so it marks the run complete."""
    return str(key.folder(scale, RUNS_ROOT) / "run.json")


def all_runs_done(scale):
    return [run_done(scale, key) for key in run_grid(PARAMS, scale)]


def summary_dir(scale):
    """results/summary/<scale> (iapo.layout, like every path below)."""
    return str(layout.summary_dir(scale))


# ---------------------------------------------------------------- final targets
# Each stage registers the products `rule all` asks for, as a function of the scale: the
# diagnostics, summary, figures and audit rule files each add theirs.
FINAL_TARGETS = {}


def final_targets(scale):
    return [path for products in FINAL_TARGETS.values() for path in products(scale)]
