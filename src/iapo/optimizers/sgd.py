"""Gradient ascent on λ = (μ, σ) by SGD: an analysis-only policy optimizer (A.3; original_code.md §2.8, §6).

Every state of the batch has its own λ; the loss is −Σ_s J(s, λ_s), so each λ_s moves with its own
gradient exactly as if the states were optimized one at a time (Adam's statistics are per element
too). Like the amortized optimizers, `optimize` maps (objective, λ_0) to λ and the trace of J.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from iapo.objective import Estimate, Objective
from iapo.optimizers.base import Trace

SigmaParam = Literal["sigma", "log_sigma"]
SIGMA_MIN = math.exp(-10.0)  # the lower log σ bound the agents start from (original_code.md §1.1)


@dataclass
class GradientTrace(Trace):
    """A `Trace` plus, per state, how many steps were taken (all of them unless stopped early)."""

    n_steps: Tensor | None = None


def value_and_grad(objective: Objective, mu: Tensor, log_sigma: Tensor) -> tuple[Estimate, Tensor, Tensor]:
    """J at λ and ∇_λ J = (∇_μ J, ∇_{log σ} J) per state, from one set of N samples.

    Uses the objective's own `value_and_grad` when it has one (the same fast path the iterative
    optimizer takes, so wall-clock comparisons are fair), else autograd through `objective(μ, log σ)`.
    """
    if hasattr(objective, "value_and_grad"):
        return objective.value_and_grad(mu, log_sigma)
    mu, log_sigma = mu.detach().requires_grad_(), log_sigma.detach().requires_grad_()
    with torch.enable_grad():
        est = objective(mu, log_sigma)
        grad_mu, grad_log_sigma = torch.autograd.grad(est.J.sum(), (mu, log_sigma))
    return est, grad_mu, grad_log_sigma


class GradientAscent:
    """Gradient ascent on J(s, λ) with a torch optimizer; fresh reparameterised samples every step.

    `sigma_param="sigma"` updates raw σ (λ = [μ, σ] as written in §3.1 and A.3, and as the code
    did), clamped to σ ≥ e^−10 after each step; `"log_sigma"` updates log σ. With
    `stop="no_improvement"` (the original code's amortization-gap routine, original_code.md §6) a state
    stops at the first step whose N-sample estimate of J does not exceed its best so far, and keeps that
    best iterate; `n_iters` is then a cap.
    """

    name = "sgd"

    def __init__(
        self, lr: float, n_iters: int, sigma_param: SigmaParam = "sigma", init_sigma: float = 1.0,
        stop: Literal["fixed", "no_improvement"] = "fixed",
    ) -> None:
        if sigma_param not in ("sigma", "log_sigma"):
            raise ValueError(f"sigma_param must be 'sigma' or 'log_sigma', got {sigma_param!r}")
        if stop not in ("fixed", "no_improvement"):
            raise ValueError(f"stop must be 'fixed' or 'no_improvement', got {stop!r}")
        self.lr, self.n_iters, self.sigma_param = lr, n_iters, sigma_param
        self.init_sigma, self.stop = init_sigma, stop

    def torch_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr)

    def initial(self, obs: Tensor, act_dim: int) -> tuple[Tensor, Tensor]:
        """λ_0 = (μ = 0, σ = init_sigma) when no initialization is given (as the iterative optimizer)."""
        mu = obs.new_zeros(obs.shape[0], act_dim)
        return mu, torch.full_like(mu, math.log(self.init_sigma))

    def optimize(
        self, objective: Objective, train: bool = False, n_iters: int | None = None,
        score: bool = True, init: tuple[Tensor, Tensor] | None = None, act_dim: int | None = None,
    ) -> GradientTrace:
        """Ascend J from `init` = (μ_0, log σ_0) [B, n] for `n_iters` steps.

        The trace holds J at λ_0 … λ_T, each the N-sample estimate whose gradient made the next
        step (λ_T is scored only if `score`). `act_dim` is needed only when `init` is None.
        """
        if train:
            raise ValueError(f"{type(self).__name__} has no parameters to train; it optimizes λ only")
        n_iters = self.n_iters if n_iters is None else n_iters
        if init is None:
            if act_dim is None:
                raise ValueError("give `init` = (μ, log σ) or `act_dim`")
            init = self.initial(objective.obs, act_dim)
        mu0, log_sigma0 = (x.detach() for x in init)
        mu = mu0.clone()
        scale = (log_sigma0.exp() if self.sigma_param == "sigma" else log_sigma0).clone()
        opt = self.torch_optimizer([mu, scale])
        early = self.stop == "no_improvement"
        best_mu, best_ls = mu0.clone(), log_sigma0.clone()
        best_J = torch.full(mu0.shape[:1], -math.inf, device=mu0.device, dtype=mu0.dtype)
        active = torch.ones_like(best_J, dtype=torch.bool)
        n_steps = torch.zeros_like(best_J, dtype=torch.long)
        trace = GradientTrace(mu0, log_sigma0)
        for i in range(n_iters + 1):
            last = i == n_iters
            if last and not score:
                break
            log_sigma = scale.log() if self.sigma_param == "sigma" else scale
            if last:
                with torch.no_grad():
                    est = objective(mu, log_sigma)
            else:
                est, grad_mu, grad_ls = value_and_grad(objective, mu, log_sigma)
            J = est.J.detach()
            if early:
                improved = active & (best_J < J)
                active = improved  # a state stops at its first non-improving step
                best_J = torch.where(improved, J, best_J)
                best_mu = torch.where(improved[:, None], mu, best_mu)
                best_ls = torch.where(improved[:, None], log_sigma, best_ls)
                n_steps += (improved & (i > 0)).long()
                trace.J.append(best_J.clone())
                if not active.any():
                    break
            else:
                trace.J.append(J)
            if last:
                trace.final = est
                break
            # ascent on J: the optimizer descends −J; ∂J/∂σ = ∂J/∂log σ / σ for the raw-σ parameter
            grad_scale = grad_ls / scale if self.sigma_param == "sigma" else grad_ls
            if early:  # stopped states get no gradient; their result is the best iterate kept above
                grad_mu, grad_scale = grad_mu * active[:, None], grad_scale * active[:, None]
            mu.grad, scale.grad = -grad_mu, -grad_scale
            opt.step()
            if self.sigma_param == "sigma":
                scale.clamp_(min=SIGMA_MIN)
            if not early:
                n_steps += 1
        if early:
            trace.mu, trace.log_sigma = best_mu, best_ls
        else:
            trace.mu = mu.clone()
            trace.log_sigma = scale.log() if self.sigma_param == "sigma" else scale.clone()
        trace.n_steps = n_steps
        return trace


class SGD(GradientAscent):
    """Plain stochastic gradient ascent (original_code.md §2.8: SGD on raw (μ, σ); §6: lr 1e-4 until
    the 10-sample objective stops improving, the original amortization-gap estimator)."""

    name = "sgd"
