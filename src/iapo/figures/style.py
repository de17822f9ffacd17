"""The look of every figure and how it is written: one seaborn style, the title that states the scale,
seeds and steps behind it, and PDF and PNG files written atomically without timestamps."""

from __future__ import annotations

import textwrap
from pathlib import Path

from iapo import atomic
from iapo.figures.folder import Summary


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
