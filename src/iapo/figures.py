"""The paper's figures: one seaborn style, the helpers every notebook draws with, and the registry.

The notebooks (`notebooks/<group>.py`, jupytext percent format, executed by Snakemake through
papermill) read only the small summary tables of one scale (`results/summary/<scale>/`, never a
checkpoint) and draw with the helpers below, so every figure has the same look, the same statistics
(mean and a 95% stratified-bootstrap band over seeds from `iapo.stats`, or the paper's mean ± std)
and a title stating the scale, seeds and steps behind it. Where a table or some of its rows are
missing at a scale (no model-based runs at `smoke`, …) the panel says so; nothing is made up.

`FIGURES` names every figure and table of the paper once, with its number in both versions of the
text: `neurips` = the NeurIPS 2021 main text and appendix (Figures 1-9 and 10-26), `v1` = the
figure captions of the paper's other version (Figures 1-18, numbered differently). `iapo
figures-index` writes `paper_figures/README.md` from it, and `workflow/rules/figures.smk` its Snakemake rules.

Each entry also names the environments its panels show (`envs`) and the runs they need there
(`variants`); the `paper` scale of params.yaml trains and analyses every one of them (a test). The
environments come from the captions of either version; where neither caption names one, from the
text that describes the figure. Where the versions differ:

- Fig. 3 (value bias, policy change): NeurIPS caption and text name none; v1 caption: Ant-v2.
  Followed: Ant-v2 (v1).
- Fig. 8, 22-23 (iterations K): NeurIPS Fig. 8 caption HalfCheetah-v2, 22-23 none (the B.6 text
  discusses their Walker2d-v2 panels); v1 Fig. 7 none, Fig. 17 HalfCheetah-v2. Followed: the four
  main envs (Fig. 8 is HalfCheetah; 22-23 extend it to the environments of Figs. 5-6).
- Fig. 11 (value architecture): both captions name Hopper-v2 (a note on its iterative + B run); A.4
  compared the architectures 'on each environment'. Followed: both architectures for both
  optimizers on the four main envs.
- Fig. 2, 7, 24-26 (modes): NeurIPS Ant-v2 (2), Walker2d-v2 (7), Hopper, HalfCheetah, Ant (24-26);
  v1 Fig. 2 and 18 name none. Followed: NeurIPS, the four main envs.
- Fig. 4a-b (refinement, ΔJ): captions none; §4.2.1 text: Ant-v2. Followed: Ant-v2.
- Fig. 1, 19 (surfaces): captions none; B.5 text: Fig. 1 on Hopper-v2, Fig. 19 'each of the other
  environments'. Followed: the four main envs.
- Fig. 15, 16 (flow): NeurIPS Fig. 15 caption HalfCheetah-v2, B.2 text Hopper, Walker2d,
  HalfCheetah for Fig. 16; v1 has no flow figure. Followed: NeurIPS.
- Fig. 9, 13 (model-based): captions none (v1 Fig. 8 none); §4.2.5 text: HalfCheetah-v2.

Every other figure's captions name no environment in either version; its panels are those of the
comparison it belongs to (Figures 5-6: Hopper, HalfCheetah, Walker2d, Ant; Figure 14: the pendulums).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from iapo import atomic
from iapo.config import Params
from iapo.layout import figures_root, notebooks_dir, summary_dir
from iapo.stats import mean_band
from iapo.summary import table_file
from iapo.tables import TABLE5_ENVS, TABLE6_ENVS

# ---------------------------------------------------------------- environments and labels
ENV_ORDER = (*TABLE5_ENVS, *TABLE6_ENVS)
MAIN_ENVS = ("Hopper-v2", "HalfCheetah-v2", "Walker2d-v2", "Ant-v2")  # Figures 5, 6, 11, 22, 23
PENDULUMS = ("InvertedPendulum-v2", "InvertedDoublePendulum-v2")      # Figure 14 (B.1)
SUITE = TABLE6_ENVS                                                    # the rest: no figure in the paper
N_BOOT = 2000

# One label and colour per thing a curve can stand for (variants of params.yaml, optimizers,
# evaluation modes, …), the same in every figure.
STYLES: dict[str, tuple[str, str]] = {
    "direct": ("direct", "#1f77b4"),
    "iterative": ("iterative", "#ff7f0e"),
    "iterative_beta1": ("iterative (β = 1)", "#d62728"),
    "iterative_k1": ("iterative (K = 1)", "#fdae6b"),
    "iterative_k2": ("iterative (K = 2)", "#e6550d"),
    "direct_flow": ("direct + NF", "#2ca02c"),
    "direct_mb": ("direct (model-based)", "#17becf"),
    "iterative_mb": ("iterative (model-based)", "#8c564b"),
    "direct + A": ("direct + A", "#1f77b4"),
    "direct + B": ("direct + B", "#9ecae1"),
    "iterative + A": ("iterative + A", "#ff7f0e"),
    "iterative + B": ("iterative + B", "#fdd0a2"),
    "iterative + 5 iters": ("iterative + 5 iterations", "#9467bd"),
    "iterative_transfer": ("iterative (another run's)", "#9467bd"),
    "init_same": ("runs from the same λ0", "#ff7f0e"),
    "init_random": ("runs from random λ0 ~ 0.3·N(0, I)", "#9467bd"),
    "adam": ("Adam", "#2ca02c"),
    "cem": ("CEM", "#7f7f7f"),
    "amortized": ("as trained", "#1f77b4"),
    "optimized": ("+ test-time optimization", "#d62728"),
    "own": ("own optimizer (MB)", "#8c564b"),
    "transfer": ("transferred optimizer (MF → MB)", "#ff7f0e"),
}


def label(key: object) -> str:
    return STYLES.get(str(key), (str(key), ""))[0]


def color(key: object, default: str = "#444444") -> str:
    return STYLES.get(str(key), ("", default))[1] or default


def order_envs(envs: Iterable[str]) -> list[str]:
    """Paper order (Tables 5-6), unknown names last."""
    envs = set(envs)
    return [e for e in ENV_ORDER if e in envs] + sorted(envs - set(ENV_ORDER))


# ---------------------------------------------------------------- the summary tables
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
        """`<summary_dir>/<name>.csv` (or its committed `.csv.gz`); `step` is the env step in every table."""
        path = table_file(self.dir, name)
        if not path.is_file():
            return Table(name, None, self._absent(name))
        try:
            df = pd.read_csv(path, low_memory=False)  # one dtype per column, not per chunk
        except (OSError, ValueError) as err:
            return Table(name, None, f"{name}.csv cannot be read ({err})")
        if df.empty:
            return Table(name, None, f"{name}.csv has no rows")
        if "step" not in df and "env_step" in df:
            df = df.rename(columns={"env_step": "step"})
        return Table(name, df)

    def _absent(self, name: str) -> str:
        """Why `<name>.csv` is absent: the scale does not produce it, or it does and the file is not
        here (e.g. a large table left out of a commit)."""
        from iapo.summary import produced_tables

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
        scale.json, else the option's default (`iapo.diagnostics.common.Options`)."""
        from iapo.diagnostics.common import Options

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


