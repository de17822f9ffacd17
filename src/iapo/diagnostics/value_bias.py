"""Value bias (A.2, Figure 3a): the agent's Q̂(s, a) against a Monte Carlo soft return in the real env.

State-action pairs come from a uniform random policy; for each pair, R rollouts restore the exact
MuJoCo state (`envs.set_state`), apply the pair's action, then follow the agent's stochastic policy:
    G = r_0 + Σ_{t≥1} γ^t (r_t − α KL̂_t),   KL̂_t = KL̂(π(·|s_t) ‖ U) from N fresh samples,
with the run's γ and the checkpoint's α (the soft return Q̂ estimates). bias = Q̂ − mean G.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pandas as pd
import torch

from iapo.diagnostics.common import IDENTITY, chunks, frame, progress
from iapo.diagnostics.objectives import resolve_beta
from iapo.diagnostics.options import Options, option
from iapo.diagnostics.rollouts import StochasticPolicy, collect_random_pairs, episode_limit, task_env
from iapo.diagnostics.snapshots import iter_snapshots, reseed
from iapo.envs import EnvState, scale_action, set_state
from iapo.values.q_ensemble import pessimistic

NAME = "value_bias"

COLUMNS = {"main": {
    **IDENTITY,
    "pair": "index of the state-action pair (0 … states−1; the same pairs for every checkpoint)",
    "q_mean": "mean of the two Q-networks at (s, a) (return units)",
    "q_sigma": "their spread σ_Q (eq. 13, the run's pessimism_std)",
    "beta": "β of the reported estimate",
    "q_hat": "the agent's value estimate Q̂^β(s, a) = μ_Q − β σ_Q (model-based agents: eq. 14)",
    "q_mc": "Monte Carlo soft return, mean over rollouts",
    "q_mc_std": "standard deviation of the rollout returns",
    "n_rollouts": "rollouts averaged",
    "rollout_length": "mean rollout length in env steps (first action included)",
    "horizon": "cap on the rollout length",
    "alpha": "temperature α of the checkpoint (in G)",
    "gamma": "discount γ of the run (in G)",
    "bias": "q_hat − q_mc",
}}


@dataclass
class ValueBiasOptions(Options):
    """Rows: one per checkpoint × state-action pair."""

    states: int = option(100, "state-action pairs from a uniform random policy (A.2: 100)")
    rollouts: int = option(100, "Monte Carlo rollouts per pair (A.2: 100)")
    horizon: int | None = option(None, "max env steps per rollout incl. the first action "
                                       "(default: the episode limit, 1000)")
    beta: str = option("acting", "β of the reported Q̂: acting (1; original_code.md §6), train, or a number")
    q: str = option("online", "Q-networks compared: online (original_code.md §6) | target",
                    ["online", "target"])
    terminal_reward: str = option("keep", "reward of a terminating step: keep (as in the Bellman "
                                          "target) | zero (original_code.md §6)", ["keep", "zero"])
    kl_samples: int | None = option(None, "samples for KL̂ at each rollout step (default: the run's N)")
    batch_envs: int = option(200, "environments stepped together, one policy batch (≈1 MB each)")


Policy = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""A batch of observations [E, S] → actions in [−1, 1]^n [E, n] and KL̂(π(·|s) ‖ U) [E]."""


