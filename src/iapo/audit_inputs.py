"""What the audit reads from a summary folder besides the claims: each claim's table (the evaluation and
log tables joined with their runs' settings), the context of every claim (the warm-up cut, the
untrained policies' returns, the runs' devices) and why a table or a column is missing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from iapo.summary import LOG_TABLES, STEP, ScaleReport, read_table

RUN = ["env", "variant", "seed"]
RUN_META = ["family", "value", "q_arch", "beta"]  # runs.csv columns joined onto eval / metrics rows


@dataclass
class Context:
    """What the audit knows besides a claim's table: the warm-up cut, the normalization anchors, and
    the devices the runs were measured on."""

    warmup: int | None = None
    untrained: dict[str, float] = field(default_factory=dict)  # env → untrained policy's eval return
    reference: dict[str, float] = field(default_factory=dict)  # env → published reference return
    devices: dict[str, set[str]] = field(default_factory=dict)  # env → devices its runs trained on


def claim_table(summary_dir: Path, table: str, runs: pd.DataFrame | None) -> pd.DataFrame | None:
    """A summary table (`read_table`: the env step in `step`), None when absent; evaluation and log
    tables get each run's family, value, Q arch and β."""
    df = read_table(summary_dir, table)
    if df is None:
        return None
    if runs is not None and table in LOG_TABLES:
        meta = [c for c in RUN_META if c in runs.columns and c not in df.columns]
        df = df.merge(runs[RUN + meta], on=RUN, how="left")
    return df


def context(summary_dir: Path, reference: dict[str, float], runs: pd.DataFrame | None,
            evals: pd.DataFrame | None) -> Context:
    """The warm-up cut (scale.json), the untrained policies' returns (`evals` at env step 0) and the
    runs' devices (runs.csv)."""
    ctx = Context(warmup=warmup(summary_dir), reference=reference)
    if evals is not None:
        ctx.untrained = evals[evals[STEP] == 0].groupby("env")["return"].mean().to_dict()
    if runs is not None and "device" in runs.columns:
        ctx.devices = {env: set(map(str, g["device"])) for env, g in runs.groupby("env")}
    return ctx


def why_missing(table: str, summary_dir: Path, column: bool = False) -> str:
    """Why a claim's table (or, with `column`, a column of a present table) is absent: not produced by
    this scale, or produced but not present here."""
    report = ScaleReport.read(summary_dir)
    scale = report.scale if report is not None else "SCALE"
    rebuild = (f"rebuild with `snakemake --cores N --config scale={scale}` (runs what is missing, then "
               f"`iapo summarize --scale {scale}`)")
    path = summary_dir / f"{table}.csv"
    if column:
        return (f"not present: the jobs behind {path} predate these columns (or no code writes them); "
                f"rerun those jobs and rebuild with `iapo summarize --scale {scale}`")
    if report is None:
        return f"{path} not present (no scale.json says whether the scale produces it): {rebuild}"
    if table in report.produced_tables():
        return f"{path} not present: {rebuild}"
    return (f"{table} not produced at scale {scale}: no diagnostic of scales.{scale}.diagnostics writes it "
            "for this scale's runs")


def warmup(summary_dir: Path) -> int | None:
    """The scale's `initial_random_steps` (scale.json), None when unknown."""
    report = ScaleReport.read(summary_dir)
    return None if report is None else report.warmup
