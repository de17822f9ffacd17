"""Analysis-only optimizers on λ (Adam, SGD, CEM) and the amortization-gap estimator built on them,
against objectives whose optimum is known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from iapo.diagnostics.amortization_gap import estimate_gap
from iapo.diagnostics.objectives import evaluate_J, fixed_noise
from iapo.distributions import log_prob, log_tanh_jacobian, rsample
from iapo.objective import Objective
from iapo.optimizers.adam import Adam
from iapo.optimizers.cem import CEM, per_sample_objective
from iapo.optimizers.sgd import SGD

ALPHA, K = 0.5, 1.0
SIGMA_STAR = math.sqrt(ALPHA / (2 * K))  # 0.5


def centre(obs: torch.Tensor) -> torch.Tensor:
    """The optimal pre-tanh mean m(s), different for every state and dimension."""
    return 0.4 * torch.tanh(obs[..., :2])


def analytic_q(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Q(s, a) = −k ‖u − m(s)‖² − α Σ log(1 − a²), u = atanh a.

    The second term cancels the tanh Jacobian inside α KL(π ‖ U), so J is Gaussian and closed-form:
    J(μ, σ) = Σ_j [−k ((μ_j − m_j)² + σ_j²) + α (log σ_j + ½ log 2πe) − α ln 2],
    maximised at μ = m(s), σ = √(α / 2k).
    """
    u = torch.atanh(action.clamp(-1 + 1e-12, 1 - 1e-12))
    return -K * (u - centre(obs)).square().sum(-1) - ALPHA * log_tanh_jacobian(u).sum(-1)


