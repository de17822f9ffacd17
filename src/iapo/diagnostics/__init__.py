"""The paper's analyses as `iapo diagnose <name>`: each reads a run's checkpoints, writes tidy CSVs.

A diagnostic is one module here with three things: an options dataclass (a subclass of
`common.Options`; its fields are the command-line options), `COLUMNS` (table name → column → meaning;
"main" is the CSV at --out, any other table T goes next to it as <stem>_T.csv) and
`run(options) -> {table name: DataFrame}`. Adding one (e.g. the model-based transfer and planning
analyses) is a new module plus a line in `REGISTRY`; `runner` does the command line and the writing.
The CSV schemas are in docs/diagnostics.md. (This file imports nothing heavy: `iapo --help` lists
the names without loading torch.)
"""

from __future__ import annotations

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
    return [name, *(f"{name}_{t}" for t in EXTRA_TABLES.get(name, ()))]

