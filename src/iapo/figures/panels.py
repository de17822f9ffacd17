"""The panels of a figure: a grid of them, one per environment, a panel that says why it has no data,
notes, the env-step axis, mean lines with their bands, and the legend under them."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Sequence

import pandas as pd

from iapo.figures.labels import color, human, label, order_envs


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
