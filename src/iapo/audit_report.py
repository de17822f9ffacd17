"""The audit's report: `audit.md` (and `audit.html`) from the evaluated claims (`iapo.audit`).

Sections: the scale of the results; the verdict of every claim; the design of every test (scope,
unit, pairing, seeds per arm, interval method, rule); every group's statistic, in scope or not; what
would decide the open groups (`iapo.power`); the statements not testable; verdicts at the sibling
scales; where each claim comes from; the deviations from the paper.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from iapo import atomic
from iapo.audit import INTERVAL, MIN_SEEDS, ClaimResult, verdicts_across_scales
from iapo.audit_page import (
    UNIT_LABELS,
    Card,
    chapters,
    draw_overview,
    figure_files,
    forest_svg,
    plotted_groups,
    write_page,
)
from iapo.claims import BETA_NOTE, Untestable, load_untestable
from iapo.config import Group
from iapo.decide import ALPHA_ONE_SIDED, TWO_ARM
from iapo.power import MAX_SEEDS
from iapo.summary import ScaleReport


def scale_facts(summary_dir: Path) -> list[tuple[str, str]]:
    """What was run at this scale against the paper, as (heading, text) pairs."""
    report = ScaleReport.read(summary_dir)
    if report is None:
        return [("scale", "unknown (no scale.json)")]

    def group(g: Group) -> str:
        own = [f"{value} {key}" for key, value in (("seeds", g.seeds), ("steps", g.steps)) if value]
        runs = f"{', '.join(g.envs)} × {', '.join(g.variants)}"  # the group's own values, if any
        return runs + (f" ({', '.join(own)})" if own else "")

    facts = [("scale", report.scale)]
    for name, preset in (("this scale", report.preset), ("paper", report.paper)):
        facts.append((name, f"{preset.seeds} seeds, {preset.steps} env steps "
                            f"(per env: {preset.steps_per_env or 'same'}), runs: "
                            + "; ".join(group(g) for g in preset.grid)))
    facts.append(("reduced against paper", f"{', '.join(report.reduced) or 'nothing'} "
                                           "(results/summary/<scale>/scale.json has every value)"))
    if report.warmup is not None:
        facts.append(("left out", f"diagnostics of checkpoints at env step ≤ {report.warmup} "
                                  "(initial_random_steps: taken before training started; they stay in the "
                                  "figures)"))
    return facts


def _scale_note(summary_dir: Path) -> str:
    return _facts_markdown(scale_facts(summary_dir))


def _facts_markdown(facts: list[tuple[str, str]]) -> str:
    return "\n".join(f"- **{key}**: {text}" for key, text in facts)


def _md_cell(text: str) -> str:
    """A Markdown table cell: a literal `|` (e.g. |A|) would end the cell."""
    return str(text).replace("|", "\\|")


def _rule_text(r: ClaimResult) -> str:
    t = r.claim.test
    if t.kind in ("at_least",):
        return f"at_least {t.threshold:g}"
    if t.kind == "within":
        return f"within [{t.low:g}, {t.high:g}]"
    parts = [t.kind + (f" ({t.a} vs {t.b})" if t.column else "")]
    if t.kind in ("not_worse", "not_better", "similar"):
        parts.append(f"margin {t.margin:g} {t.units}")
    if t.min_effect:
        parts.append(f"min_effect {t.min_effect:g} {t.units}")
    if t.aggregate:
        parts.append("on the mean over the scope's envs")
    return ", ".join(parts)


def _design_lines(results: list[ClaimResult]) -> list[str]:
    lines = ["", "## How each claim is tested", "",
             f"Unit of replication: the seed of one environment. Interval: {INTERVAL}. A decided verdict "
             f"needs ≥ {MIN_SEEDS} seeds per arm; one-sided error ≤ {ALPHA_ONE_SIDED:.1%} per direction "
             "(checked by simulation at 2–8 seeds: tests/test_calibration.py); \"contradicted\" is "
             "Holm-corrected across a claim's in-scope groups. Scope: the environments of the claim's figure "
             "(or the narrower set its sentence names); groups outside it are reported and never decide.", "",
             "| id | scope | in scope at this scale | unit | pairing | seeds per arm | interval | test | "
             "hardware |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append("| " + " | ".join(_md_cell(x) for x in (r.claim.id, *dict(design(r)).values())) + " |")
    return lines


def design(r: ClaimResult) -> list[tuple[str, str]]:
    """How a claim is tested, as (heading, text) pairs: the columns of the report's design table."""
    c = r.claim
    ran = sorted({g.env for g in r.groups if g.in_scope and g.env})
    return [("scope", ", ".join(c.scope or [])), ("in scope at this scale", ", ".join(ran) or "none"),
            ("unit", _unit_text(c)), ("pairing", c.pairing), ("seeds per arm", r.seeds or "—"),
            ("interval", _interval_text(c)), ("test", _rule_text(r)), ("hardware", c.hardware)]


