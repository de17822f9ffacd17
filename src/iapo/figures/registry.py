"""The registry of the paper's figures and tables: one `Entry` each, under a stable name.

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

from collections.abc import Sequence
from dataclasses import dataclass

from iapo.figures.labels import MAIN_ENVS, PENDULUMS, SUITE

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

