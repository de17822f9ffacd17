"""What every policy optimizer is (`PolicyOptimizer`) and returns (`Trace`: the estimate λ and J over its
iterations)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from iapo.distributions import log_prob, rsample
from iapo.objective import Estimate, Objective


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


class PolicyOptimizer(nn.Module):
    """An agent's amortized policy optimizer (direct, direct + flow, iterative): it maps states to a
    policy estimate λ = (μ, log σ) by `optimize` (training and analyses) and `act` (acting).

    What it declares instead of being probed for: `tanh_normal` is True when its policy is the
    tanh-Normal at λ (then `sample` and `mode` below are the policy's), False when it brings a policy
    of its own (a flow, which overrides them). `fused` (set by the agent, `training.fused`) picks
    the one-gradient-per-iteration fast path in `optimize`.
    """

    tanh_normal: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.fused = False

    def optimize(self, objective: Objective, train: bool = False, n_iters: int | None = None,
                 score: bool = True) -> Trace:
        raise NotImplementedError

    def act(self, objective: Objective) -> Trace:
        """λ for acting (no J recorded): `optimize(objective, score=False)`, unless a faster loop
        computes the same (`IterativeOptimizer`)."""
        return self.optimize(objective, score=False)

    def sample(self, trace: Trace, n_samples: int) -> tuple[Tensor, Tensor]:
        """N actions [N, B, n] from the policy at λ, with log π [N, B]: a tanh-Normal."""
        actions, u = rsample(trace.mu, trace.log_sigma, n_samples)
        return actions, log_prob(u, trace.mu, trace.log_sigma)

    def mode(self, trace: Trace) -> Tensor:
        """The deterministic (evaluation) action: tanh(μ)."""
        return torch.tanh(trace.mu)
