"""Diagnostics' building blocks against known answers: the Monte Carlo soft return, exact MuJoCo
restore through the rollout code, trajectories with fixed dimensions, checkpoint selection, J of a
flow policy against the agent's training objective.
(The amortization-gap estimator is tested in test_gradient_optimizers.py, on its analytic objective.)"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

from iapo.agent import Agent
from iapo.diagnostics.amortization_gap import estimate_gap
from iapo.diagnostics.common import (
    DiagnosticError,
    PolicyObjective,
    RecordingObjective,
    amortized,
    common_noise_J,
    objective,
    policy_objective,
    select_checkpoints,
)
from iapo.diagnostics.value_bias import soft_returns
from iapo.envs import get_state, make_env, scale_action
from iapo.objective import Objective
from iapo.optimizers.iterative import IterativeOptimizer

# --------------------------------------------------------------------------- Monte Carlo soft return

class Countdown(gym.Env):
    """Deterministic toy: reward 1 per step, terminates when the counter reaches `end`."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,))
    action_space = gym.spaces.Box(-1.0, 1.0, (1,))

    def __init__(self, end: int) -> None:
        self.t, self.end = 0, end

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), 1.0, self.t >= self.end, False, {}


def constant_policy(kl: float):
    def policy(obs: np.ndarray):
        return np.zeros((len(obs), 1), np.float32), np.full(len(obs), kl)
    return policy


@pytest.mark.parametrize(("start", "horizon", "terminal"),
                         [(3, 100, "keep"), (3, 100, "zero"), (0, 8, "keep")])
def test_mc_value_equals_closed_form_soft_return(start, horizon, terminal):
    """G = r_0 + Σ_{t≥1} γ^t (r_t − α KL) with r = 1 and a constant KL over L = min(end − start,
    horizon) steps: G = 1 + (1 − α KL) γ (1 − γ^{L−1}) / (1 − γ); `zero` drops the terminal reward."""
    gamma, alpha, kl, end = 0.9, 0.3, 0.7, 20
    envs = [Countdown(end) for _ in range(3)]

    def restore(env: Countdown, state: int) -> None:
        env.t = state

    G, L = soft_returns(envs, [start] * 3, np.zeros((3, 1)), constant_policy(kl), gamma, alpha, horizon,
                        terminal, restore=restore)
    n = min(end - start, horizon)
    expected = 1.0 + (1.0 - alpha * kl) * gamma * (1.0 - gamma ** (n - 1)) / (1.0 - gamma)
    if terminal == "zero" and end - start <= horizon:
        expected -= gamma ** (n - 1)
    np.testing.assert_allclose(G, expected, rtol=1e-12)
    assert (n == L).all()


def test_rollout_from_restored_mujoco_state_reproduces_the_trajectory_exactly():
    """The rollout code restores a saved HalfCheetah state into fresh envs; replaying the actions
    the original env took gives exactly its rewards (bit-identical discounted sums)."""
    env, _ = make_env("HalfCheetah-v2", seed=4)
    rng = np.random.default_rng(0)
    for a in rng.uniform(-1, 1, (25, 6)):
        env.step(scale_action(env, a))
    saved = get_state(env)
    actions = rng.uniform(-1, 1, (40, 6)).astype(np.float32)
    gamma, alpha = 0.99, 0.2
    expected = 0.0
    for t, a in enumerate(actions):
        r = float(env.step(scale_action(env, a))[1])
        expected += r if t == 0 else gamma**t * (r - alpha * 0.5)
    step = {"t": 0}

    def replay(obs: np.ndarray):
        step["t"] += 1
        return np.repeat(actions[step["t"]][None], len(obs), 0), np.full(len(obs), 0.5)

    fresh = [make_env("HalfCheetah-v2", seed=99)[0] for _ in range(2)]
    G, L = soft_returns(fresh, [saved, saved], np.repeat(actions[:1], 2, 0), replay, gamma, alpha, 40)
    assert G[0] == expected and G[1] == expected and (L == 40).all()


# --------------------------------------------------------------------------- trajectories, checkpoints

