"""What every policy optimizer returns: the estimate λ and the trace of J over its iterations."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

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
