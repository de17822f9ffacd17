"""Direct (eq. 10) and iterative (eq. 11-12) policy optimizers."""

from __future__ import annotations

import math

import torch

from iapo.distributions import soft_clamp
from iapo.objective import Objective
from iapo.optimizers.direct import DirectOptimizer
from iapo.optimizers.iterative import IterativeOptimizer

OBS_DIM, ACT_DIM = 3, 2


def iterative(params, n_iters: int = 5, init_sigma: float = 1.0, norm: str = "layernorm"):
    return IterativeOptimizer(OBS_DIM, ACT_DIM, params.policy, [-10.0, 0.5], n_iters, init_sigma, norm)


def test_direct_initial_output(params):
    opt = DirectOptimizer(OBS_DIM, ACT_DIM, params.policy, [-10.0, 0.5])
    mu, log_sigma = opt(torch.randn(4, OBS_DIM))
    assert torch.equal(mu, torch.zeros(4, ACT_DIM))                    # zero-initialised head
    expected = soft_clamp(torch.zeros(()), torch.tensor(-10.0), torch.tensor(0.5))
    torch.testing.assert_close(log_sigma, expected.expand(4, ACT_DIM))


def test_gated_update_eq12(params):
    opt = iterative(params)
    torch.manual_seed(0)
    d_mu, d_ls, g_mu, g_ls = torch.randn(4, ACT_DIM)
    with torch.no_grad():  # heads with zero weights: δ and ω are their biases
        opt.head.bias.copy_(torch.cat([d_mu, d_ls, g_mu, g_ls]))
    obs, mu, ls = torch.randn(5, OBS_DIM), torch.randn(5, ACT_DIM), -torch.rand(5, ACT_DIM)
    grads = torch.randn(5, ACT_DIM), torch.randn(5, ACT_DIM)
    new_mu, new_ls = opt.step(obs, mu, ls, *grads)
    w_mu, w_ls = torch.sigmoid(g_mu), torch.sigmoid(g_ls)
    torch.testing.assert_close(new_mu, w_mu * mu + (1 - w_mu) * d_mu)
    expected_ls = soft_clamp(w_ls * ls + (1 - w_ls) * d_ls, opt.bounds.low, opt.bounds.high)
    torch.testing.assert_close(new_ls, expected_ls)


def test_zero_heads_halve_the_mean(params):
    opt = iterative(params)
    mu = torch.randn(5, ACT_DIM)
    new_mu, _ = opt.step(torch.randn(5, OBS_DIM), mu, torch.zeros(5, ACT_DIM), mu, mu)
    torch.testing.assert_close(new_mu, 0.5 * mu)  # ω = 0.5, δ = 0 at initialisation


def test_initial_lambda_paper_and_code(params):
    obs = torch.randn(3, OBS_DIM)
    mu, ls = iterative(params).initial(obs)
    assert torch.equal(mu, torch.zeros(3, ACT_DIM)) and torch.equal(ls, torch.zeros(3, ACT_DIM))
    _, ls_code = iterative(params, init_sigma=0.5).initial(obs)
    torch.testing.assert_close(ls_code, torch.full((3, ACT_DIM), math.log(0.5)))


def bowl(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """A fixed objective: the best action depends on the state, a*(s) = 0.8 tanh(s_0 + s_1, s_2)."""
    best = 0.8 * torch.tanh(torch.stack([obs[..., 0] + obs[..., 1], obs[..., 2]], -1))
    return -5.0 * (action - best).square().sum(-1)


def test_trace_shapes_and_training_loss_is_mean_over_iterations(params):
    opt = iterative(params, n_iters=3)
    obj = Objective(bowl, torch.randn(6, OBS_DIM), 0.1, 10)
    acting = opt.optimize(obj, score=False)
    assert len(acting.J) == 3 and acting.loss is None and not acting.mu.requires_grad
    torch.manual_seed(5)
    trained = opt.optimize(obj, train=True)
    assert len(trained.J) == 4 and trained.loss.requires_grad
    torch.testing.assert_close(trained.loss.detach(), -torch.stack(trained.J[1:]).mean(1).mean())
    trained.loss.backward()
    assert all(p.grad is not None for p in opt.trunk.parameters())


def test_iterative_learns_to_increase_J(params):
    """After brief training on a fixed objective, J rises across the K iterations on new states."""
    torch.manual_seed(0)
    opt = iterative(params, n_iters=5)
    adam = torch.optim.Adam(opt.parameters(), lr=1e-3)
    for _ in range(300):
        loss = opt.optimize(Objective(bowl, torch.randn(64, OBS_DIM), 0.05, 10), train=True).loss
        adam.zero_grad()
        loss.backward()
        adam.step()
    with torch.no_grad():
        trace = opt.optimize(Objective(bowl, torch.randn(256, OBS_DIM), 0.05, 10), score=True)
    J = torch.stack(trace.J).mean(1)
    assert J[-1] - J[0] > 1.0, J            # clear improvement over λ0 (J0 ≈ −3.5 at σ = 1)
    assert (J[1:] > J[0]).all(), J
    # an untrained optimizer does not get there
    with torch.no_grad():
        fresh = iterative(params, n_iters=5).optimize(Objective(bowl, torch.randn(256, OBS_DIM), 0.05, 10))
    assert torch.stack(fresh.J).mean(1)[-1] < J[-1] - 0.5


def test_standardize_inputs_variant_runs(params):
    opt = iterative(params, norm="standardize", init_sigma=0.5)
    trace = opt.optimize(Objective(bowl, torch.randn(4, OBS_DIM), 0.1, 10), train=True)
    assert torch.isfinite(trace.loss)
