"""What every diagnostic writes its tables with: the identity columns that open each table, a frame with
exactly its documented columns, an atomic CSV write, progress bars on stderr and index batches."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from iapo import atomic

IDENTITY = {
    "env": "paper task name, e.g. HalfCheetah-v2",
    "variant": "agent variant of params.yaml, e.g. iterative",
    "family": "policy optimizer family: direct | iterative | direct_flow",
    "seed": "training seed of the run",
    "step": "env step of the checkpoint",
}
"""Columns that open every diagnostic table: which run and which checkpoint."""


def progress(iterable: Iterable, desc: str, total: int | None = None, unit: str = "it",
             leave: bool = True) -> tqdm:
    """A tqdm bar on stderr (sparse updates when stderr is not a terminal, e.g. under Slurm)."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, file=sys.stderr,
                mininterval=0.5 if sys.stderr.isatty() else 30.0, dynamic_ncols=True)


def write_table(df: pd.DataFrame, path: Path) -> Path:
    """Write a CSV atomically (temp file, then rename): a crash never leaves a partial table."""
    with atomic.replacing(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


INTEGER_COLUMNS = frozenset({
    "seed", "step", "prev_step", "state", "pair", "run", "run_i", "run_j", "iteration", "dim_x", "dim_y",
    "episode", "length", "n_rollouts", "horizon", "extra_steps", "opt_steps", "amortized_iters",
    "n_samples", "n_iters_trained",
})


def frame(rows: list[dict], columns: Iterable[str]) -> pd.DataFrame:
    """Rows → a table with exactly the documented columns, in order. Integer columns stay integers
    where some rows leave them empty (pandas Int64: written as 3, or nothing)."""
    df = pd.DataFrame(rows).reindex(columns=list(columns))
    for c in df.columns:
        if c in INTEGER_COLUMNS:
            df[c] = df[c].astype("Int64")
    return df


def chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))
