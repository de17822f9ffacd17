"""Multiple policy modes (B.7, §4.2.3, Figures 2, 7, 24–26): several optimization runs per state;
L2 distances between tanh(μ) of every pair.

How the runs start (`--init`): `same` (default, as the authors' distance analysis did): every run
from the optimizer's own λ_0, so they differ only by sample noise; `random`: each run from its own
μ_0 ~ 0.3·N(0, I) (σ_0 as trained), the initializations of the authors' surface code (B.7 credits
the modes to 'stochasticity in the optimization procedure as well as initialization');
`both`: the two on the same states, told apart by the `init` column. β is 1 by default (evaluation
mode, as the authors' code ran it).

Main table: the pairwise distances (Figure 7a's histogram; the largest possible is 2√|A|). The
`state` table: for the state with the largest distance at each checkpoint (per `init`), the
projected J on every pair of action dimensions (the other dimensions and σ at run 0's estimate;
Figure 7b), each run's initialization and final tanh(μ) and σ (Fig. 2: 'each square denotes an
initialization'), and each run's marginal policy density per dimension (Figure 7c).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from iapo.diagnostics.common import IDENTITY, frame
from iapo.diagnostics.objectives import amortized, beta_option, fixed_noise, random_means, resolve_beta
from iapo.diagnostics.options import Options, option
from iapo.diagnostics.rollouts import on_policy_states
from iapo.diagnostics.snapshots import Snapshot, iter_snapshots, require_tanh_normal, reseed
from iapo.diagnostics.surface_2d import grid_values, surface
from iapo.distributions import gaussian_kl
from iapo.errors import DiagnosticError
from iapo.seeds import diagnostic_start

NAME = "modes"

COLUMNS = {
    "main": {
        **IDENTITY,
        "state": "index of the on-policy state",
        "run_i": "first run of the pair",
        "run_j": "second run (run_i < run_j)",
        "init": "λ_0 of the runs: same (the optimizer's, every run) | random (μ_0 ~ 0.3·N(0, I) per run)",
        "l2_tanh_mu": "‖tanh μ_i − tanh μ_j‖₂ (B.7), in action units",
        "l2_mu": "‖μ_i − μ_j‖₂ of the pre-tanh means",
        "kl": "KL(π_i ‖ π_j) in nats (analytic)",
        "max_l2": "2 √|A|, the largest possible l2_tanh_mu",
        "beta": "β of eq. 13 inside J (--beta)",
    },
    "state": {
        **IDENTITY,
        "state": "the state with the largest l2_tanh_mu at this checkpoint (for this init)",
        "init": "λ_0 of the runs, as in the main table",
        "kind": "surface (J on a grid) | init (a run's λ_0) | mean (a run's estimate) | density (a run's "
                "marginal density)",
        "run": "init, mean, density: the run",
        "dim_x": "action dimension on x",
        "dim_y": "surface: action dimension on y (empty for 1-D actions)",
        "x": "surface: tanh(μ_{dim_x}); init, mean: tanh(μ_{dim_x}); density: the action a",
        "y": "surface: tanh(μ_{dim_y})",
        "value": "surface: J (return units); init, mean: σ_{dim_x}; density: π(a) on dimension dim_x",
        "beta": "β of eq. 13 inside J (--beta)",
    },
}


@dataclass
class ModesOptions(Options):
    """Rows (main): one per checkpoint × init × state × pair of runs. Rows (state, written next to
    the main CSV as <name>_state.csv): per checkpoint and init, grid² per pair of dimensions,
    runs × |A| initializations, runs × |A| means, runs × |A| × density_points densities."""

    checkpoints: str = option("last", "which snapshots: all | last | first | N,M (env steps)")
    states: int = option(100, "on-policy states per checkpoint (B.7: 100)")
    collect_steps: int | None = option(None, "on-policy steps the states are spread over (default: "
                                             "the episode limit)")
    runs: int = option(10, "optimization runs per state (B.7: 10)")
    iters: int | None = option(None, "iterations per run (default: K, as trained)")
    grid: int = option(50, "surface grid points per axis, for the most bimodal state")
    eval_samples: int = option(10, "samples of common noise for the surfaces")
    density_points: int = option(200, "points in (−1, 1) for each density")
    init: str = option("same", "λ_0 of the runs: same (the optimizer's λ_0 for every run: sample "
                               "noise only, as the code's distance analysis) | random (μ_0 ~ "
                               "0.3·N(0, I) per run) | both", ["same", "random", "both"])
    beta: str = beta_option()


def run(opts: ModesOptions) -> dict[str, pd.DataFrame]:
    rows: list[dict] = []
    detail: list[dict] = []
    inits = ["same", "random"] if opts.init == "both" else [opts.init]
    for snap in iter_snapshots(opts):
        require_tanh_normal(snap, NAME)
        if opts.init != "same" and snap.cfg.family != "iterative":
            raise DiagnosticError(
                f"--init {opts.init}: {snap.path} is a {snap.cfg.family} agent, whose estimate is one "
                "pass of its network with no λ_0 to start from; use --init same (the default) for it")
        reseed(opts.seed, snap.step)
        beta = resolve_beta(snap.cfg, opts.beta)
        s = on_policy_states(snap, opts)
        for init in inits:
            reseed(opts.seed + 1, snap.step)  # the same sample noise for each init: only λ_0 differs
            pairs, chosen = runs_of(snap, s, beta, init, opts)
            rows += pairs
            detail += chosen
    return {"main": frame(rows, COLUMNS["main"]), "state": frame(detail, COLUMNS["state"])}


def max_l2(act_dim: int) -> float:
    """Largest L2 distance between two points of [−1, 1]^n (B.7): 2 √n."""
    return 2.0 * math.sqrt(act_dim)


def initial(snap: Snapshot, n_rows: int, init: str, seed: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """λ_0 of `n_rows` runs: None (the optimizer's own) for `same`; for `random`, μ_0 ~ 0.3·N(0, I)
    and σ_0 the trained init_sigma."""
    if init == "same":
        return None
    mu0 = random_means(n_rows, snap.act_dim, seed, snap.agent.device)
    return mu0, torch.full_like(mu0, math.log(snap.cfg.init_sigma))


def runs_of(snap: Snapshot, s: torch.Tensor, beta: float, init: str, opts: ModesOptions
            ) -> tuple[list[dict], list[dict]]:
    """`runs` optimization runs on each state s [B, S] from λ_0 as `init` says: the pairwise rows
    of the main table and the state table's rows for the state with the largest distance."""
    agent, n = snap.agent, snap.act_dim
    lam0 = initial(snap, len(s) * opts.runs, init, diagnostic_start(opts.seed, snap.step, 1))
    est = amortized(agent, s.repeat_interleave(opts.runs, 0), beta, n_iters=opts.iters, init=lam0)
    mu = est.mu.reshape(len(s), opts.runs, n)
    log_sigma = est.log_sigma.reshape(len(s), opts.runs, n)
    ident = snap.identity() | {"init": init, "beta": beta}
    rows: list[dict] = []
    largest = torch.zeros(len(s))
    for i, j in itertools.combinations(range(opts.runs), 2):
        l2_tanh = (torch.tanh(mu[:, i]) - torch.tanh(mu[:, j])).norm(dim=-1).cpu()
        l2_mu = (mu[:, i] - mu[:, j]).norm(dim=-1).cpu()
        kl = gaussian_kl(mu[:, i], log_sigma[:, i], mu[:, j], log_sigma[:, j]).cpu()
        largest = torch.maximum(largest, l2_tanh)
        for b in range(len(s)):
            rows.append(ident | {"state": b, "run_i": i, "run_j": j, "l2_tanh_mu": l2_tanh[b].item(),
                                 "l2_mu": l2_mu[b].item(), "kl": kl[b].item(), "max_l2": max_l2(n)})
    b = int(largest.argmax())
    base = ident | {"state": b}
    detail: list[dict] = []
    m, ls = mu[b].cpu(), log_sigma[b].cpu()
    kinds = {"mean": (m, ls)}
    if lam0 is not None:
        kinds = {"init": tuple(t.reshape(len(s), opts.runs, n)[b].cpu() for t in lam0)} | kinds
    elif snap.cfg.family == "iterative":  # a direct agent has no λ_0: one pass of its network
        start = agent.optimizer.initial(s[b : b + 1])
        kinds = {"init": tuple(t.expand(opts.runs, -1).cpu() for t in start)} | kinds
    for kind, (means, log_sigmas) in kinds.items():
        for r in range(opts.runs):
            for d in range(n):
                detail.append(base | {"kind": kind, "run": r, "dim_x": d,
                                      "x": torch.tanh(means[r, d]).item(),
                                      "value": log_sigmas[r, d].exp().item()})
    a = torch.linspace(-1.0, 1.0, opts.density_points + 2)[1:-1]
    u = torch.atanh(a)
    for r in range(opts.runs):
        for d in range(n):
            sigma = ls[r, d].exp()
            gauss = torch.exp(-0.5 * ((u - m[r, d]) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
            dens = gauss / (1 - a**2)  # change of variables a = tanh(u)
            detail += [base | {"kind": "density", "run": r, "dim_x": d, "x": x, "value": v}
                       for x, v in zip(a.tolist(), dens.tolist(), strict=True)]
    eps = fixed_noise(opts.eval_samples, n, opts.seed + snap.step, agent.device)
    pairs = list(itertools.combinations(range(n), 2)) if n > 1 else [(0,)]
    values = grid_values(opts.grid)
    for dims in pairs:
        points, J = surface(agent, s[b : b + 1], beta, mu[b, :1], log_sigma[b, :1], list(dims), values, eps)
        for p, j in zip(points.tolist(), J.tolist(), strict=True):
            detail.append(base | {"kind": "surface", "dim_x": dims[0], "dim_y": dims[1] if n > 1 else np.nan,
                                  "x": p[0], "y": p[1] if n > 1 else np.nan, "value": j})
    return rows, detail
