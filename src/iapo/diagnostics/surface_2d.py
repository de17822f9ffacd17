"""2-D optimization surfaces (A.1, B.5, Figures 1, 2 left, 19): J over a grid of two action-mean
dimensions (tanh space, a ∈ [−1, 1)), the other dimensions of μ and all of σ fixed at the agent's
estimate; with the agent's estimate, the grid optimum, and iterative optimizers' trajectories.

The grid follows the authors' code: tanh-space means, μ_d = atanh(a_d), J from 10 samples; here the
same noise is used at every grid point (common random numbers), so the surface is smooth. β is 1
by default (evaluation mode, as that code ran it; `--beta train` for the run's training β).

A trajectory is an iterative optimizer run restricted to the plotted dimensions (A.1: 'preventing
any updates to the constant dimensions'): after every iteration the other dimensions of μ and all
of σ are reset to the agent's estimate (the values the surface is drawn at), and J is evaluated at
those values (`recording.RecordingObjective`). Each run starts from its own initialization (Fig. 2:
'each square denotes an initialization'): μ_0 ~ 0.3·N(0, I) on the plotted dimensions, as the
authors' code drew it (`objectives.random_means` says why); `--init same` starts every run at μ = 0
there instead, so runs differ only by sample noise. The initializations are the trajectory rows of
iteration 0, the same for every optimizer of a state. `--optimizer-from ITERATIVE_RUN` adds that
run's optimizer on this run's objective: on a direct run, the iterative optimizer generalizing to a
direct agent's Q (Figures 1, 19).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from iapo.agent import Agent
from iapo.diagnostics.common import IDENTITY, chunks, frame
from iapo.diagnostics.objectives import (
    amortized,
    beta_option,
    evaluate_J,
    fixed_noise,
    objective,
    random_means,
    resolve_beta,
)
from iapo.diagnostics.options import Options, doc, option
from iapo.diagnostics.recording import RecordingObjective
from iapo.diagnostics.rollouts import on_policy_states
from iapo.diagnostics.snapshots import iter_snapshots, require_tanh_normal, reseed, transfer_snapshot
from iapo.errors import DiagnosticError
from iapo.optimizers.base import Trace
from iapo.seeds import diagnostic_start

NAME = "surface_2d"

COLUMNS = {"main": {
    **IDENTITY,
    "state": "index of the on-policy state",
    "kind": "grid | estimate (the agent's λ) | optimum (best grid point) | trajectory | estimate_fresh, "
            "optimum_fresh (the estimate and the best grid point re-evaluated on fresh noise: the grid's own "
            "maximum is biased upwards)",
    "optimizer": "trajectory: iterative (the run's own) | iterative_transfer (--optimizer-from)",
    "run": "trajectory: index of the optimization run",
    "init": "trajectory: random (μ_0 ~ 0.3·N(0, I) on the plotted dimensions, per run) | same (μ_0 = 0)",
    "iteration": "trajectory: i of λ_i (0 = λ_0, the run's initialization)",
    "dim_x": "action dimension on x",
    "dim_y": "action dimension on y (empty for a 1-D action space: a 1-D curve)",
    "x": "tanh(μ_{dim_x}), in [−1, 1]",
    "y": "tanh(μ_{dim_y})",
    "J": "J(s, λ) with the common noise (eval_samples samples; *_fresh: fresh_samples independent ones), "
         "return units",
    "beta": "β of eq. 13 inside J (--beta)",
}}


@dataclass
class Surface2dOptions(Options):
    """Rows: per checkpoint × state: grid² grid points, 1 estimate, 1 optimum, and runs × (iters+1)
    trajectory points per optimizer."""

    checkpoints: str = option("last", "which snapshots: all | last | first | N,M (env steps)")
    states: int = option(1, "on-policy states (one surface each)")
    collect_steps: int | None = option(None, "on-policy steps the states are spread over (default: "
                                             "the episode limit)")
    dims: str | None = option(None, "two action dimensions, e.g. 1,3 (default 0,1; 0 for 1-D actions)")
    grid: int = option(200, "grid points per axis over [−1, 1) (code: 200, step 0.01)")
    eval_samples: int = option(10, "samples of common noise for J (code: 10)")
    fresh_samples: int = option(1000, "samples of fresh noise, independent of the grid's, on which the "
                                      "optimum and the estimate are re-evaluated (the grid's maximum over "
                                      "one noisy surface is biased upwards)")
    iters: int = option(50, "iterations per trajectory (code: 50)")
    runs: int = option(10, "trajectories per optimizer (code: 10)")
    init: str = option("random", "λ_0 of the trajectories on the plotted dimensions: random (μ_0 ~ "
                                 "0.3·N(0, I) per run, code) | same (μ_0 = 0 for every run)",
                       ["random", "same"])
    optimizer_from: Path | None = field(default=None, metadata=doc(
        "also run the iterative optimizer of this run folder (same task) on this run's objective"))
    optimizer_step: str = option("same", "its checkpoint: same (this step, else its last) | last | N")
    beta: str = beta_option()


def parse_dims(spec: str | None, act_dim: int) -> list[int]:
    if spec is None:
        return [0] if act_dim == 1 else [0, 1]
    try:
        dims = [int(d) for d in spec.split(",")]
    except ValueError:
        raise DiagnosticError(f"--dims {spec!r}: expected two integers like 1,3") from None
    if len(dims) != min(2, act_dim) or len(set(dims)) != len(dims) or not all(0 <= d < act_dim for d in dims):
        raise DiagnosticError(
            f"--dims {spec!r}: need {min(2, act_dim)} distinct dimensions in 0…{act_dim - 1}")
    return dims


def grid_values(n: int) -> torch.Tensor:
    """n tanh-space values over [−1, 1) (code: −1 + 0.01 k), kept inside (−1, 1) for atanh."""
    return torch.linspace(-1.0, 1.0, n + 1)[:-1].clamp(-1 + 1e-6, 1 - 1e-6)


@torch.no_grad()
def surface(agent: Agent, s: torch.Tensor, beta: float, mu: torch.Tensor, log_sigma: torch.Tensor,
            dims: list[int], values: torch.Tensor, eps: torch.Tensor,
            batch: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """J at every grid point for one state s [1, S]: points [P, len(dims)] (tanh space), J [P].
    μ takes the grid values on `dims`, the estimate's elsewhere; σ is the estimate's."""
    axes = torch.meshgrid(*([values] * len(dims)), indexing="ij")
    points = torch.stack([a.reshape(-1) for a in axes], -1).to(mu.device)
    Js = []
    for sl in chunks(len(points), batch):
        p = points[sl]
        m = mu.expand(len(p), -1).clone()
        m[:, dims] = torch.atanh(p)
        obj = objective(agent, s.expand(len(p), -1), beta, eps.shape[0])
        Js.append(evaluate_J(obj, m, log_sigma.expand(len(p), -1), eps).J)
    return points.cpu(), torch.cat(Js).cpu()


def xy(mu: torch.Tensor, dims: list[int]) -> dict:
    """x, y = tanh(μ) on the plotted dimensions."""
    t = torch.tanh(mu.reshape(-1)).cpu()
    return {"x": t[dims[0]].item(), "y": t[dims[1]].item() if len(dims) > 1 else np.nan}


def run(opts: Surface2dOptions) -> dict[str, pd.DataFrame]:
    rows: list[dict] = []
    for snap in iter_snapshots(opts):
        require_tanh_normal(snap, NAME)
        agent, cfg = snap.agent, snap.cfg
        dims = parse_dims(opts.dims, agent.act_dim)
        reseed(opts.seed, snap.step)
        beta = resolve_beta(cfg, opts.beta)
        states = on_policy_states(snap, opts)
        eps = fixed_noise(opts.eval_samples, agent.act_dim, opts.seed + snap.step, agent.device)
        optimizers = {}
        if cfg.family == "iterative":
            optimizers["iterative"] = agent.optimizer
        if opts.optimizer_from is not None:
            other = transfer_snapshot(opts.optimizer_from, opts.optimizer_step, snap, opts.device, NAME)
            optimizers["iterative_transfer"] = other.agent.optimizer
        values = grid_values(opts.grid)
        ident = snap.identity()
        for b in range(len(states)):
            s = states[b : b + 1]
            est = amortized(agent, s, beta)
            obj_eval = objective(agent, s, beta, opts.eval_samples)
            base = ident | {"state": b, "dim_x": dims[0], "dim_y": dims[1] if len(dims) > 1 else np.nan,
                            "beta": beta}

            points, J = surface(agent, s, beta, est.mu, est.log_sigma, dims, values, eps)
            for p, j in zip(points.tolist(), J.tolist(), strict=True):
                rows.append(base | {"kind": "grid", "x": p[0], "y": p[1] if len(dims) > 1 else np.nan,
                                    "J": j})
            best = int(J.argmax())
            rows.append(base | {"kind": "optimum", "x": points[best, 0].item(),
                                "y": points[best, 1].item() if len(dims) > 1 else np.nan,
                                "J": J[best].item()})
            J_est = evaluate_J(obj_eval, est.mu, est.log_sigma, eps).J.item()
            rows.append(base | {"kind": "estimate", "J": J_est} | xy(est.mu, dims))
            rows += fresh_rows(agent, s, beta, est, dims, points[best], opts, snap.step + 1_000_033 * b, base)
            mu0 = initial_means(opts, est.mu, dims, diagnostic_start(opts.seed, snap.step, b))
            obj_runs = objective(agent, s.expand(opts.runs, -1), beta, opts.eval_samples)
            for name, optimizer in optimizers.items():
                for i, (mu, ls) in enumerate(trajectories(agent, optimizer, s, beta, est, dims, mu0,
                                                          opts.iters)):
                    Ji = evaluate_J(obj_runs, mu, ls, eps).J
                    for r in range(opts.runs):
                        rows.append(base | {"kind": "trajectory", "optimizer": name, "run": r,
                                            "init": opts.init, "iteration": i, "J": Ji[r].item()}
                                    | xy(mu[r], dims))
    return {"main": frame(rows, COLUMNS["main"])}


def fresh_rows(agent: Agent, s: torch.Tensor, beta: float, est: Trace, dims: list[int], best: torch.Tensor,
               opts: Surface2dOptions, seed: int, base: dict) -> list[dict]:
    """The estimate and the best grid point (tanh space, on `dims`) re-evaluated with fresh_samples samples
    of noise independent of the grid's: J of the grid's argmax on the noise that chose it is biased
    upwards, on fresh noise it is not."""
    fresh = fixed_noise(opts.fresh_samples, agent.act_dim, 7_919 + 104_729 * opts.seed + seed, agent.device)
    obj = objective(agent, s, beta, opts.fresh_samples)
    mu_opt = est.mu.clone()
    mu_opt[:, dims] = torch.atanh(best.to(mu_opt))
    return [base | {"kind": kind, "J": evaluate_J(obj, mu, est.log_sigma, fresh).J.item()} | xy(mu, dims)
            for kind, mu in (("optimum_fresh", mu_opt), ("estimate_fresh", est.mu))]


def initial_means(opts: Surface2dOptions, mu: torch.Tensor, dims: list[int], seed: int) -> torch.Tensor:
    """μ_0 of every run [runs, n]: the estimate's μ, with the plotted dimensions drawn from
    0.3·N(0, I) (`--init random`, one draw per run) or 0 (`same`)."""
    mu0 = mu.expand(opts.runs, -1).clone()
    free = random_means(opts.runs, len(dims), seed, mu.device) if opts.init == "random" else 0.0
    mu0[:, dims] = free
    return mu0


def trajectories(agent: Agent, optimizer: torch.nn.Module, s: torch.Tensor, beta: float, est: Trace,
                 dims: list[int], mu0: torch.Tensor, iters: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """λ_0 … λ_iters of an iterative optimizer run from μ_0 [runs, n] on state s [1, S], restricted to
    `dims` (A.1): the other dimensions of μ and all of σ reset to the estimate `est` after every
    iteration and held there in J."""
    runs = mu0.shape[0]
    fixed = (est.mu.expand(runs, -1), est.log_sigma.expand(runs, -1))
    rec = RecordingObjective(objective(agent, s.expand(runs, -1), beta), fixed, dims)
    optimizer.optimize(rec, n_iters=iters, init=rec.reset(mu0, fixed[1]), constrain=rec.reset)
    return rec.visited
