"""Diagnostics' building blocks against known answers: the Monte Carlo soft return, exact MuJoCo
restore through the rollout code, trajectories with fixed dimensions, checkpoint selection, J of a
flow policy against the agent's training objective.
(The amortization-gap estimator is tested in test_gradient_optimizers.py, on its analytic objective.)"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch

from iapo import checkpoint
from iapo.agent import Agent
from iapo.cli import main
from iapo.config import Network, resolve
from iapo.diagnostics.amortization_gap import estimate_gap
from iapo.diagnostics.objectives import (
    PolicyObjective,
    amortized,
    common_noise_J,
    objective,
    policy_objective,
    random_means,
)
from iapo.diagnostics.recording import RecordingObjective
from iapo.diagnostics.snapshots import select_checkpoints
from iapo.diagnostics.surface_2d import Surface2dOptions, initial_means, trajectories
from iapo.diagnostics.value_bias import soft_returns
from iapo.envs import get_state, make_env, scale_action
from iapo.errors import DiagnosticError
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
    # J and ∇λJ are those at the held λ, on every dimension (straight through the held ones)
    torch.manual_seed(2)
    est, grad_mu, grad_ls = rec.value_and_grad(torch.zeros(2, 4), torch.zeros(2, 4))
    held_mu = torch.tensor([0.7, 0.0, 0.7, 0.0]).expand(2, -1).clone().requires_grad_()
    held_ls = fixed[1].clone().requires_grad_()
    torch.manual_seed(2)
    J = Objective(q, obs, 0.1, 10)(held_mu, held_ls).J
    expected = torch.autograd.grad(J.sum(), (held_mu, held_ls))
    torch.testing.assert_close(est.J, J.detach())
    torch.testing.assert_close(grad_mu, expected[0])
    torch.testing.assert_close(grad_ls, expected[1])
    assert (grad_mu != 0).all() and (grad_ls != 0).all()
    # `reset` puts the held dimensions back and leaves the free ones
    mu, log_sigma = rec.reset(torch.full((2, 4), 5.0), torch.zeros(2, 4))
    assert torch.equal(mu, torch.tensor([0.7, 5.0, 0.7, 5.0]).expand(2, -1))
    assert torch.equal(log_sigma, fixed[1])


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


# --------------------------------------------------------------------------- initializations of runs

def gradient_ascent_optimizer(step_size: float, n_iters: int, sigma: float) -> IterativeOptimizer:
    """An `IterativeOptimizer` (1-D state and action, raw inputs) wired by hand to plain gradient
    ascent on μ: δ_μ = μ + η ∇_μ J with the gate open (ω_μ ≈ 0), log σ kept (ω_logσ ≈ 1). Its runs
    go where the gradient leads from λ_0, so where they end depends only on where they start (and
    on sample noise)."""
    net = Network(n_layers=2, n_units=4, nonlinearity="relu")
    opt = IterativeOptimizer(1, 1, net, [-10.0, 0.5], n_iters, sigma, "standardize")
    first, second = opt.trunk[0], opt.trunk[2]
    with torch.no_grad():
        for p in opt.parameters():
            p.zero_()
        opt.bounds.low.fill_(-10.0)
        opt.bounds.high.fill_(0.5)
        # input x = [s, μ, log σ, ∇μJ, ∇logσJ] → hidden [μ⁺, μ⁻, g⁺, g⁻] (ReLU halves), kept by layer 2
        first.weight[[0, 1, 2, 3], [1, 1, 3, 3]] = torch.tensor([1.0, -1.0, 1.0, -1.0])
        second.weight.copy_(torch.eye(4))
        opt.head.weight[0] = torch.tensor([1.0, -1.0, step_size, -step_size])  # δ_μ = μ + η g
        opt.head.bias[2], opt.head.bias[3] = -30.0, 30.0                        # ω_μ → 0, ω_logσ → 1
    return opt.requires_grad_(False)


def two_modes(obs: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Q(s, a) with two equal modes, at a = 0.4 and a = −0.7 (valley at a ≈ −0.15): from μ = 0 the
    gradient leads to the first; from below the valley, to the second."""
    bump = lambda centre: 4.0 * torch.exp(-(a[..., 0] - centre) ** 2 / (2 * 0.25**2))  # noqa: E731
    return bump(0.4) + bump(-0.7) + 0.0 * obs[..., 0]


def test_random_initializations_reach_both_modes_where_one_lambda0_reaches_one():
    """The analyses' random initializations (μ_0 ~ 0.3·N(0, I)) find both modes of a two-mode J;
    the same λ_0 for every run (μ = 0: sample noise only) finds one."""
    runs, iters, sigma = 40, 60, 0.05
    opt = gradient_ascent_optimizer(0.01, iters, sigma)
    obj = Objective(two_modes, torch.zeros(runs, 1), 0.01, 10)
    torch.manual_seed(3)
    same = torch.tanh(opt.optimize(obj, score=False).mu[:, 0])
    mu0 = random_means(runs, 1, seed=5)
    assert mu0.std().item() == pytest.approx(0.3, rel=0.3) and mu0.mean().abs() < 0.15
    init = (mu0, torch.full_like(mu0, math.log(sigma)))
    rand = torch.tanh(opt.optimize(obj, score=False, init=init).mu[:, 0])
    near = lambda a, mode: ((a - mode).abs() < 0.05).sum().item()  # noqa: E731
    assert near(same, 0.4) == runs and near(same, -0.7) == 0
    assert near(rand, 0.4) > 0 and near(rand, -0.7) > 0 and near(rand, 0.4) + near(rand, -0.7) == runs
    # the runs that start below the valley are the ones that end in the second mode
    assert torch.equal(rand < -0.15, torch.tanh(mu0[:, 0]) < -0.15)


