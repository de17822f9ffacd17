"""Direct amortization with a normalizing-flow policy: λ ← f_φ(s), then IAF transforms (B.2)."""

from __future__ import annotations

import torch
from torch import Tensor

from iapo.config import Network
from iapo.flows import TanhFlow
from iapo.objective import Objective
from iapo.optimizers.base import Trace
from iapo.optimizers.direct import DirectOptimizer


class DirectFlowOptimizer(DirectOptimizer):
    """The direct network gives the Gaussian base (μ(s), σ(s)); `n_flows` inverse autoregressive
    transforms (each a 2×256 ReLU MADE network, ordering reversed between them) and tanh follow.
    A multi-modal policy from one feedforward pass: the B.2 control for iterative amortization."""

    tanh_normal = False  # its policy is the flow's: `sample` and `mode` below

    def __init__(self, obs_dim: int, act_dim: int, net: Network, log_sigma_bounds: list[float],
                 n_flows: int = 2) -> None:
        super().__init__(obs_dim, act_dim, net, log_sigma_bounds)
        self.flow = TanhFlow(act_dim, n_flows, net.n_units, net.n_layers)

    def sample(self, trace: Trace, n_samples: int) -> tuple[Tensor, Tensor]:
        """Reparameterised actions [N, B, n] and their exact log-densities [N, B]."""
        return self.flow.rsample(trace.mu, trace.log_sigma, n_samples)

    def mode(self, trace: Trace) -> Tensor:
        return self.flow.mode_action(trace.mu)

    def optimize(
        self, objective: Objective, train: bool = False, n_iters: int | None = None,
        score: bool = True,
    ) -> Trace:
        """λ = f_φ(s); J is scored on the flow's own samples; the loss is −J averaged over states."""
        with torch.set_grad_enabled(train):
            mu, log_sigma = self(objective.obs)
            trace = Trace(mu, log_sigma)
            if not (train or score):
                return Trace(mu.detach(), log_sigma.detach())
            est = objective.score(*self.sample(trace, objective.n_samples))
        trace.J, trace.final = [est.J.detach()], est
        trace.loss = -est.J.mean() if train else None
        return trace
