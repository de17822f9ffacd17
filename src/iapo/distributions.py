"""The tanh-Normal policy distribution: reparameterised samples, exact log-density, KLs.

A policy estimate is λ = (μ, log σ) of a diagonal Gaussian over pre-tanh actions u; the action is
a = tanh(u) ∈ (−1, 1)^n (Appendix A.4, following SAC [31]). Sample tensors are laid out
sample-major, `[N, B, n]`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG2 = math.log(2.0)
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def standard_normal(n_samples: int, like: Tensor) -> Tensor:
    """ε ~ N(0, I) of shape [N, *like.shape], drawn in float32 and cast to `like`'s dtype: a float64
    agent (the double-precision check of the fast path) draws the very numbers a float32 one draws."""
    eps = torch.randn((n_samples, *like.shape), dtype=torch.float32, device=like.device)
    return eps if like.dtype == torch.float32 else eps.to(like.dtype)


def rsample(mu: Tensor, log_sigma: Tensor, n_samples: int) -> tuple[Tensor, Tensor]:
    """N reparameterised samples: returns (a, u) with u = μ + σ ε, a = tanh(u), shape [N, B, n]."""
    eps = standard_normal(n_samples, mu)
    u = mu + log_sigma.exp() * eps
    return torch.tanh(u), u


def log_tanh_jacobian(u: Tensor) -> Tensor:
    """log |d tanh(u)/du| = log(1 − tanh²u) = 2 (log 2 − u − softplus(−2u)), stable for large |u|."""
    return 2.0 * (LOG2 - u - F.softplus(-2.0 * u))


def log_prob(u: Tensor, mu: Tensor, log_sigma: Tensor) -> Tensor:
    """log π(a) of a = tanh(u), summed over action dimensions (change of variables)."""
    z = (u - mu) * torch.exp(-log_sigma)
    gaussian = -0.5 * z.square() - log_sigma - HALF_LOG_2PI
    return (gaussian - log_tanh_jacobian(u)).sum(-1)


def kl_to_uniform(log_pi: Tensor, n_dims: int) -> Tensor:
    """Monte Carlo KL(π ‖ U(−1, 1)^n) from log π of samples [N, B]: mean log π + n·ln 2 (eq. 8).

    U(−1, 1)^n has density 2^−n, so log π − log U = log π + n ln 2 (the authors' code keeps this
    constant, original_code.md §1.2).
    """
    return log_pi.mean(0) + n_dims * LOG2


def gaussian_kl(mu_p: Tensor, log_sigma_p: Tensor, mu_q: Tensor, log_sigma_q: Tensor) -> Tensor:
    """Analytic KL(N_p ‖ N_q) of the pre-tanh Gaussians, summed over dimensions.

    Equal to KL between the tanh-Normals, since tanh is a shared bijection (original_code.md §1.2).
    """
    var_ratio = torch.exp(2.0 * (log_sigma_p - log_sigma_q))
    mean_term = (mu_p - mu_q).square() * torch.exp(-2.0 * log_sigma_q)
    return 0.5 * (var_ratio + mean_term - 1.0 - 2.0 * (log_sigma_p - log_sigma_q)).sum(-1)


def soft_clamp(x: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Smooth clamp of log σ into [low, high] via softplus (original_code.md §1.1): high − sp(high − x),
    then up."""
    x = high - F.softplus(high - x)
    return low + F.softplus(x - low)


class LogSigmaBounds(nn.Module):
    """Learnable per-dimension soft bounds on log σ and their regulariser Σ(high − low)
    (original_code.md §1.1)."""

    def __init__(self, n_dims: int, low: float, high: float) -> None:
        super().__init__()
        self.low = nn.Parameter(torch.full((n_dims,), float(low)))
        self.high = nn.Parameter(torch.full((n_dims,), float(high)))

    def forward(self, log_sigma: Tensor) -> Tensor:
        return soft_clamp(log_sigma, self.low, self.high)

    def width(self) -> Tensor:
        """Σ_j (high_j − low_j): penalised so the bounds tighten to what is used."""
        return (self.high - self.low).sum()
