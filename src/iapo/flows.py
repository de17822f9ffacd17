"""Inverse autoregressive flows on pre-tanh actions: the normalizing-flow policy of Appendix B.2."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from iapo.distributions import HALF_LOG_2PI, log_tanh_jacobian, standard_normal


class MaskedLinear(nn.Linear):
    """Linear layer whose weight is multiplied by a fixed 0/1 connectivity mask (MADE)."""

    def __init__(self, n_in: int, n_out: int, mask: Tensor) -> None:
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask.float())

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


def made_masks(n: int, n_units: int, n_layers: int) -> list[Tensor]:
    """Masks so that output j depends only on inputs i < j (degrees as in MADE, Germain et al. 2015).

    Inputs have degrees 1…n, hidden units cycle through 1…n−1, output j (degree j) sees hidden
    units of degree < j. Output 1 therefore sees nothing: its shift and scale are constants.
    """
    d_in = torch.arange(1, n + 1)
    d_hidden = [torch.arange(n_units) % max(n - 1, 1) + 1 for _ in range(n_layers)]
    masks = [(d_hidden[0][:, None] >= d_in[None, :])]
    masks += [(d_hidden[k][:, None] >= d_hidden[k - 1][None, :]) for k in range(1, n_layers)]
    masks.append(d_in[:, None] > d_hidden[-1][None, :])
    return masks


class AutoregressiveTransform(nn.Module):
    """One IAF step x' = m(x) + exp(s(x)) ⊙ x with (m, s) from a masked 2×256 ReLU network (B.2).

    The output layer starts at zero, so each transform starts as the identity. log|det| = Σ_j s_j.
    """

    def __init__(self, n: int, n_units: int = 256, n_layers: int = 2) -> None:
        super().__init__()
        masks = made_masks(n, n_units, n_layers)
        layers: list[nn.Module] = []
        n_prev = n
        for mask in masks[:-1]:
            layers += [MaskedLinear(n_prev, n_units, mask), nn.ReLU()]
            n_prev = n_units
        self.hidden = nn.Sequential(*layers)
        out_mask = masks[-1]
        self.shift = MaskedLinear(n_units, n, out_mask)
        self.log_scale = MaskedLinear(n_units, n, out_mask)
        for head in (self.shift, self.log_scale):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(x', log|det ∂x'/∂x|) with the log-det per sample (summed over dimensions)."""
        h = self.hidden(x)
        log_scale = self.log_scale(h).clamp(-5.0, 5.0)
        return self.shift(h) + log_scale.exp() * x, log_scale.sum(-1)


class TanhFlow(nn.Module):
    """Gaussian base → [IAF, reverse] × n_flows → tanh; exact log-density of its own samples (B.2).

    The transforms are state-independent, as in the authors' code (original_code.md §5); the state enters
    through the base Gaussian (μ(s), σ(s)) of the direct policy network.
    """

    def __init__(self, n: int, n_flows: int = 2, n_units: int = 256, n_layers: int = 2) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(
            AutoregressiveTransform(n, n_units, n_layers) for _ in range(n_flows)
        )

    def push(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Pre-tanh base point x → pre-tanh flow output, plus Σ log|det| of the transforms."""
        log_det = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
        for transform in self.transforms:
            x, ld = transform(x)
            x = x.flip(-1)  # reverse the ordering between transforms (B.2)
            log_det = log_det + ld
        return x, log_det

    def rsample(self, mu: Tensor, log_sigma: Tensor, n_samples: int) -> tuple[Tensor, Tensor]:
        """N reparameterised actions a = tanh(flow(μ + σ ε)) [N, B, n] and log π(a) [N, B]."""
        eps = standard_normal(n_samples, mu)
        x0 = mu + log_sigma.exp() * eps
        base = (-0.5 * eps.square() - log_sigma - HALF_LOG_2PI).sum(-1)
        u, log_det = self.push(x0)
        return torch.tanh(u), base - log_det - log_tanh_jacobian(u).sum(-1)

    def mode_action(self, mu: Tensor) -> Tensor:
        """The deterministic action: the base mean pushed through the flow and tanh (original_code.md §5)."""
        return torch.tanh(self.push(mu)[0])
