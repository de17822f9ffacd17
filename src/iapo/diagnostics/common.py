"""Pieces every diagnostic shares: options, checkpoints → agents, state collection, J with fixed noise.

A diagnostic reads the snapshots a run wrote (`checkpoints/step_N.pt`, see `iapo.train`), rebuilds
the agent of each, and reuses the agent's own pieces: its objective J (eq. 8), its policy optimizer
(`optimize(objective) -> Trace`) and its value estimator. Nothing here trains anything.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm

from iapo import atomic, checkpoint
from iapo.agent import Agent
from iapo.config import RunConfig
from iapo.distributions import kl_to_uniform, log_prob
from iapo.envs import EnvState, get_state, make_env, scale_action
from iapo.errors import DiagnosticError
from iapo.layout import DiagnosticRun, RunKey
from iapo.objective import Estimate, Objective
from iapo.optimizers.base import PolicyOptimizer, Trace

DEFAULT_OUT = DiagnosticRun("<name>", RunKey("<env>", "<variant>", "<k>")).out("<scale>")
"""The layout of `--out` when it is not given, as --help shows it."""

IDENTITY = {
    "env": "paper task name, e.g. HalfCheetah-v2",
    "variant": "agent variant of params.yaml, e.g. iterative",
    "family": "policy optimizer family: direct | iterative | direct_flow",
    "seed": "training seed of the run",
    "step": "env step of the checkpoint",
}
"""Columns that open every diagnostic table: which run and which checkpoint."""


# --------------------------------------------------------------------------- options

def doc(help: str, choices: Iterable | None = None) -> dict[str, Any]:
    """Field metadata read by `add_options`: the option's help and allowed values."""
    return {"help": help} | ({"choices": list(choices)} if choices is not None else {})


def option(default: Any = dataclasses.MISSING, help: str = "", choices: Iterable | None = None) -> Any:
    """A dataclass field that is also a command-line option (`--name-with-dashes`)."""
    return field(default=default, metadata=doc(help, choices))


@dataclass
class Options:
    """Options every diagnostic takes; each diagnostic subclasses this with its own."""

    run: Path = field(metadata=doc("run folder written by `iapo train` (reads RUN/checkpoints/step_N.pt)"))
    checkpoints: str = option("all", "which snapshots: all | last | first | N,M (env steps)")
    out: Path | None = field(default=None, metadata=doc(
        f"output CSV (default: where the pipeline keeps it, {DEFAULT_OUT} of the run's own scale)"))
    seed: int = option(0, "seed of the diagnostic (environments, samples); not the training seed")
    device: str = option("cpu", "cpu | cuda | cuda:N")
    threads: int = option(1, "torch CPU threads")

    def __post_init__(self) -> None:
        self.run = Path(self.run)
        self.out = None if self.out is None else Path(self.out)


def _unwrap_optional(tp: Any) -> Any:
    """`X | None` → X (the type an option's value is parsed with)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None))
    return tp


def add_options(parser: argparse.ArgumentParser, cls: type[Options]) -> None:
    """One `--flag` per field of the options dataclass, typed, with its help and default."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        base = _unwrap_optional(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        kw: dict[str, Any] = {"help": f.metadata.get("help", ""), "dest": f.name}
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        if f.default is dataclasses.MISSING:
            kw["required"] = True
        else:
            kw["default"] = f.default
            if f.default is not None:
                kw["help"] += " (default: %(default)s)"
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        else:
            parser.add_argument(flag, type=base, **kw)


def options_from_args(cls: type[Options], args: argparse.Namespace) -> Options:
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


# --------------------------------------------------------------------------- checkpoints

@dataclass
class Snapshot:
    """One checkpoint of a run, rebuilt: the agent with its weights, settings and step."""

    path: Path
    step: int
    n_updates: int
    cfg: RunConfig
    agent: Agent
    obs_dim: int
    act_dim: int

    def identity(self) -> dict[str, Any]:
        c = self.cfg
        return {"env": c.env, "variant": c.variant, "family": c.family, "seed": c.seed, "step": self.step}


def load_snapshot(path: str | Path, device: str = "cpu") -> Snapshot:
    """Rebuild the agent of `checkpoints/step_N.pt` (written by `Run.save_snapshot`), frozen."""
    path = Path(path)
    snap = checkpoint.load(path, "cpu")  # written on any device; the agent below moves it
    try:
        agent = Agent.from_snapshot(snap, device, path)
    except checkpoint.CheckpointError as err:
        raise DiagnosticError(str(err)) from err
    return Snapshot(path, int(snap["step"]), agent.n_updates, agent.cfg, agent,
                    int(snap["obs_dim"]), agent.act_dim)


