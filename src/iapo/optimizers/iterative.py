"""Iterative amortization: λ ← f_φ(s, λ, ∇_λ J), a learned, gated update run K times (eq. 11-12)."""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iapo.config import Network
from iapo.distributions import LogSigmaBounds, soft_clamp, standard_normal
from iapo.graphs import generation, snapshots_cached
from iapo.nets import mlp, zero_linear
from iapo.objective import Objective
from iapo.optimizers.base import Trace
from iapo.values.fused import ActionGrad, PlainActionGrad


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


@dataclass
class ActConstants:
    """What `act_fused` reuses across calls while the parameters are unchanged (plain tensors)."""

    obs_norm: tuple | None      # the state's LayerNorm (weight, bias, ε), None if it stays raw
    layers: list                # trunk and head: (weight, bias) of each Linear, else the nonlinearity
    block_norms: list           # the normalisers of μ, log σ, ∇μJ, ∇logσJ
    eps: float                  # LayerNorm ε of the action blocks
    block_weight: Tensor | None  # [4, 1, n] LayerNorm affine (None: not LayerNorm)
    block_bias: Tensor | None
    low: Tensor                 # the soft bounds of log σ [n]
    high: Tensor
    one: Tensor                 # 1.0


Constraint = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
"""(μ, log σ) ↦ (μ, log σ): applied to each new iterate by an analysis (`IterativeOptimizer.optimize`)."""

_ACT_CACHE: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def _in_place(layer):
    """A layer of `_step_weights` for acting: (weight, bias) detached, ReLU in place (same values)."""
    if isinstance(layer, tuple):
        return tuple(t.detach() for t in layer)
    return torch.relu_ if layer is torch.relu else layer


class IterativeOptimizer(nn.Module):
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
        # `optimize` runs the one-gradient-per-iteration loop (`optimize_fused`) when True, else the
        # reference loop; same samples, same math (tests/test_fast_paths.py). Set by the agent.
        self.fused = False
        # `act_fused` runs its loop compiled (`compiled_act_iterations`; off by default: compiling
        # takes tens of seconds per process). Same samples; equal up to rounding.
        self.compile_act = False

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

    def act_constants(self) -> ActConstants:
        """`ActConstants`, cached until a parameter changes (in-place updates bump `_version`; a graph
        replay, which bumps none, counts as a change: `iapo.graphs.generation`); always
        fresh under `iapo.graphs.uncached_snapshots` (captured acting re-takes them on every replay)."""
        if not snapshots_cached():
            return self._act_constants()
        entry = _ACT_CACHE.setdefault(self, {})
        params = entry.get("params") or entry.setdefault("params", list(self.parameters()))
        key = generation(), tuple(p._version for p in params), tuple(p.data_ptr() for p in params)
        if entry.get("key") != key:
            entry["value"] = self._act_constants()
            entry["key"] = key
        return entry["value"]

    def _act_constants(self) -> ActConstants:
        with torch.inference_mode(False), torch.no_grad():  # normal tensors, even when acting
            layers, norms, eps, block_weight, block_bias = self._step_weights()
            state_norm = self.norms[0]
            if not isinstance(state_norm, nn.LayerNorm | nn.Identity):
                raise TypeError(f"unexpected state normaliser {state_norm!r}")  # `input_normalizer`
            return ActConstants(
                obs_norm=(state_norm.weight.detach(), state_norm.bias.detach(), state_norm.eps)
                if isinstance(state_norm, nn.LayerNorm) else None,
                layers=[_in_place(layer) for layer in layers], block_norms=norms, eps=eps,
                block_weight=None if block_weight is None else block_weight.unsqueeze(1),
                block_bias=None if block_bias is None else block_bias.unsqueeze(1),
                low=self.bounds.low.detach(), high=self.bounds.high.detach(),
                one=self.bounds.low.new_ones(()),
            )

    @torch.inference_mode()
    def act_fused(self, objective: Objective) -> Trace:
        """λ_K for acting, as `optimize(objective, score=False)` but without recording J (`trace.J` is
        empty): each iteration needs only ∇_λ J (same samples).

        With the plain objective of eq. 8 and a value function that gives ∇_a Q̂ at fixed states
        (`action_grad`, e.g. `FusedValue`), the whole loop runs on tensors in preallocated buffers
        (`_act_lean`); otherwise it is `Objective.grad_fn` and `fused_step` per iteration.
        """
        if type(objective) is Objective and hasattr(objective.value_fn, "action_grad"):
            return self._act_lean(objective)
        mu, log_sigma = self.initial(objective.obs)
        prep, grad = self.prepare(objective.obs), objective.grad_fn()
        for _ in range(self.n_iters):
            grad_mu, grad_ls = grad(mu, log_sigma)
            mu, log_sigma = self.fused_step(prep, mu, log_sigma, grad_mu, grad_ls)
        return Trace(mu, log_sigma)

    def _act_lean(self, objective: Objective) -> Trace:
        """`act_fused` at batch sizes where per-operation overhead dominates (acting: one state):
        `act_iterations`, eagerly or, with `compile_act` and one state, compiled."""
        obs = objective.obs
        q_grad = objective.value_fn.action_grad()
        alpha = torch.as_tensor(objective.alpha, dtype=obs.dtype, device=obs.device)
        run = act_iterations
        if self.compile_act and isinstance(q_grad, PlainActionGrad) and obs.shape[0] == 1:
            run = compiled_act_iterations()
        mu, log_sigma = run(q_grad, self.act_constants(), obs, objective.n_samples, self.n_iters, alpha,
                            math.log(self.init_sigma))
        return Trace(mu, log_sigma)


