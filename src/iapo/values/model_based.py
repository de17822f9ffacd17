"""Model-based value estimation (Appendix A.5): a learned model, short rollouts, Retrace (eq. 14-16)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from iapo.distributions import LOG2
from iapo.nets import init_linear, zero_linear
from iapo.objective import ValueFn

PolicySampler = Callable[[Tensor], tuple[Tensor, Tensor]]
"""s [..., S] → one action sample a [..., n] and its log-density log π(a | s) [...]."""


def model_trunk(n_in: int, n_layers: int, n_units: int) -> nn.Sequential:
    """Table 8: n_layers × (Linear → LayerNorm → LeakyReLU)."""
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers += [init_linear(nn.Linear(n_in if i == 0 else n_units, n_units), "leaky_relu"),
                   nn.LayerNorm(n_units), nn.LeakyReLU()]
    return nn.Sequential(*layers)


class DynamicsModel(nn.Module):
    """Separate state and reward networks, each a Gaussian with a learned constant std (A.5).

    The state network outputs a residual: μ_{s'} = s + Δ(s, a); the reward network outputs μ_r(s, a).
    Both start at zero output (Δ = 0, r = 0). Predictions used in rollouts are the means (A.5:
    "a single, deterministic model").
    """

    def __init__(self, obs_dim: int, act_dim: int, n_layers: int = 2, n_units: int = 256) -> None:
        super().__init__()
        self.state_net = nn.Sequential(model_trunk(obs_dim + act_dim, n_layers, n_units),
                                       zero_linear(n_units, obs_dim))
        self.reward_net = nn.Sequential(model_trunk(obs_dim + act_dim, n_layers, n_units),
                                        zero_linear(n_units, 1))
        self.state_log_std = nn.Parameter(torch.zeros(obs_dim))
        self.reward_log_std = nn.Parameter(torch.zeros(1))

    def forward(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """Mean next state and mean reward."""
        x = torch.cat([obs, action], -1)
        return obs + self.state_net(x), self.reward_net(x).squeeze(-1)

    def nll(self, obs: Tensor, action: Tensor, reward: Tensor, next_obs: Tensor) -> tuple[Tensor, Tensor]:
        """Gaussian negative log-likelihoods (per transition, summed over state dims), batch means."""
        mean_next, mean_reward = self(obs, action)
        return (gaussian_nll(next_obs, mean_next, self.state_log_std).sum(-1).mean(),
                gaussian_nll(reward, mean_reward, self.reward_log_std[0]).mean())


def gaussian_nll(x: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    return 0.5 * ((x - mean) * torch.exp(-log_std)).square() + log_std + 0.5 * math.log(2 * math.pi)


ModelFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
"""(s, a) → (mean next state, mean reward), e.g. a `DynamicsModel`."""


def retrace_value(
    model: ModelFn, q_fn: ValueFn, policy: PolicySampler, alpha: float | Tensor, gamma: float,
    lam: float, horizon: int,
) -> ValueFn:
    """Q̂_π(s, a) = Q̂_ψ(s, a) + Σ_{t<h} (γλ)^t δ_t over a model rollout (eq. 14).

    δ_t = r̂(s_t, a_t) + γ V̂_ψ(s_{t+1}) − Q̂_ψ(s_t, a_t) (eq. 15), with
    V̂_ψ(s) = Q̂_ψ(s, a) − α [log π(a | s) + n ln 2] for one policy sample a (eq. 16, uniform prior).
    The rollout uses the model's means and one action sample per step; gradients flow from Q̂_π
    back to the first action through the model and the rollout policy (pathwise). The sum runs over
    the h steps of the rollout, as in the authors' code (original_code.md §4.2).
    """

    def value(obs: Tensor, action: Tensor) -> Tensor:
        q_sa = q_fn(obs, action)
        total, s, a = q_sa, obs, action
        for t in range(horizon):
            s_next, r = model(s, a)
            a_next, log_pi = policy(s_next)
            q_next = q_fn(s_next, a_next)
            v_next = q_next - alpha * (log_pi + a_next.shape[-1] * LOG2)
            total = total + (gamma * lam) ** t * (r + gamma * v_next - q_sa)
            s, a, q_sa = s_next, a_next, q_next
        return total

    return value
