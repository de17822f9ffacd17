"""Adam [45] on λ = (μ, σ): the semi-amortized optimizer of the amortization gap (A.3), the
test-time optimizer (B.6) and the gradient-based baseline of the optimizer comparison (B.4)."""

from __future__ import annotations

import torch
from torch import Tensor

from iapo.optimizers.sgd import GradientAscent


class Adam(GradientAscent):
    """Gradient ascent with Adam (default betas): A.3 uses lr 5e-3 × 100 steps from the amortized
    λ; B.4 uses step size 0.01 from λ_0 with gradients from 10 action samples."""

    name = "adam"

    def torch_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.lr)
