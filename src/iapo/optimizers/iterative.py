"""Iterative amortization: λ ← f_φ(s, λ, ∇_λ J), a learned, gated update run K times (eq. 11-12)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iapo.config import Network
from iapo.distributions import LogSigmaBounds, soft_clamp
from iapo.nets import mlp, zero_linear
from iapo.objective import Objective
from iapo.optimizers.base import PolicyOptimizer, Trace


class Standardize(nn.Module):
    """Per-state standardisation over the last axis, no affine (original_code.md §2.2)."""

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


@dataclass
class StepConstants:
    """Per-call constants of `IterativeOptimizer.fused_step`."""

    obs_normed: Tensor          # the state through its input normaliser
    layers: list                # trunk and head: (weight, bias) of each Linear, else the nonlinearity
    one: Tensor                 # 1.0 (a tensor operand costs less than a Python number)
    block_norms: list           # the normalisers of μ, log σ, ∇μJ, ∇logσJ
    eps: float                  # LayerNorm ε of the action blocks
    block_weight: Tensor | None  # [4, n] LayerNorm affine of μ, log σ, ∇μJ, ∇logσJ (None: not LayerNorm)
    block_bias: Tensor | None


Constraint = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
"""(μ, log σ) ↦ (μ, log σ): applied to each new iterate by an analysis (`IterativeOptimizer.optimize`)."""

class IterativeOptimizer(PolicyOptimizer):
    """Iterative amortized policy optimizer (§3.1, Algorithm 2; Table 1: in s, λ, ∇λJ; out δ, ω).

    One iteration (eq. 12, for p ∈ {μ, log σ}):  p ← ω_p ⊙ p + (1 − ω_p) ⊙ δ_p, with δ, ω from a
    2×256 ReLU network (Table 2) whose heads start at zero (ω = 0.5, δ = 0; original_code.md §2.2).
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
        # `fused` (PolicyOptimizer): `optimize` runs the one-gradient-per-iteration loop
        # (`optimize_fused`), `act` the loop without J (`act_fused`); else the reference loop. Same
        # samples, same math (tests/test_fast_paths.py).

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

    def fused_step(
        self, prep: StepConstants, mu: Tensor, log_sigma: Tensor, grad_mu: Tensor, grad_log_sigma: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """`step` with fewer operations and the same arithmetic (bit-identical; tests/test_fast_paths.py).

        The per-call constants come prepared (`prepare`: the state is the same at every iteration),
        the four action-block LayerNorms run as one, and eq. 12 updates λ = [μ, log σ] at once.
        """
        n, rows = self.act_dim, mu.shape[0]
        x = torch.cat([mu, log_sigma, grad_mu, grad_log_sigma], -1)
        if prep.block_weight is None:
            x = torch.cat([norm(b) for norm, b in zip(prep.block_norms, x.split(n, -1), strict=True)], -1)
        else:  # LayerNorm of each n-block, then its own affine: exactly what nn.LayerNorm computes
            x = F.layer_norm(x.view(rows, 4, n), (n,), eps=prep.eps)
            x = torch.addcmul(prep.block_bias, x, prep.block_weight).view(rows, 4 * n)
        x = torch.cat([prep.obs_normed, x], -1)
        for layer in prep.layers:
            x = F.linear(x, *layer) if isinstance(layer, tuple) else layer(x)
        omega = torch.sigmoid(x[:, 2 * n:])
        lam = omega * torch.cat([mu, log_sigma], -1) + (prep.one - omega) * x[:, : 2 * n]
        return lam[:, :n], soft_clamp(lam[:, n:], self.bounds.low, self.bounds.high)

    def prepare(self, obs: Tensor) -> StepConstants:
        """What `fused_step` reuses across the iterations of one call (differentiable in training)."""
        layers, norms, eps, block_weight, block_bias = self._step_weights()
        return StepConstants(
            obs_normed=self.norms[0](obs), layers=layers, one=obs.new_ones(()), block_norms=norms,
            eps=eps, block_weight=block_weight, block_bias=block_bias,
        )

    def _step_weights(self) -> tuple[list, list, float, Tensor | None, Tensor | None]:
        """The network's layers as (weight, bias) or nonlinearity, the action blocks' normalisers,
        their LayerNorm ε and stacked affine [4, n] (None unless all four are LayerNorms)."""
        norms = list(self.norms)[1:]
        layer_norms = all(isinstance(m, nn.LayerNorm) for m in norms)
        layers = [(m.weight, m.bias) if isinstance(m, nn.Linear) else torch.relu if type(m) is nn.ReLU else m
                  for m in (*self.trunk, self.head)]
        if not layer_norms:
            return layers, norms, 0.0, None, None
        return (layers, norms, norms[0].eps, torch.stack([m.weight for m in norms]),
                torch.stack([m.bias for m in norms]))

    def optimize(
        self, objective: Objective, train: bool = False, n_iters: int | None = None,
        score: bool = True, init: tuple[Tensor, Tensor] | None = None, constrain: Constraint | None = None,
    ) -> Trace:
        """Run K iterations from λ_0 (Algorithm 2).

        Each iteration estimates J at λ_i with fresh samples and feeds ∇_λ J (detached) to the
        network. Training (original_code.md §2.5): every iterate λ_i, i = 1…K, depends on φ only through its
        last update (inputs and the gated old value are detached: one-step truncation), and the
        loss is the mean over i = 1…K of −J(s, λ_i); the samples that score λ_i also give the
        gradient input of the next step. Acting (`train=False`) skips scoring λ_K unless `score`.
        This is the reference loop (autograd through J twice per iteration when training); with
        `self.fused` the same result comes from `optimize_fused`.

        Analyses only: `init` replaces λ_0 = `initial(s)`; `constrain` maps every new iterate λ_{i+1}
        (A.1: the dimensions not plotted are reset to their initial values after each iteration).
        """
        if self.fused:
            return self.optimize_fused(objective, train, n_iters, score, init, constrain)
        n_iters = self.n_iters if n_iters is None else n_iters
        mu, log_sigma = self.initial(objective.obs) if init is None else init
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
            if constrain is not None:
                mu, log_sigma = constrain(mu, log_sigma)
        trace.mu, trace.log_sigma = (mu, log_sigma) if train else (mu.detach(), log_sigma.detach())
        if train:
            trace.loss = torch.stack(losses).mean()
        return trace

    def optimize_fused(
        self, objective: Objective, train: bool = False, n_iters: int | None = None,
        score: bool = True, init: tuple[Tensor, Tensor] | None = None, constrain: Constraint | None = None,
    ) -> Trace:
        """`optimize` with one gradient evaluation of J per iteration and no retained graph.

        In training, ∂L/∂φ = −(1/(K B)) Σ_{i=1..K} Σ_b ∇_λ J(s_b, λ_i) · ∂λ_i/∂φ (original_code.md §2.5:
        λ_i depends on φ only through its last update), and ∇_λ J(s, λ_i) is also the network's input at step
        i + 1. So each iteration computes J and ∇_λ J once (`Objective.value_and_grad`) and the loss
        is the surrogate −(1/(K B)) Σ_i ⟨λ_i(φ), ∇_λ J_i⟩ (gradients fixed), shifted to the value
        mean_i −J̄_i: same value and same φ-gradient as the reference, same samples.
        """
        n_iters = self.n_iters if n_iters is None else n_iters
        mu, log_sigma = self.initial(objective.obs) if init is None else init
        trace = Trace(mu, log_sigma)
        prep = self.prepare(objective.obs)
        losses: list[Tensor] = []
        surrogate: list[Tensor] = []
        for i in range(n_iters + 1):
            last = i == n_iters
            if last and not (train or score):
                break
            if last and not train:  # acting, scoring λ_K: the value is enough
                with torch.no_grad():
                    est = objective(mu, log_sigma)
            else:
                est, grad_mu, grad_ls = objective.value_and_grad(mu, log_sigma)
            trace.J.append(est.J.detach())
            if i > 0 and train:
                losses.append(-est.J.mean())
                surrogate.append((mu * grad_mu).sum() + (log_sigma * grad_ls).sum())
            if last:
                trace.final = est
                break
            with torch.set_grad_enabled(train):
                mu, log_sigma = self.fused_step(prep, mu.detach(), log_sigma.detach(), grad_mu, grad_ls)
            if constrain is not None:
                mu, log_sigma = constrain(mu, log_sigma)
        trace.mu, trace.log_sigma = (mu, log_sigma) if train else (mu.detach(), log_sigma.detach())
        if train:
            pull = -torch.stack(surrogate).sum() / (len(surrogate) * objective.obs.shape[0])
            trace.loss = torch.stack(losses).mean() + (pull - pull.detach())
        return trace

    def act(self, objective: Objective) -> Trace:
        """λ_K for acting: `act_fused` on the fast path, else `optimize(objective, score=False)`."""
        return self.act_fused(objective) if self.fused else self.optimize(objective, score=False)

    @torch.no_grad()
    def act_fused(self, objective: Objective) -> Trace:
        """λ_K for acting, as `optimize(objective, score=False)` but without recording J (`trace.J` is
        empty): each iteration needs only ∇_λ J (same samples).

        Per iteration `Objective.grad_fn` (∇_λ J only; by hand with `FusedValue`) and `fused_step`.
        """
        mu, log_sigma = self.initial(objective.obs)
        prep, grad = self.prepare(objective.obs), objective.grad_fn()
        for _ in range(self.n_iters):
            grad_mu, grad_ls = grad(mu, log_sigma)
            mu, log_sigma = self.fused_step(prep, mu, log_sigma, grad_mu, grad_ls)
        return Trace(mu, log_sigma)
