"""The states a diagnostic analyses, from the task itself: on-policy states and episodes of the agent's
stochastic policy, state-action pairs of a uniform-random trajectory with their exact simulator states,
and the agent acting on a batch of states."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from iapo.agent import Agent
from iapo.config import RunConfig
from iapo.diagnostics.common import progress
from iapo.diagnostics.options import Options
from iapo.diagnostics.snapshots import Snapshot
from iapo.distributions import kl_to_uniform
from iapo.envs import EnvState, get_state, make_env, scale_action


def episode_limit(env: gym.Env) -> int:
    """The registered TimeLimit of the task (1000; 50 for Reacher)."""
    spec = env.spec
    return int(spec.max_episode_steps) if spec and spec.max_episode_steps else 1000


def task_env(cfg: RunConfig, seed: int) -> tuple[gym.Env, np.ndarray]:
    return make_env(cfg.env, seed, truncated_obs=cfg.training.truncated_obs)


def collect_on_policy(
    snap: Snapshot, n_states: int, seed: int, collect_steps: int | None = None,
) -> np.ndarray:
    """n on-policy states [n, obs_dim] (A.3, B.4, B.7): the agent's stochastic policy (β acting)
    runs from a reset for `collect_steps` steps (default: the episode limit, resetting when an
    episode ends); the states are evenly spaced over that stretch (consecutive if the stretch
    is no longer than n)."""
    env, obs = task_env(snap.cfg, seed)
    total = max(collect_steps or episode_limit(env), n_states)
    visited = []
    for _ in progress(range(total), "on-policy states", unit="step", leave=False):
        visited.append(np.asarray(obs, dtype=np.float32).copy())
        a = snap.agent.act(obs)
        obs, _, terminated, truncated, _ = env.step(scale_action(env, a))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    idx = np.linspace(0, total - 1, n_states).round().astype(int)
    return np.stack(visited)[idx]


def collect_episode(snap: Snapshot, seed: int, max_steps: int | None = None) -> np.ndarray:
    """The states [T, obs_dim] of one on-policy episode, in order: the agent's stochastic policy (β
    acting) from a seeded reset until the episode ends or after `max_steps` (default: the episode
    limit)."""
    env, obs = task_env(snap.cfg, seed)
    limit = episode_limit(env) if max_steps is None else min(max_steps, episode_limit(env))
    visited = []
    for _ in progress(range(limit), "episode states", unit="step", leave=False):
        visited.append(np.asarray(obs, dtype=np.float32).copy())
        obs, _, terminated, truncated, _ = env.step(scale_action(env, snap.agent.act(obs)))
        if terminated or truncated:
            break
    env.close()
    return np.stack(visited)


def on_policy_states(snap: Snapshot, opts: Options) -> Tensor:
    """`collect_on_policy` with a diagnostic's `--states`, `--seed`, `--collect-steps`, as a tensor
    on the agent's device."""
    states = collect_on_policy(snap, opts.states, opts.seed, getattr(opts, "collect_steps", None))
    return torch.as_tensor(states, device=snap.agent.device)


@dataclass
class StateAction:
    """A state-action pair with the exact simulator state before the action (A.2)."""

    obs: np.ndarray
    action: np.ndarray  # in [−1, 1]^n, the agent's action space
    env_state: EnvState


def collect_random_pairs(cfg: RunConfig, n_pairs: int, seed: int) -> list[StateAction]:
    """n pairs from one uniform-random-action trajectory from a seeded reset (A.2; original_code.md §6:
    consecutive steps, reset when an episode ends). The same for every checkpoint and agent of a
    task, so biases are comparable across setups."""
    env, obs = task_env(cfg, seed)
    rng = np.random.default_rng(seed)
    (act_dim,) = env.action_space.shape
    pairs = []
    for _ in range(n_pairs):
        a = rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
        pairs.append(StateAction(np.asarray(obs, dtype=np.float32).copy(), a, get_state(env)))
        obs, _, terminated, truncated, _ = env.step(scale_action(env, a))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return pairs


class StochasticPolicy:
    """The agent acting on a batch of states: one action a ~ π(·|s) under β (acting: A.4) and
    KL̂(π(·|s) ‖ U) from N fresh samples including n ln 2 (original_code.md §6, value bias)."""

    def __init__(self, agent: Agent, beta: float, kl_samples: int | None = None) -> None:
        self.agent, self.beta = agent, beta
        self.kl_samples = kl_samples or agent.cfg.training.n_action_samples

    def __call__(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        agent = self.agent
        s = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=agent.device)
        trace = agent.optimizer.optimize(agent.objective(s, self.beta), score=False)
        with torch.no_grad():
            a, _ = agent.optimizer.sample(trace, 1)
            _, log_pi = agent.optimizer.sample(trace, self.kl_samples)
            kl = kl_to_uniform(log_pi, agent.act_dim)
        return a[0].cpu().numpy(), kl.cpu().numpy()