def _unit_text(c) -> str:
    """The unit of replication: one value per seed of one environment (and group)."""
    extra = [k for k in c.test.by if k != "env"]
    return "seed of one env" + (f" and {', '.join(extra)}" if extra else "")


def _interval_text(c) -> str:
    t = c.test
    if t.aggregate:
        return "stratified t (mean over the scope's envs)"
    if t.kind not in TWO_ARM:
        return "one-sample t"
    return "paired t (per-seed differences)" if t.pair_on else "Welch t"


def chance_note(results: list[ClaimResult]) -> str:
    decidable = sum(any(g.in_scope and g.rule is not None for g in r.groups) for r in results)
    return (f"Chance verdicts. Each claim errs at most {ALPHA_ONE_SIDED:.1%} per direction when the "
            "truth sits on its boundary (supported needs every in-scope group; contradicted is "
            "Holm-corrected), "
            f"so across the {decidable} claims with an in-scope group at this scale at most "
            f"{0.05 * decidable:.1f} decided verdicts are expected by chance in the least favourable case, "
            "and far fewer where the truth is away from the boundaries.")


def _chance_note(results: list[ClaimResult]) -> list[str]:
    return ["", "**" + chance_note(results).replace(". ", ".** ", 1)]


def power_rows(r: ClaimResult) -> list[dict[str, str]]:
    """What would decide each open in-scope group of a claim: where it heads, P(verdict) at other
    seed counts, and the seeds per arm that decide it (this scale's run length only)."""
    rows = []
    for g in plotted_groups(r):
        if g.verdict != "inconclusive" or not g.in_scope or g.rule is None:
            continue
        if r.reason.startswith("not comparable") or (r.aggregate is not None and g is not r.aggregate):
            continue  # not decided on this hardware; or decided on the aggregate row
        p = g.power
        what = p.describe() if p else g.power_note or "cannot be estimated (fewer than 2 seeds in an arm)"
        what += f"; {g.by_step}" if g.by_step else ""
        need = ("—" if p is None or p.heading == "neither"
                else f"> {MAX_SEEDS}" if p.seeds_needed is None else str(p.seeds_needed))
        rows.append({"group": g.group, "seeds": g.n_seeds, "heading": p.heading if p else "",
                     "scenarios": p.scenario_text() if p else "", "need": need, "note": what})
    return rows


def _power_lines(results: list[ClaimResult], summary_dir: Path) -> list[str]:
    report = ScaleReport.read(summary_dir)
    steps = (None, None) if report is None else (report.preset.steps, report.paper.steps)
    keys = ("group", "seeds", "heading", "scenarios", "need", "note")
    rows = [f"| {r.claim.id} | " + " | ".join(_md_cell(p[k]) for k in keys) + " |"
            for r in results for p in power_rows(r)]
    if not rows:
        return []
    head = ["", "## What would decide the open claims", "",
            "Simulated with the audit's own test (paired where the design is), resampling each arm's "
            "per-seed residuals around its observed mean (`iapo.power`). Heading: the verdict the observed "
            "statistic points to. Scenarios: seeds per arm: P(supported) / P(contradicted). Seeds: per arm, "
            "for 80% probability of the heading verdict. *Too noisy* means more seeds would decide it; "
            "*too small to matter* means the effect is inside the practical threshold. "
            + (f"This scale runs {steps[0]} env steps per run against the paper's {steps[1]}; the effect at "
               "the paper's length may differ, so these counts hold for this run length only."
               if all(steps) else ""), "",
            "| id | group | seeds now | heading | seeds: P(supported) / P(contradicted) | seeds for 80% "
            "| note |",
            "|---|---|---|---|---|---|---|"]
    return head + rows


def _untestable_lines(untestable: list[Untestable]) -> list[str]:
    if not untestable:
        return []
    lines = ["", "## Statements not testable here", "",
             f"{len(untestable)} statements of the paper about results have no test; why:", "",
             "| paper | sentence | reason |", "|---|---|---|"]
    for u in untestable:
        figs = "; ".join(f"{k}: {v}" for k, v in u.figures.items())
        where = u.section + (f" · {figs}" if figs else "")
        lines.append(f"| {_md_cell(where)} | {_md_cell(u.sentence)} | {_md_cell(u.reason)} |")
    return lines


