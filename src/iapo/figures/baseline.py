"""Before training, in the figures: the untrained policy's return (a dashed line) and the random-action
warm-up (a shaded span, or its checkpoints left out, as the audit leaves them out)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from iapo.figures.folder import Summary, Table
from iapo.figures.labels import human

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