def human(n: float) -> str:
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:g}{suffix}"
    return f"{n:g}"


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


# ---------------------------------------------------------------- statistics over seeds
BAND_TEXT = {"ci": "mean and 95% bootstrap CI over seeds", "std": "mean ± std over seeds"}


def over_seeds(df: pd.DataFrame, x: str, y: str, by: Sequence[str] = (), band: str = "ci",
               n_boot: int = N_BOOT) -> pd.DataFrame:
    """One curve point per (by…, x): `y` is first averaged within each seed (the unit of
    replication: episodes, states, pairs …), then over seeds with a band: `ci` = the percentile
    bootstrap of `iapo.stats.mean_band`, `std` = mean ± sample standard deviation (0 for one seed).
    Columns: by…, x, mean, low, high, n_seeds."""
    if band not in BAND_TEXT:
        raise ValueError(f"band: {band!r}; allowed: {', '.join(BAND_TEXT)}")
    keys = [*by, x]
    per_seed = df.dropna(subset=[y]).groupby([*keys, "seed"], sort=True)[y].mean().reset_index()
    rows = []
    for key, group in per_seed.groupby(keys, sort=True):
        values = group[y].to_numpy(float)
        if band == "ci":
            iv = mean_band(values, n_boot=n_boot)
            mid, low, high = iv.estimate, iv.low, iv.high
        else:
            mid = float(values.mean())
            sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            low, high = mid - sd, mid + sd
        rows.append({**dict(zip(keys, key, strict=True)), "mean": mid, "low": low, "high": high,
                     "n_seeds": len(values)})
    return pd.DataFrame(rows, columns=[*keys, "mean", "low", "high", "n_seeds"])


