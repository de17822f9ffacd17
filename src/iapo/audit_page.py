"""The audit a reader sees: `audit.html` (a card and a forest plot per claim) and the overview figure
`audit_overview.png` (beside the page), drawn from the same evaluated claims as `audit.md`
(`iapo.audit_report`).

Every statistic is shown in its claim's unit (the estimate divided by the group's `unit`, which is
what the decision rule's margins and thresholds are multiples of), so that the groups of one claim
share an axis with the rule's regions: green where a group's interval must lie for "supported",
red beyond the practical threshold where an interval means "contradicted". The page needs no
JavaScript: its filters are radio buttons read by CSS (`:has`), and without them every card shows.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iapo.audit import ClaimResult, GroupResult
from iapo.claims import Untestable

COLOURS = {"supported": "#1a7f37", "contradicted": "#cf222e", "inconclusive": "#9a6700"}
OUT_OF_SCOPE = "#8c959f"
UNIT_LABELS = {
    "normalized": "normalized return (0 = untrained policy, 1 = published SAC return)",
    "b": "the statistic's own unit",
    "absolute": "the statistic's own unit",
    "J_amortized": "units of |J| of the amortized policy",
    "J_scale": "units of the surface's |J| scale",
    "q_mc_scale": "units of the Monte Carlo return's scale",
}
TEMPLATE = Path(__file__).with_name("templates") / "audit.html.j2"


# ------------------------------------------------------------------ what a card shows
def chapters(section: str) -> list[str]:
    """The paper's top-level parts a claim's section string names: "§4.2.4, A.3" → ["§4", "App. A"]."""
    out: list[str] = []
    for token in re.split(r"[,;]\s*", section):
        token = token.strip()
        if m := re.match(r"§(\d+)", token):
            name = f"§{m[1]}"
        elif m := re.match(r"([A-Z])\.\d", token):
            name = f"App. {m[1]}"
        elif token:
            name = token.split()[0].capitalize()
        else:
            continue
        if name not in out:
            out.append(name)
    return out


def css_class(name: str) -> str:
    return "s-" + re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def _unit(g: GroupResult) -> float:
    """What the group's margins and thresholds are multiples of (1 where it has none)."""
    return g.unit if g.unit and np.isfinite(g.unit) else 1.0


def standardized(g: GroupResult) -> tuple[float, float, float]:
    """A group's estimate and interval in its claim's unit."""
    unit = _unit(g)
    return g.estimate / unit, g.low / unit, g.high / unit


def regions(g: GroupResult) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The rule's supported interval and its contradiction bounds, in the claim's unit."""
    if g.rule is None:
        return None
    unit, r = _unit(g), g.rule
    return (r.good_low / unit, r.good_high / unit), (r.contradict_low / unit, r.contradict_high / unit)


def plotted_groups(r: ClaimResult) -> list[GroupResult]:
    """Every group of a claim (in scope or not), then its aggregate."""
    return r.groups + ([r.aggregate] if r.aggregate else [])


def deciding_groups(r: ClaimResult) -> list[GroupResult]:
    """The groups a claim's verdict rests on: its aggregate if it has one, else its in-scope groups."""
    if r.aggregate is not None:
        return [r.aggregate]
    return [g for g in r.groups if g.in_scope]


# ------------------------------------------------------------------ the forest plot (SVG)
def _ticks(lo: float, hi: float) -> list[float]:
    from matplotlib.ticker import MaxNLocator

    return [float(t) for t in MaxNLocator(5).tick_values(lo, hi) if lo <= t <= hi]


def _x_range(groups: list[GroupResult]) -> tuple[float, float]:
    values: list[float] = [0.0]
    for g in groups:
        values += [v for v in standardized(g) if np.isfinite(v)]
        if (reg := regions(g)) is not None:
            values += [v for v in (*reg[0], *reg[1]) if np.isfinite(v)]
    lo, hi = min(values), max(values)
    pad = 0.08 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.5
    return lo - pad, hi + pad


