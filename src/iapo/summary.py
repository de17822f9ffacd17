"""Aggregate the finished run folders of one scale into small tidy tables for the notebooks.

The pipeline's training jobs write `results/runs/<scale>/<env>/<variant>/seed<k>/`; `iapo summarize`
reads every run of the scale's grid (env × variant × seed, from `params.yaml`) and writes, under
`results/summary/<scale>/`, tables with one row per observation (DESIGN principle 5: figures read
these small files, never checkpoints):

  runs.csv     one row per run: identity, resolved settings, final evaluation return, cost, provenance
  eval.csv     one row per evaluation episode: env, variant, seed, env step, updates, episode, return
  metrics.csv  one row per training log interval: env, variant, seed, then the columns of metrics.csv
  scale.json   the scale preset and how it differs from `paper` (every reduction is shown with results)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from iapo.config import Params

RUNS_ROOT = Path("results/runs")
SUMMARY_ROOT = Path("results/summary")
SUMMARY_FILES = ("runs.csv", "eval.csv", "metrics.csv", "scale.json")
KEYS = ["env", "variant", "seed"]


class SummaryError(ValueError):
    """A run folder is missing, unfinished or unreadable; the message names it and the fix."""


@dataclass(frozen=True, order=True)
class RunKey:
    """One training run of a scale's grid."""

    env: str
    variant: str
    seed: int

    def folder(self, scale: str, root: str | Path = RUNS_ROOT) -> Path:
        """`<root>/<scale>/<env>/<variant>/seed<k>`: the run folder `iapo train --out` writes."""
        return Path(root) / scale / self.env / self.variant / f"seed{self.seed}"


def run_grid(params: Params, scale: str) -> list[RunKey]:
    """Every run a scale asks for: its envs × variants × seeds 0 … seeds-1 (the pipeline's grid)."""
    if scale not in params.scales:
        raise SummaryError(f"scale: unknown value {scale!r}; allowed: {', '.join(sorted(params.scales))}")
    sc = params.scales[scale]
    return [RunKey(env, variant, seed)
            for env in sc.envs for variant in sc.variants for seed in range(sc.seeds)]


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise SummaryError(f"{path}: cannot be read as CSV ({err}). Rerun its training job "
                           "(delete run.json in that folder, then rerun the pipeline).") from err


def read_run(folder: Path, key: RunKey, scale: str) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """run.json, metrics.csv and eval.csv of one finished run, checked against the expected run."""
    marker = folder / "run.json"
    if not marker.is_file():
        raise SummaryError(f"{folder}: no run.json, so this run has not finished. Train it first "
                           f"(`snakemake --cores N --config scale={scale}` trains what is missing).")
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError) as err:
        raise SummaryError(f"{marker}: not valid JSON ({err}). Delete it and rerun the training job: "
                           "it resumes from the run's last checkpoint.") from err
    expected = {"env": key.env, "variant": key.variant, "seed": key.seed, "scale": scale}
    got = {k: info.get(k) for k in expected}
    if got != expected:
        raise SummaryError(f"{marker}: describes run {got}, but this folder should hold {expected}. "
                           "Move the folder to where it belongs or delete it and retrain.")
    metrics, evals = _read_csv(folder / "metrics.csv"), _read_csv(folder / "eval.csv")
    return info, metrics, evals


def run_row(info: dict) -> dict:
    """One row of runs.csv from a run.json."""
    cfg = info.get("config", {})
    return {
        "env": info["env"], "variant": info["variant"], "seed": info["seed"], "scale": info["scale"],
        "family": cfg.get("family"), "value": cfg.get("value", "model_free"),
        "q_arch": cfg.get("q_arch"), "beta": cfg.get("beta"), "n_iters": cfg.get("n_iters"),
        "steps": info.get("steps"), "updates": info.get("updates"), "episodes": info.get("episodes"),
        "initial_random_steps": cfg.get("initial_random_steps"),
        "final_eval_return": info.get("final_eval_return"), "wall_time_s": info.get("wall_time_s"),
        "env_steps_per_s": info.get("env_steps_per_s_last_session"),
        "n_resumes": len(info.get("resumed_at", [])), "device": info.get("device"),
        "threads": info.get("threads"), "params_hash": info.get("params_hash"),
        "git_commit": info.get("git_commit"),
    }


def scale_report(params: Params, scale: str) -> dict:
    """The scale preset, the paper preset, and the keys where they differ (the reductions)."""
    this, paper = params.scales[scale].model_dump(), params.scales["paper"].model_dump()
    for preset in (this, paper):
        if preset["initial_random_steps"] is None:
            preset["initial_random_steps"] = params.training.initial_random_steps
    return {"scale": scale, "preset": this, "paper": paper,
            "reduced": sorted(k for k in this if this[k] != paper.get(k))}


def _write_atomic(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def summarize(params: Params, scale: str, runs_root: str | Path = RUNS_ROOT,
              out: str | Path | None = None) -> list[Path]:
    """Read every run of the scale's grid and write the summary tables; returns the files written.

    Every run is read and checked before anything is written, so a bad run leaves the previous
    summary untouched.
    """
    out = Path(out) if out is not None else SUMMARY_ROOT / scale
    rows, metrics, evals = [], [], []
    for key in run_grid(params, scale):
        info, m, e = read_run(key.folder(scale, runs_root), key, scale)
        rows.append(run_row(info))
        ids = pd.DataFrame({"env": key.env, "variant": key.variant, "seed": key.seed}, index=m.index)
        metrics.append(pd.concat([ids, m], axis=1))
        ids = pd.DataFrame({"env": key.env, "variant": key.variant, "seed": key.seed}, index=e.index)
        evals.append(pd.concat([ids, e], axis=1))
    tables = {
        "runs.csv": pd.DataFrame(rows),
        "eval.csv": pd.concat(evals, ignore_index=True),
        "metrics.csv": pd.concat(metrics, ignore_index=True),
    }
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in tables.items():
        _write_atomic(table.to_csv(index=False), out / name)
        written.append(out / name)
    _write_atomic(json.dumps(scale_report(params, scale), indent=2) + "\n", out / "scale.json")
    written.append(out / "scale.json")
    return written
