"""tanh-Normal densities, KLs and the soft clamp against independent computations."""

from __future__ import annotations

import math

import torch
from torch.distributions import Normal, TransformedDistribution, Uniform
from torch.distributions.transforms import TanhTransform

from iapo.distributions import (
    LOG2,
    gaussian_kl,
    kl_to_uniform,
    log_prob,
    log_tanh_jacobian,
    rsample,
    soft_clamp,
)


def test_log_prob_matches_torch_distributions():
    torch.manual_seed(1)
    mu, log_sigma = torch.randn(7, 4, dtype=torch.float64), 0.5 * torch.randn(7, 4, dtype=torch.float64)
    a, u = rsample(mu, log_sigma, 5)
    reference = TransformedDistribution(Normal(mu, log_sigma.exp()), [TanhTransform()])
    expected = reference.log_prob(a).sum(-1)
    torch.testing.assert_close(log_prob(u, mu, log_sigma), expected, rtol=1e-9, atol=1e-9)


def test_log_tanh_jacobian_is_stable_and_exact():
    u = torch.tensor([-30.0, -3.0, 0.0, 0.7, 3.0, 30.0], dtype=torch.float64)
    direct = torch.log1p(-torch.tanh(u[1:-1]).square())
    torch.testing.assert_close(log_tanh_jacobian(u)[1:-1], direct)
    # far in the tails 1 − tanh² underflows; the stable form stays finite and ≈ log 4 − 2|u|
    torch.testing.assert_close(log_tanh_jacobian(u)[[0, -1]], torch.full((2,), math.log(4) - 60.0,
                                                                          dtype=torch.float64))


def test_kl_to_uniform_is_negative_entropy_plus_n_log2():
    """KL(π‖U(−1,1)^n) = E[log π] + n ln 2; check against a large-sample torch estimate."""
    torch.manual_seed(2)
    mu, log_sigma = torch.tensor([[0.3, -0.5]]), torch.tensor([[-0.2, 0.1]])
    a, u = rsample(mu, log_sigma, 200_000)
    ours = kl_to_uniform(log_prob(u, mu, log_sigma), 2)
    pi = TransformedDistribution(Normal(mu, log_sigma.exp()), [TanhTransform()])
    prior = Uniform(-torch.ones(2), torch.ones(2))
    reference = (pi.log_prob(a).sum(-1) - prior.log_prob(a).sum(-1)).mean(0)
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-4)
    assert ours.item() > 0  # a KL is positive
    assert math.log(2) == LOG2


def test_gaussian_kl_matches_torch():
    torch.manual_seed(3)
    m1, s1, m2, s2 = (torch.randn(5, 3, dtype=torch.float64) for _ in range(4))
    expected = torch.distributions.kl_divergence(Normal(m1, s1.exp()), Normal(m2, s2.exp())).sum(-1)
    torch.testing.assert_close(gaussian_kl(m1, s1, m2, s2), expected)
    assert torch.allclose(gaussian_kl(m1, s1, m1, s1), torch.zeros(5, dtype=torch.float64))


def test_soft_clamp_bounds_and_code_values():
    x = torch.linspace(-25, 15, 801, dtype=torch.float64)
    y = soft_clamp(x, torch.tensor(-10.0, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64))
    # the outer softplus overshoots the upper bound by softplus(low − high) ≈ 3e-5 (as in the code)
    assert (y > -10).all() and (y < 0.5 + 3e-5).all() and (y.diff() > 0).all()
    # original_code.md §1.1: raw 0 → ≈ −0.474 (σ ≈ 0.62)
    assert abs(soft_clamp(torch.tensor(0.0), torch.tensor(-10.0), torch.tensor(0.5)).item() + 0.474) < 1e-3


def test_rsample_is_reparameterised():
    mu = torch.zeros(2, 3, requires_grad=True)
    log_sigma = torch.zeros(2, 3, requires_grad=True)
    a, _ = rsample(mu, log_sigma, 4)
    assert a.shape == (4, 2, 3) and (a.abs() < 1).all()
    a.sum().backward()
    assert mu.grad.abs().sum() > 0 and log_sigma.grad.abs().sum() > 0
