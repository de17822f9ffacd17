"""The summary folder of one scale as the notebooks see it: its tables (each, or the reason it is
missing), scale.json (the runs, seeds and steps the scale has, for titles and empty panels) and the
rows of each run's last checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from iapo.config import Scale
from iapo.figures.bands import BAND_TEXT
from iapo.figures.labels import human, label, order_envs
from iapo.summary import ScaleReport, read_table


@dataclass(frozen=True)
class Table:
    """A summary table, or None with the reason it is missing at this scale."""

    name: str
    frame: pd.DataFrame | None
    why: str = ""

    def rows(self, query: str | None = None, **equals: object) -> pd.DataFrame:
        """The rows matching a pandas query and column == value (or `in` a list); may be empty."""
        if self.frame is None:
            return pd.DataFrame()
        df = self.frame if query is None else self.frame.query(query)
        for column, value in equals.items():
            if column not in df:
                return df.iloc[0:0]
            values = value if isinstance(value, list | tuple | set) else [value]
            df = df[df[column].isin(values)]
        return df



class Summary:
    """The summary folder of one scale: its tables, scale.json and the runs the scale has."""

    def __init__(self, summary_dir: str | Path, scale: str):
        self.dir, self.scale = Path(summary_dir), scale
        self.report = ScaleReport.read(self.dir)  # None when unknown
        self.runs = set(self.report.preset.runs()) if self.report else set()  # {(env, variant)} trained

    def table(self, name: str) -> Table:
        """`<summary_dir>/<name>.csv` (or its committed `.csv.gz`), read by `iapo.summary.read_table`:
        `step` is the env step in every table."""
        try:
            df = read_table(self.dir, name)
        except (OSError, ValueError) as err:
            return Table(name, None, f"{name}.csv cannot be read ({err})")
        if df is None:
            return Table(name, None, self._absent(name))
        if df.empty:
            return Table(name, None, f"{name}.csv has no rows")
        return Table(name, df)

    def _absent(self, name: str) -> str:
        """Why `<name>.csv` is absent: the scale does not produce it, or it does and the file is not
        here (e.g. a large table left out of a commit)."""
        if self.report and name not in self.report.produced_tables():
            return f"no {name}.csv: the scale {self.scale!r} does not produce it"
        return (f"{name}.csv not present: rebuild with `snakemake --cores N --config scale={self.scale}` "
                f"or, after its jobs, `iapo summarize --scale {self.scale}`")

    @property
    def warmup(self) -> int | None:
        """The scale's `initial_random_steps` (scale.json): env steps of uniform random actions before
        the first update; None when unknown."""
        return None if self.report is None else self.report.warmup

    def timing_device(self, diagnostic: str) -> str:
        """The device a diagnostic's wall-clock times were measured on: its `device` option in
        scale.json, else the option's default (`iapo.diagnostics.options.Options`)."""
        from iapo.diagnostics.options import Options

        job = self.report.preset.diagnostics.get(diagnostic) if self.report else None
        default = next(f.default for f in fields(Options) if f.name == "device")
        return str((job.options if job else {}).get("device", default))

    def trained_envs(self, *variants: str) -> list[str]:
        """The envs on which this scale trains any of `variants` (from scale.json)."""
        return order_envs({e for e, v in self.runs if v in variants})

    def reason(self, table: Table, env: str | None = None, variants: Sequence[str] = ()) -> str:
        """Why a panel of `table` for `env` and `variants` has no rows, as precisely as we know."""
        if table.frame is None:
            return table.why
        wanted = ", ".join(label(v) for v in variants)
        if self.runs and env is not None:
            if env not in {e for e, _ in self.runs}:
                return f"{env} is not trained at scale {self.scale!r}"
            if variants and not any((env, v) in self.runs for v in variants):
                return f"{wanted} not trained on {env} at scale {self.scale!r}"
        where = " ".join(p for p in (env, wanted and f"({wanted})") if p)
        return f"{table.name}.csv has no rows for {where or 'this panel'} at scale {self.scale!r}"

    def caption(self, band: str | None = "ci") -> str:
        """The line every title carries: scale, seeds, env steps (and the paper's), statistic."""
        preset, paper = (self.report.preset, self.report.paper) if self.report else (None, None)
        text = f"scale {self.scale}: {_seeds_text(preset)}, {_steps_text(preset)} env steps"
        if paper and self.scale != "paper":
            text += f" (paper: {_seeds_text(paper)}, {_steps_text(paper)} env steps)"
        if band is not None:
            text += "; " + BAND_TEXT[band]
        return text


def timing_text(device: str) -> str:
    """Where wall-clock times were measured (a `Summary.timing_device`), for a title: the paper timed
    its optimizers on a GPU, so ratios measured on a CPU are not its numbers."""
    if device.startswith("cuda"):
        return f"timed on a CUDA GPU ({device}; its model is not in the summary tables), as the paper was"
    return "timed on CPU: ratios from a CPU are not the paper's GPU timings"


def _group_values(preset: Scale | None, key: str) -> list:
    """The scale's `key` and every group's own, sorted, without repeats (none when unknown)."""
    if preset is None:
        return []
    return sorted({v for v in [getattr(preset, key)] + [getattr(g, key) for g in preset.grid] if v})


def _seeds_text(preset: Scale | None) -> str:
    seeds = _group_values(preset, "seeds")
    if not seeds:
        return "? seeds"
    count = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
    return f"{count} seed" + ("" if seeds == [1] else "s")


def _steps_text(preset: Scale | None) -> str:
    per_env = preset.steps_per_env.values() if preset is not None else ()
    steps = sorted(set(_group_values(preset, "steps")) | set(per_env))
    if not steps:
        return "?"
    return human(steps[0]) if len(steps) == 1 else f"{human(steps[0])}–{human(steps[-1])}"


def last_checkpoint(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's (env, variant, seed) latest analysed checkpoint."""
    if df.empty:
        return df
    return df[df["step"] == df.groupby(["env", "variant", "seed"])["step"].transform("max")]
