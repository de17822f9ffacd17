"""Direct amortization: a network maps the state to the policy estimate, λ ← f_φ(s) (eq. 10)."""

from __future__ import annotations

import torch
from torch import Tensor

from iapo.config import Network
from iapo.distributions import LogSigmaBounds
from iapo.nets import mlp, zero_linear
from iapo.objective import Objective
from iapo.optimizers.base import PolicyOptimizer, Trace


class DirectOptimizer(PolicyOptimizer):
    """SAC's policy network as an optimizer (§2.3, Table 2): one feedforward pass, no feedback."""

    def __init__(self, obs_dim: int, act_dim: int, net: Network, log_sigma_bounds: list[float]):
        super().__init__()
        self.trunk = mlp(obs_dim, net.n_layers, net.n_units, net.nonlinearity)
        # μ and raw log σ start at 0 (original_code.md §1.1)
        self.head = zero_linear(net.n_units, 2 * act_dim)
        self.bounds = LogSigmaBounds(act_dim, *log_sigma_bounds)
        self.n_iters = 1

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        mu, raw_log_sigma = self.head(self.trunk(obs)).chunk(2, -1)
        return mu, self.bounds(raw_log_sigma)

    def optimize(
        self, objective: Objective, train: bool = False, n_iters: int | None = None,
        score: bool = True,
    ) -> Trace:
        """λ = f_φ(s); when training, the loss is −J(s, λ) averaged over states (Algorithm 1)."""
        if self.fused and train:
            return self.optimize_fused(objective)
        with torch.set_grad_enabled(train):
            mu, log_sigma = self(objective.obs)
        if not (train or score):
            return Trace(mu.detach(), log_sigma.detach())
        with torch.set_grad_enabled(train):
            est = objective(mu, log_sigma)
        loss = -est.J.mean() if train else None
        return Trace(mu, log_sigma, J=[est.J.detach()], loss=loss, final=est)

    def optimize_fused(self, objective: Objective) -> Trace:
        """The training call of `optimize` with J and ∇_λ J from one pass (`Objective.value_and_grad`).

        The loss is −J̄ in value; its φ-gradient comes from the surrogate −(1/B) ⟨λ(φ), ∇_λ J⟩ with
        the gradient fixed, which is ∂(−J̄)/∂φ by the chain rule (same samples as the reference).
        """
        mu, log_sigma = self(objective.obs)
        est, grad_mu, grad_ls = objective.value_and_grad(mu, log_sigma)
        pull = -((mu * grad_mu).sum() + (log_sigma * grad_ls).sum()) / objective.obs.shape[0]
        loss = -est.J.mean() + (pull - pull.detach())
        return Trace(mu, log_sigma, J=[est.J], loss=loss, final=est)
