"""Model-based value estimation: the Retrace estimate (eq. 14-16) and the model's likelihood."""

from __future__ import annotations

import math

import torch

from iapo.values.model_based import DynamicsModel, gaussian_nll, retrace_value

GAMMA, LAM = 0.99, 0.9


class LinearModel(torch.nn.Module):
    """s' = s + a, r = s_0 (a deterministic toy environment model)."""

    def forward(self, obs, action):
        return obs + action, obs[..., 0]


def test_retrace_two_steps_hand_worked():
    # Q̂ψ(s, a) = s_0 + 2 a_0; policy always a = 0.5 with log π = −1; α = 0.1; n = 1
    q = lambda s, a: s[..., 0] + 2 * a[..., 0]  # noqa: E731
    policy = lambda s: (torch.full_like(s[..., :1], 0.5), torch.full(s.shape[:-1], -1.0))  # noqa: E731
    value = retrace_value(LinearModel(), q, policy, alpha=0.1, gamma=GAMMA, lam=LAM, horizon=2)
    s0, a0 = torch.tensor([[1.0]]), torch.tensor([[0.25]])
    # by hand: s1 = 1.25, s2 = 1.75; a1 = a2 = 0.5; r0 = 1, r1 = 1.25
    q0, q1, q2 = 1 + 0.5, 1.25 + 1.0, 1.75 + 1.0
    kl = 0.1 * (-1.0 + math.log(2))
    d0 = 1.0 + GAMMA * (q1 - kl) - q0
    d1 = 1.25 + GAMMA * (q2 - kl) - q1
    expected = q0 + d0 + GAMMA * LAM * d1
    torch.testing.assert_close(value(s0, a0), torch.tensor([expected]))
    # λ = 1 gives the soft 2-step return r0 + γ r1 + γ² V(s2) − γ α KL(s1)
    full = retrace_value(LinearModel(), q, policy, alpha=0.1, gamma=GAMMA, lam=1.0, horizon=2)(s0, a0)
    soft = 1.0 + GAMMA * (1.25 - kl) + GAMMA**2 * (q2 - kl)
    torch.testing.assert_close(full, torch.tensor([soft]))
    # horizon 0 is the model-free estimate
    torch.testing.assert_close(retrace_value(LinearModel(), q, policy, 0.1, GAMMA, LAM, 0)(s0, a0),
                               torch.tensor([q0]))


def test_pathwise_gradient_reaches_the_first_action():
    model = DynamicsModel(3, 2, n_units=16)
    with torch.no_grad():  # Q̂ψ(s0, a0) cancels in Q̂ψ + δ_0: a0 acts only through the model
        model.state_net[-1].weight.normal_(0, 0.1)
        model.reward_net[-1].weight.normal_(0, 0.1)
    q = lambda s, a: -(a - s[..., :2]).square().sum(-1)  # noqa: E731
    policy = lambda s: (torch.tanh(s[..., :2]), torch.zeros(s.shape[:-1]))  # noqa: E731
    a0 = torch.zeros(4, 2, requires_grad=True)
    retrace_value(model, q, policy, 0.2, GAMMA, LAM, 2)(torch.randn(4, 3), a0).sum().backward()
    assert a0.grad.abs().sum() > 0


def test_model_nll_is_gaussian_and_learns_a_linear_system():
    torch.testing.assert_close(
        gaussian_nll(torch.tensor(1.0), torch.tensor(0.5), torch.tensor(0.3)),
        -torch.distributions.Normal(0.5, math.exp(0.3)).log_prob(torch.tensor(1.0)),
    )
    torch.manual_seed(0)
    model = DynamicsModel(3, 2, n_units=64)
    A = torch.tensor([[0.1, -0.2], [0.3, 0.0], [0.0, 0.2]])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(600):
        s, a = torch.randn(128, 3), torch.rand(128, 2) * 2 - 1
        s_next, r = s + a @ A.T, s[:, 0] - a.square().sum(-1)
        state_nll, reward_nll = model.nll(s, a, r, s_next)
        opt.zero_grad()
        (state_nll + reward_nll).backward()
        opt.step()
    s, a = torch.randn(256, 3), torch.rand(256, 2) * 2 - 1
    with torch.no_grad():
        pred_s, pred_r = model(s, a)
    assert (pred_s - (s + a @ A.T)).abs().mean() < 0.05
    assert (pred_r - (s[:, 0] - a.square().sum(-1))).abs().mean() < 0.1
    assert model.state_log_std.max() < -1.5  # the learned std shrank with the error
