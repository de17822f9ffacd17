"""Model-free value estimation: the ensemble of two Q-networks and its pessimistic estimate (eq. 13)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from iapo.config import QArchitecture
from iapo.nets import NONLINEARITIES, init_linear


class HighwayBlock(nn.Module):
    """h' = g ⊙ h + (1 − g) ⊙ f(h), g = sigmoid(W_g h) (Table 4 'highway'; original_code.md §1.3)."""

    def __init__(self, n_units: int, nonlinearity: str, layer_norm: bool) -> None:
        super().__init__()
        self.transform = _layer(n_units, n_units, nonlinearity, layer_norm)
        self.gate = init_linear(nn.Linear(n_units, n_units), "sigmoid")

    def forward(self, h: Tensor) -> Tensor:
        g = torch.sigmoid(self.gate(h))
        return g * h + (1.0 - g) * self.transform(h)


def _layer(n_in: int, n_out: int, nonlinearity: str, layer_norm: bool) -> nn.Sequential:
    """Linear → (LayerNorm) → nonlinearity, the order of original_code.md §1.3."""
    parts: list[nn.Module] = [init_linear(nn.Linear(n_in, n_out), nonlinearity)]
    if layer_norm:
        parts.append(nn.LayerNorm(n_out))
    parts.append(NONLINEARITIES[nonlinearity]())
    return nn.Sequential(*parts)


class QNetwork(nn.Module):
    """Q(s, a) with architecture A (2×256 ReLU) or B (3×512 ELU, LayerNorm, highway): Tables 3-4."""

    def __init__(self, obs_dim: int, act_dim: int, arch: QArchitecture) -> None:
        super().__init__()
        blocks: list[nn.Module] = [
            _layer(obs_dim + act_dim, arch.n_units, arch.nonlinearity, arch.layer_norm)
        ]
        for _ in range(arch.n_layers - 1):
            if arch.connectivity == "highway":
                blocks.append(HighwayBlock(arch.n_units, arch.nonlinearity, arch.layer_norm))
            else:
                blocks.append(_layer(arch.n_units, arch.n_units, arch.nonlinearity, arch.layer_norm))
        self.trunk = nn.Sequential(*blocks)
        self.head = nn.Linear(arch.n_units, 1)
        nn.init.uniform_(self.head.weight, -3e-3, 3e-3)  # original_code.md §1.3
        nn.init.uniform_(self.head.bias, -3e-3, 3e-3)

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.head(self.trunk(torch.cat([obs, action], -1))).squeeze(-1)


class QEnsemble(nn.Module):
    """Two independent Q-networks [25]; `forward` returns both estimates stacked, shape [2, ...]."""

    def __init__(self, obs_dim: int, act_dim: int, arch: QArchitecture, n_members: int = 2) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.members = nn.ModuleList(QNetwork(obs_dim, act_dim, arch) for _ in range(n_members))

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        return torch.stack([q(obs, action) for q in self.members])


def pessimistic(qs: Tensor, beta: float, std: str = "population") -> Tensor:
    """Q̂ = μ_Q − β σ_Q over the ensemble axis 0 (eq. 13).

    `std="population"` is the paper's σ_Q (divide by the ensemble size: β = 1 gives min(Q1, Q2) for
    two members); `"unbiased"` is the original code's sqrt(var_unbiased + 1e-6) (original_code.md §1.3).
    """
    mean = qs.mean(0)
    if std == "population":
        sigma = ensemble_std(qs)
    elif std == "unbiased":
        sigma = (qs.var(0, unbiased=True) + 1e-6).sqrt()
    else:
        raise ValueError(f"unknown pessimism_std {std!r}; allowed: population, unbiased")
    return mean - beta * sigma


def pessimistic_weights(qs: Tensor, beta: float, std: str = "population") -> Tensor:
    """∂Q̂/∂Q_i of eq. 13 for every member and row (same shape as `qs`), by hand for two members.

    Population σ: Q̂ = (Q1 + Q2)/2 − β |Q1 − Q2|/2, so ∂Q̂/∂Q1,2 = 1/2 ∓ (β/2) sign(Q1 − Q2) (sign 0 at a
    tie, as autograd's |·|). Unbiased σ = sqrt((Q1 − Q2)²/2 + 1e-6): ∂σ/∂Q1,2 = ±(Q1 − Q2)/(2σ).
    Other ensemble sizes use autograd on `pessimistic` itself.
    """
    if qs.shape[0] != 2:
        with torch.inference_mode(False), torch.enable_grad():
            q = qs.detach().clone().requires_grad_()
            return torch.autograd.grad(pessimistic(q, beta, std).sum(), q)[0]
    diff = qs[0] - qs[1]
    if std == "population":
        slope = diff.sign() * (beta / 2.0)
    elif std == "unbiased":
        slope = diff * (beta / 2.0) / (diff.square() / 2.0 + 1e-6).sqrt()
    else:
        raise ValueError(f"unknown pessimism_std {std!r}; allowed: population, unbiased")
    return torch.stack([0.5 - slope, 0.5 + slope])


def ensemble_std(qs: Tensor) -> Tensor:
    """σ_Q of eq. 13 (population std over axis 0); |Q1 − Q2| / 2 for two members (finite gradient at 0)."""
    if qs.shape[0] == 2:
        return (qs[0] - qs[1]).abs() / 2.0
    return (qs - qs.mean(0)).square().mean(0).sqrt()

