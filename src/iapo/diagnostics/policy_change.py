"""Policy change rate (Figure 3b): KL(π_old ‖ π_new) between successive checkpoints' policies on
the states of the preceding episode (original_code.md §6, `analyze_agent_kl`: the episode is
collected with the previous checkpoint's stochastic policy; π_old is the λ used to act, π_new the
next checkpoint's estimate at the same states; analytic KL of the pre-tanh Gaussians, summed over
dimensions, which equals the KL of the tanh-Normals). An iterative policy's λ depends on the samples
of J its optimizer draws, so part of any KL is that noise: `kl_floor` measures it (the previous
checkpoint evaluated twice on the same states), and the audit tests the change above it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from iapo.diagnostics.common import IDENTITY, frame
from iapo.diagnostics.objectives import amortized, resolve_beta
from iapo.diagnostics.options import Options, option
from iapo.diagnostics.rollouts import episode_limit, task_env
from iapo.diagnostics.snapshots import Snapshot, iter_snapshots, require_tanh_normal, reseed
from iapo.distributions import gaussian_kl, rsample
from iapo.envs import scale_action

NAME = "policy_change"

COLUMNS = {"main": {
    **IDENTITY,
    "prev_step": "env step of the previous checkpoint (its policy collected the episode)",
    "state": "time step of the state in that episode",
    "kl": "KL(π_prev(·|s) ‖ π_step(·|s)) in nats (analytic, summed over action dimensions)",
    "kl_floor": "KL(π_prev(·|s) ‖ π_prev'(·|s)): the previous checkpoint's policy evaluated again on fresh "
                "samples, the change an optimizer's own sample noise makes with no training (0 for a "
                "direct policy), the noise floor of kl",
}}


@dataclass
class PolicyChangeOptions(Options):
    """Rows: one per (checkpoint, previous checkpoint) × state of the episode; the first checkpoint
    has no row. At paper scale checkpoints are 250k steps apart, not one episode (see docs)."""

    states: int | None = option(None, "use at most this many states of the episode (default: all)")
    horizon: int | None = option(None, "cap on the episode length (default: the episode limit)")
    beta: str = option("acting", "β of both policies' objectives: acting (1; code: eval mode) | "
                                 "train | a number")


def episode(snap: Snapshot, seed: int, beta: float, max_steps: int) -> tuple[np.ndarray, torch.Tensor,
                                                                              torch.Tensor]:
    """One episode with the snapshot's stochastic policy: states and the λ used at each."""
    agent = snap.agent
    env, obs = task_env(snap.cfg, seed)
    max_steps = min(max_steps, episode_limit(env))
    states, mus, log_sigmas = [], [], []
    for _ in range(max_steps):
        s = torch.as_tensor(obs, dtype=torch.float32, device=agent.device).unsqueeze(0)
        trace = amortized(agent, s, beta)
        states.append(np.asarray(obs, dtype=np.float32))
        mus.append(trace.mu[0])
        log_sigmas.append(trace.log_sigma[0])
        a, _ = rsample(trace.mu, trace.log_sigma, 1)
        obs, _, terminated, truncated, _ = env.step(scale_action(env, a.reshape(-1).cpu().numpy()))
        if terminated or truncated:
            break
    env.close()
    return np.stack(states), torch.stack(mus), torch.stack(log_sigmas)


def run(opts: PolicyChangeOptions) -> dict[str, pd.DataFrame]:
    rows: list[dict] = []
    prev: Snapshot | None = None
    for snap in iter_snapshots(opts):
        require_tanh_normal(snap, NAME)
        if prev is not None:
            reseed(opts.seed, snap.step)
            beta_prev, beta = resolve_beta(prev.cfg, opts.beta), resolve_beta(snap.cfg, opts.beta)
            cap = min(x for x in (opts.states, opts.horizon, 10**9) if x is not None)
            obs, mu_old, ls_old = episode(prev, opts.seed, beta_prev, cap)
            s = torch.as_tensor(obs, device=snap.agent.device)
            new = amortized(snap.agent, s, beta)
            kl = gaussian_kl(mu_old, ls_old, new.mu, new.log_sigma)
            again = amortized(prev.agent, s, beta_prev)  # fresh samples of J, no training in between
            floor = gaussian_kl(mu_old, ls_old, again.mu, again.log_sigma)
            for t, (value, noise) in enumerate(zip(kl.tolist(), floor.tolist(), strict=True)):
                rows.append(snap.identity() | {"prev_step": prev.step, "state": t, "kl": value,
                                               "kl_floor": noise})
        prev = snap
    return {"main": frame(rows, COLUMNS["main"])}
