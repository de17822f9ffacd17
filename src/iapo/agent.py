"""The agent: a value estimator + a policy optimizer + temperature α, trained as in SAC (§4.1, A.4)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from iapo.config import RunConfig
from iapo.distributions import LOG2, kl_to_uniform, log_prob, rsample
from iapo.objective import Objective, ValueFn
from iapo.optimizers.direct import DirectOptimizer
from iapo.optimizers.iterative import IterativeOptimizer
from iapo.values.q_ensemble import QEnsemble, ensemble_std, pessimistic


@dataclass
class Batch:
    """B transitions (s, a, r, s', d) on the agent's device; d = 1 only on true termination."""

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    done: Tensor


def make_optimizer(cfg: RunConfig, obs_dim: int, act_dim: int) -> nn.Module:
    """The policy optimizer of the run's family: direct (eq. 10) or iterative (eq. 11-12)."""
    bounds = cfg.training.log_sigma_bounds
    if cfg.family == "direct":
        return DirectOptimizer(obs_dim, act_dim, cfg.policy, bounds)
    return IterativeOptimizer(
        obs_dim, act_dim, cfg.policy, bounds, cfg.n_iters, cfg.init_sigma, cfg.input_norm
    )


class Agent(nn.Module):
    """SAC with a pluggable policy optimizer (§4.1): two Q-networks with targets, tuned α."""

    def __init__(self, cfg: RunConfig, obs_dim: int, act_dim: int, device: str = "cpu") -> None:
        super().__init__()
        t = cfg.training
        self.cfg, self.act_dim, self.device = cfg, act_dim, torch.device(device)
        self.q = QEnsemble(obs_dim, act_dim, cfg.q_architecture)
        # Targets start equal to the online nets (SAC [32]); never trained by gradient.
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.optimizer = make_optimizer(cfg, obs_dim, act_dim)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(t.alpha_init)))
        # KL̂ ≤ κ = n (1 + ln 2) ⇔ entropy ≥ −n = −|A| (A.4 temperature; code §1.5)
        self.kl_target = act_dim * (1.0 + LOG2)
        self.to(self.device)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=t.lr)
        self.pi_opt = torch.optim.Adam(self.optimizer.parameters(), lr=t.lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=t.lr)
        self.n_updates = 0

    @property
    def alpha(self) -> Tensor:
        return self.log_alpha.exp().detach()

    def value_fn(self, beta: float, online: bool = False) -> ValueFn:
        """Q̂^β(s, a) of eq. 13 from the target nets (code §1.5) or, if asked, the online nets."""
        q = self.q if online else self.q_target
        std = self.cfg.training.pessimism_std
        return lambda obs, action: pessimistic(q(obs, action), beta, std)

    def objective(self, obs: Tensor, beta: float) -> Objective:
        """J(s, ·) under the pessimism β with the Q-networks named by `policy_q`."""
        online = self.cfg.training.policy_q == "online"
        t = self.cfg.training
        return Objective(self.value_fn(beta, online), obs, self.alpha, t.n_action_samples)

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Action in [−1, 1]^n for one state: tanh(μ) if deterministic, else a sample (β = β_acting)."""
        s = torch.as_tensor(obs, dtype=torch.float32, device=self.device).unsqueeze(0)
        trace = self.optimizer.optimize(self.objective(s, self.cfg.training.beta_acting), score=False)
        if deterministic:
            a = torch.tanh(trace.mu)
        else:
            a, _ = rsample(trace.mu, trace.log_sigma, 1)
        return a.reshape(-1).cpu().numpy()

    @torch.no_grad()
    def bellman_target(self, b: Batch) -> Tensor:
        """y = r + γ (1 − d) [Q̂^β_targ(s', a') − α KL̂(s')] (code §1.4).

        The policy estimate at s' comes from the optimizer under the training β; a' is the first of
        its N samples (n_target_action_samples = 1) while KL̂ uses all N, including n ln 2.
        """
        t = self.cfg.training
        trace = self.optimizer.optimize(self.objective(b.next_obs, self.cfg.beta), score=False)
        actions, u = rsample(trace.mu, trace.log_sigma, t.n_action_samples)
        kl = kl_to_uniform(log_prob(u, trace.mu, trace.log_sigma), self.act_dim)
        k = t.n_target_action_samples
        next_obs = b.next_obs.expand(k, *b.next_obs.shape)
        q_next = self.value_fn(self.cfg.beta)(next_obs, actions[:k]).mean(0)
        return b.reward + t.gamma * (1.0 - b.done) * (q_next - self.alpha * kl)

    def critic_loss(self, b: Batch) -> tuple[Tensor, dict[str, float]]:
        """Soft Bellman regression of both Q-networks: ½ Σ_i (Q_i(s, a) − y)², batch mean (code §1.4)."""
        y = self.bellman_target(b)
        qs = self.q(b.obs, b.action)
        loss = 0.5 * (qs - y).square().sum(0).mean()
        return loss, {
            "q_loss": loss.item(), "q1": qs[0].mean().item(), "q2": qs[1].mean().item(),
            "sigma_q": ensemble_std(qs).mean().item(), "q_target": y.mean().item(),
        }

    def policy_loss(self, b: Batch) -> tuple[Tensor, Tensor, dict[str, float]]:
        """−J(s, λ) for the optimizer's estimate (its own loss) + the log σ bound regulariser.

        Returns the loss, KL̂(s) at the final estimate (for α) and metrics (J per iteration).
        """
        t = self.cfg.training
        trace = self.optimizer.optimize(self.objective(b.obs, self.cfg.beta), train=True)
        n_iters = self.optimizer.n_iters
        reg = t.log_sigma_bound_reg * self.optimizer.bounds.width() / (n_iters * b.obs.shape[0])
        est = trace.final
        metrics = {
            "J": est.J.mean().item(), "entropy": (self.act_dim * LOG2 - est.kl).mean().item(),
            "policy_sigma": trace.log_sigma.exp().mean().item(),
            "policy_mu": trace.mu.mean().item(),
        }
        if isinstance(self.optimizer, IterativeOptimizer):
            metrics |= {f"J_iter{i}": J.mean().item() for i, J in enumerate(trace.J)}
        return trace.loss + reg, est.kl.detach(), metrics

    def alpha_loss(self, kl: Tensor) -> Tensor:
        """−α (KL̂ − κ): α grows when KL̂ > κ (entropy below −|A|), shrinks otherwise (code §1.5)."""
        return -(self.log_alpha.exp() * (kl - self.kl_target)).mean()

    def update(self, b: Batch) -> dict[str, float]:
        """One gradient step on the critics, the policy optimizer and α, then the targets."""
        q_loss, q_metrics = self.critic_loss(b)
        pi_loss, kl, pi_metrics = self.policy_loss(b)
        a_loss = self.alpha_loss(kl)
        losses = {"q_loss": q_loss, "policy_loss": pi_loss, "alpha_loss": a_loss}
        for name, value in losses.items():
            if not torch.isfinite(value):
                raise FloatingPointError(f"{name} is {value.item()} at update {self.n_updates + 1}")
        # Policy first: with policy_q=online its graph holds the online Q weights, which the critic
        # step changes in place; the critic's zero_grad then drops what the policy put on them.
        for opt, loss in ((self.pi_opt, pi_loss), (self.q_opt, q_loss), (self.alpha_opt, a_loss)):
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        self.n_updates += 1
        self.update_targets()
        return q_metrics | pi_metrics | {
            "policy_loss": pi_loss.item(), "alpha": self.alpha.item(), "alpha_loss": a_loss.item(),
        }

    @torch.no_grad()
    def update_targets(self) -> None:
        """Polyak averaging with rate τ (Table 7); optional hard copy every k updates (code §1.6)."""
        t = self.cfg.training
        hard = t.target_hard_copy_every and self.n_updates % t.target_hard_copy_every == 0
        for p, p_targ in zip(self.q.parameters(), self.q_target.parameters(), strict=True):
            if hard:
                p_targ.copy_(p)
            else:
                p_targ.lerp_(p, t.tau)

    def training_state(self) -> dict:
        """Everything needed to continue training exactly: networks, Adam states, counters."""
        return {
            "model": self.state_dict(), "q_opt": self.q_opt.state_dict(),
            "pi_opt": self.pi_opt.state_dict(), "alpha_opt": self.alpha_opt.state_dict(),
            "n_updates": self.n_updates,
        }

    def load_training_state(self, state: dict) -> None:
        self.load_state_dict(state["model"])
        self.q_opt.load_state_dict(state["q_opt"])
        self.pi_opt.load_state_dict(state["pi_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        self.n_updates = state["n_updates"]