def forest_svg(r: ClaimResult, unit_label: str) -> str:
    """Each group's estimate and 95% interval against the rule's regions, one row per group;
    out-of-scope groups greyed. An empty plot says why when the claim has no group."""
    groups = plotted_groups(r)
    width, left, right, row, top = 640, 215, 625, 24, 10
    if not groups:
        return (f'<svg class="forest" viewBox="0 0 {width} 40" role="img" aria-label="no group">'
                f'<text x="10" y="24" class="muted">no group of this claim ran at this scale</text></svg>')
    lo, hi = _x_range(groups)
    height = top + row * len(groups) + 36

    def x(v: float) -> float:
        return left + (min(max(v, lo), hi) - lo) / (hi - lo) * (right - left)

    parts = [f'<svg class="forest" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="forest plot of {html.escape(r.claim.id)}">']
    body_top, body_bottom = top, top + row * len(groups)
    reg = next((regions(g) for g in groups if regions(g) is not None), None)
    if reg is not None:
        (good_lo, good_hi), (bad_lo, bad_hi) = reg
        parts.append(f'<rect x="{x(good_lo):.1f}" y="{body_top}" width="{x(good_hi) - x(good_lo):.1f}" '
                     f'height="{body_bottom - body_top}" class="good"/>')
        for a, b in ((lo, bad_lo), (bad_hi, hi)):
            if np.isfinite(a) and np.isfinite(b) and b > a:
                parts.append(f'<rect x="{x(a):.1f}" y="{body_top}" width="{x(b) - x(a):.1f}" '
                             f'height="{body_bottom - body_top}" class="bad"/>')
        for v in sorted({good_lo, good_hi, bad_lo, bad_hi}):
            if np.isfinite(v) and lo < v < hi:
                parts.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{body_top}" y2="{body_bottom}" '
                             f'class="edge"/>')
    if lo < 0 < hi:
        parts.append(f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{body_top}" y2="{body_bottom}" '
                     'class="zero"/>')
    for i, g in enumerate(groups):
        y = top + row * i + row / 2
        colour = COLOURS.get(g.verdict, OUT_OF_SCOPE) if g.in_scope else OUT_OF_SCOPE
        label = g.group + ("" if g.in_scope else " (out of scope)")
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" fill="{colour}">'
                     f'<title>{html.escape(label)}: {html.escape(g.verdict)}</title>'
                     f'{html.escape(_short(label, 32))}</text>')
        est, low, high = standardized(g)
        if not np.isfinite(est):
            parts.append(f'<text x="{left + 6}" y="{y + 4:.1f}" class="muted">no estimate</text>')
            continue
        if np.isfinite(low) and np.isfinite(high):
            parts.append(f'<line x1="{x(low):.1f}" x2="{x(high):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                         f'stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<circle cx="{x(est):.1f}" cy="{y:.1f}" r="4" fill="{colour}">'
                     f'<title>{html.escape(g.group)}: {est:.4g} [{low:.4g}, {high:.4g}]</title></circle>')
    axis = body_bottom + 4
    parts.append(f'<line x1="{left}" x2="{right}" y1="{axis}" y2="{axis}" class="axis"/>')
    for t in _ticks(lo, hi):
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{axis}" y2="{axis + 4}" class="axis"/>'
                     f'<text x="{x(t):.1f}" y="{axis + 15}" text-anchor="middle" class="tick">{t:.3g}</text>')
    parts.append(f'<text x="{(left + right) / 2}" y="{axis + 29}" text-anchor="middle" class="tick">'
                 f'{html.escape(unit_label)}</text></svg>')
    return "".join(parts)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# ------------------------------------------------------------------ the page
@dataclass
class Card:
    """One claim as the page shows it."""

    id: str
    verdict: str
    claim: str
    source: str
    section: str
    chapters: list[str]
    figures: dict[str, str]
    reason: str
    design: list[tuple[str, str]]
    svg: str
    figure: str | None = None         # the rebuilt figure's PNG, relative to the page
    figure_pdf: str | None = None
    power: list[dict[str, str]] = field(default_factory=list)
    beta_note: str = ""

    @property
    def classes(self) -> str:
        return " ".join([f"v-{self.verdict}", *(css_class(c) for c in self.chapters)])


def figure_files(name: str | None) -> tuple[str | None, str | None]:
    """The PNG and PDF (relative to paper_figures/<scale>/) of a registry figure."""
    if name is None:
        return None, None
    from iapo.figures.registry import by_name

    if by_name(name).notebook is None:  # the tables: no picture
        return None, None
    return f"figures/{name}.png", f"figures/{name}.pdf"