def select_checkpoints(run: Path, spec: str) -> list[tuple[int, Path]]:
    """Snapshots of `run` chosen by `spec` (all | last | first | N,M), oldest first."""
    folder = Path(run) / "checkpoints"
    found = sorted(checkpoint.by_step(folder))
    if not found:
        raise DiagnosticError(
            f"{folder}: no step_N.pt snapshots. Is {run} a run folder written by `iapo train --out`?"
        )
    if spec == "all":
        return found
    if spec == "last":
        return found[-1:]
    if spec == "first":
        return found[:1]
    try:
        wanted = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise DiagnosticError(
            f"--checkpoints {spec!r}: expected all, last, first or env steps like 5000,10000"
        ) from None
    by_step = dict(found)
    missing = [s for s in wanted if s not in by_step]
    if missing or not wanted:
        raise DiagnosticError(
            f"--checkpoints {spec!r}: no snapshot for step(s) {missing} in {folder}; "
            f"available: {', '.join(str(s) for s, _ in found)}"
        )
    return [(s, by_step[s]) for s in sorted(set(wanted))]


def iter_snapshots(opts: Options, spec: str | None = None) -> Iterator[Snapshot]:
    """Load the chosen snapshots one at a time (only one agent in memory), with a progress bar."""
    chosen = select_checkpoints(opts.run, spec or opts.checkpoints)
    for step, path in progress(chosen, "checkpoints", unit="ckpt"):
        snap = load_snapshot(path, opts.device)
        if snap.step != step:
            raise DiagnosticError(f"{path}: holds step {snap.step}, its name says {step}")
        yield snap


def reseed(seed: int, step: int) -> np.random.Generator:
    """Seed torch for one checkpoint and return a NumPy generator: a checkpoint's rows do not
    depend on which other checkpoints were selected."""
    s = (1_000_003 * seed + step) % 2**63
    torch.manual_seed(s)
    return np.random.default_rng(s)


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


def require_tanh_normal(snap: Snapshot, name: str) -> None:
    """Diagnostics that act on λ = (μ, σ) of a tanh-Normal need one (not a flow; the amortization
    gap takes a flow through `PolicyObjective`)."""
    if not snap.agent.optimizer.tanh_normal:
        raise DiagnosticError(
            f"{name} works on tanh-Normal policies λ = (μ, σ); {snap.path} is a {snap.cfg.family} "
            "agent whose policy is not (a flow). Run it on direct or iterative runs."
        )


def transfer_snapshot(run: Path, step: str, target: Snapshot, device: str, name: str) -> Snapshot:
    """A snapshot of another run whose optimizer will act on `target`'s objective (§3.2:
    generalization across objectives). `step`: same (the target's step if that run has it, else
    its last) | last | an env step."""
    chosen = select_checkpoints(run, "all")
    by_step = dict(chosen)
    if step == "same":
        path = by_step.get(target.step, chosen[-1][1])
    elif step == "last":
        path = chosen[-1][1]
    else:
        path = select_checkpoints(run, step)[0][1]
    other = load_snapshot(path, device)
    require_iterative(other, f"{name} --optimizer-from")
    dims, mine = (other.obs_dim, other.act_dim), (target.obs_dim, target.act_dim)
    if other.cfg.env != target.cfg.env or dims != mine:
        raise DiagnosticError(
            f"--optimizer-from {run}: that run is {other.cfg.env} (obs, act dims {dims}); "
            f"{target.path} is {target.cfg.env} {mine}. Use a run of the same task."
        )
    return other


def require_iterative(snap: Snapshot, name: str) -> None:
    if snap.cfg.family != "iterative":
        raise DiagnosticError(
            f"{name} needs an iterative agent; {snap.path} is {snap.cfg.family!r} "
            f"(variant {snap.cfg.variant!r}). Pass an iterative run folder."
        )


# --------------------------------------------------------------------------- objectives

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


