"""`curves`, the figure most notebooks draw: one panel per environment, a quantity over env steps (or
another x) as mean and band over seeds, one curve per variant (or other hue), with the untrained
baseline."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from iapo.figures.bands import N_BOOT, over_seeds
from iapo.figures.baseline import mark_handles, mark_untrained, past_warmup, untrained_returns
from iapo.figures.folder import Summary, Table
from iapo.figures.labels import human
from iapo.figures.panels import draw_band, env_panels, legend, steps_axis


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