def analytic_J(obs: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    per_dim = (-K * ((mu - centre(obs)).square() + sigma.square())
               + ALPHA * (sigma.log() + 0.5 * math.log(2 * math.pi * math.e)) - ALPHA * math.log(2.0))
    return per_dim.sum(-1)


def states(n: int = 4) -> torch.Tensor:
    return torch.randn(n, 3, dtype=torch.float64)


def start(obs: torch.Tensor, offset: float = 0.0, sigma: float = 1.0):
    mu = centre(obs) + offset
    return mu, torch.full_like(mu, math.log(sigma))


def test_analytic_objective_is_what_J_estimates():
    obs = states()
    mu, log_sigma = start(obs, 0.3, 0.8)
    est = Objective(analytic_q, obs, ALPHA, n_samples=200_000)(mu, log_sigma)
    torch.testing.assert_close(est.J, analytic_J(obs, mu, log_sigma.exp()), atol=0.01, rtol=0)


@pytest.mark.parametrize("sigma_param", ["sigma", "log_sigma"])
def test_adam_converges_to_the_optimum(sigma_param):
    obs = states()
    obj = Objective(analytic_q, obs, ALPHA, n_samples=10)
    zeros = torch.zeros(4, 2, dtype=torch.float64)
    trace = Adam(0.01, 600, sigma_param).optimize(obj, init=(zeros, zeros))  # B.4: step size 0.01
    sigma_star = torch.full_like(trace.mu, SIGMA_STAR)
    torch.testing.assert_close(trace.mu, centre(obs), atol=0.1, rtol=0)
    torch.testing.assert_close(trace.log_sigma.exp(), sigma_star, atol=0.1, rtol=0)
    assert len(trace.J) == 601 and (trace.n_steps == 600).all()
    # the exact J of the result is within 0.02 of the optimum; λ_0 was ≥ 0.5 below it
    J_star = analytic_J(obs, centre(obs), sigma_star)
    assert (analytic_J(obs, trace.mu, trace.log_sigma.exp()) > J_star - 0.02).all()
    assert (analytic_J(obs, zeros, zeros.exp()) < J_star - 0.5).all()
    # the trace holds unbiased 10-sample estimates of J along the way
    assert (torch.stack(trace.J[-100:]).mean(0) - J_star).abs().max() < 0.1


def test_sgd_converges_and_stops_at_no_improvement():
    obs = states()
    obj = Objective(analytic_q, obs, ALPHA, n_samples=10)
    zeros = torch.zeros(4, 2, dtype=torch.float64)
    trace = SGD(0.02, 800).optimize(obj, init=(zeros, zeros))
    torch.testing.assert_close(trace.mu, centre(obs), atol=0.06, rtol=0)
    # original_code.md §6: stop at the first non-improving 10-sample estimate, keep the best iterate
    early = SGD(1e-4, 1000, stop="no_improvement").optimize(obj, init=(zeros, zeros))
    J = torch.stack(early.J, 1)
    assert (J[:, 1:] >= J[:, :-1]).all()  # the trace is the best-so-far J: never decreases
    assert (early.n_steps < 1000).all() and len(early.J) <= 1001


def test_cem_converges_on_a_toy_objective():
    """α = 0 and Q = −‖a − c‖²: CEM ranking by Q moves tanh(μ) to c and shrinks σ."""
    obs = states()
    c = torch.tanh(centre(obs))

    def q(o: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return -(a - torch.tanh(centre(o))).square().sum(-1)

    obj = Objective(q, obs, 0.0, n_samples=10)
    trace = CEM(n_iters=600, rank="q").optimize(obj, act_dim=2)  # B.4: 100 samples, top 10, lr 0.01
    torch.testing.assert_close(torch.tanh(trace.mu), c, atol=0.05, rtol=0)
    assert (trace.log_sigma.exp() < 0.1).all()
    assert (trace.J[-1] > -0.01).all() and (trace.J[0] < -0.3).all()
    assert len(trace.J) == 601 and trace.final.actions.shape == (100, 4, 2)
    # ranking by the sample's term of J also finds the mean; the code's tanh-space refit runs
    trace = CEM(n_iters=600).optimize(Objective(analytic_q, obs, ALPHA, 10), act_dim=2)
    torch.testing.assert_close(trace.mu, centre(obs), atol=0.1, rtol=0)
    CEM(n_iters=5, space="tanh").optimize(obj, act_dim=2)


def test_per_sample_objective_averages_to_J():
    obs = states()
    obj = Objective(analytic_q, obs, ALPHA, n_samples=7)
    mu, log_sigma = start(obs, 0.2, 0.7)
    actions, u = rsample(mu, log_sigma, 7)
    log_pi = log_prob(u, mu, log_sigma)
    j, q = per_sample_objective(obj, actions, log_pi)
    torch.testing.assert_close(j.mean(0), obj.score(actions, log_pi).J)
    torch.testing.assert_close(q, analytic_q(obs.expand(7, -1, -1), actions))


def test_analysis_optimizers_cannot_train():
    obj = Objective(analytic_q, states(), ALPHA, n_samples=3)
    for opt in (Adam(0.01, 3), SGD(0.01, 3), CEM(3)):
        with pytest.raises(ValueError, match="train"):
            opt.optimize(obj, train=True, act_dim=2)


# --------------------------------------------------------------------------- amortization gap

def test_gap_estimator_finds_the_known_optimum():
    """A.3 (Adam, lr 5e-3, 100 steps) from an 'amortized' λ off the optimum by 0.2 in μ and 0.25 in σ:
    it reaches the optimum, and the gap equals J* − J(λ) computed in closed form."""
    obs = states()
    mu0 = centre(obs) + 0.2
    log_sigma0 = torch.full_like(mu0, math.log(SIGMA_STAR + 0.25))
    obj = Objective(analytic_q, obs, ALPHA, n_samples=10)
    gap = estimate_gap(obj, (mu0, log_sigma0), "paper", eval_samples=20_000)
    sigma_star = torch.full_like(mu0, SIGMA_STAR)
    torch.testing.assert_close(gap.mu, centre(obs), atol=0.1, rtol=0)
    torch.testing.assert_close(gap.log_sigma.exp(), sigma_star, atol=0.1, rtol=0)
    J_star, J0 = analytic_J(obs, centre(obs), sigma_star), analytic_J(obs, mu0, log_sigma0.exp())
    assert (analytic_J(obs, gap.mu, gap.log_sigma.exp()) > J_star - 0.01).all()  # the optimum's value
    torch.testing.assert_close(gap.J_amortized, J0, atol=0.03, rtol=0)
    torch.testing.assert_close(gap.J_optimized - gap.J_amortized, J_star - J0, atol=0.02, rtol=0)
    assert (gap.opt_steps == 100).all()
    # from the optimum itself the estimated gap is ~0 (common noise makes it nearly exact)
    at_opt = estimate_gap(obj, (centre(obs), sigma_star.log()), "paper", eval_samples=20_000)
    assert at_opt.J_optimized.sub(at_opt.J_amortized).abs().max() < 0.01


def test_code_gap_estimator_keeps_the_last_improving_iterate():
    obs = states()
    obj = Objective(analytic_q, obs, ALPHA, n_samples=10)
    gap = estimate_gap(obj, (centre(obs) + 0.5, torch.zeros(4, 2, dtype=torch.float64)), "code")
    assert (gap.J_optimized >= gap.J_amortized).all() and (gap.opt_steps < 1000).all()


def test_common_noise_evaluation_is_deterministic_and_unbiased():
    obs = states()
    mu, log_sigma = centre(obs) + 0.3, torch.full((4, 2), -0.5, dtype=torch.float64)
    obj = Objective(analytic_q, obs, ALPHA, n_samples=5)
    eps = fixed_noise(50_000, 2, seed=3)
    a, b = evaluate_J(obj, mu, log_sigma, eps).J, evaluate_J(obj, mu, log_sigma, eps).J
    assert torch.equal(a, b)
    torch.testing.assert_close(a, analytic_J(obs, mu, log_sigma.exp()), atol=0.02, rtol=0)
