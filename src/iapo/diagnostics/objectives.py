"""The agent's objective J(s, λ) as the diagnostics evaluate it: with the β they choose (`--beta`), from
the agent's own estimate λ, from random initializations, with common noise across λ, and over a flow
policy's base λ (`PolicyObjective`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from iapo.agent import Agent
from iapo.config import RunConfig
from iapo.diagnostics.options import option
from iapo.distributions import log_prob
from iapo.errors import DiagnosticError
from iapo.objective import Estimate, Objective
from iapo.optimizers.base import PolicyOptimizer, Trace

BETA_HELP = ("β of eq. 13 inside J: acting (evaluation mode, 1 by A.4: the paper does not say; "
             "the authors' code ran every analysis so) | train (the run's training β: 2.5, Hopper "
             "1.5, direct 1) | a number")


def beta_option() -> Any:
    """The `--beta` option of the analyses of J: default `acting` (β = 1), the same for every run,
    so direct and iterative agents are compared on the same objective."""
    return option("acting", BETA_HELP)


def resolve_beta(cfg: RunConfig, spec: str) -> float:
    """β of eq. 13 for J: `train` (the run's training β, the objective its optimizer was trained
    on), `acting` (β used to collect data and evaluate, 1 in A.4), or a number."""
    if spec == "train":
        return float(cfg.beta)
    if spec == "acting":
        return float(cfg.training.beta_acting)
    try:
        return float(spec)
    except ValueError:
        raise DiagnosticError(f"--beta {spec!r}: expected train, acting or a number") from None


def objective(agent: Agent, obs: Tensor, beta: float, n_samples: int | None = None) -> Objective:
    """The agent's J(s, ·) (its value estimator, α, the Q-networks `policy_q` names) with N samples."""
    n = agent.cfg.training.n_action_samples if n_samples is None else n_samples
    online = agent.cfg.training.policy_q == "online"
    return Objective(agent.value_fn(beta, online), obs, agent.alpha, n)


def amortized(agent: Agent, obs: Tensor, beta: float, n_iters: int | None = None,
              init: tuple[Tensor, Tensor] | None = None) -> Trace:
    """The agent's own policy estimate λ at `obs` (its optimizer, K iterations unless told; an
    iterative optimizer from `init` instead of its λ_0 if given)."""
    extra = {} if init is None else {"init": init}
    return agent.optimizer.optimize(objective(agent, obs, beta), n_iters=n_iters, score=False, **extra)


INIT_SCALE = 0.3
"""Random initializations of optimization runs: μ_0 ~ 0.3·N(0, I) (pre-tanh; `random_means`)."""


def random_means(n_runs: int, act_dim: int, seed: int, device: str | torch.device = "cpu") -> Tensor:
    """μ_0 [n_runs, act_dim] ~ 0.3·N(0, I), pre-tanh, from a private generator seeded with `seed`.

    Why this distribution: the paper says runs start from different initializations (Fig. 2: 'each
    square denotes an initialization'; B.7 credits multiple modes to 'stochasticity in the
    optimization procedure as well as initialization') but not how they were drawn; the authors'
    surface code drew each of its 10 runs' means as 0.3·N(0, I), and where the paper is silent we
    follow the code. The scale keeps the starts near the optimizer's trained λ_0 (μ = 0), so its
    inputs resemble those it learned on, while the runs start visibly apart: tanh(0.3 z) puts about
    two thirds of them within ±0.29 of the centre of the action range, per dimension.
    """
    gen = torch.Generator().manual_seed(seed % 2**63)
    return (INIT_SCALE * torch.randn(n_runs, act_dim, generator=gen)).to(device)


def fixed_noise(n_samples: int, act_dim: int, seed: int, device: str | torch.device = "cpu") -> Tensor:
    """ε [N, 1, n] from a private generator: common random numbers for comparing J across λ."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n_samples, 1, act_dim, generator=gen).to(device)


@torch.no_grad()
def evaluate_J(obj: Objective, mu: Tensor, log_sigma: Tensor, eps: Tensor) -> Estimate:
    """J at λ with the given noise ε [N, 1 or B, n]: a_k = tanh(μ + σ ε_k), then `Objective.score`.

    The same ε for every λ (common random numbers) makes differences of J between two estimates of
    the same state far less noisy than independent N-sample estimates.
    """
    u = mu + log_sigma.exp() * eps
    return obj.score(torch.tanh(u), log_prob(u, mu, log_sigma))


class PolicyObjective(Objective):
    """J(s, λ) of the policy an optimizer builds from its per-state output λ = (μ, log σ), for an
    optimizer with a policy of its own (not `tanh_normal`): direct + flow (B.2), where λ is the base
    Gaussian's and the flow transforms, global and state-independent, are held fixed.

    J is scored on the optimizer's own reparameterised samples and exact log-densities
    (`PolicyOptimizer.sample`), i.e. exactly the objective the agent trains on
    (`DirectFlowOptimizer.optimize`); gradients reach λ through the flow, never the flow's weights
    (the agent is frozen). Every way to evaluate J goes through `__call__` (`value_and_grad` by
    autograd through it).
    """

    def __init__(self, base: Objective, optimizer: PolicyOptimizer) -> None:
        super().__init__(base.value_fn, base.obs, base.alpha, base.n_samples)
        self.optimizer = optimizer

    def __call__(self, mu: Tensor, log_sigma: Tensor) -> Estimate:
        return self.score(*self.optimizer.sample(Trace(mu, log_sigma), self.n_samples))

    def with_samples(self, n_samples: int) -> PolicyObjective:
        return PolicyObjective(Objective(self.value_fn, self.obs, self.alpha, n_samples), self.optimizer)


def policy_objective(agent: Agent, obj: Objective) -> Objective:
    """J as a function of what the agent's optimizer outputs per state: `obj` itself for a tanh-Normal
    λ = (μ, log σ); a `PolicyObjective` (base λ, transforms fixed) for a policy of its own (flow)."""
    return obj if agent.optimizer.tanh_normal else PolicyObjective(obj, agent.optimizer)


def common_noise_J(obj: Objective, n_samples: int, seed: int) -> Callable[[Tensor, Tensor], Estimate]:
    """λ ↦ J(s, λ) from `n_samples` samples of common noise: the same ε for every λ it is called at.

    A tanh-Normal objective: ε = `fixed_noise` [N, 1, n] (shared by the states) through `evaluate_J`.
    A `PolicyObjective` (flow): the policy's own sampler, run under a private generator state seeded
    with `seed`, so every call draws the same ε [N, B, n] and the global RNG is left untouched.
    """
    if not isinstance(obj, PolicyObjective):
        obj_eval = Objective(obj.value_fn, obj.obs, obj.alpha, n_samples)

        def tanh_normal(mu: Tensor, log_sigma: Tensor) -> Estimate:
            eps = fixed_noise(n_samples, mu.shape[-1], seed, mu.device)
            return evaluate_J(obj_eval, mu, log_sigma, eps)

        return tanh_normal
    policy_eval = obj.with_samples(n_samples)

    @torch.no_grad()
    def own_sampler(mu: Tensor, log_sigma: Tensor) -> Estimate:
        with torch.random.fork_rng(devices=[mu.device] if mu.device.type == "cuda" else []):
            torch.manual_seed(seed)
            return policy_eval(mu, log_sigma)

    return own_sampler
