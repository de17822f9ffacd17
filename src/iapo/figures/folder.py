"""The summary folder of one scale as the notebooks see it: its tables (each, or the reason it is
missing), scale.json (the runs, seeds and steps the scale has, for titles and empty panels) and the
rows of each run's last checkpoint."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from iapo.figures.bands import BAND_TEXT
from iapo.figures.labels import human, label, order_envs
from iapo.summary import produced_tables, read_table


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
        try:
            self.info = json.loads((self.dir / "scale.json").read_text())
        except (OSError, ValueError):
            self.info = {}
        self.preset = self.info.get("preset", {})
        self.paper = self.info.get("paper", {})
        self.runs = _preset_runs(self.preset)  # {(env, variant)} the scale trains; empty if unknown

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
        if self.info and name not in produced_tables(self.info):
            return f"no {name}.csv: the scale {self.scale!r} does not produce it"
        return (f"{name}.csv not present: rebuild with `snakemake --cores N --config scale={self.scale}` "
                f"or, after its jobs, `iapo summarize --scale {self.scale}`")

    @property
    def warmup(self) -> int | None:
        """The scale's `initial_random_steps` (scale.json): env steps of uniform random actions before
        the first update; None when unknown."""
        steps = self.preset.get("initial_random_steps")
        return None if steps is None else int(steps)

    def timing_device(self, diagnostic: str) -> str:
        """The device a diagnostic's wall-clock times were measured on: its `device` option in
        scale.json, else the option's default (`iapo.diagnostics.options.Options`)."""
        from iapo.diagnostics.options import Options

        job = (self.preset.get("diagnostics") or {}).get(diagnostic) or {}
        default = next(f.default for f in fields(Options) if f.name == "device")
        return str((job.get("options") or {}).get("device", default))

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
        text = f"scale {self.scale}: {_seeds_text(self.preset)}, {_steps_text(self.preset)} env steps"
        if self.paper and self.scale != "paper":
            text += f" (paper: {_seeds_text(self.paper)}, {_steps_text(self.paper)} env steps)"
        if band is not None:
            text += "; " + BAND_TEXT[band]
        return text


def _preset_runs(preset: dict) -> set[tuple[str, str]]:
    """The (env, variant) pairs of a scale preset: `grid` groups, or envs × variants."""
    groups = preset.get("grid") or ([preset] if "envs" in preset else [])
    return {(e, v) for g in groups for e in g.get("envs", []) for v in g.get("variants", [])}


def timing_text(device: str) -> str:
    """Where wall-clock times were measured (a `Summary.timing_device`), for a title: the paper timed
    its optimizers on a GPU, so ratios measured on a CPU are not its numbers."""
    if device.startswith("cuda"):
        return f"timed on a CUDA GPU ({device}; its model is not in the summary tables), as the paper was"
    return "timed on CPU: ratios from a CPU are not the paper's GPU timings"


def _group_values(preset: dict, key: str) -> list:
    """The scale's `key` and every group's own, sorted, without repeats."""
    return sorted({v for v in [preset.get(key)] + [g.get(key) for g in preset.get("grid", [])] if v})


def _seeds_text(preset: dict) -> str:
    seeds = _group_values(preset, "seeds")
    if not seeds:
        return "? seeds"
    count = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
    return f"{count} seed" + ("" if seeds == [1] else "s")


def _steps_text(preset: dict) -> str:
    steps = sorted(set(_group_values(preset, "steps")) | set((preset.get("steps_per_env") or {}).values()))
    if not steps:
        return "?"
    return human(steps[0]) if len(steps) == 1 else f"{human(steps[0])}–{human(steps[-1])}"


def last_checkpoint(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's (env, variant, seed) latest analysed checkpoint."""
    if df.empty:
        return df
    return df[df["step"] == df.groupby(["env", "variant", "seed"])["step"].transform("max")]
