"""Direct amortization: a network maps the state to the policy estimate, λ ← f_φ(s) (eq. 10)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from iapo.config import Network
from iapo.distributions import LogSigmaBounds
from iapo.nets import mlp, zero_linear
from iapo.objective import Objective
from iapo.optimizers.base import Trace


class DirectOptimizer(nn.Module):
    """SAC's policy network as an optimizer (§2.3, Table 2): one feedforward pass, no feedback."""

    def __init__(self, obs_dim: int, act_dim: int, net: Network, log_sigma_bounds: list[float]):
        super().__init__()
        self.trunk = mlp(obs_dim, net.n_layers, net.n_units, net.nonlinearity)
        self.head = zero_linear(net.n_units, 2 * act_dim)  # μ and raw log σ start at 0 (code §1.1)
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
        with torch.set_grad_enabled(train):
            mu, log_sigma = self(objective.obs)
        if not (train or score):
            return Trace(mu.detach(), log_sigma.detach())
        with torch.set_grad_enabled(train):
            est = objective(mu, log_sigma)
        loss = -est.J.mean() if train else None
        return Trace(mu, log_sigma, J=[est.J.detach()], loss=loss, final=est)