class RecordingObjective(Objective):
    """J that records every λ it is evaluated at (an optimizer's trajectory), optionally with some
    action dimensions held fixed (A.1: 'while preventing any updates to the constant dimensions').

    An `Objective` for any optimizer. With `fixed` = (μ, log σ) given, only the dimensions in `free`
    of μ are the optimizer's to change; the other dimensions of μ, and all of log σ, are held at
    `fixed` in two places: `reset` puts them back after every iteration (pass it as the iterative
    optimizer's `constrain`, and use `reset(λ_0)` as its `init`), so the optimizer's own λ never
    drifts there, as the authors' code did; and J is always evaluated at the held values. The
    gradient ∇_λ J reaches every dimension (the held ones included, straight through), so the
    optimizer's gradient input is the true ∇_λ J at the held λ, not zeros it never saw in training.
    Every way to evaluate J goes through `__call__` (`value_and_grad` by autograd through it).
    """

    def __init__(self, base: Objective, fixed: tuple[Tensor, Tensor] | None = None,
                 free: list[int] | None = None) -> None:
        super().__init__(base.value_fn, base.obs, base.alpha, base.n_samples)
        self.fixed, self.mask = fixed, None
        if fixed is not None:
            n = fixed[0].shape[-1]
            self.mask = torch.zeros(n, dtype=torch.bool, device=fixed[0].device)
            self.mask[list(range(n)) if free is None else free] = True
        self.visited: list[tuple[Tensor, Tensor]] = []

    def restrict(self, mu: Tensor, log_sigma: Tensor) -> tuple[Tensor, Tensor]:
        """λ with the held dimensions at their fixed values; x − x.detach() is exactly 0 in value
        and 1 in derivative, so the gradient passes through to every dimension of λ."""
        if self.fixed is None:
            return mu, log_sigma
        held_mu = self.fixed[0] + (mu - mu.detach())
        return torch.where(self.mask, mu, held_mu), self.fixed[1] + (log_sigma - log_sigma.detach())

    def reset(self, mu: Tensor, log_sigma: Tensor) -> tuple[Tensor, Tensor]:
        """The held dimensions of λ back at their fixed values (A.1), detached: after every iteration."""
        if self.fixed is None:
            return mu, log_sigma
        return torch.where(self.mask, mu, self.fixed[0]).detach(), self.fixed[1].detach().clone()

    def __call__(self, mu: Tensor, log_sigma: Tensor) -> Estimate:
        mu, log_sigma = self.restrict(mu, log_sigma)
        self.visited.append((mu.detach().clone(), log_sigma.detach().clone()))
        return super().__call__(mu, log_sigma)

    def value_and_grad(self, mu: Tensor, log_sigma: Tensor) -> tuple[Estimate, Tensor, Tensor]:
        mu, log_sigma = mu.detach().requires_grad_(), log_sigma.detach().requires_grad_()
        with torch.enable_grad():
            est = self(mu, log_sigma)
            grad_mu, grad_log_sigma = torch.autograd.grad(est.J.sum(), (mu, log_sigma))
        detached = Estimate(J=est.J.detach(), q=est.q.detach(), kl=est.kl.detach(),
                            actions=est.actions.detach(), log_pi=est.log_pi.detach())
        return detached, grad_mu, grad_log_sigma


# --------------------------------------------------------------------------- environments and states

def episode_limit(env: gym.Env) -> int:
    """The registered TimeLimit of the task (1000; 50 for Reacher)."""
    spec = env.spec
    return int(spec.max_episode_steps) if spec and spec.max_episode_steps else 1000


def task_env(cfg: RunConfig, seed: int) -> tuple[gym.Env, np.ndarray]:
    return make_env(cfg.env, seed, truncated_obs=cfg.training.truncated_obs)


def collect_on_policy(
    snap: Snapshot, n_states: int, seed: int, collect_steps: int | None = None,
) -> np.ndarray:
    """n on-policy states [n, obs_dim] (A.3, B.4, B.7): the agent's stochastic policy (β acting)
    runs from a reset for `collect_steps` steps (default: the episode limit, resetting when an
    episode ends); the states are evenly spaced over that stretch (consecutive if the stretch
    is no longer than n)."""
    env, obs = task_env(snap.cfg, seed)
    total = max(collect_steps or episode_limit(env), n_states)
    visited = []
    for _ in progress(range(total), "on-policy states", unit="step", leave=False):
        visited.append(np.asarray(obs, dtype=np.float32).copy())
        a = snap.agent.act(obs)
        obs, _, terminated, truncated, _ = env.step(scale_action(env, a))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    idx = np.linspace(0, total - 1, n_states).round().astype(int)
    return np.stack(visited)[idx]


