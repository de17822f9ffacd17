"""Multiple policy modes (B.7, §4.2.3, Figures 2, 7, 24–26): several optimization runs per state,
the same λ_0 each, differing only by sample noise; L2 distances between tanh(μ) of every pair.

Main table: the pairwise distances (Figure 7a's histogram; the largest possible is 2√|A|). The
`state` table: for the state with the largest distance at each checkpoint, the projected J on every
pair of action dimensions (the other dimensions and σ at run 0's estimate; Figure 7b), each run's
tanh(μ) and σ, and each run's marginal policy density per dimension (Figure 7c).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from iapo.diagnostics.common import (
    IDENTITY,
    Options,
    amortized,
    fixed_noise,
    frame,
    iter_snapshots,
    max_l2,
    on_policy_states,
    option,
    require_tanh_normal,
    reseed,
    resolve_beta,
)
from iapo.diagnostics.surface_2d import grid_values, surface
from iapo.distributions import gaussian_kl

NAME = "modes"

COLUMNS = {
    "main": {
        **IDENTITY,
        "state": "index of the on-policy state",
        "run_i": "first run of the pair",
        "run_j": "second run (run_i < run_j)",
        "l2_tanh_mu": "‖tanh μ_i − tanh μ_j‖₂ (B.7), in action units",
        "l2_mu": "‖μ_i − μ_j‖₂ of the pre-tanh means",
        "kl": "KL(π_i ‖ π_j) in nats (analytic)",
        "max_l2": "2 √|A|, the largest possible l2_tanh_mu",
    },
    "state": {
        **IDENTITY,
        "state": "the state with the largest l2_tanh_mu at this checkpoint",
        "kind": "surface (J on a grid) | mean (a run's estimate) | density (a run's marginal density)",
        "run": "mean, density: the run",
        "dim_x": "action dimension on x",
        "dim_y": "surface: action dimension on y (empty for 1-D actions)",
        "x": "surface: tanh(μ_{dim_x}); mean: tanh(μ_{dim_x}); density: the action a",
        "y": "surface: tanh(μ_{dim_y})",
        "value": "surface: J (return units); mean: σ_{dim_x}; density: π(a) on dimension dim_x",
    },
}


@dataclass
class ModesOptions(Options):
    """Rows (main): one per checkpoint × state × pair of runs. Rows (state, written next to the
    main CSV as <name>_state.csv): per checkpoint, grid² per pair of dimensions, runs × |A| means,
    runs × |A| × density_points densities."""

    checkpoints: str = option("last", "which snapshots: all | last | first | N,M (env steps)")
    states: int = option(100, "on-policy states per checkpoint (B.7: 100)")
    collect_steps: int | None = option(None, "on-policy steps the states are spread over (default: "
                                             "the episode limit)")
    runs: int = option(10, "optimization runs per state (B.7: 10)")
    iters: int | None = option(None, "iterations per run (default: K, as trained)")
    grid: int = option(50, "surface grid points per axis, for the most bimodal state")
    eval_samples: int = option(10, "samples of common noise for the surfaces")
    density_points: int = option(200, "points in (−1, 1) for each density")
    beta: str = option("train", "β of J: train | acting | a number")


def run(opts: ModesOptions) -> dict[str, pd.DataFrame]:
    rows: list[dict] = []
    detail: list[dict] = []
    for snap in iter_snapshots(opts):
        require_tanh_normal(snap, NAME)
        agent, cfg = snap.agent, snap.cfg
        n = agent.act_dim
        reseed(opts.seed, snap.step)
        beta = resolve_beta(cfg, opts.beta)
        s = on_policy_states(snap, opts)
        est = amortized(agent, s.repeat_interleave(opts.runs, 0), beta, n_iters=opts.iters)
        mu = est.mu.reshape(len(s), opts.runs, n)
        log_sigma = est.log_sigma.reshape(len(s), opts.runs, n)
        ident = snap.identity()
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
        m, ls = mu[b].cpu(), log_sigma[b].cpu()
        for r in range(opts.runs):
            for d in range(n):
                detail.append(base | {"kind": "mean", "run": r, "dim_x": d, "x": torch.tanh(m[r, d]).item(),
                                      "value": ls[r, d].exp().item()})
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
            points, J = surface(agent, s[b : b + 1], beta, mu[b, :1], log_sigma[b, :1], list(dims),
                                values, eps)
            for p, j in zip(points.tolist(), J.tolist(), strict=True):
                detail.append(base | {"kind": "surface", "dim_x": dims[0],
                                      "dim_y": dims[1] if n > 1 else np.nan, "x": p[0],
                                      "y": p[1] if n > 1 else np.nan, "value": j})
    return {"main": frame(rows, COLUMNS["main"]), "state": frame(detail, COLUMNS["state"])}