def act_iterations(
    q_grad: ActionGrad, c: ActConstants, obs: Tensor, n_samples: int, n_iters: int, alpha: Tensor,
    log_sigma0: float,
) -> tuple[Tensor, Tensor]:
    """K iterations of `optimize(objective, score=False)` from λ_0 at states [B, S], on tensors only.

    `q_grad` gives ∇_a Q̂ at the states (`FusedValue.action_grad`); α is a tensor (a compiled caller
    then does not recompile when α changes). Per iteration: N samples a = tanh(μ + σ ε) drawn as
    `rsample` draws them (same generator call, same numbers), ∇_λ J as `Objective._pathwise_grad`,
    the update of eq. 12 as `fused_step`. The network's inputs [μ, log σ, ∇μJ, ∇logσJ] live in one
    buffer `lam` [4, B, n] that the gradient and the update write into (block-major: at B = 1 every
    slice written is contiguous, as `torch.compile` needs). Used by `IterativeOptimizer.act_fused`.
    """
    rows, n = obs.shape[0], c.low.shape[0]
    states = q_grad.states(obs, n_samples)
    # the network's input x = [norm(s), norm(μ), norm(log σ), norm(∇μJ), norm(∇logσJ)]
    x = torch.cat([obs if c.obs_norm is None else F.layer_norm(obs, obs.shape[-1:], *c.obs_norm),
                   obs.new_empty(rows, 4 * n)], -1)
    normed = x[:, obs.shape[1]:].view(rows, 4, n).transpose(0, 1)  # the blocks' columns of x
    lam = x.new_empty(4, rows, n)
    lam[0].fill_(0.0)                # λ_0 as `initial` (fills: no number copied in from the host)
    lam[1].fill_(log_sigma0)
    mu, log_sigma, grad = lam[0], lam[1], lam[2:]
    per_sample = x.new_empty(2, n_samples, rows, n)          # [D, D ⊙ σε] per sample
    d, d_noise = per_sample[0], per_sample[1]
    count = x.new_full((), float(n_samples))
    neg_two_alpha = alpha * -2.0
    shift = torch.stack([x.new_zeros(1, n), alpha.expand(1, n)])  # + α on ∇logσJ only
    for _ in range(n_iters):
        noise = standard_normal(n_samples, mu)  # as `rsample`: same generator call, same numbers
        u = mu + log_sigma.exp() * noise
        actions = torch.tanh(u)
        g = q_grad(actions, states)                            # ∇_a Q̂ [N, B, n]
        torch.addcmul(g, g * actions, actions, value=-1.0, out=d)   # D = ∇_a Q̂ (1 − a²) − 2α a
        d.addcmul_(actions, neg_two_alpha)
        torch.mul(d, u - mu, out=d_noise)                       # D ⊙ σε
        torch.sum(per_sample, 1, out=grad).div_(count).add_(shift)  # ∇μJ, ∇logσJ (mean over samples)
        _act_step(c, x, normed, lam)
    return mu, log_sigma  # views of `lam`, which only they keep alive


def _act_step(c: ActConstants, x: Tensor, normed: Tensor, lam: Tensor) -> None:
    """`fused_step` in place: reads [μ, log σ, ∇λJ] from `lam` [4, B, n], writes the new μ, log σ there."""
    n, rows = lam.shape[-1], lam.shape[1]
    if c.block_weight is None:
        normed.copy_(torch.stack([norm(b) for norm, b in zip(c.block_norms, lam, strict=True)]))
    else:  # LayerNorm of each n-block, then its own affine: exactly what nn.LayerNorm computes
        x_hat = F.layer_norm(lam, (n,), eps=c.eps)
        torch.addcmul(c.block_bias, x_hat, c.block_weight, out=normed)
    h = x
    for layer in c.layers:
        h = F.linear(h, *layer) if isinstance(layer, tuple) else layer(h)
    h = h.view(rows, 4, n).transpose(0, 1)                      # [δ_μ, δ_logσ, ω_μ, ω_logσ] logits
    omega = torch.sigmoid(h[2:])
    lam_mu_ls = lam[:2]
    torch.add(omega * lam_mu_ls, (c.one - omega) * h[:2], out=lam_mu_ls)   # eq. 12
    lam[1] = soft_clamp(lam[1], c.low, c.high)


@functools.cache
def compiled_act_iterations() -> Callable:
    """`act_iterations` compiled once per process (`torch.compile`, C++ wrapper, static shapes).

    Optional (`IterativeOptimizer.compile_act`): the first call compiles (~20-50 s on one loaded
    core; less when inductor's on-disk cache has it), later calls with the same shapes, N and K
    reuse it; every number the loop reads from the weights or α is a tensor argument, so new
    weights or a new α are new inputs, not recompiles (tests/test_fused_act.py).
    """
    # fallback_random: the samples' noise comes from the eager generator, as `rsample` draws it
    options = {"cpp_wrapper": True, "fallback_random": True}
    return torch.compile(act_iterations, dynamic=False, fullgraph=True, options=options)
