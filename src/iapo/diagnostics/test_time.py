"""Test-time extra optimization (B.6, Figures 20, 21): evaluation return with more optimization of
λ at every action, against the same agent as trained, on the same episode seeds.

Direct agents: 50 Adam steps on λ from the direct estimate at every step (lr 5e-3 and 100 action
samples: original_code.md §6, `collect_optimized_episode`; the paper gives only the 50 steps). Iterative
agents: K + 5 iterations instead of K. Actions are deterministic, tanh(μ), as in evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import gymnasium as gym
import numpy as np
import pandas as pd
import torch

from iapo.diagnostics.common import IDENTITY, frame, progress
from iapo.diagnostics.objectives import amortized, objective
from iapo.diagnostics.options import Options, option
from iapo.diagnostics.rollouts import episode_limit, task_env
from iapo.diagnostics.snapshots import Snapshot, iter_snapshots, require_tanh_normal, reseed
from iapo.envs import scale_action
from iapo.optimizers.adam import Adam

NAME = "test_time"

COLUMNS = {"main": {
    **IDENTITY,
    "mode": "amortized (the agent as trained) | optimized (with the extra optimization)",
    "extra_kind": "none | adam (direct: Adam steps on λ) | iterations (iterative: extra iterations)",
    "extra_steps": "number of extra Adam steps or iterations per action (0 for amortized)",
    "episode": "evaluation episode index (the same env seed in both modes)",
    "return": "undiscounted episode return",
    "length": "episode length in env steps",
}}


@dataclass
class TestTimeOptions(Options):
    """Rows: one per checkpoint × mode × episode."""

    episodes: int | None = option(None, "episodes per checkpoint and mode (default: the run's "
                                        "eval_episodes)")
    horizon: int | None = option(None, "cap on episode length (default: the episode limit)")
    iters: int = option(50, "direct: extra Adam steps per action (B.6: 50)")
    lr: float = option(5e-3, "direct: Adam learning rate (original_code.md §6)")
    samples: int = option(100, "direct: action samples per Adam gradient (original_code.md §6)")
    sigma_param: str = option("sigma", "direct: sigma | log_sigma", ["sigma", "log_sigma"])
    extra_iters: int = option(5, "iterative: extra iterations per action (B.6: 5)")


def episode(env: gym.Env, seed: int, horizon: int | None, act) -> tuple[float, int]:
    """One deterministic episode from `env.reset(seed=seed)`: (return, length)."""
    obs, _ = env.reset(seed=seed)
    limit = min(horizon or episode_limit(env), episode_limit(env))
    total, length = 0.0, 0
    for _ in range(limit):
        obs, reward, terminated, truncated, _ = env.step(scale_action(env, act(obs)))
        total, length = total + float(reward), length + 1
        if terminated or truncated:
            break
    return total, length


class OptimizedActor:
    """Deterministic action tanh(μ) after extra optimization of λ at the current state (β acting)."""

    def __init__(self, snap: Snapshot, opts: TestTimeOptions) -> None:
        self.agent, self.cfg, self.opts = snap.agent, snap.cfg, opts
        self.beta = float(snap.cfg.training.beta_acting)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        agent, opts, beta = self.agent, self.opts, self.beta
        s = torch.as_tensor(obs, dtype=torch.float32, device=agent.device).unsqueeze(0)
        if self.cfg.family == "iterative":
            est = amortized(agent, s, beta, n_iters=self.cfg.n_iters + opts.extra_iters)
        else:
            start = amortized(agent, s, beta)
            est = Adam(opts.lr, opts.iters, opts.sigma_param).optimize(
                objective(agent, s, beta, opts.samples), init=(start.mu, start.log_sigma), score=False)
        return torch.tanh(est.mu).reshape(-1).cpu().numpy()


def run(opts: TestTimeOptions) -> dict[str, pd.DataFrame]:
    rows: list[dict] = []
    for snap in iter_snapshots(opts):
        require_tanh_normal(snap, NAME)
        cfg = snap.cfg
        extra = ("iterations", opts.extra_iters) if cfg.family == "iterative" else ("adam", opts.iters)
        amortized_actor = partial(snap.agent.act, deterministic=True)
        modes = [("amortized", amortized_actor, ("none", 0)),
                 ("optimized", OptimizedActor(snap, opts), extra)]
        n_episodes = opts.episodes or cfg.eval_episodes
        env, _ = task_env(cfg, opts.seed)
        for mode, act, (kind, steps) in modes:
            reseed(opts.seed, snap.step)
            for ep in progress(range(n_episodes), f"{mode} episodes (step {snap.step})", leave=False):
                ret, length = episode(env, 10_000 * opts.seed + ep, opts.horizon, act)
                rows.append(snap.identity() | {"mode": mode, "extra_kind": kind, "extra_steps": steps,
                                               "episode": ep, "return": ret, "length": length})
        env.close()
    return {"main": frame(rows, COLUMNS["main"])}