def write_page(out_html: Path, cards: list[Card], scale_facts: list[tuple[str, str]], counts: dict[str, int],
               notes: list[str], untestable: list[Untestable], has_overview: bool) -> str:
    """audit.html's text (the caller writes it atomically)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE.parent), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    chapters_seen: list[str] = []
    for card in cards:
        chapters_seen += [c for c in card.chapters if c not in chapters_seen]
    order = sorted(chapters_seen, key=_chapter_order)
    return env.get_template(TEMPLATE.name).render(
        cards=cards, scale_facts=scale_facts, counts=counts, total=len(cards), notes=notes,
        untestable=untestable, colours=COLOURS, chapters=[(c, css_class(c)) for c in order],
        verdicts=list(COLOURS), overview="audit_overview.png" if has_overview else None,
        md_name=out_html.with_suffix(".md").name)


def _chapter_order(name: str) -> tuple[int, str]:
    if name == "Abstract":
        return 0, name
    if name.startswith("§"):
        return 1, f"{int(name[1:]):03d}"
    if name.startswith("App."):
        return 2, name
    return 3, name


# ------------------------------------------------------------------ the overview figure
def draw_overview(results: list[ClaimResult], out_dir: Path, title: str) -> list[Path]:
    """audit_overview.{png,pdf} in `out_dir`: every claim's deciding statistic in its own unit (symlog
    axis) with its 95% interval and its supported region, grouped by the paper's section, coloured
    by verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from iapo.figures.style import save, set_style

    set_style()
    ordered = sorted(results, key=lambda r: (_chapter_order(chapters(r.claim.section)[0] if
                                                            chapters(r.claim.section) else "~"),))
    n = len(ordered)
    fig, ax = plt.subplots(figsize=(8.5, 1.2 + 0.22 * n))
    labels, current = [], None
    for i, r in enumerate(ordered):
        y = n - 1 - i
        chapter = (chapters(r.claim.section) or ["other"])[0]
        if chapter != current:
            current = chapter
            ax.axhline(y + 0.5, color="#d0d7de", lw=0.8)
            ax.text(1.005, y, chapter, transform=ax.get_yaxis_transform(), fontsize=7, va="center",
                    color="#57606a")
        labels.append(r.claim.id)
        colour = COLOURS[r.verdict]
        groups = [g for g in deciding_groups(r) if np.isfinite(g.estimate)]
        if not groups:
            ax.text(0, y, "not run at this scale", fontsize=6, color=OUT_OF_SCOPE, va="center", ha="center")
            continue
        if (reg := regions(groups[0])) is not None:
            good_lo, good_hi = reg[0]
            ax.fill_betweenx([y - 0.4, y + 0.4], max(good_lo, -1e6), min(good_hi, 1e6),
                             color=COLOURS["supported"], alpha=0.12, lw=0)
        offsets = np.linspace(-0.2, 0.2, len(groups)) if len(groups) > 1 else [0.0]
        for g, dy in zip(groups, offsets, strict=True):
            est, low, high = standardized(g)
            ax.plot([low, high], [y + dy, y + dy], color=colour, lw=1.4)
            ax.plot([est], [y + dy], "o", color=colour, ms=3.5)
    ax.set_yticks(range(n), labels[::-1], fontsize=6.5)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xscale("symlog", linthresh=0.01, linscale=0.5)
    finite = [v for r in ordered for g in deciding_groups(r) for v in standardized(g) if np.isfinite(v)]
    span = 10 ** math.ceil(math.log10(max([abs(v) for v in finite] + [1.0])))
    ticks = [t for k in range(-2, int(math.log10(span)) + 1) for t in (-(10.0**k), 10.0**k)] + [0.0]
    ax.set_xticks(sorted(ticks), [f"{t:g}" for t in sorted(ticks)])
    ax.set_xlim(-span, span)
    ax.axvline(0, color="#57606a", lw=0.6)
    ax.set_xlabel("effect in each claim's unit (normalized return, |J| scale, or the statistic's own; "
                  "symlog); green: where the interval must lie to support", fontsize=7)
    handles = [plt.Line2D([], [], color=c, marker="o", lw=1.4, ms=3.5, label=v) for v, c in COLOURS.items()]
    ax.legend(handles=handles, loc="lower right", fontsize=7, frameon=True)
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", visible=False)
    written = save(fig, out_dir, "audit_overview")
    plt.close(fig)
    return written