@pytest.mark.parametrize("fused", [False, True])
def test_recording_objective_holds_fixed_dimensions(params, fused):
    torch.manual_seed(1)
    obs = torch.randn(2, 3)
    opt = IterativeOptimizer(3, 4, params.policy, [-10.0, 0.5], 3, 1.0, "layernorm")
    opt.fused = fused  # the fast path (if the optimizer has one) must see the same objective

    def q(o: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return -(a - 0.3).square().sum(-1) + o[..., 0]

    fixed = (torch.full((2, 4), 0.7), torch.full((2, 4), -1.0))
    rec = RecordingObjective(Objective(q, obs, 0.1, 10), fixed, free=[1, 3])
    trace = opt.optimize(rec, n_iters=3)
    assert len(rec.visited) == len(trace.J) == 4
    for mu, log_sigma in rec.visited:
        assert torch.equal(mu[:, [0, 2]], fixed[0][:, [0, 2]]) and torch.equal(log_sigma, fixed[1])
    assert not torch.equal(rec.visited[-1][0][:, [1, 3]], fixed[0][:, [1, 3]])  # the free ones moved
    _, grad_mu, grad_ls = rec.value_and_grad(torch.zeros(2, 4), torch.zeros(2, 4))
    assert (grad_mu[:, [0, 2]] == 0).all() and (grad_ls == 0).all() and (grad_mu[:, [1, 3]] != 0).all()


def test_select_checkpoints(tmp_path):
    with pytest.raises(DiagnosticError, match=r"no step_N\.pt"):
        select_checkpoints(tmp_path, "all")
    (tmp_path / "checkpoints").mkdir()
    for step in (300, 150, 1000):
        (tmp_path / "checkpoints" / f"step_{step}.pt").write_bytes(b"x")
    assert [s for s, _ in select_checkpoints(tmp_path, "all")] == [150, 300, 1000]
    assert [s for s, _ in select_checkpoints(tmp_path, "last")] == [1000]
    assert [s for s, _ in select_checkpoints(tmp_path, "1000,150")] == [150, 1000]
    with pytest.raises(DiagnosticError, match="available: 150, 300, 1000"):
        select_checkpoints(tmp_path, "200")
    with pytest.raises(DiagnosticError, match="expected all, last"):
        select_checkpoints(tmp_path, "newest")


# --------------------------------------------------------------------------- flow policies

@pytest.mark.parametrize("fused", [True, False])
def test_gap_scores_a_flow_policy_with_the_objective_the_agent_trains_on(make_cfg, fused):
    """Direct + NF (B.2): J of the gap diagnostic at the amortized base λ is, sample for sample, the J
    whose negative is the agent's policy loss; not the tanh-Normal's J at the same λ."""
    cfg = make_cfg("HalfCheetah-v2", "direct_flow")
    cfg = dataclasses.replace(cfg, training=cfg.training.model_copy(update={"fused": fused}))
    agent = Agent(cfg, 17, 6)
    with torch.no_grad():  # the transforms start as the identity: move them, or a flow = a tanh-Normal
        for p in agent.optimizer.flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    agent.eval().requires_grad_(False)
    obs, beta = torch.randn(5, 17), cfg.beta
    torch.manual_seed(7)
    trained = agent.optimizer.optimize(agent.objective(obs, beta), train=True).final.J  # policy_loss's J
    est = amortized(agent, obs, beta)
    obj = policy_objective(agent, objective(agent, obs, beta))
    assert isinstance(obj, PolicyObjective) and obj.n_samples == cfg.training.n_action_samples
    torch.manual_seed(7)
    assert torch.equal(obj(est.mu, est.log_sigma).J, trained)
    # the common-noise evaluation of the gap: the same sampler and seed, the global RNG untouched
    J_at = common_noise_J(obj, obj.n_samples, seed=7)
    before = torch.get_rng_state()
    assert torch.equal(J_at(est.mu, est.log_sigma).J, trained)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(7)
    tanh_normal = objective(agent, obs, beta)(est.mu, est.log_sigma).J
    assert not torch.allclose(tanh_normal, trained, rtol=1e-3, atol=1e-3)


def test_gap_of_a_flow_policy_optimizes_the_base_and_keeps_the_transforms(make_cfg):
    cfg = make_cfg("HalfCheetah-v2", "direct_flow")
    agent = Agent(cfg, 17, 6)
    with torch.no_grad():
        for p in agent.optimizer.flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    agent.eval().requires_grad_(False)
    flow_before = [p.clone() for p in agent.optimizer.flow.parameters()]
    obs = torch.randn(4, 17)
    est = amortized(agent, obs, cfg.beta)
    obj = policy_objective(agent, objective(agent, obs, cfg.beta))
    gap = estimate_gap(obj, (est.mu, est.log_sigma), iters=30, eval_samples=200, seed=3)
    assert torch.isfinite(gap.J_optimized).all() and (gap.opt_steps == 30).all()
    assert not torch.equal(gap.mu, est.mu)  # the base λ moved …
    for p, q in zip(agent.optimizer.flow.parameters(), flow_before, strict=True):
        assert torch.equal(p, q)  # … the transforms did not
