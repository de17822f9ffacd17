# Shared by every rule file: config validation, the scale's run grid, and where each product lives.
# Paths are defined here once; the rules only wire them to `iapo` commands.

import os
import sys

from pydantic import ValidationError
from snakemake.utils import min_version, validate

from iapo.config import Params, resolve
from iapo.resources import train_mem_mb
from iapo.summary import RUNS_ROOT, SUMMARY_FILES, SUMMARY_ROOT, RunKey, run_grid

min_version("9.0")

# Jobs call `iapo` from the environment Snakemake runs in (also when the venv is not activated).
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

# ---------------------------------------------------------------- config
# 1. The JSON schema generated from iapo.config (`make schema`): keys, types, allowed values.
validate(config, schema="../schemas/params.schema.json", set_default=False)
# 2. The cross-checks a JSON schema cannot express (a scale naming an unknown env, `scale` not a
#    preset, …): the same typed model `iapo` itself loads params.yaml with.
try:
    PARAMS = Params.model_validate(dict(config))
except ValidationError as err:
    problems = "\n".join(f"  {'.'.join(map(str, e['loc'])) or '(top level)'}: "
                         f"{e['msg'].removeprefix('Value error, ')}" for e in err.errors())
    raise ValueError(f"params.yaml (with --config overrides) is invalid:\n{problems}") from None

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
    return f"{SUMMARY_ROOT}/{scale}"


def describe_scale(scale):
    sc = PARAMS.scales[scale]
    return (f"{len(sc.runs())} env × variant pairs in {len(sc.grid)} groups × {sc.seeds} seeds, "
            f"{sc.steps} env steps")


# ---------------------------------------------------------------- final targets
# Each stage registers the products `rule all` asks for, as a function of the scale. The
# diagnostics, figures and audit rule files add theirs here when they land.
FINAL_TARGETS = {}


def final_targets(scale):
    return [path for products in FINAL_TARGETS.values() for path in products(scale)]
