"""Optimizer comparison (B.4, Figures 4c, 18): iterative amortization vs Adam vs CEM on one
objective, from the same λ_0, for hundreds of iterations; wall-clock per iteration of each,
measured in this process one after the other, and its ratio to the iterative optimizer's.

Defaults (B.4): step size 0.01 for Adam and CEM; Adam's gradients from 10 action samples; CEM with
100 samples refit to the top 10; λ_0 = (μ = 0, σ = the iterative optimizer's init_sigma), the
iterative optimizer's own initialization; 250 iterations (original_code.md §6); β = 1 inside J (evaluation
mode, as the authors' code ran it; `--beta train` for the run's training β).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from iapo.diagnostics.common import IDENTITY, frame
from iapo.diagnostics.objectives import beta_option, objective, resolve_beta
from iapo.diagnostics.options import Options, doc, option
from iapo.diagnostics.rollouts import on_policy_states
from iapo.diagnostics.snapshots import iter_snapshots, require_tanh_normal, reseed, transfer_snapshot
from iapo.errors import DiagnosticError
from iapo.optimizers.adam import Adam
from iapo.optimizers.cem import CEM

NAME = "optimizer_comparison"

COLUMNS = {"main": {
    **IDENTITY,
    "optimizer": "iterative (the run's own) | iterative_transfer (--optimizer-from) | adam | cem",
    "state": "index of the on-policy state",
    "iteration": "i: J is at λ_i (0 = λ_0, the same for every optimizer)",
    "J": "the optimizer's own estimate of J(s, λ_i) (unbiased; n_samples samples)",
    "n_samples": "action samples per iteration",
    "sec_per_iter": "wall-clock seconds per iteration for all states at once (this process)",
    "time_ratio": "sec_per_iter of the iterative optimizer / this one's (B.4 reports 1.15 for "
                  "Adam, 1.25 for CEM)",
    "n_iters_trained": "K the iterative optimizer was trained with (its J at iteration K is the "
                       "level Adam and CEM must reach); empty without one",
    "beta": "β of eq. 13 inside J (--beta)",
}}


@dataclass
class OptimizerComparisonOptions(Options):
    """Rows: one per checkpoint × optimizer × state × iteration (iterations 0 … iters)."""

    checkpoints: str = option("last", "which snapshots: all | last | first | N,M (env steps)")
    states: int = option(100, "on-policy states per checkpoint (B.4: 100 per seed)")
    collect_steps: int | None = option(None, "on-policy steps the states are spread over (default: "
                                             "the episode limit)")
    iters: int = option(250, "iterations of every optimizer (original_code.md §6: 250)")
    optimizers: str = option("iterative,adam,cem", "comma-separated subset of iterative, adam, cem")
    lr: float = option(0.01, "Adam step size (B.4)")
    samples: int | None = option(None, "Adam and iterative: action samples per step (default: the "
                                       "run's N = 10, B.4)")
    sigma_param: str = option("sigma", "Adam: sigma (raw σ, code) | log_sigma", ["sigma", "log_sigma"])
    cem_samples: int = option(100, "CEM samples per iteration (B.4)")
    cem_top: int = option(10, "CEM elite count (B.4)")
    cem_lr: float = option(0.01, "CEM smoothing step size (B.4)")
    cem_space: str = option("pre_tanh", "CEM refit of the pre-tanh samples | tanh: of the actions, "
                                        "written into μ, σ (code quirk)", ["pre_tanh", "tanh"])
    cem_rank: str = option("objective", "CEM ranks samples by their term of J | q: by Q̂ alone",
                           ["objective", "q"])
    optimizer_from: Path | None = field(default=None, metadata=doc(
        "use the iterative optimizer of this run folder (same task) on this run's objective"))
    optimizer_step: str = option("same", "its checkpoint: same (this step, else its last) | last | N")
    beta: str = beta_option()


def run(opts: OptimizerComparisonOptions) -> dict[str, pd.DataFrame]:
    wanted = [o.strip() for o in opts.optimizers.split(",") if o.strip()]
    unknown = set(wanted) - {"iterative", "adam", "cem"}
    if unknown or not wanted:
        raise DiagnosticError(f"--optimizers {opts.optimizers!r}: choose from iterative, adam, cem")
    rows: list[dict] = []
    for snap in iter_snapshots(opts):
        require_tanh_normal(snap, NAME)
        agent, cfg = snap.agent, snap.cfg
        reseed(opts.seed, snap.step)
        beta = resolve_beta(cfg, opts.beta)
        s = on_policy_states(snap, opts)
        obj = objective(agent, s, beta, opts.samples)
        iterative, it_name, init_sigma, k = None, "iterative", cfg.init_sigma, None
        if opts.optimizer_from is not None:
            other = transfer_snapshot(opts.optimizer_from, opts.optimizer_step, snap, opts.device, NAME)
            iterative, it_name, init_sigma = other.agent.optimizer, "iterative_transfer", other.cfg.init_sigma
            k = other.cfg.n_iters
        elif cfg.family == "iterative":
            iterative, k = agent.optimizer, cfg.n_iters
        mu0 = torch.zeros(len(s), agent.act_dim, device=agent.device)
        init = (mu0, torch.full_like(mu0, math.log(init_sigma)))
        runners: dict[str, tuple[object, dict, int]] = {}  # name → (optimizer, extra kwargs, N)
        if "iterative" in wanted and iterative is not None:
            runners[it_name] = (iterative, {}, obj.n_samples)
        if "adam" in wanted:
            runners["adam"] = (Adam(opts.lr, opts.iters, opts.sigma_param), {"init": init}, obj.n_samples)
        if "cem" in wanted:
            cem = CEM(opts.iters, opts.cem_samples, opts.cem_top, opts.cem_lr, init_sigma, opts.cem_space,
                      opts.cem_rank)
            runners["cem"] = (cem, {"init": init}, opts.cem_samples)
        timings, traces = {}, {}
        for name, (optimizer, kwargs, _) in runners.items():
            optimizer.optimize(obj, n_iters=2, **kwargs)  # warm-up: first-call allocations
            start = time.perf_counter()
            traces[name] = optimizer.optimize(obj, n_iters=opts.iters, **kwargs)
            timings[name] = (time.perf_counter() - start) / max(opts.iters, 1)
        t_it = timings.get(it_name, float("nan"))
        for name, trace in traces.items():
            J = torch.stack(trace.J, 1).cpu()  # [B, iters + 1]
            for b in range(J.shape[0]):
                for i in range(J.shape[1]):
                    rows.append(snap.identity() | {
                        "optimizer": name, "state": b, "iteration": i, "J": J[b, i].item(),
                        "n_samples": runners[name][2], "sec_per_iter": timings[name],
                        "time_ratio": t_it / timings[name], "n_iters_trained": k, "beta": beta,
                    })
    return {"main": frame(rows, COLUMNS["main"])}
