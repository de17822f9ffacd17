"""The variational RL objective J(s, λ) of eq. 8, written once and used by every optimizer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from iapo.distributions import kl_to_uniform, log_prob, rsample

ValueFn = Callable[[Tensor, Tensor], Tensor]
"""Q̂(s, a): states [..., S] and actions [..., n] → value estimates [...] (eq. 13 or eq. 14)."""


@dataclass
class Estimate:
    """A Monte Carlo estimate of J at λ for a batch of B states."""

    J: Tensor        # [B]    J(s, λ) = E_π[Q̂(s, a)] − α KL(π ‖ U)
    q: Tensor        # [B]    sample mean of Q̂(s, a_k)
    kl: Tensor       # [B]    sample mean of log π(a_k) + n ln 2
    actions: Tensor  # [N, B, n] the samples a_k = tanh(u_k)
    log_pi: Tensor   # [N, B] log π(a_k)


class Objective:
    """J(s, λ) for fixed states s (eq. 8 with the uniform prior), as a function of λ = (μ, log σ).

    J(s; λ) = (1/N) Σ_k Q̂(s, a_k) − α (1/N) Σ_k [log π_λ(a_k | s) + n ln 2],  a_k = tanh(μ + σ ε_k),
    estimated with N reparameterised samples, so it is differentiable in λ (pathwise, §3.1).
    α is a constant here (detached): J is maximised over λ only.
    """

    def __init__(self, value_fn: ValueFn, obs: Tensor, alpha: float | Tensor, n_samples: int):
        self.value_fn = value_fn
        self.obs = obs
        self.alpha = alpha.detach() if isinstance(alpha, Tensor) else alpha
        self.n_samples = n_samples

    def __call__(self, mu: Tensor, log_sigma: Tensor) -> Estimate:
        """J at a tanh-Normal λ = (μ, log σ): N fresh reparameterised samples, then `score`."""
        actions, u = rsample(mu, log_sigma, self.n_samples)
        return self.score(actions, log_prob(u, mu, log_sigma))

    def score(self, actions: Tensor, log_pi: Tensor) -> Estimate:
        """J from samples a_k [N, B, n] of any policy and their log-densities log π(a_k) [N, B].

        This is the one definition of eq. 8 (a flow policy brings its own samples and densities).
        """
        obs = self.obs.expand(actions.shape[0], *self.obs.shape)
        q = self.value_fn(obs, actions).mean(0)
        kl = kl_to_uniform(log_pi, actions.shape[-1])
        return Estimate(J=q - self.alpha * kl, q=q, kl=kl, actions=actions, log_pi=log_pi)
