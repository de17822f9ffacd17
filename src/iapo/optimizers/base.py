"""What every policy optimizer returns: the estimate λ and the trace of J over its iterations."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from iapo.distributions import log_prob, rsample
from iapo.objective import Estimate


@dataclass
class Trace:
    """Result of optimizing J(s, ·) for a batch of states.

    `J` holds J at each evaluated iterate λ_0, λ_1, … (detached, [B] each). When the optimizer is
    trained (`train=True`) `loss` is the differentiable loss for its parameters φ and `final` the
    estimate at the last iterate.
    """

    mu: Tensor
    log_sigma: Tensor
    J: list[Tensor] = field(default_factory=list)
    loss: Tensor | None = None
    final: Estimate | None = None


def sample_policy(optimizer: nn.Module, trace: Trace, n_samples: int) -> tuple[Tensor, Tensor]:
    """N actions [N, B, n] from the policy an optimizer estimated, with log π [N, B].

    A tanh-Normal at λ = (μ, log σ) unless the optimizer defines its own policy (`sample`, e.g. a flow).
    """
    if hasattr(optimizer, "sample"):
        return optimizer.sample(trace, n_samples)
    actions, u = rsample(trace.mu, trace.log_sigma, n_samples)
    return actions, log_prob(u, trace.mu, trace.log_sigma)


def mode_action(optimizer: nn.Module, trace: Trace) -> Tensor:
    """The deterministic (evaluation) action: tanh(μ), or the optimizer's own `mode`."""
    if hasattr(optimizer, "mode"):
        return optimizer.mode(trace)
    return torch.tanh(trace.mu)
