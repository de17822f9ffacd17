"""Per-step improvement (B.3, Figures 4a, 4b, 17): J at each iteration of the iterative optimizer and
the improvement ΔJ over the iterations, over training and per seed; and the estimate λ_i itself
along one episode (Figure 4a).

Two sources, one table: `training` reads the J_iter0 … J_iterK columns the training loop logs in
metrics.csv (batch means over each log interval, all of training); `states` recomputes J per
iteration on on-policy states at each checkpoint (optionally for more iterations than trained).
With `states`, a second table `refinement` follows one on-policy episode (its states in order, t)
and records at every iteration i one action dimension of λ_i: μ_i, σ_i and tanh(μ_i ∓ σ_i), with J.
The episode is collected with the agent acting (β acting); the iterations are then rerun on its
states with the same objective, iterations and J estimator as the `states` rows (so they differ
from the λ_i used to act by sample noise only, as `--beta` is acting (β = 1) by default).

The training rows are J at the run's training β (as logged); the recomputed rows use β = 1 by
default (evaluation mode, as the authors' code ran its analyses); `--beta train` for the training β.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from iapo.diagnostics.common import IDENTITY, frame
from iapo.diagnostics.objectives import beta_option, evaluate_J, fixed_noise, objective, resolve_beta
from iapo.diagnostics.options import Options, option
from iapo.diagnostics.recording import RecordingObjective
from iapo.diagnostics.rollouts import collect_episode, on_policy_states
from iapo.diagnostics.snapshots import (
    Snapshot,
    iter_snapshots,
    load_snapshot,
    require_iterative,
    reseed,
    select_checkpoints,
)
from iapo.errors import DiagnosticError

NAME = "improvement"

COLUMNS = {"main": {
    **IDENTITY,
    "source": "training (metrics.csv row; step = its env step) | states (recomputed at a checkpoint)",
    "state": "index of the on-policy state (empty for source training)",
    "iteration": "i: J is at λ_i (0 = the initialization λ_0)",
    "J": "J(s, λ_i) (training: mean over the logged batches)",
    "dJ": "J_i − J_0: improvement from the initialization",
    "dJ_step": "J_i − J_{i−1}: improvement of this iteration (empty at i = 0)",
    "n_iters_trained": "K, iterations the optimizer was trained with",
    "beta": "β of eq. 13 inside J (training: the run's training β; states: --beta)",
}, "refinement": {
    **IDENTITY,
    "t": "time step of the state in one on-policy episode (0 = the state after the seeded reset)",
    "iteration": "i: the estimate λ_i (0 = the initialization λ_0)",
    "dim": "action dimension shown (--refinement-dim)",
    "mu": "μ_i of that dimension (pre-tanh mean)",
    "sigma": "σ_i of that dimension (pre-tanh standard deviation)",
    "tanh_mu": "tanh(μ_i): the median of the action a_dim ∈ [−1, 1] under π_i",
    "tanh_low": "tanh(μ_i − σ_i): its 15.9% quantile (μ − σ of Fig. 4a, in action units)",
    "tanh_high": "tanh(μ_i + σ_i): its 84.1% quantile (μ + σ)",
    "J": "J(s_t, λ_i), the same estimator as the main table's states rows",
    "n_iters_trained": "K, iterations the optimizer was trained with",
    "beta": "β of eq. 13 inside J (--beta)",
}}


@dataclass
class ImprovementOptions(Options):
    """Rows: training: one per metrics.csv row × iteration; states: one per checkpoint × state ×
    iteration; refinement table (with states): one per checkpoint × episode time step × iteration.
    Needs an iterative run."""

    source: str = option("both", "training | states | both", ["training", "states", "both"])
    states: int = option(100, "on-policy states per checkpoint (source states)")
    collect_steps: int | None = option(None, "on-policy steps the states are spread over (default: "
                                             "the episode limit)")
    iters: int | None = option(None, "iterations to run on states (default: K, as trained)")
    eval_samples: int | None = option(None, "measure J at every iterate with this many samples of "
                                            "common noise (default: the optimizer's own N-sample "
                                            "estimates, as logged in training)")
    beta: str = beta_option()
    refinement_steps: int = option(100, "refinement table (Fig. 4a): at most this many time steps of one "
                                        "on-policy episode (0: no rows)")
    refinement_dim: int = option(0, "refinement table: the action dimension recorded")


def from_metrics(opts: ImprovementOptions) -> list[dict]:
    """Rows from metrics.csv (training source)."""
    path = opts.run / "metrics.csv"
    if not path.is_file():
        raise DiagnosticError(f"{path}: not found; is {opts.run} a run folder written by `iapo train`?")
    snap = load_snapshot(select_checkpoints(opts.run, "last")[0][1], "cpu")
    require_iterative(snap, NAME)
    metrics = pd.read_csv(path)
    k = snap.cfg.n_iters
    columns = [f"J_iter{i}" for i in range(k + 1)]
    missing = [c for c in columns if c not in metrics]
    if missing:
        raise DiagnosticError(f"{path}: no columns {missing}; the run logged {list(metrics.columns)}")
    metrics = metrics.dropna(subset=columns)  # rows logged before the first update
    ident = snap.identity()
    rows = []
    for _, m in metrics.iterrows():
        J = [float(m[c]) for c in columns]
        for i, value in enumerate(J):
            rows.append(ident | {
                "step": int(m["env_step"]), "source": "training", "iteration": i, "J": value,
                "dJ": value - J[0], "dJ_step": value - J[i - 1] if i else float("nan"),
                "n_iters_trained": k, "beta": snap.cfg.beta,
            })
    return rows


def iterates(snap: Snapshot, s: torch.Tensor, opts: ImprovementOptions
             ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The agent's optimizer on states s for K (or --iters) iterations: J at every iterate λ_0 … λ_I
    [B, I + 1] (its own N-sample estimates, or --eval-samples of common noise) and the iterates."""
    agent = snap.agent
    beta = resolve_beta(snap.cfg, opts.beta)
    obj = RecordingObjective(objective(agent, s, beta))
    trace = agent.optimizer.optimize(obj, n_iters=opts.iters)
    if opts.eval_samples:
        eps = fixed_noise(opts.eval_samples, agent.act_dim, opts.seed + snap.step, agent.device)
        obj_eval = objective(agent, s, beta, opts.eval_samples)
        Js = [evaluate_J(obj_eval, mu, ls, eps).J for mu, ls in obj.visited]
    else:
        Js = trace.J
    return torch.stack(Js, 1).cpu(), obj.visited