def collect_episode(snap: Snapshot, seed: int, max_steps: int | None = None) -> np.ndarray:
    """The states [T, obs_dim] of one on-policy episode, in order: the agent's stochastic policy (β
    acting) from a seeded reset until the episode ends or after `max_steps` (default: the episode
    limit)."""
    env, obs = task_env(snap.cfg, seed)
    limit = episode_limit(env) if max_steps is None else min(max_steps, episode_limit(env))
    visited = []
    for _ in progress(range(limit), "episode states", unit="step", leave=False):
        visited.append(np.asarray(obs, dtype=np.float32).copy())
        obs, _, terminated, truncated, _ = env.step(scale_action(env, snap.agent.act(obs)))
        if terminated or truncated:
            break
    env.close()
    return np.stack(visited)


def on_policy_states(snap: Snapshot, opts: Options) -> Tensor:
    """`collect_on_policy` with a diagnostic's `--states`, `--seed`, `--collect-steps`, as a tensor
    on the agent's device."""
    states = collect_on_policy(snap, opts.states, opts.seed, getattr(opts, "collect_steps", None))
    return torch.as_tensor(states, device=snap.agent.device)


@dataclass
class StateAction:
    """A state-action pair with the exact simulator state before the action (A.2)."""

    obs: np.ndarray
    action: np.ndarray  # in [−1, 1]^n, the agent's action space
    env_state: EnvState


def collect_random_pairs(cfg: RunConfig, n_pairs: int, seed: int) -> list[StateAction]:
    """n pairs from one uniform-random-action trajectory from a seeded reset (A.2; original_code.md §6:
    consecutive steps, reset when an episode ends). The same for every checkpoint and agent of a
    task, so biases are comparable across setups."""
    env, obs = task_env(cfg, seed)
    rng = np.random.default_rng(seed)
    (act_dim,) = env.action_space.shape
    pairs = []
    for _ in range(n_pairs):
        a = rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
        pairs.append(StateAction(np.asarray(obs, dtype=np.float32).copy(), a, get_state(env)))
        obs, _, terminated, truncated, _ = env.step(scale_action(env, a))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return pairs


class StochasticPolicy:
    """The agent acting on a batch of states: one action a ~ π(·|s) under β (acting: A.4) and
    KL̂(π(·|s) ‖ U) from N fresh samples including n ln 2 (original_code.md §6, value bias)."""

    def __init__(self, agent: Agent, beta: float, kl_samples: int | None = None) -> None:
        self.agent, self.beta = agent, beta
        self.kl_samples = kl_samples or agent.cfg.training.n_action_samples

    def __call__(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        agent = self.agent
        s = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=agent.device)
        trace = agent.optimizer.optimize(agent.objective(s, self.beta), score=False)
        with torch.no_grad():
            a, _ = agent.optimizer.sample(trace, 1)
            _, log_pi = agent.optimizer.sample(trace, self.kl_samples)
            kl = kl_to_uniform(log_pi, agent.act_dim)
        return a[0].cpu().numpy(), kl.cpu().numpy()


# --------------------------------------------------------------------------- output

def progress(iterable: Iterable, desc: str, total: int | None = None, unit: str = "it",
             leave: bool = True) -> tqdm:
    """A tqdm bar on stderr (sparse updates when stderr is not a terminal, e.g. under Slurm)."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, file=sys.stderr,
                mininterval=0.5 if sys.stderr.isatty() else 30.0, dynamic_ncols=True)


def write_table(df: pd.DataFrame, path: Path) -> Path:
    """Write a CSV atomically (temp file, then rename): a crash never leaves a partial table."""
    with atomic.replacing(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


INTEGER_COLUMNS = frozenset({
    "seed", "step", "prev_step", "state", "pair", "run", "run_i", "run_j", "iteration", "dim_x", "dim_y",
    "episode", "length", "n_rollouts", "horizon", "extra_steps", "opt_steps", "amortized_iters",
    "n_samples", "n_iters_trained",
})


def frame(rows: list[dict], columns: Iterable[str]) -> pd.DataFrame:
    """Rows → a table with exactly the documented columns, in order. Integer columns stay integers
    where some rows leave them empty (pandas Int64: written as 3, or nothing)."""
    df = pd.DataFrame(rows).reindex(columns=list(columns))
    for c in df.columns:
        if c in INTEGER_COLUMNS:
            df[c] = df[c].astype("Int64")
    return df


def chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def max_l2(act_dim: int) -> float:
    """Largest L2 distance between two points of [−1, 1]^n (B.7): 2 √n."""
    return 2.0 * math.sqrt(act_dim)
