"""Aggregate the finished run folders of one scale into small tidy tables for the notebooks.

The pipeline's training jobs write `results/runs/<scale>/<env>/<variant>/seed<k>/`; `iapo summarize`
reads every run of the scale's grid (env × variant × seed, from `params.yaml`) and writes, under
`results/summary/<scale>/`, tables with one row per observation (the figures read these small
files, never checkpoints; paths: iapo.layout):

  runs.csv     one row per run: identity, resolved settings, final evaluation return, cost, provenance
  eval.csv     one row per evaluation episode: env, variant, seed, env step, updates, episode, return
  metrics.csv  one row per training log interval: env, variant, seed, then the columns of metrics.csv
  scale.json   the scale preset and how it differs from `paper` (every reduction is shown with results)

  NAME.csv     per diagnostic of the scale (`scales.<scale>.diagnostics`): the per-run tables
               `iapo diagnose NAME` wrote under results/diagnostics/<scale>/NAME/<env>/<variant>/,
               concatenated (+ NAME_<table>.csv for its extra tables)

A committed study keeps its largest tables in git gzip-compressed (NAME.csv.gz, `make
compress-tables`); readers take NAME.csv, else NAME.csv.gz (`table_file`, `read_table`), and `make
figures` unpacks them for the Snakemake rules (`unpack_tables`).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from iapo import atomic
from iapo.config import Params, Scale, run_grid  # run_grid: handed on, like RunKey
from iapo.errors import SummaryError
from iapo.layout import (  # RunKey, DiagnosticRun: handed on to the modules that import them from here
    DIAGNOSTICS_ROOT,
    REGISTRY,
    RUNS_ROOT,
    DiagnosticRun,
    RunKey,
    summary_dir,
    table_names,
)
from iapo.run_record import RunRecord

SUMMARY_FILES = ("runs.csv", "eval.csv", "metrics.csv", "scale.json")


def diagnose_argv(job: DiagnosticRun, params: Params, scale: str, runs_root: str | Path = RUNS_ROOT,
                  root: str | Path = DIAGNOSTICS_ROOT) -> list[str]:
    """The arguments of `iapo diagnose NAME` for one job (the pipeline and DVC both use them)."""
    args = ["--run", str(job.key.folder(scale, runs_root)), "--out", str(job.out(scale, root))]
    for key, value in params.scales[scale].diagnostics[job.name].options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    if job.donor is not None:
        args += ["--optimizer-from", str(job.donor.folder(scale, runs_root))]
    return args


def diagnostic_runs(params: Params, scale: str, name: str | None = None) -> list[DiagnosticRun]:
    """The diagnostics jobs of a scale (`scales.<scale>.diagnostics`), optionally of one NAME."""
    grid = run_grid(params, scale)
    jobs = []
    for diag, job in params.scales[scale].diagnostics.items():
        if name is not None and diag != name:
            continue
        for key in grid:
            if key.variant not in job.variants or (job.envs is not None and key.env not in job.envs):
                continue
            donor = None
            if job.donor is not None and key.variant != job.donor:
                donor = RunKey(key.env, job.donor, key.seed)
                if donor not in grid:
                    raise SummaryError(
                        f"scales.{scale}.diagnostics.{diag}.donor: {job.donor!r} has no run on "
                        f"{key.env} seed {key.seed} in scales.{scale}.grid, but {key.variant} needs "
                        "its optimizer there; add the donor to that env's group or drop `donor`")
            jobs.append(DiagnosticRun(diag, key, donor))
    return jobs


def diagnostic_names(params: Params, scale: str) -> list[str]:
    """The analyses a scale runs: those of `scales.<scale>.diagnostics` matching at least one run."""
    return [name for name in REGISTRY if diagnostic_runs(params, scale, name)]


def diagnostic_tables(params: Params, scale: str) -> list[str]:
    """Summary tables (NAME, NAME_<table>) the scale's diagnostics produce."""
    return [table for name in diagnostic_names(params, scale) for table in table_names(name)]


