"""Iterative amortization: λ ← f_φ(s, λ, ∇_λ J), a learned, gated update run K times (eq. 11-12)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from iapo.config import Network
from iapo.distributions import LogSigmaBounds
from iapo.nets import mlp, zero_linear
from iapo.objective import Objective
from iapo.optimizers.base import Trace


class Standardize(nn.Module):
    """Per-state standardisation over the last axis, no affine (code §2.2, item 3)."""

    def forward(self, x: Tensor) -> Tensor:
        return (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-7)


def input_normalizer(kind: str, n: int, is_state: bool) -> nn.Module:
    """Normaliser for one input block (A.4: layer normalization applied to each input separately).

    `layernorm`: LayerNorm with affine on s, μ, log σ, ∇μJ, ∇_{log σ}J. `standardize` (code): the
    state stays raw, the four action blocks are standardised. A block of size 1 is left as is
    (normalising one number over itself erases it; the code does the same for n = 1).
    """
    if n == 1 or (kind == "standardize" and is_state):
        return nn.Identity()
    if kind == "layernorm":
        return nn.LayerNorm(n)
    if kind == "standardize":
        return Standardize()
    raise ValueError(f"unknown input_norm {kind!r}; allowed: layernorm, standardize")


class IterativeOptimizer(nn.Module):
    """Iterative amortized policy optimizer (§3.1, Algorithm 2; Table 1: in s, λ, ∇λJ; out δ, ω).

    One iteration (eq. 12, for p ∈ {μ, log σ}):  p ← ω_p ⊙ p + (1 − ω_p) ⊙ δ_p, with δ, ω from a
    2×256 ReLU network (Table 2) whose heads start at zero (ω = 0.5, δ = 0; code §2.2).
    λ_0 = (μ = 0, σ = init_sigma) for every state (A.4; the code used σ = 0.5).
    """

    def __init__(
        self, obs_dim: int, act_dim: int, net: Network, log_sigma_bounds: list[float],
        n_iters: int, init_sigma: float, input_norm: str,
    ) -> None:
        super().__init__()
        self.act_dim, self.n_iters, self.init_sigma = act_dim, n_iters, init_sigma
        self.norms = nn.ModuleList(
            [input_normalizer(input_norm, obs_dim, is_state=True)]
            + [input_normalizer(input_norm, act_dim, is_state=False) for _ in range(4)]
        )
        self.trunk = mlp(obs_dim + 4 * act_dim, net.n_layers, net.n_units, net.nonlinearity)
        self.head = zero_linear(net.n_units, 4 * act_dim)  # δ_μ, δ_logσ, ω_μ, ω_logσ logits
        self.bounds = LogSigmaBounds(act_dim, *log_sigma_bounds)

    def initial(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """λ_0: μ = 0, log σ = log init_sigma, the same for every state (A.4)."""
        mu = obs.new_zeros(obs.shape[0], self.act_dim)
        return mu, torch.full_like(mu, math.log(self.init_sigma))

    def step(
        self, obs: Tensor, mu: Tensor, log_sigma: Tensor, grad_mu: Tensor, grad_log_sigma: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """One gated update λ ← ω ⊙ λ + (1 − ω) ⊙ δ (eq. 12); log σ then goes through the soft bounds."""
        inputs = (obs, mu, log_sigma, grad_mu, grad_log_sigma)
        h = self.trunk(torch.cat([norm(x) for norm, x in zip(self.norms, inputs, strict=True)], -1))
        delta_mu, delta_ls, gate_mu, gate_ls = self.head(h).chunk(4, -1)
        omega_mu, omega_ls = torch.sigmoid(gate_mu), torch.sigmoid(gate_ls)
        mu = omega_mu * mu + (1.0 - omega_mu) * delta_mu
        log_sigma = self.bounds(omega_ls * log_sigma + (1.0 - omega_ls) * delta_ls)
        return mu, log_sigma

    def optimize(
        self, objective: Objective, train: bool = False, n_iters: int | None = None,
        score: bool = True,
    ) -> Trace:
        """Run K iterations from λ_0 (Algorithm 2).

        Each iteration estimates J at λ_i with fresh samples and feeds ∇_λ J (detached) to the
        network. Training (code §2.5): every iterate λ_i, i = 1…K, depends on φ only through its
        last update (inputs and the gated old value are detached: one-step truncation), and the
        loss is the mean over i = 1…K of −J(s, λ_i); the samples that score λ_i also give the
        gradient input of the next step. Acting (`train=False`) skips scoring λ_K unless `score`.
        """
        n_iters = self.n_iters if n_iters is None else n_iters
        mu, log_sigma = self.initial(objective.obs)
        trace = Trace(mu, log_sigma)
        losses: list[Tensor] = []
        for i in range(n_iters + 1):
            last = i == n_iters
            if last and not (train or score):
                break
            if i == 0 or not train:
                mu, log_sigma = mu.detach().requires_grad_(), log_sigma.detach().requires_grad_()
            with torch.enable_grad():
                est = objective(mu, log_sigma)
            trace.J.append(est.J.detach())
            if i > 0 and train:
                losses.append(-est.J.mean())
            if last:
                trace.final = est
                break
            with torch.enable_grad():
                grad_mu, grad_ls = torch.autograd.grad(
                    est.J.sum(), (mu, log_sigma), retain_graph=train and i > 0
                )
            with torch.set_grad_enabled(train):
                mu, log_sigma = self.step(
                    objective.obs, mu.detach(), log_sigma.detach(), grad_mu, grad_ls
                )
        trace.mu, trace.log_sigma = (mu, log_sigma) if train else (mu.detach(), log_sigma.detach())
        if train:
            trace.loss = torch.stack(losses).mean()
        return trace
