"""The variational RL objective J(s, λ) of eq. 8, written once and used by every optimizer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from iapo.distributions import kl_to_uniform, log_prob, rsample

ValueFn = Callable[[Tensor, Tensor], Tensor]
"""Q̂(s, a): states [..., S] and actions [..., n] → value estimates [...] (eq. 13 or eq. 14)."""


class ActionGradValue:
    """A value function Q̂(s, a) that also gives ∇_a Q̂ by hand (`iapo.values.fused.FusedValue`): an
    `Objective` over it writes ∇_λ J out (`_pathwise_grad`) instead of running autograd through J."""

    def __call__(self, obs: Tensor, action: Tensor) -> Tensor:
        raise NotImplementedError

    def value_and_action_grad(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """Q̂(s, a) [N, B] and ∇_a Q̂ [N, B, n] for states [N, B, S] and actions [N, B, n]."""
        raise NotImplementedError

    def action_grad_fn(self, obs: Tensor, n_samples: int) -> Callable[[Tensor], Tensor]:
        """a ↦ ∇_a Q̂(s, a) for N samples [N, B, n] at the fixed states s [B, S]."""
        raise NotImplementedError


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
        return self._estimate(self.value_fn(obs, actions), actions, log_pi)

    def _estimate(self, q_samples: Tensor, actions: Tensor, log_pi: Tensor) -> Estimate:
        """Eq. 8 from Q̂(s, a_k) [N, B] and log π(a_k) [N, B]: J = mean_k Q̂ − α (mean_k log π + n ln 2)."""
        q = q_samples.mean(0)
        kl = kl_to_uniform(log_pi, actions.shape[-1])
        return Estimate(J=q - self.alpha * kl, q=q, kl=kl, actions=actions, log_pi=log_pi)

    def value_and_grad(self, mu: Tensor, log_sigma: Tensor) -> tuple[Estimate, Tensor, Tensor]:
        """J at a tanh-Normal λ and its gradient ∇_λ J per state (of Σ_b J_b), from one set of N samples.

        The estimate is returned detached, with (∇_μ J, ∇_{log σ} J). It draws the same samples as
        `self(mu, log_sigma)` and is the same math; if the value function gives ∇_a Q̂ itself
        (`ActionGradValue`, e.g. `iapo.values.fused.FusedValue`), the pathwise gradient is
        written out (`_pathwise_grad`) instead of running autograd through J.
        """
        if not self._by_hand():
            mu, log_sigma = mu.detach().requires_grad_(), log_sigma.detach().requires_grad_()
            with torch.enable_grad():
                est = self(mu, log_sigma)
                grad_mu, grad_log_sigma = torch.autograd.grad(est.J.sum(), (mu, log_sigma))
            return _detached(est), grad_mu, grad_log_sigma
        mu, log_sigma = mu.detach(), log_sigma.detach()
        actions, u = rsample(mu, log_sigma, self.n_samples)
        obs = self.obs.expand(actions.shape[0], *self.obs.shape)
        q_samples, grad_action = self.value_fn.value_and_action_grad(obs, actions)
        est = self._estimate(q_samples, actions, log_prob(u, mu, log_sigma))
        return (est, *self._pathwise_grad(actions, u - mu, grad_action, self.alpha))

    def grad_fn(self) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """λ ↦ ∇_λ J alone, for repeated calls at these states (acting records no J).

        Same samples and math as `value_and_grad`. When the value function can give ∇_a Q̂ alone for
        fixed states (`ActionGradValue.action_grad_fn`), what depends only on the states is
        computed once and the value itself is never computed.
        """
        if not self._by_hand():
            return lambda mu, log_sigma: self.value_and_grad(mu, log_sigma)[1:]
        action_grad = self.value_fn.action_grad_fn(self.obs, self.n_samples)

        def grad(mu: Tensor, log_sigma: Tensor) -> tuple[Tensor, Tensor]:
            actions, u = rsample(mu, log_sigma, self.n_samples)
            return self._pathwise_grad(actions, u - mu, action_grad(actions), self.alpha)

        return grad

    def _by_hand(self) -> bool:
        """Whether ∇_λ J may be written out: the value function gives ∇_a Q̂ (`ActionGradValue`) and J
        is this class's `__call__` (a subclass that changes it gets autograd through its own)."""
        return isinstance(self.value_fn, ActionGradValue) and type(self).__call__ is Objective.__call__

    @staticmethod
    def _pathwise_grad(
        actions: Tensor, noise: Tensor, grad_action: Tensor, alpha: float | Tensor,
    ) -> tuple[Tensor, Tensor]:
        """∇_λ J with a_k = tanh(u_k), u_k = μ + σ ε_k and ε_k held fixed (reparameterisation, §3.1).

        Per sample, ∂/∂u [Q̂(s, a) − α log π(a)] = D = ∇_a Q̂ ⊙ (1 − a²) − 2α a, because
        log π(a) = Σ_j [−ε_j²/2 − log σ_j − ½ ln 2π − log(1 − tanh² u_j)] and
        ∂/∂u log(1 − tanh² u) = −2 tanh u. With ∂u/∂μ = 1 and ∂u/∂log σ = σ ε (`noise` = u − μ),
        ∇_μ J = mean_k D and ∇_{log σ} J = mean_k D ⊙ σ ε + α (the −log σ term of log π).
        α may be a tensor on the device (the agent's): no host read.
        """
        d = torch.addcmul(grad_action, grad_action * actions, actions, value=-1.0)  # ∇_a Q̂ (1 − a²)
        if isinstance(alpha, Tensor):
            d.addcmul_(actions, alpha * -2.0)
        else:
            d = torch.add(d, actions, alpha=-2.0 * alpha)
        return d.mean(0), (d * noise).mean(0).add_(alpha)


def _detached(est: Estimate) -> Estimate:
    return replace(est, **{f: getattr(est, f).detach() for f in ("J", "q", "kl", "actions", "log_pi")})
