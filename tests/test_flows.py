"""The normalizing-flow policy: autoregressive structure and exact change-of-variables density."""

from __future__ import annotations

import math

import torch
from torch.autograd.functional import jacobian

from iapo.flows import AutoregressiveTransform, TanhFlow


def randomise(module: torch.nn.Module, scale: float = 0.3) -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, scale)


def test_transform_is_autoregressive():
    t = AutoregressiveTransform(4, n_units=32).double()
    randomise(t)
    x = torch.randn(4, dtype=torch.float64)
    J = jacobian(lambda v: t(v)[0], x)
    # output j depends on inputs i ≤ j only (i < j through the network, i = j through the scale)
    assert torch.all(J.triu(1) == 0)
    assert torch.all(J.tril(-1).abs().sum() > 0)
    torch.testing.assert_close(torch.log(J.diagonal().abs()).sum(), t(x)[1])


def test_flow_log_density_against_exact_jacobian():
    """log π(a) = log N(x0; μ, σ) − log |det ∂a/∂x0| with the Jacobian computed by autograd."""
    n = 3
    flow = TanhFlow(n, n_flows=2, n_units=16).double()
    randomise(flow)
    mu = torch.tensor([[0.2, -0.4, 0.1]], dtype=torch.float64)
    log_sigma = torch.tensor([[-0.3, 0.2, -0.8]], dtype=torch.float64)
    torch.manual_seed(5)
    actions, log_pi = flow.rsample(mu, log_sigma, 6)
    torch.manual_seed(5)
    eps = torch.randn(6, 1, n).double()  # `standard_normal`: drawn in float32, then cast
    for k in range(6):
        x0 = (mu + log_sigma.exp() * eps[k])[0]
        J = jacobian(lambda v: torch.tanh(flow.push(v)[0]), x0)
        base = torch.distributions.Normal(mu[0], log_sigma[0].exp()).log_prob(x0).sum()
        expected = base - torch.linalg.slogdet(J).logabsdet
        torch.testing.assert_close(log_pi[k, 0], expected)
        torch.testing.assert_close(actions[k, 0], torch.tanh(flow.push(x0)[0]))


def test_flow_starts_as_identity_and_integrates_to_one():
    flow = TanhFlow(1, n_flows=2, n_units=8).double()
    mu, log_sigma = torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    torch.manual_seed(0)
    a, log_pi = flow.rsample(mu, log_sigma, 5)
    u = torch.atanh(a)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(u) - torch.log1p(-a.square())
    torch.testing.assert_close(log_pi, expected.squeeze(-1))
    # after randomising, the 1-D density still integrates to 1 over (−1, 1)
    randomise(flow, 0.5)
    grid = torch.linspace(-3, 3, 20001, dtype=torch.float64)
    x0 = grid[:, None]
    u, log_det = flow.push(x0)
    a = torch.tanh(u).squeeze(-1)
    # a is a monotone function of x0 here, so ∫ π(a) da = ∫ N(x0) dx0 = mass of N(0,1) on [−3, 3]
    assert (a.diff() > 0).all()
    density = torch.exp(-0.5 * grid.square() - 0.5 * math.log(2 * math.pi) - log_det
                        - torch.log1p(-a.square()))
    mass = torch.trapezoid(density, a)
    assert abs(mass.item() - 0.9973) < 1e-3