def from_states(opts: ImprovementOptions) -> tuple[list[dict], list[dict]]:
    """Rows of the main table (source states) and of the refinement table."""
    rows, refinement = [], []
    for snap in iter_snapshots(opts):
        require_iterative(snap, NAME)
        if not 0 <= opts.refinement_dim < snap.act_dim:
            raise DiagnosticError(f"--refinement-dim {opts.refinement_dim}: {snap.cfg.env} has action "
                                  f"dimensions 0 … {snap.act_dim - 1}")
        reseed(opts.seed, snap.step)
        s = on_policy_states(snap, opts)
        J, _ = iterates(snap, s, opts)
        for b in range(J.shape[0]):
            for i in range(J.shape[1]):
                rows.append(snap.identity() | {
                    "source": "states", "state": b, "iteration": i, "J": J[b, i].item(),
                    "dJ": (J[b, i] - J[b, 0]).item(),
                    "dJ_step": (J[b, i] - J[b, i - 1]).item() if i else float("nan"),
                    "n_iters_trained": snap.cfg.n_iters, "beta": resolve_beta(snap.cfg, opts.beta),
                })
        if opts.refinement_steps > 0:
            refinement += refine_episode(snap, opts)
    return rows, refinement


def refine_episode(snap: Snapshot, opts: ImprovementOptions) -> list[dict]:
    """Figure 4a as data: λ_i of one action dimension at every iteration along one episode."""
    reseed(opts.seed + 1, snap.step)  # independent of --states: the table is the same for any
    episode = collect_episode(snap, opts.seed, opts.refinement_steps)
    J, visited = iterates(snap, torch.as_tensor(episode, device=snap.agent.device), opts)
    d = opts.refinement_dim
    rows = []
    for i, (mu, log_sigma) in enumerate(visited):
        mu, sigma = mu[:, d].cpu(), log_sigma[:, d].exp().cpu()
        low, high = torch.tanh(mu - sigma), torch.tanh(mu + sigma)
        for t in range(len(episode)):
            rows.append(snap.identity() | {
                "t": t, "iteration": i, "dim": d, "mu": mu[t].item(), "sigma": sigma[t].item(),
                "tanh_mu": torch.tanh(mu[t]).item(), "tanh_low": low[t].item(),
                "tanh_high": high[t].item(), "J": J[t, i].item(), "n_iters_trained": snap.cfg.n_iters,
                "beta": resolve_beta(snap.cfg, opts.beta),
            })
    rows.sort(key=lambda r: (r["t"], r["iteration"]))
    return rows


def run(opts: ImprovementOptions) -> dict[str, pd.DataFrame]:
    if opts.refinement_steps < 0:
        raise DiagnosticError(f"--refinement-steps must be 0 or positive, got {opts.refinement_steps}")
    rows, refinement = [], []
    if opts.source in ("training", "both"):
        rows += from_metrics(opts)
    if opts.source in ("states", "both"):
        states, refinement = from_states(opts)
        rows += states
    return {"main": frame(rows, COLUMNS["main"]), "refinement": frame(refinement, COLUMNS["refinement"])}