def collect_diagnostic(params: Params, scale: str, name: str,
                       root: str | Path = DIAGNOSTICS_ROOT) -> dict[str, pd.DataFrame]:
    """The per-run tables of diagnostic NAME concatenated: {NAME: …, NAME_<table>: …}."""
    jobs = diagnostic_runs(params, scale, name)
    tables: dict[str, list[pd.DataFrame]] = {t: [] for t in table_names(name)}
    for job in jobs:
        for table, path in job.outs(scale, root).items():
            if not path.is_file():
                raise SummaryError(f"{path}: missing. Run the diagnostic first (`snakemake --cores N "
                                   f"--config scale={scale}` runs what is missing, or `iapo summarize "
                                   "--no-diagnostics` summarizes the runs alone).")
            tables[table].append(_read_csv(path))
    return {table: pd.concat(frames, ignore_index=True) for table, frames in tables.items()}


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise SummaryError(f"{path}: cannot be read as CSV ({err}). Rerun its training job "
                           "(delete run.json in that folder, then rerun the pipeline).") from err


def read_run(folder: Path, key: RunKey, scale: str) -> tuple[RunRecord, pd.DataFrame, pd.DataFrame]:
    """run.json, metrics.csv and eval.csv of one finished run, checked against the expected run."""
    marker = folder / "run.json"
    if not marker.is_file():
        raise SummaryError(f"{folder}: no run.json, so this run has not finished. Train it first "
                           f"(`snakemake --cores N --config scale={scale}` trains what is missing).")
    try:
        info = RunRecord.read(folder)
    except (OSError, ValueError) as err:
        raise SummaryError(f"{marker}: {err}. Delete it and rerun the training job: it resumes from "
                           "the run's last checkpoint.") from err
    expected = {"env": key.env, "variant": key.variant, "seed": key.seed, "scale": scale}
    got = {k: getattr(info, k) for k in expected}
    if got != expected:
        raise SummaryError(f"{marker}: describes run {got}, but this folder should hold {expected}. "
                           "Move the folder to where it belongs or delete it and retrain.")
    metrics, evals = _read_csv(folder / "metrics.csv"), _read_csv(folder / "eval.csv")
    return info, metrics, evals


def run_row(info: RunRecord) -> dict:
    """One row of runs.csv from a run.json."""
    cfg = info.config
    return {
        "env": info.env, "variant": info.variant, "seed": info.seed, "scale": info.scale,
        "family": cfg.get("family"), "value": cfg.get("value", "model_free"),
        "q_arch": cfg.get("q_arch"), "beta": cfg.get("beta"), "n_iters": cfg.get("n_iters"),
        "steps": info.steps, "updates": info.updates, "episodes": info.episodes,
        "initial_random_steps": cfg.get("initial_random_steps"),
        "final_eval_return": info.final_eval_return, "wall_time_s": info.wall_time_s,
        "env_steps_per_s": info.env_steps_per_s_last_session,
        "n_resumes": len(info.resumed_at), "device": info.device,
        "threads": info.threads, "params_hash": info.params_hash, "git_commit": info.git_commit,
    }