def spy_on_steps(optimizer: IterativeOptimizer) -> list[tuple[torch.Tensor, ...]]:
    """Record (μ, log σ, ∇μJ, ∇logσJ) the optimizer's update receives at every iteration."""
    seen: list[tuple[torch.Tensor, ...]] = []
    for name in ("step", "fused_step"):
        original = getattr(optimizer, name)

        def spy(first, mu, log_sigma, grad_mu, grad_ls, _original=original):
            seen.append((mu.clone(), log_sigma.clone(), grad_mu.clone(), grad_ls.clone()))
            return _original(first, mu, log_sigma, grad_mu, grad_ls)

        setattr(optimizer, name, spy)
    return seen


@pytest.mark.parametrize("fused", [False, True])
def test_fixed_dimensions_equal_their_initial_values_after_every_iteration(make_cfg, fused):
    """A.1 on the 2-D surfaces: the optimizer's own λ keeps the dimensions not plotted (μ, and σ) at
    the agent's estimate after every iteration, J's gradient reaches them (true ∇λJ, not zeros), and
    the plotted dimensions start at each run's own initialization and move."""
    cfg = make_cfg("HalfCheetah-v2", "iterative")
    cfg = dataclasses.replace(cfg, training=cfg.training.model_copy(update={"fused": fused}))
    agent = Agent(cfg, 17, 6)
    agent.eval().requires_grad_(False)
    s, beta, dims, iters = torch.randn(1, 17), 1.0, [1, 4], 4
    est = amortized(agent, s, beta)
    opts = Surface2dOptions(run=Path("."), runs=3, iters=iters)
    mu0 = initial_means(opts, est.mu, dims, seed=11)
    seen = spy_on_steps(agent.optimizer)
    visited = trajectories(agent, agent.optimizer, s, beta, est, dims, mu0, iters)
    assert len(seen) == iters and len(visited) == iters + 1
    fixed = [d for d in range(6) if d not in dims]
    lambdas = [(mu, ls) for mu, ls, _, _ in seen] + [visited[-1]]  # λ_0 … λ_K as the optimizer holds them
    for mu, log_sigma in lambdas:
        assert torch.equal(mu[:, fixed], est.mu.expand(3, -1)[:, fixed])
        assert torch.equal(log_sigma, est.log_sigma.expand(3, -1))
    for _, _, grad_mu, grad_ls in seen:
        assert (grad_mu[:, fixed] != 0).all() and (grad_ls != 0).all()
    assert torch.equal(seen[0][0][:, dims], mu0[:, dims])
    assert len({tuple(r) for r in mu0[:, dims].tolist()}) == 3  # three different starts
    assert not torch.equal(visited[-1][0][:, dims], mu0[:, dims])  # the plotted dimensions moved


# --------------------------------------------------------------------------- β of the analyses

BETA_ANALYSES = {  # name → (small options, a column of J-derived numbers: main table, modes: state table)
    "amortization_gap": (["--states", "2", "--iters", "3", "--eval-samples", "10", "--extra-iters", "0"],
                         "J_amortized"),
    "improvement": (["--source", "states", "--states", "2", "--refinement-steps", "0"], "J"),
    "optimizer_comparison": (["--states", "2", "--iters", "3", "--cem-samples", "10", "--cem-top", "2"], "J"),
    "surface_2d": (["--grid", "4", "--iters", "2", "--runs", "2"], "J"),
    "modes": (["--states", "2", "--runs", "3", "--grid", "3", "--density-points", "3"], "value"),
}


def untrained_run(folder: Path, params, variant: str) -> Path:
    """A run folder with one snapshot of an untrained Hopper agent (two independent Q-networks, so
    σ_Q ≠ 0 and β matters); an iterative agent on Hopper trains with β = 1.5 (A.4)."""
    cfg = resolve(params, "Hopper-v2", variant, 0, "smoke")
    agent = Agent(cfg, 11, 3)
    checkpoint.save({"step": 100, "n_updates": 0, "model": agent.state_dict(), "config": cfg.to_dict(),
                     "obs_dim": 11, "act_dim": 3}, folder / "checkpoints" / "step_100.pt")
    return folder


@pytest.mark.parametrize("name", sorted(BETA_ANALYSES))
def test_analyses_default_to_beta_1_and_train_changes_the_numbers(params, tmp_path, name):
    """β = 1 (evaluation mode) unless told: for an iterative agent trained with β = 1.5, the default
    tables say β = 1 and `--beta train` gives β = 1.5 and other numbers."""
    run = untrained_run(tmp_path / "run", params, "iterative")
    args, column = BETA_ANALYSES[name]
    tables = {}
    for beta in ([], ["--beta", "train"]):
        out = tmp_path / f"{name}{len(beta)}.csv"
        assert main(["diagnose", name, "--run", str(run), "--out", str(out), "--collect-steps", "5",
                     *args, *beta]) == 0
        tables[len(beta)] = pd.read_csv(out.with_name(f"{out.stem}_state.csv") if name == "modes" else out)
    default, train = tables[0], tables[2]
    assert set(default.beta) == {1.0} and set(train.beta) == {1.5}
    assert len(default) == len(train) and not np.allclose(default[column], train[column])


def test_amortization_gap_compares_direct_and_iterative_on_one_beta(params, tmp_path):
    for variant in ("direct", "iterative"):
        run = untrained_run(tmp_path / variant, params, variant)
        out = tmp_path / f"{variant}.csv"
        assert main(["diagnose", "amortization_gap", "--run", str(run), "--out", str(out), "--collect-steps",
                     "5", *BETA_ANALYSES["amortization_gap"][0]]) == 0
        assert set(pd.read_csv(out).beta) == {1.0}