def _scales_lines(claims_path: str | Path | None, summary_dir: Path) -> list[str]:
    """The verdict of every claim at each scale whose summary sits next to this one (if several)."""
    if claims_path is None:
        return []
    dirs = sorted(d for d in summary_dir.parent.iterdir() if (d / "scale.json").is_file()) \
        if summary_dir.parent.is_dir() else []
    if len(dirs) < 2 or summary_dir not in dirs:
        return []
    table = verdicts_across_scales(claims_path, dirs)
    lines = ["", "## Verdicts across scales", "", "| id | " + " | ".join(table.columns) + " |",
             "|---|" + "---|" * len(table.columns)]
    lines += [f"| {cid} | " + " | ".join(str(v) for v in row) + " |" for cid, row in table.iterrows()]
    return lines


def write_report(results: list[ClaimResult], summary_dir: str | Path, out_md: str | Path,
                 deviations: str | Path | None = None, claims_path: str | Path | None = None,
                 across_scales: bool = False) -> tuple[Path, Path]:
    """`audit.md` and `audit.html` (written atomically): verdicts, designs, per-group statistics, what
    would decide the open claims, the statements not testable, verdicts at the sibling scales, scale,
    deviations. The verdicts at sibling scales only with `across_scales`, so that one scale's report
    depends on its own tables alone."""
    summary_dir, out_md = Path(summary_dir), Path(out_md)
    counts = pd.Series([r.verdict for r in results]).value_counts().to_dict()
    facts = scale_facts(summary_dir)  # read once: the report's and the page's header
    lines = ["# Claims audit", "", "## Scale of the results", "", _facts_markdown(facts), "",
             "## Verdicts", "",
             f"{len(results)} claims: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())), "",
             "| id | claim | paper | metric | verdict | reason |", "|---|---|---|---|---|---|"]
    for r in results:
        c = r.claim
        figs = "; ".join(f"{k}: {v}" for k, v in c.figures.items())
        paper = c.section + (f" · {figs}" if figs else "")
        reason = r.reason + (" (β-dependent: see the note below)" if c.beta_dependent else "")
        cells = (c.id, c.claim, paper, c.metric, f"**{r.verdict}**", reason)
        lines.append("| " + " | ".join(_md_cell(x) for x in cells) + " |")
    if any(r.claim.beta_dependent for r in results):
        lines += ["", f"**Note on β-dependent claims.** {BETA_NOTE}."]
    lines += _chance_note(results)
    lines += _design_lines(results)
    lines += ["", "## Per group", "",
              "| id | group | scope | seeds | estimate | 95% CI | unit | verdict |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for g in plotted_groups(r):
            scope = "in" if g.in_scope else "out"
            lines.append(f"| {r.claim.id} | {_md_cell(g.group)} | {scope} | {g.n_seeds} | {g.estimate:.4g} | "
                         f"[{g.low:.4g}, {g.high:.4g}] | {g.unit:.4g} | {g.verdict} |")
    lines += _power_lines(results, summary_dir)
    lines += _untestable_lines(load_untestable(claims_path) if claims_path else [])
    lines += _scales_lines(claims_path, summary_dir) if across_scales else []
    sourced = [r.claim for r in results if r.claim.source]
    if sourced:
        lines += ["", "## Where each claim comes from", "", "| id | paper | sentence |", "|---|---|---|"]
        lines += [f"| {c.id} | {_md_cell(c.section)} | {_md_cell(c.source)} |" for c in sourced]
    if deviations and Path(deviations).is_file():
        lines += ["", Path(deviations).read_text().replace("# Deviations", "## Deviations", 1)]
    out_md.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    atomic.write_text(out_md, text)
    out_html = out_md.with_suffix(".html")
    scale = dict(facts).get("scale", "?")
    overview = draw_overview(results, out_md.parent, f"Claims audit at scale {scale}: "
                             + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    notes = [chance_note(results)]
    if any(r.claim.beta_dependent for r in results):
        notes.append(f"Note on β-dependent claims: {BETA_NOTE}.")
    atomic.write_text(out_html, write_page(out_html, [_card(r) for r in results], facts,
                                           counts, notes, load_untestable(claims_path) if claims_path else [],
                                           bool(overview)))
    return out_md, out_html


def _card(r: ClaimResult) -> Card:
    c = r.claim
    png, pdf = figure_files(c.figure)
    unit = UNIT_LABELS.get(c.test.units, f"units of {c.test.units}")
    return Card(id=c.id, verdict=r.verdict, claim=c.claim, source=c.source, section=c.section,
                chapters=chapters(c.section), figures=c.figures, reason=r.reason,
                design=[("metric", c.metric), *design(r)], svg=forest_svg(r, unit), figure=png,
                figure_pdf=pdf, power=power_rows(r), beta_note=BETA_NOTE if c.beta_dependent else "")