class ScaleReport(BaseModel):
    """scale.json: the scale's preset, the paper's, and the keys where they differ (every reduction
    is shown with the results). Written by `summarize`, read back here and nowhere else."""

    scale: str
    preset: Scale
    paper: Scale
    reduced: list[str]

    @classmethod
    def of(cls, params: Params, scale: str) -> ScaleReport:
        """The report of `scale`; a preset's unset `initial_random_steps` is the training default."""
        default = {"initial_random_steps": params.training.initial_random_steps}
        presets = [params.scales[name] for name in (scale, "paper")]
        presets = [p if p.initial_random_steps is not None else p.model_copy(update=default) for p in presets]
        this, paper = (p.model_dump() for p in presets)
        return cls(scale=scale, preset=presets[0], paper=presets[1],
                   reduced=sorted(k for k in this if this[k] != paper.get(k)))

    @classmethod
    def read(cls, summary_dir: str | Path) -> ScaleReport | None:
        """The report in `summary_dir`, None when absent or unreadable."""
        try:
            return cls.model_validate_json((Path(summary_dir) / "scale.json").read_text())
        except (OSError, ValueError):
            return None

    def write(self, summary_dir: Path) -> Path:
        path = summary_dir / "scale.json"
        atomic.write_text(path, json.dumps(self.model_dump(), indent=2) + "\n")
        return path

    @property
    def warmup(self) -> int | None:
        """`initial_random_steps`: env steps of uniform random actions before the first update."""
        return self.preset.initial_random_steps

    def produced_tables(self) -> set[str]:
        """The summary tables the scale produces: the core tables, and every table of each diagnostic
        that has at least one run of the scale's grid to analyse."""
        runs = self.preset.runs()
        tables = {name.removesuffix(".csv") for name in SUMMARY_FILES if name.endswith(".csv")}
        for name, job in self.preset.diagnostics.items():
            if any(v in job.variants and (job.envs is None or e in job.envs) for e, v in runs):
                tables.update(table_names(name))
        return tables


def table_file(folder: str | Path, table: str) -> Path:
    """`folder/<table>.csv`, else its gzip-compressed copy `<table>.csv.gz` if only that exists (a
    committed study's large tables); the `.csv` path when neither does."""
    plain = Path(folder) / f"{table}.csv"
    packed = plain.with_name(f"{plain.name}.gz")
    return packed if not plain.is_file() and packed.is_file() else plain


STEP = "step"
"""The env step column of every summary table as `read_table` gives it."""
LOG_TABLES = ("eval", "metrics")
"""The training logs' tables (one row per evaluation episode, per log interval): their files call the
env step `LOG_STEP`, as the run folders' own eval.csv and metrics.csv do; every other table `STEP`."""
LOG_STEP = "env_step"


def read_table(folder: str | Path, table: str) -> pd.DataFrame | None:
    """`folder/<table>.csv` (or its `.csv.gz`: `table_file`), None when neither is there. The env step
    is `step` in every table read: the training logs' `env_step` is renamed. The figures and the audit
    read the summary tables through here."""
    path = table_file(folder, table)
    if not path.is_file():
        return None
    df = pd.read_csv(path, low_memory=False)  # one dtype per column, not per chunk
    if STEP not in df and LOG_STEP in df:
        df = df.rename(columns={LOG_STEP: STEP})
    return df


def step_in_file(table: str) -> str:
    """The name `<table>.csv` itself gives the env step column (`read_table` calls it `step`), for
    messages that quote the file."""
    return LOG_STEP if table in LOG_TABLES else STEP


def unpack_tables(folder: str | Path) -> list[Path]:
    """Write `<table>.csv` from each `<table>.csv.gz` of `folder` that has no `.csv` yet; returns
    the files written (each whole or not at all)."""
    written = []
    for packed in sorted(Path(folder).glob("*.csv.gz")):
        plain = packed.with_suffix("")
        if not plain.exists():
            written.append(atomic.write_bytes(plain, gzip.decompress(packed.read_bytes())))
    return written


def summarize(params: Params, scale: str, runs_root: str | Path = RUNS_ROOT,
              out: str | Path | None = None, diagnostics_root: str | Path | None = DIAGNOSTICS_ROOT
              ) -> list[Path]:
    """Read every run of the scale's grid (and, unless `diagnostics_root` is None, every diagnostic
    table the scale asks for) and write the summary tables; returns the files written.

    Everything is read and checked before anything is written, so a bad input leaves the previous
    summary untouched.
    """
    out = Path(out) if out is not None else summary_dir(scale)
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
    if diagnostics_root is not None:
        for name in diagnostic_names(params, scale):
            tables |= {f"{table}.csv": df for table, df in
                       collect_diagnostic(params, scale, name, diagnostics_root).items()}
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in tables.items():
        atomic.write_text(out / name, table.to_csv(index=False))
        written.append(out / name)
    written.append(ScaleReport.of(params, scale).write(out))
    return written
