"""Where each product of the study lives, relative to the repository root.

One definition for the workflow's rules (workflow/rules/*.smk) and the defaults of the `iapo`
commands, so that a product made by hand lands where the next step of the pipeline looks for it:

  results/runs/<scale>/<env>/<variant>/seed<k>/          a training run (`iapo train`)
  results/diagnostics/<scale>/<name>/<env>/<variant>/seed<k>.csv   one diagnostic of one run
  results/summary/<scale>/                               the summary tables (`iapo summarize`)
  paper_figures/<scale>/figures/, notebooks/, tables/    figures, notebooks, appendix tables
  paper_figures/<scale>/audit.md, audit.html             the claims audit (`iapo audit`), and its
  paper_figures/<scale>/audit_overview.png, .pdf         overview figure (beside the page, not in
                                                         figures/, which the notebooks' DVC stage owns)
"""

from __future__ import annotations

from pathlib import Path

RUNS_ROOT = Path("results/runs")
DIAGNOSTICS_ROOT = Path("results/diagnostics")
SUMMARY_ROOT = Path("results/summary")
PAPER_FIGURES = Path("paper_figures")


def summary_dir(scale: str) -> Path:
    """results/summary/<scale>: the tables the notebooks and the audit read."""
    return SUMMARY_ROOT / scale


def figures_root(scale: str) -> Path:
    """paper_figures/<scale>: everything drawn or written from a scale's summary tables."""
    return PAPER_FIGURES / scale


def figures_dir(scale: str) -> Path:
    """paper_figures/<scale>/figures: <name>.pdf and .png of every figure."""
    return figures_root(scale) / "figures"


def notebooks_dir(scale: str) -> Path:
    """paper_figures/<scale>/notebooks: each executed notebook and its HTML rendering."""
    return figures_root(scale) / "notebooks"


def tables_dir(scale: str) -> Path:
    """paper_figures/<scale>/tables: the appendix tables written from params.yaml."""
    return figures_root(scale) / "tables"


def audit_md(scale: str) -> Path:
    """paper_figures/<scale>/audit.md (and audit.html next to it)."""
    return figures_root(scale) / "audit.md"


def audit_products(scale: str) -> list[Path]:
    """Every file `iapo audit` writes at a scale: audit.md, audit.html and the overview figure."""
    md = audit_md(scale)
    overview = [figures_root(scale) / f"audit_overview.{ext}" for ext in ("png", "pdf")]
    return [md, md.with_suffix(".html"), *overview]
