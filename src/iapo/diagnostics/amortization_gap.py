"""Amortization gap (A.3, Figures 6, 8, 15, 23): how much gradient ascent from the agent's own λ
still improves J on on-policy states.

`paper` (default): Adam on λ = (μ, σ), lr 5e-3, 100 steps, from the amortized estimate; the gap
J(λ̂) − J(λ) is measured with `eval_samples` samples of common noise for both λ. For iterative agents
the same is done from the estimate after 5 extra amortized iterations (K + 5), giving its own gap.
`code` (original_code.md §6): SGD lr 1e-4 on raw (μ, σ) while the 10-sample J keeps improving; the gap is the
difference of those 10-sample estimates (last improving iterate − amortized).

Direct + flow (B.2, Figure 15): the per-state output of a flow policy is its base Gaussian's
λ = (μ(s), σ(s)); the flow transforms are global, state-independent weights of the policy, like
φ. So λ is what is optimized, with the transforms held fixed, and J is the flow policy's own
objective (its samples and exact log-densities, `objectives.PolicyObjective`): the same estimators,
settings and numbers of samples as for a tanh-Normal. The common noise for the flow is the
policy's own sampler under a fixed seed (ε [N, B, n], the same for λ and λ̂). A direct agent, with
or without a flow, has no iterations: it gets no `amortized_extra` rows.

β of J is 1 by default for every agent (evaluation mode, as the authors' code ran this analysis;
the paper does not say), so the gaps of direct and iterative agents, trained with β = 1 and 2.5
(Hopper 1.5), are measured on the same objective; `--beta train` measures each on its training β.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from iapo.diagnostics.common import IDENTITY, frame
from iapo.diagnostics.objectives import (
    amortized,
    beta_option,
    common_noise_J,
    objective,
    policy_objective,
    resolve_beta,
)
from iapo.diagnostics.options import Options, option
from iapo.diagnostics.rollouts import on_policy_states
from iapo.diagnostics.snapshots import iter_snapshots, reseed
from iapo.errors import DiagnosticError
from iapo.objective import Objective
from iapo.optimizers.adam import Adam
from iapo.optimizers.sgd import SGD

NAME = "amortization_gap"

COLUMNS = {"main": {
    **IDENTITY,
    "state": "index of the on-policy state (0 … states−1)",
    "estimate": "amortized (the agent's K iterations; 1 pass for direct, direct_flow) | "
                "amortized_extra (K + extra; iterative only)",
    "amortized_iters": "iterations of the amortized optimizer that gave the estimate",
    "J_amortized": "J(s, λ) of the amortized estimate (return units; direct_flow: λ of the base "
                   "Gaussian, J of the flow policy)",
    "J_optimized": "J(s, λ̂) after gradient ascent from it (direct_flow: flow transforms held fixed)",
    "gap": "J_optimized − J_amortized",
    "opt_steps": "gradient steps taken (code estimator: improving steps before it stopped)",
    "estimator": "paper | code",
    "beta": "β of eq. 13 inside J (--beta; default 1 for every family: one objective for all)",
}}


@dataclass
class AmortizationGapOptions(Options):
    """Rows: one per checkpoint × state × estimate (amortized; for iterative also amortized_extra).
    Direct, iterative and direct + flow runs (for a flow, λ is the base Gaussian's; see the module)."""

    states: int = option(100, "on-policy states per checkpoint (A.3: 100)")
    collect_steps: int | None = option(None, "on-policy steps the states are spread over (default: "
                                             "the episode limit)")
    estimator: str = option("paper", "paper: Adam lr 5e-3 × 100 steps (A.3) | code: SGD lr 1e-4 "
                                     "until J stops improving (original_code.md §6)", ["paper", "code"])
    iters: int | None = option(None, "gradient steps (default: 100 paper; cap 1000 code)")
    lr: float | None = option(None, "learning rate (default: 5e-3 paper; 1e-4 code)")
    samples: int | None = option(None, "action samples per gradient (default: the run's N = 10)")
    sigma_param: str = option("sigma", "parameter updated for the scale: sigma (λ = [μ, σ], A.3; "
                                       "code) | log_sigma", ["sigma", "log_sigma"])
    extra_iters: int = option(5, "extra amortized iterations for iterative agents (A.3: 5; 0: none)")
    eval_samples: int = option(100, "samples (common noise) measuring J of both estimates, paper")
    beta: str = beta_option()


@dataclass
class Gap:
    """J of the amortized and the optimized estimate per state [B], and steps taken [B]."""

    J_amortized: torch.Tensor
    J_optimized: torch.Tensor
    opt_steps: torch.Tensor
    mu: torch.Tensor        # the optimized λ̂
    log_sigma: torch.Tensor


def estimate_gap(
    obj: Objective, init: tuple[torch.Tensor, torch.Tensor], estimator: str = "paper",
    iters: int | None = None, lr: float | None = None, sigma_param: str = "sigma",
    eval_samples: int = 100, seed: int = 0,
) -> Gap:
    """The gap estimator on one objective from the amortized λ = `init` (module docstring).

    paper: Adam (lr 5e-3, 100 steps), J of both estimates from `eval_samples` samples of common
    noise; code: SGD (lr 1e-4) until the N-sample J stops improving (cap 1000 steps), J from those
    N-sample estimates. `obj` may be a `PolicyObjective` (a flow policy): λ is then its base Gaussian's.
    """
    paper = estimator == "paper"
    iters = iters or (100 if paper else 1000)
    lr = lr or (5e-3 if paper else 1e-4)
    if paper:
        trace = Adam(lr, iters, sigma_param).optimize(obj, init=init)
        J_at = common_noise_J(obj, eval_samples, seed)
        J_am = J_at(*init).J
        J_opt = J_at(trace.mu, trace.log_sigma).J
    else:
        trace = SGD(lr, iters, sigma_param, stop="no_improvement").optimize(obj, init=init)
        J_am, J_opt = trace.J[0], trace.J[-1]
    return Gap(J_am, J_opt, trace.n_steps, trace.mu, trace.log_sigma)


def run(opts: AmortizationGapOptions) -> dict[str, pd.DataFrame]:
    if opts.states <= 0:
        raise DiagnosticError(f"--states must be positive, got {opts.states}")
    rows: list[dict] = []
    for snap in iter_snapshots(opts):
        agent, cfg = snap.agent, snap.cfg
        reseed(opts.seed, snap.step)
        beta = resolve_beta(cfg, opts.beta)
        s = on_policy_states(snap, opts)
        obj = policy_objective(agent, objective(agent, s, beta, opts.samples))
        k = cfg.n_iters if cfg.family == "iterative" else 1
        estimates = [("amortized", k, None)]
        if cfg.family == "iterative" and opts.extra_iters > 0:
            estimates.append(("amortized_extra", k + opts.extra_iters, k + opts.extra_iters))
        for name, n_iters, run_iters in estimates:
            est = amortized(agent, s, beta, n_iters=run_iters)
            gap = estimate_gap(obj, (est.mu, est.log_sigma), opts.estimator, opts.iters, opts.lr,
                               opts.sigma_param, opts.eval_samples, opts.seed + snap.step)
            for i in range(len(s)):
                rows.append(snap.identity() | {
                    "state": i, "estimate": name, "amortized_iters": n_iters,
                    "J_amortized": gap.J_amortized[i].item(), "J_optimized": gap.J_optimized[i].item(),
                    "gap": (gap.J_optimized[i] - gap.J_amortized[i]).item(),
                    "opt_steps": int(gap.opt_steps[i]), "estimator": opts.estimator, "beta": beta,
                })
    return {"main": frame(rows, COLUMNS["main"])}
