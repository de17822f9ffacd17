"""The matrix products an agent update or action needs, their FLOP count, and their bare-GEMM time (floor).

Each operation is described as a list of GEMM shapes: every product of the forward passes and of
the backward passes that are actually needed (no weight gradients for the frozen Q-networks inside
J; only the action columns of their first layer's input gradient; no input gradient of a layer
whose input is data). Elementwise work is not counted. The *floor* of an operation is the time the
same shapes take as bare `torch.mm` calls on preallocated operands, in the memory layout the layer
uses (forward x Wᵀ, input gradient dy W, weight gradient dyᵀ x), measured in the calling process
on its thread count: efficiency = floor / measured time.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import torch

from iapo.config import Network, QArchitecture, RunConfig

Layout = str  # "nt": A[m,k] B[n,k]ᵀ (forward) | "nn": A[m,k] B[k,n] (input grad) | "tn": A[k,m]ᵀ B[k,n]


@dataclass(frozen=True)
class Gemm:
    """`count` products C[m, n] = A[m, k] B[k, n] (float32) in a given layout."""

    m: int
    k: int
    n: int
    layout: Layout = "nt"
    count: int = 1

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n * self.count


def total_flops(gemms: list[Gemm]) -> int:
    return sum(g.flops for g in gemms)


# ------------------------------------------------------------------ layers and networks
def linear(
    rows: int, n_in: int, n_out: int, *, backward: bool = False, input_grad: int | None = None,
    weight_grad: bool = False, count: int = 1,
) -> list[Gemm]:
    """A Linear layer on `rows` rows: forward, and if `backward` the input gradient of its first
    `input_grad` input columns (all if None, none if 0) and, if `weight_grad`, the weight gradient."""
    out = [Gemm(rows, n_in, n_out, "nt", count)]
    if backward:
        cols = n_in if input_grad is None else input_grad
        if cols:
            out.append(Gemm(rows, n_out, cols, "nn", count))
        if weight_grad:
            out.append(Gemm(n_out, rows, n_in, "tn", count))
    return out


def q_layers(arch: QArchitecture, n_in: int) -> list[tuple[int, int]]:
    """(in, out) of every Linear of a Q-network in order (Tables 3-4): highway blocks have a gate and
    a transform layer, both H × H; the head is H → 1."""
    h = arch.n_units
    layers = [(n_in, h)]
    per_block = 2 if arch.connectivity == "highway" else 1
    layers += [(h, h)] * (per_block * (arch.n_layers - 1))
    return [*layers, (h, 1)]


def q_value(
    arch: QArchitecture, rows: int, obs_dim: int, act_dim: int, *, action_grad: bool,
    members: int = 2,
) -> list[Gemm]:
    """Q̂ of a frozen ensemble on `rows` (s, a) rows; with `action_grad`, also ∇_a Q̂ (input gradients
    of every layer, only the action columns of the first; no weight gradients)."""
    out: list[Gemm] = []
    for i, (n_in, n_out) in enumerate(q_layers(arch, obs_dim + act_dim)):
        out += linear(rows, n_in, n_out, backward=action_grad, input_grad=act_dim if i == 0 else None,
                      count=members)
    return out


def q_train(arch: QArchitecture, rows: int, obs_dim: int, act_dim: int, members: int = 2) -> list[Gemm]:
    """Critic step: forward, weight gradients of every layer, input gradients of all but the first."""
    out: list[Gemm] = []
    for i, (n_in, n_out) in enumerate(q_layers(arch, obs_dim + act_dim)):
        out += linear(rows, n_in, n_out, backward=True, input_grad=0 if i == 0 else None,
                      weight_grad=True, count=members)
    return out


def mlp(
    net: Network, rows: int, n_in: int, n_out: int, *, train: bool, first_input_grad: bool = False,
    count: int = 1,
) -> list[Gemm]:
    """A policy network (Table 2 trunk + linear head) on `rows` rows; `train` adds its backward
    (weight gradients; input gradient of the first layer only if `first_input_grad`)."""
    sizes = [n_in] + [net.n_units] * net.n_layers + [n_out]
    out: list[Gemm] = []
    for i in range(len(sizes) - 1):
        out += linear(rows, sizes[i], sizes[i + 1], backward=train,
                      input_grad=None if (i > 0 or first_input_grad) else 0, weight_grad=train, count=count)
    return out


# ------------------------------------------------------------------ agent operations
def policy_gemms(
    cfg: RunConfig, obs_dim: int, act_dim: int, rows: int, *, train: bool, acting: bool = False,
) -> list[Gemm]:
    """The policy optimizer on `rows` states: J and ∇_λ J at each evaluated iterate plus the network.

    Iterative (original_code.md §2.5): K iterations of (J, ∇_λ J) and a step; training scores λ_K too
    and backpropagates through the K steps (input normalisers with parameters need the first layer's input
    gradient). Direct: one forward; training adds (J, ∇_λ J) at λ and the backward of the network.
    """
    t, arch = cfg.training, cfg.q_architecture
    n_q = rows * t.n_action_samples
    gemms: list[Gemm] = []
    if cfg.family == "iterative":
        n_evals = cfg.n_iters + (1 if train else 0)
        gemms += q_value(arch, n_q, obs_dim, act_dim, action_grad=True) * n_evals
        learnable_norm = cfg.input_norm == "layernorm"
        gemms += mlp(cfg.policy, rows, obs_dim + 4 * act_dim, 4 * act_dim, train=train,
                     first_input_grad=learnable_norm, count=cfg.n_iters)
        return gemms
    gemms += mlp(cfg.policy, rows, obs_dim, 2 * act_dim, train=train)
    if train:
        gemms += q_value(arch, n_q, obs_dim, act_dim, action_grad=True)
    return gemms


def op_gemms(op: str, cfg: RunConfig, obs_dim: int, act_dim: int) -> list[Gemm]:
    """GEMMs of one benchmark operation (see `iapo.tools.bench`): `update` (Agent.update: Bellman target,
    critic step, policy step), `policy_update` (the policy step alone) or `act` (one state)."""
    t = cfg.training
    b = t.batch_size
    if op == "act":
        return policy_gemms(cfg, obs_dim, act_dim, 1, train=False)
    policy = policy_gemms(cfg, obs_dim, act_dim, b, train=True)
    if op == "policy_update":
        return policy
    if op != "update":
        raise ValueError(f"unknown op {op!r}; allowed: update, policy_update, act")
    target = policy_gemms(cfg, obs_dim, act_dim, b, train=False)
    target += q_value(cfg.q_architecture, b * t.n_target_action_samples, obs_dim, act_dim, action_grad=False)
    return target + q_train(cfg.q_architecture, b, obs_dim, act_dim) + policy


# ------------------------------------------------------------------ the floor
def _operands(g: Gemm) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    if g.layout == "nt":
        a, b = rand(g.m, g.k), rand(g.n, g.k).t()
    elif g.layout == "nn":
        a, b = rand(g.m, g.k), rand(g.k, g.n)
    elif g.layout == "tn":
        a, b = rand(g.k, g.m).t(), rand(g.k, g.n)
    else:
        raise ValueError(f"unknown layout {g.layout!r}")
    return a, b, torch.empty(g.m, g.n)


def floor_runner(gemms: list[Gemm]) -> Callable[[], None]:
    """A function that runs every product of `gemms` once as a bare `torch.mm` (same shapes and
    layouts; operands and outputs allocated here, once). Products of one shape run back to back."""
    shapes: Counter[Gemm] = Counter()
    for g in gemms:
        shapes[Gemm(g.m, g.k, g.n, g.layout)] += g.count
    work = [(*_operands(g), n) for g, n in shapes.items()]

    def run() -> None:
        for a, b, c, n in work:
            for _ in range(n):
                torch.mm(a, b, out=c)

    return run


def floor_ms(gemms: list[Gemm], repeats: int = 10, warmup: int = 2) -> float:
    """Median time (ms) of `floor_runner(gemms)` on the current torch thread count: the GEMM floor."""
    run = floor_runner(gemms)
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)
