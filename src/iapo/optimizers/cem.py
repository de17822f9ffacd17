"""The cross-entropy method [66] on λ = (μ, σ): the gradient-free baseline of B.4 (original_code.md §2.8, §6).

Each iteration draws N actions from π_λ, ranks them, fits a Gaussian to the top k and moves λ a
step of size lr towards the fit (smoothed refit): μ ← (1 − lr) μ + lr μ_top, σ ← (1 − lr) σ + lr σ_top.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from iapo.distributions import kl_to_uniform, log_prob, rsample
from iapo.objective import Estimate, Objective
from iapo.optimizers.base import Trace
from iapo.optimizers.sgd import SIGMA_MIN


def per_sample_objective(objective: Objective, actions: Tensor, log_pi: Tensor) -> tuple[Tensor, Tensor]:
    """Each sample's term of eq. 8, j_k = Q̂(s, a_k) − α [log π(a_k) + n ln 2], and Q̂(s, a_k); both [N, B].

    Their mean over k is `objective.score(actions, log_pi).J` (tests/test_gradient_optimizers.py).
    """
    obs = objective.obs.expand(actions.shape[0], *objective.obs.shape)
    q = objective.value_fn(obs, actions)
    kl = kl_to_uniform(log_pi.unsqueeze(0), actions.shape[-1])  # one-sample KL terms, [N, B]
    return q - objective.alpha * kl, q


class CEM:
    """CEM over the tanh-Normal's pre-tanh Gaussian (B.4: 100 samples, top 10, step size 0.01).

    `rank="objective"` ranks samples by their term j_k of J (so the entropy term counts);
    `"q"` by Q̂(s, a_k) alone (CEM as in QT-Opt [41]). `space="pre_tanh"` fits the top samples'
    pre-tanh values u_k (a consistent refit of λ); `"tanh"` fits the actions a_k = tanh(u_k) and
    writes them into μ and σ, as the original code did (original_code.md §6, a quirk). J at each iterate is
    the N-sample mean of j_k (the code recorded the same).
    """

    name = "cem"

    def __init__(
        self, n_iters: int = 250, n_samples: int = 100, top_k: int = 10, lr: float = 0.01,
        init_sigma: float = 1.0, space: Literal["pre_tanh", "tanh"] = "pre_tanh",
        rank: Literal["objective", "q"] = "objective",
    ) -> None:
        if not 0 < top_k <= n_samples:
            raise ValueError(f"top_k must be in 1..n_samples ({n_samples}), got {top_k}")
        if space not in ("pre_tanh", "tanh") or rank not in ("objective", "q"):
            raise ValueError(f"space must be pre_tanh|tanh and rank objective|q, got {space!r}, {rank!r}")
        self.n_iters, self.n_samples, self.top_k, self.lr = n_iters, n_samples, top_k, lr
        self.init_sigma, self.space, self.rank = init_sigma, space, rank

    def optimize(
        self, objective: Objective, train: bool = False, n_iters: int | None = None,
        score: bool = True, init: tuple[Tensor, Tensor] | None = None, act_dim: int | None = None,
    ) -> Trace:
        """Run `n_iters` refits from `init` = (μ_0, log σ_0) (default μ = 0, σ = init_sigma)."""
        if train:
            raise ValueError("CEM has no parameters to train; it optimizes λ only")
        n_iters = self.n_iters if n_iters is None else n_iters
        if init is None:
            if act_dim is None:
                raise ValueError("give `init` = (μ, log σ) or `act_dim`")
            mu = objective.obs.new_zeros(objective.obs.shape[0], act_dim)
            init = mu, torch.full_like(mu, math.log(self.init_sigma))
        mu, sigma = init[0].detach().clone(), init[1].detach().exp()
        trace = Trace(mu, sigma.log())
        n = mu.shape[-1]
        with torch.no_grad():
            for i in range(n_iters + 1):
                last = i == n_iters
                if last and not score:
                    break
                log_sigma = sigma.log()
                actions, u = rsample(mu, log_sigma, self.n_samples)
                log_pi = log_prob(u, mu, log_sigma)
                j, q = per_sample_objective(objective, actions, log_pi)
                trace.J.append(j.mean(0))
                if last:
                    kl = kl_to_uniform(log_pi, n)
                    trace.final = Estimate(J=j.mean(0), q=q.mean(0), kl=kl, actions=actions, log_pi=log_pi)
                    break
                top = (j if self.rank == "objective" else q).topk(self.top_k, dim=0).indices  # [k, B]
                fit_to = u if self.space == "pre_tanh" else actions
                elite = fit_to.gather(0, top.unsqueeze(-1).expand(-1, -1, n))                # [k, B, n]
                mu = (1.0 - self.lr) * mu + self.lr * elite.mean(0)
                sigma = (1.0 - self.lr) * sigma + self.lr * elite.std(0, unbiased=False)
                sigma = sigma.clamp(min=SIGMA_MIN)
        trace.mu, trace.log_sigma = mu, sigma.log()
        return trace
