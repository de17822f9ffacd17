"""The agent: a value estimator + a policy optimizer + temperature α, trained as in SAC (§4.1, A.4)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from iapo.config import RunConfig
from iapo.distributions import LOG2, gaussian_kl, kl_to_uniform
from iapo.envs import make_env, scale_action
from iapo.errors import CheckpointError
from iapo.graphs import StaticSteps, set_capturable
from iapo.objective import Objective, ValueFn
from iapo.optimizers.base import PolicyOptimizer, Trace
from iapo.optimizers.direct import DirectOptimizer
from iapo.optimizers.flow import DirectFlowOptimizer
from iapo.optimizers.iterative import IterativeOptimizer
from iapo.values.model_based import DynamicsModel, retrace_value
from iapo.values.q_ensemble import QEnsemble, ensemble_std, pessimistic


@dataclass
class Batch:
    """B transitions (s, a, r, s', d) on the agent's device; d = 1 only on true termination."""

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    done: Tensor

    def tensors(self) -> tuple[Tensor, ...]:
        """(s, a, r, s', d): `Batch(*b.tensors())` is `b` again."""
        return self.obs, self.action, self.reward, self.next_obs, self.done


def make_optimizer(cfg: RunConfig, obs_dim: int, act_dim: int) -> PolicyOptimizer:
    """The policy optimizer of the run's family: direct (eq. 10), iterative (eq. 11-12), direct+flow."""
    bounds = cfg.training.log_sigma_bounds
    if cfg.family == "direct":
        return DirectOptimizer(obs_dim, act_dim, cfg.policy, bounds)
    if cfg.family == "direct_flow":
        return DirectFlowOptimizer(obs_dim, act_dim, cfg.policy, bounds, cfg.n_flows)
    return IterativeOptimizer(
        obs_dim, act_dim, cfg.policy, bounds, cfg.n_iters, cfg.init_sigma, cfg.input_norm
    )


def frozen(module: nn.Module) -> Callable:
    """`module` as a function of its inputs only: same weights, detached from their gradients."""
    params = {name: p.detach() for name, p in module.named_parameters()}
    return lambda *args: torch.func.functional_call(module, params, args)


Metrics = dict[str, Tensor]
"""Logged numbers of one update: 0-dim tensors on the agent's device, read by the loop in batches."""


def detached(metrics: dict[str, Tensor]) -> Metrics:
    return {k: v.detach() for k, v in metrics.items()}


class Agent(nn.Module):
    """SAC with a pluggable policy optimizer (§4.1): two Q-networks with targets, tuned α."""

    def __init__(self, cfg: RunConfig, obs_dim: int, act_dim: int,
                 device: torch.device | str = "cpu") -> None:
        super().__init__()
        t = cfg.training
        self.cfg, self.obs_dim, self.act_dim, self.device = cfg, obs_dim, act_dim, torch.device(device)
        # for an agent rebuilt from a snapshot (`from_snapshot`): its file and the env step it was taken at
        self.source: Path | None = None
        self.env_step: int | None = None
        self.q = QEnsemble(obs_dim, act_dim, cfg.q_architecture)
        # Targets start equal to the online nets (SAC [32]); never trained by gradient.
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.optimizer = make_optimizer(cfg, obs_dim, act_dim)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(t.alpha_init)))
        # KL̂ ≤ κ = n (1 + ln 2) ⇔ entropy ≥ −n = −|A| (A.4 temperature; original_code.md §1.5)
        self.kl_target = act_dim * (1.0 + LOG2)
        self.model_based = cfg.value == "model_based"
        if self.model_based:  # A.5: a learned model, and a direct rollout policy for iterative agents
            mb = cfg.model_based
            self.model = DynamicsModel(obs_dim, act_dim, mb.n_layers, mb.n_units)
            self.rollout_policy = (
                DirectOptimizer(obs_dim, act_dim, cfg.policy, t.log_sigma_bounds)
                if cfg.family == "iterative" else self.optimizer
            )
        # Fast path (`training.fused`): the optimizers compute J and ∇_λ J once per
        # iteration, and a plain Q ensemble inside J is evaluated by `FusedValue` (stacked members,
        # hand-derived ∇_a Q̂). `fused: false` runs the reference autograd path.
        from iapo.allocator import keep_freed_memory
        from iapo.values.fused import supports

        self.optimizer.fused = t.fused
        self.fused_q = t.fused and not self.model_based and supports(self.q)
        if t.fused:
            keep_freed_memory()  # no page faults for the update's activations (process-wide)
        self.to(self.device)
        # Adam in its default form; capturable when the update is captured (`use_static_buffers`)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=t.lr)
        self.pi_opt = torch.optim.Adam(self.optimizer.parameters(), lr=t.lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=t.lr)
        self.extra_opts: dict[str, torch.optim.Optimizer] = {}
        if self.model_based:
            self.extra_opts["model"] = torch.optim.Adam(self.model.parameters(), lr=t.lr)
            if self.rollout_policy is not self.optimizer:
                self.extra_opts["rollout"] = torch.optim.Adam(self.rollout_policy.parameters(), lr=t.lr)
        self.n_updates = 0
        # the first update whose losses were not all finite (0: none) and those losses: kept on the
        # device, read by `check_finite` only when the training loop logs or saves
        self.nonfinite_at = torch.zeros((), dtype=torch.long, device=self.device)
        self.nonfinite_losses: Tensor | None = None
        self.loss_names: list[str] = []
        # `n_updates` on the device: what the update itself reads (a captured graph cannot read a
        # Python number that changes per update)
        self.update_count = torch.zeros((), dtype=torch.long, device=self.device)
        # `training.graphs: on` on CUDA: update and acting captured as CUDA graphs (`iapo.graphs`)
        self.graphs: StaticSteps | None = None
        if t.graphs == "on" and self.device.type == "cuda":
            self.use_static_buffers(capture=True)

    def use_static_buffers(self, capture: bool) -> None:
        """Run `update` and `act_on_device` on static buffers (`iapo.graphs.StaticSteps`), captured
        as CUDA graphs if `capture`. Call it after the agent's last move (`.to`): a graph reads the
        parameters where they were at its capture. Called again after a state is loaded: the
        graphs are captured anew."""
        self.graphs = StaticSteps(self.update_static, self.act_static, self.adams(), capture)

    def adams(self) -> list[torch.optim.Optimizer]:
        return [self.q_opt, self.pi_opt, self.alpha_opt, *self.extra_opts.values()]

    def with_optimizer(self, optimizer: nn.Module) -> Agent:
        """This agent acting with another policy optimizer (§4.2.5 transfer): the Q-networks, α and
        model are shared, not copied. A shallow copy with its own module table, so that setting the
        optimizer does not reach `self` (`copy.copy` of a module shares `_modules`)."""
        other = copy.copy(self)
        other._modules = dict(self._modules)
        other.optimizer = optimizer
        if other.graphs is not None:  # its own graphs, of its own optimizer
            other.use_static_buffers(self.graphs.capture)
        return other

    @property
    def dtype(self) -> torch.dtype:
        """The parameters' dtype (float32; float64 when a test runs the agent in double precision);
        states and batches are cast to it."""
        return self.log_alpha.dtype

    @property
    def alpha(self) -> Tensor:
        return self.log_alpha.exp().detach()

    def q_value_fn(self, beta: float, online: bool = False) -> ValueFn:
        """Model-free Q̂^β(s, a) of eq. 13 from the target nets (original_code.md §1.5) or the online nets."""
        q = self.q if online else self.q_target
        std = self.cfg.training.pessimism_std
        if self.fused_q:
            from iapo.values.fused import FusedValue

            return FusedValue(q, beta, std)
        return lambda obs, action: pessimistic(q(obs, action), beta, std)

    def value_fn(self, beta: float, online: bool = False) -> ValueFn:
        """The agent's value estimator: Q̂^β, or the model-based Retrace estimate on top of it (eq. 14)."""
        q_fn = self.q_value_fn(beta, online)
        if not self.model_based:
            return q_fn
        mb, t = self.cfg.model_based, self.cfg.training
        model = frozen(self.model)
        return retrace_value(model, q_fn, self.rollout_sample, self.alpha, t.gamma,
                             mb.retrace_lambda, mb.horizon)

    def rollout_sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """One action and its log π from the direct rollout policy at model-predicted states (A.5).

        Its parameters are held fixed inside J (original_code.md §4.2): the gradient reaches the first action
        through the rollout, never the rollout policy's or the model's weights.
        """
        mu, log_sigma = frozen(self.rollout_policy)(obs)
        actions, log_pi = self.rollout_policy.sample(Trace(mu, log_sigma), 1)
        return actions[0], log_pi[0]

    def objective(self, obs: Tensor, beta: float) -> Objective:
        """J(s, ·) under the pessimism β with the Q-networks named by `policy_q`."""
        online = self.cfg.training.policy_q == "online"
        t = self.cfg.training
        return Objective(self.value_fn(beta, online), obs, self.alpha, t.n_action_samples)

    @torch.no_grad()
    def policy(self, obs: Tensor) -> Trace:
        """λ = (μ, log σ) the agent acts with at states [B, S] (β = β_acting)."""
        return self.optimizer.act(self.objective(obs, self.cfg.training.beta_acting))

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Action in [−1, 1]^n for one state: tanh(μ) if deterministic, else a sample (β = β_acting).
        One host→device copy of the state, one device→host copy of the action."""
        s = torch.as_tensor(obs, dtype=self.dtype, device=self.device)
        return self.act_on_device(s, deterministic)[0].cpu().numpy()

    @torch.no_grad()
    def act_on_device(self, obs: Tensor, deterministic: bool = False) -> tuple[Tensor, Trace]:
        """`act` on a state tensor [S] already on the device: the action [n] and the λ it was drawn
        from (the training loop's online policy change reads it), both on the device. With static
        buffers (`use_static_buffers`) through `act_static`: the same computation."""
        if self.graphs is None:
            return self.act_step(obs, deterministic)
        out = self.graphs.act[deterministic](obs)
        return out["action"], Trace(out["mu"], out["log_sigma"])

    def act_step(self, obs: Tensor, deterministic: bool) -> tuple[Tensor, Trace]:
        """The action [n] at a state [S] (tanh μ or a sample, β = β_acting) and the policy λ."""
        trace = self.policy(obs.unsqueeze(0))
        a = self.optimizer.mode(trace) if deterministic else self.optimizer.sample(trace, 1)[0]
        return a.reshape(-1), trace

    def act_static(self, obs: Tensor, deterministic: bool) -> dict[str, Tensor]:
        """`act_step` on the static state buffer, as tensors only (what a CUDA graph of acting records)."""
        action, trace = self.act_step(obs, deterministic)
        return {"action": action, "mu": trace.mu, "log_sigma": trace.log_sigma}

    def target_policy(self, next_obs: Tensor) -> tuple[PolicyOptimizer, Trace]:
        """The policy at s' for the Bellman target: the agent's optimizer under the training β;
        for a model-based iterative agent its distilled direct policy (original_code.md §4.3)."""
        if self.model_based and self.rollout_policy is not self.optimizer:
            return self.rollout_policy, Trace(*self.rollout_policy(next_obs))
        return self.optimizer, self.optimizer.optimize(self.objective(next_obs, self.cfg.beta), score=False)

    @torch.no_grad()
    def bellman_target(self, b: Batch) -> Tensor:
        """y = r + γ (1 − d) [Q̂^β_targ(s', a') − α KL̂(s')] (original_code.md §1.4).

        The policy estimate at s' comes from `target_policy`; a' is the first of its N samples
        (n_target_action_samples = 1) while KL̂ uses all N, including n ln 2. Model-based agents
        bootstrap from the model-based estimate of eq. 14 (A.5, Table 9) unless told otherwise.
        """
        t = self.cfg.training
        policy, trace = self.target_policy(b.next_obs)
        actions, log_pi = policy.sample(trace, t.n_action_samples)
        kl = kl_to_uniform(log_pi, self.act_dim)
        k = t.n_target_action_samples
        next_obs = b.next_obs.expand(k, *b.next_obs.shape)
        mb_targets = self.model_based and self.cfg.model_based.model_value_targets
        value = (self.value_fn if mb_targets else self.q_value_fn)(self.cfg.beta)
        q_next = value(next_obs, actions[:k]).mean(0)
        return b.reward + t.gamma * (1.0 - b.done) * (q_next - self.alpha * kl)

    def critic_loss(self, b: Batch) -> tuple[Tensor, Metrics]:
        """Soft Bellman regression of both Q-networks: ½ Σ_i (Q_i(s, a) − y)², batch mean
        (original_code.md §1.4)."""
        y = self.bellman_target(b)
        qs = self.q(b.obs, b.action)
        loss = 0.5 * (qs - y).square().sum(0).mean()
        return loss, detached({
            "q_loss": loss, "q1": qs[0].mean(), "q2": qs[1].mean(),
            "sigma_q": ensemble_std(qs).mean(), "q_target": y.mean(),
        })

    def policy_loss(self, b: Batch) -> tuple[Tensor, Trace, Metrics]:
        """−J(s, λ) for the optimizer's estimate (its own loss) + the log σ bound regulariser.

        Returns the loss, the optimizer's trace (its final estimate gives KL̂(s) for α) and metrics.
        """
        t = self.cfg.training
        trace = self.optimizer.optimize(self.objective(b.obs, self.cfg.beta), train=True)
        n_iters = self.optimizer.n_iters
        reg = t.log_sigma_bound_reg * self.optimizer.bounds.width() / (n_iters * b.obs.shape[0])
        est = trace.final
        metrics = {
            "J": est.J.mean(), "entropy": (self.act_dim * LOG2 - est.kl).mean(),
            "policy_sigma": trace.log_sigma.exp().mean(), "policy_mu": trace.mu.mean(),
        }
        if isinstance(self.optimizer, IterativeOptimizer):
            metrics |= {f"J_iter{i}": J.mean() for i, J in enumerate(trace.J)}
        return trace.loss + reg, trace, detached(metrics)

    def alpha_loss(self, kl: Tensor) -> Tensor:
        """−α (KL̂ − κ): α grows when KL̂ > κ (entropy below −|A|), shrinks otherwise
        (original_code.md §1.5)."""
        return -(self.log_alpha.exp() * (kl - self.kl_target)).mean()

    def model_loss(self, b: Batch) -> tuple[Tensor, Metrics]:
        """Maximum likelihood of the state and reward models on replayed transitions (A.5)."""
        state_nll, reward_nll = self.model.nll(b.obs, b.action, b.reward, b.next_obs)
        return state_nll + reward_nll, detached({"model_state_nll": state_nll,
                                                 "model_reward_nll": reward_nll})

    def distill_loss(self, b: Batch, trace: Trace) -> Tensor:
        """KL(π_it ‖ π_dir) from the iterative estimate (fixed) to the direct rollout policy (A.5)."""
        mu, log_sigma = self.rollout_policy(b.obs)
        return gaussian_kl(trace.mu.detach(), trace.log_sigma.detach(), mu, log_sigma).mean()

    def update(self, b: Batch) -> Metrics:
        """One gradient step on the critics, the policy optimizer and α (and, model-based, the model
        and the rollout policy), then the target networks: `update_step`, then `after_update`.

        No host read: the metrics come back as 0-dim tensors on the device, and a non-finite loss is
        recorded on the device (`nonfinite_at`) for `check_finite`, which the training loop calls
        when it logs or saves; the steps after it are wasted, never saved. With static buffers
        (`use_static_buffers`) `update_step` runs through `update_static`: the same computation."""
        metrics = self.update_step(b) if self.graphs is None else self.graphs.update(*b.tensors())
        self.after_update()
        return metrics

    def update_step(self, b: Batch) -> Metrics:
        """The device part of `update`: losses, optimizer steps, Polyak averaging of the targets.

        Capturable as a CUDA graph: it reads no host number that changes between updates (the
        update count is `update_count`, on the device), branches on no tensor value, and updates
        every persistent tensor in place. Its samples come from the default generator, which a
        captured graph draws from through graph-safe RNG (new numbers on every replay)."""
        self.update_count.add_(1)
        q_loss, q_metrics = self.critic_loss(b)
        pi_loss, trace, pi_metrics = self.policy_loss(b)
        a_loss = self.alpha_loss(trace.final.kl.detach())
        # Policy first: with policy_q=online (or a model-based J) its graph holds weights that
        # later steps change in place; each later zero_grad drops what the policy put on them.
        steps = [("policy_loss", self.pi_opt, pi_loss), ("q_loss", self.q_opt, q_loss),
                 ("alpha_loss", self.alpha_opt, a_loss)]
        extra: Metrics = {}
        if self.model_based:
            m_loss, extra = self.model_loss(b)
            steps.append(("model_loss", self.extra_opts["model"], m_loss))
            if "rollout" in self.extra_opts:
                d_loss = self.distill_loss(b, trace)
                steps.append(("distill_kl", self.extra_opts["rollout"], d_loss))
                extra["distill_kl"] = d_loss.detach()
        self.record_nonfinite([name for name, _, _ in steps], [loss for _, _, loss in steps])
        for _, opt, loss in steps:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        self.polyak_update()
        return q_metrics | pi_metrics | extra | detached({
            "policy_loss": pi_loss, "alpha": self.alpha, "alpha_loss": a_loss,
        })

    def update_static(self, *tensors: Tensor) -> Metrics:
        """`update_step` on the static batch buffers (what a CUDA graph of the update records)."""
        return self.update_step(Batch(*tensors))

    def after_update(self) -> None:
        """The host part of `update`: count it; every k-th update, the optional hard copy of the
        targets (original_code.md §1.6), which replaces that update's Polyak average."""
        self.n_updates += 1
        k = self.cfg.training.target_hard_copy_every
        if k and self.n_updates % k == 0:
            with torch.no_grad():
                torch._foreach_copy_(list(self.q_target.parameters()), list(self.q.parameters()))

    def record_nonfinite(self, names: list[str], losses: list[Tensor]) -> None:
        """Remember, on the device, the first update (1-based, `update_count`) at which a loss is NaN
        or ±inf; in place, so that a captured graph keeps writing to the same tensors."""
        values = torch.stack([loss.detach() for loss in losses])
        if self.nonfinite_losses is None or names != self.loss_names:
            self.loss_names, self.nonfinite_losses = names, torch.zeros_like(values)
        first = (self.nonfinite_at == 0) & ~torch.isfinite(values).all()
        self.nonfinite_at.copy_(torch.where(first, self.update_count, self.nonfinite_at))
        self.nonfinite_losses.copy_(torch.where(first, values, self.nonfinite_losses))

    def check_finite(self) -> None:
        """FloatingPointError naming the first update with a non-finite loss, if there was one
        (one host read)."""
        at = int(self.nonfinite_at)
        if at:
            losses = ", ".join(f"{name} {value:.4g}" for name, value in
                               zip(self.loss_names, self.nonfinite_losses.tolist(), strict=True))
            raise FloatingPointError(f"a loss is not finite at update {at} ({losses})")

    def pretrain_model(self, batches: Iterable[Batch]) -> dict[str, float]:
        """Model-only updates on the random warm-up data before the first agent update (A.5)."""
        metrics: dict[str, float] = {}
        for b in batches:
            loss, metrics = self.model_loss(b)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"model loss is {loss.item()} during model pre-training")
            self.extra_opts["model"].zero_grad(set_to_none=True)
            loss.backward()
            self.extra_opts["model"].step()
        return metrics

    @torch.no_grad()
    def polyak_update(self) -> None:
        """θ̄ ← θ̄ + τ (θ − θ̄) for every target parameter, in place, as one multi-tensor op
        (Polyak averaging with rate τ, Table 7)."""
        torch._foreach_lerp_(list(self.q_target.parameters()), list(self.q.parameters()),
                             self.cfg.training.tau)

    def training_state(self) -> dict:
        """Everything needed to continue training exactly: networks, Adam states, counters."""
        return {
            "model": self.state_dict(), "q_opt": self.q_opt.state_dict(),
            "pi_opt": self.pi_opt.state_dict(), "alpha_opt": self.alpha_opt.state_dict(),
            "extra_opts": {k: opt.state_dict() for k, opt in self.extra_opts.items()},
            "n_updates": self.n_updates,
        }

    def load_training_state(self, state: dict) -> None:
        self.load_state_dict(state["model"])
        self.q_opt.load_state_dict(state["q_opt"])
        self.pi_opt.load_state_dict(state["pi_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        for key, opt in self.extra_opts.items():
            opt.load_state_dict(state["extra_opts"][key])
        self.n_updates = state["n_updates"]
        self.update_count.fill_(self.n_updates)
        if self.graphs is not None:
            self.use_static_buffers(self.graphs.capture)  # captured anew: Adam's state tensors were replaced
        else:  # the saving run's capturable flag and step-count device came back with Adam's state
            for opt in self.adams():
                set_capturable(opt, False)

    # ---------------------------------------------------------------- a trained agent, for use
    def snapshot(self, env_step: int) -> dict:
        """What `checkpoints/step_N.pt` holds (the training loop writes it at env step `env_step`): the
        agent's settings, dimensions, weights and update count; `from_snapshot` reads it back."""
        return {"step": env_step, "n_updates": self.n_updates, "model": self.state_dict(),
                "config": self.cfg.to_dict(), "obs_dim": self.obs_dim, "act_dim": self.act_dim}

    @classmethod
    def from_snapshot(cls, snap: dict, device: str | torch.device = "cpu",
                      source: Path | None = None) -> Agent:
        """The agent of a snapshot's contents (`snapshot`), ready to act: evaluation mode, no
        gradients; `source` is its file (named in a `CheckpointError` if the agent cannot be rebuilt)."""
        try:
            cfg = RunConfig.from_dict(snap["config"])
            agent = cls(cfg, int(snap["obs_dim"]), int(snap["act_dim"]), device)
            agent.load_state_dict(snap["model"])
            agent.n_updates = int(snap["n_updates"])
            agent.update_count.fill_(agent.n_updates)
            agent.source, agent.env_step = source, int(snap["step"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(
                f"{source or 'snapshot'}: cannot rebuild the agent from this snapshot "
                f"({type(err).__name__}: {err}). "
                "It was probably written by another version of iapo; retrain or use a matching version."
            ) from err
        return agent.eval().requires_grad_(False)

    @classmethod
    def load(cls, path: str | Path, checkpoint: str | None = None,
             device: str | torch.device = "cpu") -> Agent:
        """A trained agent, ready to act: `path` is a run folder of `iapo train` (its newest snapshot
        `checkpoints/step_N.pt`, or the one `checkpoint` names: step_N, step_N.pt or N) or a snapshot
        file. `device`: cpu | cuda | cuda:N. A missing, damaged or unknown snapshot is a
        `CheckpointError`, a device this machine lacks a `DeviceError`, each naming the fix. The one
        way from a snapshot file to an agent (`iapo evaluate` and the diagnostics come through here);
        `agent.source` is the file read and `agent.env_step` the env step it was taken at.

        >>> agent = Agent.load("results/runs/mini/Hopper-v2/iterative/seed0")
        >>> env, obs = agent.make_env(seed=0)
        >>> action = agent.act(obs, deterministic=True)            # in [−1, 1]^n
        >>> obs, reward, terminated, truncated, _ = env.step(agent.env_action(env, action))
        """
        from iapo.checkpoint import read_snapshot
        from iapo.devices import resolve_device

        resolved = resolve_device(device)
        file, snap = read_snapshot(path, checkpoint)
        return cls.from_snapshot(snap, resolved, file)

    def make_env(self, seed: int, render_size: int | None = None) -> tuple[gym.Env, np.ndarray]:
        """The gymnasium environment of the agent's task as it was trained on (the same observation),
        reset with `seed`; the environment and its first observation (`iapo.envs.make_env`)."""
        return make_env(self.cfg.env, seed, truncated_obs=self.cfg.training.truncated_obs,
                        render_size=render_size)

    @staticmethod
    def env_action(env: gym.Env, action: np.ndarray) -> np.ndarray:
        """An action of `act` (in [−1, 1]^n, the policy's tanh units) in the units of `env`'s action
        space: mapped affinely onto its bounds (`iapo.envs.scale_action`, what training does)."""
        return scale_action(env, action)
