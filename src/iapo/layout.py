"""Where each product of the study lives, relative to the repository root, and what it is called:
the analyses and their tables, a run of a scale's grid (`RunKey`), a diagnostic job (`DiagnosticRun`).

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

from dataclasses import dataclass
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


# ---------------------------------------------------------------- the analyses and their tables
REGISTRY: dict[str, str] = {
    "value_bias": "Q̂ − Monte Carlo soft return on uniform-random state-action pairs (A.2, Figure 3a)",
    "policy_change": "KL between successive checkpoints' policies on an episode's states (Figure 3b)",
    "amortization_gap": "J gained by Adam on λ from the amortized estimate (A.3, Figures 6, 8, 15, 23)",
    "improvement": "J per iteration and ΔJ of the iterative optimizer over training; λ_i along an "
                   "episode (B.3, Fig. 4a, 4b, 17)",
    "test_time": "evaluation return with extra test-time optimization of λ (B.6, Figures 20, 21)",
    "optimizer_comparison": "iterative vs Adam vs CEM: J per iteration, time per iteration (B.4, Fig. 18)",
    "surface_2d": "J over two action-mean dimensions, estimate, optimum, trajectories from random λ_0 "
                  "(A.1, Fig. 1, 2, 19)",
    "modes": "distances between 10 optimization runs per state, from one λ_0 or random ones; most "
             "bimodal state (B.7, Fig. 2, 7)",
    "mb_transfer": "a model-free iterative optimizer acting zero-shot on model-based values (§4.2.5, Fig. 9)",
    "mb_planning": "planned model rollouts and J over the iterations of a model-based agent (Fig. 13b-c)",
}
"""name → one-line summary; the module is iapo.diagnostics.<name>."""

EXTRA_TABLES: dict[str, tuple[str, ...]] = {
    "modes": ("state",), "mb_planning": ("rollout",), "improvement": ("refinement",),
}
"""name → its tables besides "main" (the module's COLUMNS keys; a test keeps the two in sync)."""


def table_names(name: str) -> list[str]:
    """The summary tables a diagnostic feeds: NAME, then NAME_<table> for each extra table."""
    return list(table_files(name, Path(name)))


def table_files(name: str, main: Path) -> dict[str, Path]:
    """Where a diagnostic's tables go when its main table is `main`: {NAME: main} and, for each extra
    table T, {NAME_T: <main's stem>_T<suffix>} beside it. The one place this naming is spelled."""
    extra = EXTRA_TABLES.get(name, ())
    return {name: main} | {f"{name}_{t}": main.with_name(f"{main.stem}_{t}{main.suffix}") for t in extra}


# ---------------------------------------------------------------- one run, one diagnostic job
@dataclass(frozen=True, order=True)
class RunKey:
    """One training run of a scale's grid."""

    env: str
    variant: str
    seed: int

    def folder(self, scale: str, root: str | Path = RUNS_ROOT) -> Path:
        """`<root>/<scale>/<env>/<variant>/seed<k>`: the run folder `iapo train --out` writes."""
        return Path(root) / scale / self.env / self.variant / f"seed{self.seed}"


@dataclass(frozen=True)
class DiagnosticRun:
    """One `iapo diagnose NAME` job: a finished run, and the run lending its optimizer (if any)."""

    name: str
    key: RunKey
    donor: RunKey | None = None

    def out(self, scale: str, root: str | Path = DIAGNOSTICS_ROOT) -> Path:
        """<root>/<scale>/<name>/<env>/<variant>/seed<k>.csv (extra tables: seed<k>_<table>.csv)."""
        k = self.key
        return Path(root) / scale / self.name / k.env / k.variant / f"seed{k.seed}.csv"

    def outs(self, scale: str, root: str | Path = DIAGNOSTICS_ROOT) -> dict[str, Path]:
        """Every table the job writes, by summary table name (`table_files` of `out`)."""
        return table_files(self.name, self.out(scale, root))
