"""J(s, λ) of eq. 8: value against an independent estimate, gradient against finite differences."""

from __future__ import annotations

import itertools

import torch
from torch.distributions import Normal, TransformedDistribution, Uniform
from torch.distributions.transforms import TanhTransform

from iapo.objective import Objective

TARGET = torch.tensor([0.5, -0.3], dtype=torch.float64)


def quadratic_q(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """A known value function: Q(s, a) = s_0 − ‖a − c‖² (state-dependent offset)."""
    return obs[..., 0] - (action - TARGET).square().sum(-1)


def test_J_matches_independent_estimate():
    torch.manual_seed(0)
    obs = torch.tensor([[1.0, 0.0], [-2.0, 3.0]], dtype=torch.float64)
    mu = torch.tensor([[0.2, -0.1], [-0.4, 0.6]], dtype=torch.float64)
    log_sigma = torch.tensor([[-0.5, -1.0], [0.0, -0.3]], dtype=torch.float64)
    alpha = 0.7
    est = Objective(quadratic_q, obs, alpha, n_samples=400_000)(mu, log_sigma)
    # independent: torch.distributions samples, its log-density and the uniform prior's
    pi = TransformedDistribution(Normal(mu, log_sigma.exp()), [TanhTransform()])
    a = pi.sample((400_000,))
    prior = Uniform(-torch.ones(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    kl = (pi.log_prob(a).sum(-1) - prior.log_prob(a).sum(-1)).mean(0)
    expected = quadratic_q(obs, a).mean(0) - alpha * kl
    torch.testing.assert_close(est.J, expected, atol=5e-3, rtol=0)
    torch.testing.assert_close(est.J, est.q - alpha * est.kl)


def test_J_gradient_against_finite_differences():
    """With the noise ε fixed (same seed), J is a smooth function of λ: check ∇λJ numerically."""
    obs = torch.tensor([[0.5, 1.0], [1.5, -1.0]], dtype=torch.float64)
    mu = torch.tensor([[0.1, -0.2], [0.3, 0.4]], dtype=torch.float64, requires_grad=True)
    log_sigma = torch.tensor([[-0.4, -0.8], [-0.2, 0.1]], dtype=torch.float64, requires_grad=True)
    objective = Objective(quadratic_q, obs, 0.3, n_samples=16)

    def J(m: torch.Tensor, ls: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(11)
        return objective(m, ls).J.sum()

    grad_mu, grad_ls = torch.autograd.grad(J(mu, log_sigma), (mu, log_sigma))
    h = 1e-6
    for param, grad in ((mu, grad_mu), (log_sigma, grad_ls)):
        numeric = torch.zeros_like(param)
        for idx in itertools.product(*(range(n) for n in param.shape)):
            step = torch.zeros_like(param)
            step[idx] = h
            args_plus = (mu.detach() + step, log_sigma.detach()) if param is mu else (
                mu.detach(), log_sigma.detach() + step)
            args_minus = (mu.detach() - step, log_sigma.detach()) if param is mu else (
                mu.detach(), log_sigma.detach() - step)
            numeric[idx] = (J(*args_plus) - J(*args_minus)) / (2 * h)
        torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=1e-8)


def test_alpha_is_a_constant_inside_J():
    log_alpha = torch.tensor(0.2, requires_grad=True)
    obs = torch.zeros(3, 2)
    mu, ls = torch.zeros(3, 2, requires_grad=True), torch.zeros(3, 2)
    Objective(lambda s, a: a.sum(-1), obs, log_alpha.exp(), 4)(mu, ls).J.sum().backward()
    assert log_alpha.grad is None and mu.grad is not None