# ---------------------------------------------------------------- drawing
def set_style() -> None:
    """The one look of every figure: seaborn whitegrid, paper context, embeddable PDF fonts."""
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", font_scale=1.0)
    mpl.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight",
        "pdf.fonttype": 42, "ps.fonttype": 42, "axes.titlesize": 9, "axes.labelsize": 8,
        "legend.fontsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7, "figure.titlesize": 9,
        "lines.linewidth": 1.4,
    })


def grid(n: int, ncols: int = 4, width: float = 3.0, height: float = 2.4):
    """A figure with n panels in rows of ncols (unused cells hidden); returns (fig, [axes])."""
    import matplotlib.pyplot as plt

    n = max(n, 1)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows + 0.6),
                             layout="constrained", squeeze=False)
    axes = list(axes.ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def no_data(ax, why: str) -> None:
    """Mark a panel as empty, with the reason, instead of drawing anything."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("#f4f4f4")
    text = "no data:\n" + "\n".join(textwrap.wrap(why, 34))
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=7,
            color="#555555")


def env_panels(envs: Sequence[str], frame: pd.DataFrame, reason: Callable[[str | None], str],
               ncols: int = 4):
    """One panel per env, titled with it; a panel whose env has no rows in `frame` says why
    (`reason(env)`; no env at all: one panel, `reason(None)`). Returns the figure and
    [(axes, that env's rows)] of the panels with data."""
    if not envs:
        fig, axes = grid(1, width=5.0)
        no_data(axes[0], reason(None))
        return fig, []
    fig, axes = grid(len(envs), ncols)
    with_data = []
    for ax, env in zip(axes, envs, strict=True):
        ax.set_title(env)
        rows = frame[frame["env"] == env] if "env" in frame else frame.iloc[0:0]
        if rows.empty:
            no_data(ax, reason(env))
        else:
            with_data.append((ax, rows))
    return fig, with_data


# ---------------------------------------------------------------- before training: untrained policy, warm-up
UNTRAINED, WARMUP = "untrained policy", "random-action warm-up"  # their legend entries
UNTRAINED_COLOR, WARMUP_COLOR = "#666666", "#e3e3e3"


def untrained_returns(evals: Table) -> dict[str, float]:
    """env → the untrained policy's return: the mean evaluation return at env step 0 over that env's
    runs in eval.csv (every run evaluates once before training), as the audit computes it."""
    df = evals.rows()
    if df.empty or not {"env", "step", "return"} <= set(df.columns):
        return {}
    return df[df["step"] == 0].groupby("env")["return"].mean().to_dict()


def past_warmup(summary: Summary, df: pd.DataFrame) -> pd.DataFrame:
    """The rows taken after the random-action warm-up (`step` > initial_random_steps). A checkpoint at
    or before it holds networks that have had at most one update (updates start at its last step):
    the audit leaves it out, and so do the figures, whose y-axis it would otherwise set. All rows
    when the warm-up is unknown."""
    if summary.warmup is None or df.empty or "step" not in df:
        return df
    return df[df["step"] > summary.warmup]


def warmup_note(summary: Summary) -> str:
    """What `past_warmup` left out, for a figure's title ("" when the warm-up is unknown)."""
    if summary.warmup is None:
        return ""
    return (f"checkpoints after the warm-up only (those at ≤ {human(summary.warmup)} env steps, the "
            "random-action warm-up, are left out, as in the audit)")


def mark_untrained(ax, untrained: float | None, warmup: tuple[float, float] | None) -> set[str]:
    """The untrained policy's return as a dashed grey line and the random-action warm-up, `warmup` =
    (first x, last x) of it within the panel, as a light grey span; returns the legend entries drawn."""
    drawn = set()
    if warmup is not None and warmup[1] > warmup[0]:
        ax.axvspan(*warmup, color=WARMUP_COLOR, alpha=0.7, linewidth=0, zorder=0)
        drawn.add(WARMUP)
    if untrained is not None:
        ax.axhline(untrained, color=UNTRAINED_COLOR, linestyle="--", linewidth=1, zorder=1.5)
        drawn.add(UNTRAINED)
    return drawn


def mark_handles(drawn: Iterable[str]) -> list:
    """Legend handles for the entries `mark_untrained` drew, in a fixed order."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = {UNTRAINED: Line2D([], [], color=UNTRAINED_COLOR, linestyle="--", linewidth=1, label=UNTRAINED),
               WARMUP: Patch(facecolor=WARMUP_COLOR, label=WARMUP)}
    return [handle for key, handle in handles.items() if key in set(drawn)]


def panel_note(ax, text: str) -> None:
    """A short statement inside a panel with data (e.g. what this scale did not run), at its top."""
    ax.text(0.5, 0.97, "\n".join(textwrap.wrap(text, 40)), ha="center", va="top", transform=ax.transAxes,
            fontsize=7, color="#333333", zorder=5,
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "#bbbbbb", "alpha": 0.9})


def steps_axis(ax, xlabel: str = "env steps") -> None:
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: human(v)))
    ax.set_xlabel(xlabel)


def draw_band(ax, curves: pd.DataFrame, x: str, hue: str, order: Sequence[str] | None = None,
              marker: str | None = None) -> None:
    """Mean lines with shaded bands from `over_seeds`, one per value of `hue`. With a single x
    (e.g. only the last checkpoint was analysed) the hues become categories with error bars."""
    order = [k for k in (order if order is not None else dict.fromkeys(curves[hue]))
             if (curves[hue] == k).any()]
    if curves[x].nunique() == 1:
        for i, key in enumerate(order):
            c = curves[curves[hue] == key].iloc[0]
            ax.errorbar([i], [c["mean"]], yerr=[[c["mean"] - c["low"]], [c["high"] - c["mean"]]],
                        fmt="o", color=color(key), capsize=3)
        ax.set_xticks(range(len(order)), [label(k) for k in order], rotation=20, ha="right")
        ax.set_xlim(-0.6, len(order) - 0.4)
        value = curves[x].iloc[0]
        ax.set_xlabel(f"at {x} {human(value) if x == 'step' else value}")
        return
    for key in order:
        c = curves[curves[hue] == key].sort_values(x)
        m = marker if marker is not None else ("o" if len(c) < 8 else None)
        ax.plot(c[x], c["mean"], color=color(key), label=label(key), marker=m, markersize=3)
        ax.fill_between(c[x], c["low"], c["high"], color=color(key), alpha=0.2, linewidth=0)


def last_checkpoint(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's (env, variant, seed) latest analysed checkpoint."""
    if df.empty:
        return df
    return df[df["step"] == df.groupby(["env", "variant", "seed"])["step"].transform("max")]


def legend(fig, keys: Iterable[str], title: str | None = None, extra: Sequence = ()) -> None:
    """One legend under the panels for `keys` (labels and colours from STYLES), then the `extra`
    handles (e.g. `mark_handles`)."""
    from matplotlib.lines import Line2D

    keys = list(dict.fromkeys(keys))
    handles = [Line2D([], [], color=color(k), label=label(k)) for k in keys] + list(extra)
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6),
                   title=title, frameon=False)


def panel_envs(paper_envs: Sequence[str], *frames: pd.DataFrame) -> list[str]:
    """The paper's panels for a figure, plus every other env the data have (scales differ)."""
    found = {e for f in frames if "env" in f for e in f["env"].unique()}
    return order_envs({*paper_envs, *found})


def curves(summary: Summary, table: Table, *, y: str, hues: Sequence[str], envs: Sequence[str],
           hue: str = "variant", x: str = "step", band: str = "ci", ylabel: str | None = None,
           xlabel: str = "env steps", frame: pd.DataFrame | None = None, ncols: int = 4,
           variants: Sequence[str] | None = None, n_boot: int = N_BOOT, baseline: Table | None = None,
           skip_warmup: bool = False):
    """One panel per env: `y` over `x` as mean and band over seeds, one curve per value of `hue`.

    `frame` replaces the table's rows (e.g. after deriving a column); panels without rows say why
    (`variants`: which runs the panel needs, for that reason; default the hues when hue = variant).
    `baseline` (the eval table; for every evaluation-return figure): each panel also draws its env's
    untrained-policy return (`untrained_returns`) and, over env steps, shades the random-action
    warm-up. `skip_warmup`: leave out the rows at or before the warm-up (`past_warmup`; for analyses
    of checkpoints, whose first one precedes training; the title should say so: `warmup_note`).
    Returns the figure and {env: axes} of the panels that have data.
    """
    df = table.frame if frame is None else frame
    variants = list(hues) if variants is None and hue == "variant" else list(variants or ())
    shown = pd.DataFrame() if df is None or df.empty else df[df[hue].isin(hues) & df[y].notna()]
    before = shown
    if skip_warmup:
        shown = past_warmup(summary, shown)

    def reason(env: str | None) -> str:
        if env is not None and "env" in before and (before["env"] == env).any():
            return (f"only checkpoints at or before the random-action warm-up "
                    f"({human(summary.warmup or 0)} env steps) at scale {summary.scale!r}")
        return summary.reason(table, env, variants)

    fig, with_data = env_panels(envs, shown, reason, ncols)
    untrained = untrained_returns(baseline) if baseline is not None else {}
    panels, drawn, marks = {}, set(), set()
    for ax, rows in with_data:
        env = rows["env"].iloc[0]
        ax.set_xlabel(xlabel)
        if x == "step":
            steps_axis(ax, xlabel)
        points = over_seeds(rows, x, y, by=[hue], band=band, n_boot=n_boot)
        draw_band(ax, points, x, hue, hues)
        ax.set_ylabel(ylabel or y)
        if baseline is not None:
            over_steps = x == "step" and points[x].nunique() > 1 and summary.warmup is not None
            first, last = points[x].min(), points[x].max()
            span = (first, min(summary.warmup, last)) if over_steps else None
            marks |= mark_untrained(ax, untrained.get(env), span)
        panels[env] = ax
        drawn.update(rows[hue].unique())
    legend(fig, [h for h in hues if h in drawn] or hues, extra=mark_handles(marks))
    return fig, panels


def title(fig, text: str, summary: Summary, band: str | None = "ci", note: str = "") -> None:
    """Suptitle: the figure's name, then scale, seeds and steps (and what is plotted)."""
    caption = summary.caption(band) + (f"; {note}" if note else "")
    fig.suptitle(text + "\n" + "\n".join(textwrap.wrap(caption, 140)))


def save(fig, out_dir: str | Path, name: str) -> list[Path]:
    """Write <out_dir>/<name>.pdf and .png atomically (temp file, rename) and without timestamps."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for ext, metadata in (("pdf", {"CreationDate": None, "ModDate": None}), ("png", {"Software": None})):
        with atomic.replacing(out / f"{name}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, metadata=metadata)
        written.append(out / f"{name}.{ext}")
    return written


# ---------------------------------------------------------------- the registry
TABLE_FILES = ("tables/tables.md", *(f"tables/table{n}.tex" for n in range(1, 11)))
NONE = "none"


@dataclass(frozen=True)
class Entry:
    """One figure (or the tables) of the paper under a stable name."""

    name: str                # stable name: the file stem under paper_figures/<scale>/
    notebook: str | None     # notebooks/<notebook>.py draws it; None: written by `iapo tables`
    neurips: str             # number(s) in the NeurIPS 2021 text (001 main, 000 appendix), or "none"
    v1: str                  # number(s) in the other version's captions (002, 003), or "none"
    inputs: tuple[str, ...]  # summary tables it reads (results/summary/<scale>/…), or params.yaml
    description: str
    envs: tuple[str, ...] = ()      # the environments of its panels (module docstring: which caption)
    variants: tuple[str, ...] = ()  # the runs (params.yaml variants) it needs on each of those envs

    @property
    def files(self) -> tuple[str, ...]:
        """Its files relative to paper_figures/<scale>/."""
        if self.notebook is None:
            return TABLE_FILES
        return (f"figures/{self.name}.pdf", f"figures/{self.name}.png")


def _e(name: str, notebook: str | None, neurips: str, v1: str, inputs: str, description: str,
       envs: Sequence[str] = (), variants: str = "") -> Entry:
    return Entry(name, notebook, neurips, v1, tuple(inputs.split()), description, tuple(envs),
                 tuple(variants.split()))


ANT, CHEETAH, HOPPER, WALKER = "Ant-v2", "HalfCheetah-v2", "Hopper-v2", "Walker2d-v2"
BOTH = "direct iterative"


FIGURES: tuple[Entry, ...] = (
    _e("performance", "performance", "Fig. 5", "Fig. 5", "eval.csv scale.json",
       "Evaluation return over env steps, direct vs iterative, Hopper, HalfCheetah, Walker2d, Ant (§4.2.2).",
       envs=MAIN_ENVS, variants=BOTH),
    _e("performance_pendulums", "performance", "Fig. 14", NONE, "eval.csv scale.json",
       "Evaluation return, direct vs iterative, InvertedPendulum and InvertedDoublePendulum (B.1).",
       envs=PENDULUMS, variants=BOTH),
    _e("performance_suite", "performance", NONE, NONE, "eval.csv scale.json",
       "Evaluation return, direct vs iterative, the rest of the suite (Reacher, Swimmer, Humanoid, "
       "HumanoidStandup; Tables 5-6 only in the paper).",
       envs=SUITE, variants=BOTH),
    _e("value_bias", "value_bias", "Fig. 3a", "Fig. 3a", "value_bias.csv runs.csv scale.json",
       "Value bias Q̂ − Monte Carlo soft return over training: direct (β = 1), iterative with β = 1 "
       "and with its training β (2.5; Hopper 1.5) (§3.3, A.2).",
       envs=(ANT,), variants="direct iterative iterative_beta1"),
    _e("policy_change", "value_bias", "Fig. 3b", "Fig. 3b", "policy_change.csv runs.csv scale.json",
       "Policy change rate: KL between the policies of successive checkpoints, same three agents (§3.3).",
       envs=(ANT,), variants="direct iterative iterative_beta1"),
    _e("policy_change_online", "value_bias", "Fig. 3b", "Fig. 3b", "metrics.csv runs.csv scale.json",
       "Policy change rate as the paper measured it: KL between the acting policy and the policy after "
       "the updates that followed, per training episode (`policy_kl`), same three agents (§3.3).",
       envs=(ANT,), variants="direct iterative iterative_beta1"),
    _e("amortization_gap", "amortization_gap", "Fig. 6", "Fig. 6", "amortization_gap.csv scale.json",
       "Amortization gap per step over training: direct, iterative, iterative + 5 test-time iterations, "
       "direct + NF (§4.2.4, A.3).",
       envs=MAIN_ENVS, variants=BOTH),
    _e("policy_refinement", "improvement", "Fig. 4a", "Fig. 4a", "improvement_refinement.csv scale.json",
       "One action dimension of the estimate λ_i (tanh μ_i and tanh(μ_i ∓ σ_i)) at each iteration over "
       "the time steps of one on-policy episode, one run (§4.2.1).",
       envs=(ANT,), variants="iterative"),
    _e("improvement_over_time", "improvement", "Fig. 4b", "Fig. 4b", "improvement.csv scale.json",
       "Improvement ΔJ = J_i − J_0 at each iteration over the time steps (on-policy states) of one "
       "run (§4.2.1).",
       envs=(ANT,), variants="iterative"),
    _e("improvement_iterations", "improvement", NONE, NONE, "improvement.csv scale.json",
       "ΔJ across iterations (beyond the K trained where measured), last checkpoint, mean over states.",
       envs=MAIN_ENVS, variants="iterative"),
    _e("improvement_per_step", "improvement", "Fig. 17", "Fig. 12", "metrics.csv scale.json",
       "Per-step improvement J_K − J_0 of the training batches over training, one curve per seed (B.3).",
       envs=MAIN_ENVS, variants="iterative"),
    _e("test_time_direct", "test_time", "Fig. 20", "Fig. 15", "test_time.csv eval.csv scale.json",
       "Evaluation return of direct agents as trained vs with 50 test-time Adam steps on λ (B.6).",
       envs=MAIN_ENVS, variants="direct"),
    _e("test_time_iterative", "test_time", "Fig. 21", "Fig. 16", "test_time.csv eval.csv scale.json",
       "Evaluation return of iterative agents (K = 5) vs with 5 extra test-time iterations (B.6).",
       envs=MAIN_ENVS, variants="iterative"),
    _e("optimizer_comparison", "optimizer_comparison", "Fig. 4c, 18", "Fig. 4c, 13",
       "optimizer_comparison.csv scale.json",
       "J over iterations from the same λ0: iterative amortization vs Adam vs CEM (§4.2.1, B.4).",
       envs=MAIN_ENVS, variants="iterative"),
    _e("optimizer_wall_clock", "optimizer_comparison", NONE, NONE, "optimizer_comparison.csv scale.json",
       "Wall-clock per iteration, iterative / Adam and iterative / CEM (B.4 text: 1.15 and 1.25).",
       envs=MAIN_ENVS, variants="iterative"),
    _e("surface_2d", "surface_2d", "Fig. 1 (left), 19", "Fig. 1, 14", "surface_2d.csv scale.json",
       "J over two dimensions of the policy mean with the agent's estimate, the grid optimum and "
       "iterative optimizer trajectories (A.1, B.5).",
       envs=MAIN_ENVS, variants=BOTH),
    _e("modes_histogram", "modes", "Fig. 7a, 24a-26a", NONE, "modes.csv scale.json",
       "Histogram of ‖tanh μ_i − tanh μ_j‖ between optimization runs, over seeds and states (B.7).",
       envs=MAIN_ENVS, variants="iterative"),
    _e("modes_projections", "modes", "Fig. 2 (left), 7b, 24b-26b", "Fig. 2", "modes_state.csv scale.json",
       "For the state with the largest distance: J on pairs of action dimensions with each run's mean.",
       envs=MAIN_ENVS, variants="iterative"),
    _e("modes_density", "modes", "Fig. 2 (right), 7c, 24c-26c", "Fig. 2", "modes_state.csv scale.json",
       "For that state: each optimization run's marginal policy density per action dimension.",
       envs=MAIN_ENVS, variants="iterative"),
    _e("modes_distance_training", "modes", NONE, "Fig. 18", "modes.csv scale.json",
       "Mean distance between the policy means of two optimization runs over training.",
       envs=MAIN_ENVS, variants="iterative"),
    _e("iterations_performance", "iterations", "Fig. 8 (left), 22", "Fig. 7, 17a", "eval.csv scale.json",
       "Evaluation return for K = 1, 2, 5 iterations during training, with direct (§4.2.4, B.6).",
       envs=MAIN_ENVS, variants="direct iterative iterative_k1 iterative_k2"),
    _e("iterations_gap", "iterations", "Fig. 8 (right), 23", "Fig. 17b", "amortization_gap.csv scale.json",
       "Amortization gap for K = 1, 2, 5 iterations during training, with direct (§4.2.4, B.6).",
       envs=MAIN_ENVS, variants="direct iterative iterative_k1 iterative_k2"),
    _e("value_architecture", "value_architecture", "Fig. 11", "Fig. 10", "eval.csv runs.csv scale.json",
       "Evaluation return of direct and iterative with Q architectures A and B (Tables 3-6).",
       envs=MAIN_ENVS, variants=BOTH),
    _e("flow_performance", "flow", "Fig. 16", NONE, "eval.csv scale.json",
       "Evaluation return: direct, direct + normalizing flow (2 IAF transforms), iterative (B.2).",
       envs=(HOPPER, CHEETAH, WALKER), variants="direct iterative direct_flow"),
    _e("flow_amortization_gap", "flow", "Fig. 15", NONE, "amortization_gap.csv scale.json",
       "Amortization gap of direct + NF next to direct and iterative; for the flow, Adam on its base "
       "Gaussian's λ with the transforms fixed (B.2).",
       envs=(CHEETAH,), variants="direct iterative direct_flow"),
    _e("mb_performance", "model_based", "Fig. 13a", "Fig. 8a", "eval.csv scale.json",
       "Evaluation return of direct and iterative with model-based value estimates (A.5).",
       envs=(CHEETAH,), variants="direct_mb iterative_mb"),
    _e("mb_planning", "model_based", "Fig. 13b", "Fig. 8b", "mb_planning_rollout.csv scale.json",
       "Planned (model) state trajectories of the estimate λ_i at each iteration, one state.",
       envs=(CHEETAH,), variants="iterative_mb"),
    _e("mb_objective", "model_based", "Fig. 13c", "Fig. 8c", "mb_planning.csv scale.json",
       "The model-based objective J over the iterations of the iterative optimizer.",
       envs=(CHEETAH,), variants="iterative_mb"),
    _e("mb_transfer", "model_based", "Fig. 9", "Fig. 8d", "mb_transfer.csv eval.csv scale.json",
       "Zero-shot MF → MB: the model-based agent's return with its own vs a model-free run's "
       "optimizer (§4.2.5).",
       envs=(CHEETAH,), variants="iterative iterative_mb"),
    _e("tables", None, "Tables 1-9", NONE, "params.yaml",
       "Hyperparameter Tables 1-9 of A.4-A.5 (+ Table 10: training β), Markdown and LaTeX, from "
       "params.yaml."),
)

# Not reproduced: diagrams, not data (Fig. 1 right, 10, 12 of the NeurIPS text; 9, 11 of v1).
DIAGRAMS = {"neurips": "Fig. 1 (right), 10, 12", "v1": "Fig. 9, 11"}


def by_name(name: str) -> Entry:
    for entry in FIGURES:
        if entry.name == name:
            return entry
    raise KeyError(f"no figure named {name!r}; known: {', '.join(e.name for e in FIGURES)}")


def notebooks() -> dict[str, list[Entry]]:
    """notebook → the entries it draws, in registry order."""
    groups: dict[str, list[Entry]] = {}
    for entry in FIGURES:
        if entry.notebook is not None:
            groups.setdefault(entry.notebook, []).append(entry)
    return groups


def notebook_inputs(notebook: str) -> list[str]:
    """The summary files a notebook reads (union over its figures), in a stable order."""
    return sorted({f for entry in notebooks()[notebook] for f in entry.inputs})


# ---------------------------------------------------------------- paper_figures/README.md
def index_markdown(scale: str = "mini") -> str:
    """The index: one row per figure/table, its numbers in both texts, notebook, inputs, thumbnail."""
    lines = [
        "# Paper figures and tables",
        "",
        "Generated by `iapo figures-index` from the registry `iapo.figures.FIGURES`; do not edit. Every",
        "figure is drawn by a notebook in `notebooks/` (jupytext source; the executed notebook and its",
        "HTML are in `<scale>/notebooks/`) from the summary tables in `results/summary/<scale>/` only.",
        f"Thumbnails link the committed `{scale}` study; `smoke` and `paper` have the same file names",
        "(`snakemake --cores 2 --config scale=<scale>` rebuilds them). Each title states the scale, seeds",
        "and env steps; curves are the mean and a 95% bootstrap band over seeds (papermill parameter",
        "`band=std`: mean ± std, as the paper draws). A panel without data at a scale says so and why.",
        "",
        "Figure numbers: **NeurIPS** = the NeurIPS 2021 text (main figures 1-9, appendix 10-26;",
        "main text and appendix); **v1** = the captions of the paper's other version (figures 1-18).",
        f"Not reproduced (diagrams, not data): NeurIPS {DIAGRAMS['neurips']}; v1 {DIAGRAMS['v1']}.",
        "",
        "| name | NeurIPS | v1 | notebook | inputs | what it shows | thumbnail |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in FIGURES:
        inputs = ", ".join(f"`{i}`" for i in e.inputs)
        if e.notebook is None:
            source = "`iapo tables`"
            thumb = f"[{scale}/tables/tables.md]({scale}/tables/tables.md)"
        else:
            source = (f"[{e.notebook}.py](../notebooks/{e.notebook}.py) "
                      f"([run]({scale}/notebooks/{e.notebook}.html))")
            stem = f"{scale}/figures/{e.name}"
            thumb = f'<a href="{stem}.pdf"><img src="{stem}.png" width="220"></a>'
        cells = [f"`{e.name}`", e.neurips, e.v1, source, inputs, e.description, thumb]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_index(out: str | Path, scale: str = "mini") -> Path:
    return atomic.write_text(out, index_markdown(scale))



# ---------------------------------------------------------------- what a notebook job reads and writes
def notebook_tables(params: Params, scale: str, notebook: str) -> list[Path]:
    """The summary files a notebook reads that the scale produces (the inputs of its job); a
    diagnostic table the scale does not make is left out and drawn as a 'no data' panel."""
    from iapo.summary import SUMMARY_FILES, diagnostic_tables

    produced = set(diagnostic_tables(params, scale))
    return [summary_dir(scale) / file for file in notebook_inputs(notebook)
            if file in SUMMARY_FILES or file.removesuffix(".csv") in produced]


def notebook_outputs(scale: str, notebook: str) -> list[Path]:
    """Every file a notebook job writes: its figures, the executed notebook and its HTML."""
    figures = [figures_root(scale) / file for entry in notebooks()[notebook] for file in entry.files]
    return figures + [notebooks_dir(scale) / f"{notebook}.{ext}" for ext in ("ipynb", "html")]