def soft_returns(
    envs: list[gym.Env], starts: list[EnvState], first_actions: np.ndarray, policy: Policy,
    gamma: float, alpha: float, horizon: int, terminal_reward: str = "keep",
    restore: Callable[[gym.Env, EnvState], None] = set_state,
) -> tuple[np.ndarray, np.ndarray]:
    """One rollout per env: restore `starts[e]`, take `first_actions[e]`, then follow `policy`.

    Returns G [E] (module docstring) and the rollout lengths [E]. A rollout ends at termination or
    after `horizon` steps; the TimeLimit's truncation is ignored (Q̂ bootstraps through it). The
    policy acts on all running envs at once.
    """
    n_envs = len(starts)
    for env, state in zip(envs, starts, strict=True):
        restore(env, state)
    returns, lengths = np.zeros(n_envs), np.zeros(n_envs, dtype=int)
    alive = np.ones(n_envs, dtype=bool)
    obs: list[np.ndarray | None] = [None] * n_envs
    actions = first_actions
    kl = np.zeros(n_envs)
    running = np.arange(n_envs)
    for t in range(horizon):
        discount = gamma**t
        for j, e in enumerate(running):
            o, r, terminated, _, _ = envs[e].step(scale_action(envs[e], actions[j]))
            r = 0.0 if terminated and terminal_reward == "zero" else float(r)
            returns[e] += r if t == 0 else discount * (r - alpha * float(kl[j]))
            lengths[e] += 1
            obs[e] = o
            alive[e] = not terminated
        running = np.flatnonzero(alive)
        if len(running) == 0 or t == horizon - 1:
            break
        actions, kl = policy(np.stack([obs[e] for e in running]))
    return returns, lengths


def run(opts: ValueBiasOptions) -> dict[str, pd.DataFrame]:
    rows: list[dict] = []
    pairs, pool = None, []
    for snap in iter_snapshots(opts):
        agent, cfg = snap.agent, snap.cfg
        if pairs is None:  # the same pairs for every checkpoint
            pairs = collect_random_pairs(cfg, opts.states, opts.seed)
            n_pool = min(opts.batch_envs, opts.states * opts.rollouts)
            pool = [task_env(cfg, opts.seed)[0] for _ in range(n_pool)]
        horizon = opts.horizon or episode_limit(pool[0])
        reseed(opts.seed, snap.step)
        beta = resolve_beta(cfg, opts.beta)
        obs = torch.as_tensor(np.stack([p.obs for p in pairs]), device=agent.device)
        act = torch.as_tensor(np.stack([p.action for p in pairs]), device=agent.device)
        online = opts.q == "online"
        with torch.no_grad():
            qs = (agent.q if online else agent.q_target)(obs, act)
            std = cfg.training.pessimism_std
            q_mean, q_sigma = qs.mean(0), qs.mean(0) - pessimistic(qs, 1.0, std)
        q_hat = agent.value_fn(beta, online)(obs, act).detach()  # the agent's estimator (MB: eq. 14)
        alpha = float(agent.alpha)
        policy = StochasticPolicy(agent, float(cfg.training.beta_acting), opts.kl_samples)
        tasks = [(p, r) for p in range(len(pairs)) for r in range(opts.rollouts)]
        G, L = np.zeros(len(tasks)), np.zeros(len(tasks))
        bar = progress(list(chunks(len(tasks), len(pool))), f"rollouts (step {snap.step})", unit="batch",
                       leave=False)
        for sl in bar:
            chunk = tasks[sl]
            G[sl], L[sl] = soft_returns(
                pool[: len(chunk)], [pairs[p].env_state for p, _ in chunk],
                np.stack([pairs[p].action for p, _ in chunk]), policy, cfg.training.gamma, alpha,
                horizon, opts.terminal_reward,
            )
        G, L = G.reshape(len(pairs), opts.rollouts), L.reshape(len(pairs), opts.rollouts)
        for i in range(len(pairs)):
            rows.append(snap.identity() | {
                "pair": i, "q_mean": q_mean[i].item(), "q_sigma": q_sigma[i].item(), "beta": beta,
                "q_hat": q_hat[i].item(), "q_mc": G[i].mean(), "q_mc_std": G[i].std(),
                "n_rollouts": opts.rollouts, "rollout_length": L[i].mean(), "horizon": horizon,
                "alpha": alpha, "gamma": cfg.training.gamma, "bias": q_hat[i].item() - G[i].mean(),
            })
    for env in pool:
        env.close()
    return {"main": frame(rows, COLUMNS["main"])}
