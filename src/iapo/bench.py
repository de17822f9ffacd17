"""Micro-benchmark of one agent update and one action, direct vs. iterative, Q architectures A/B."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from iapo.agent import Agent, Batch
from iapo.config import load_params, resolve
from iapo.envs import env_dims
from iapo.provenance import machine, write_json_atomic

__all__ = ["ARCHS", "BENCH_ENV", "OPS", "VARIANTS", "bench_dims", "format_table", "run_bench"]

BENCH_ENV = "HalfCheetah-v2"
OPS = ("update", "act")
VARIANTS = ("direct", "iterative")
ARCHS = ("A", "B")
_QUICK_REPEATS, _QUICK_WARMUP = 3, 1


def bench_dims() -> tuple[int, int]:
    """(observation dim, action dim) of HalfCheetah: 17 and 6."""
    return env_dims(BENCH_ENV)


def _synthetic_batch(batch_size: int, obs_dim: int, act_dim: int, seed: int = 0) -> Batch:
    """A fixed random batch: Gaussian states and rewards, actions in [−1, 1], ~5 % terminal."""
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(batch_size, obs_dim, generator=g),
        action=torch.rand(batch_size, act_dim, generator=g) * 2.0 - 1.0,
        reward=torch.randn(batch_size, generator=g),
        next_obs=torch.randn(batch_size, obs_dim, generator=g),
        done=(torch.rand(batch_size, generator=g) < 0.05).float(),
    )


def _time_ms(fn: Callable[[], object], repeats: int, warmup: int) -> tuple[float, float, float]:
    """`warmup` untimed calls, then (median, min, max) in ms over `repeats` timed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times), max(times)


def run_bench(
    params_path: str | Path = "params.yaml", repeats: int = 20, warmup: int = 3,
    json_path: str | Path | None = None, threads: int = 1, quick: bool = False,
) -> dict:
    """Time `Agent.update` (one batch) and `Agent.act` (one state, stochastic) on CPU.

    Every (op, variant, q_arch) of OPS × VARIANTS × ARCHS is timed in this process on `threads`
    torch threads; `quick` means repeats=3, warmup=1. Returns {"machine": ..., "ops": [...]}
    and, if `json_path` is given, also writes it there.
    """
    if quick:
        repeats, warmup = _QUICK_REPEATS, _QUICK_WARMUP
    if repeats < 1 or warmup < 0 or threads < 1:
        raise ValueError(
            f"need repeats >= 1, warmup >= 0, threads >= 1; got {repeats}, {warmup}, {threads}"
        )
    params = load_params(params_path)
    obs_dim, act_dim = bench_dims()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        info = machine() | {"torch_version": torch.__version__, "threads": threads}
        rows: dict[tuple[str, str, str], dict] = {}
        for variant in VARIANTS:
            base = resolve(params, BENCH_ENV, variant, seed=0, scale="smoke")
            for arch in ARCHS:
                cfg = dataclasses.replace(
                    base, q_arch=arch, q_architecture=params.q_architectures[arch]
                )
                torch.manual_seed(0)
                agent = Agent(cfg, obs_dim, act_dim)
                batch = _synthetic_batch(cfg.training.batch_size, obs_dim, act_dim)
                obs = np.random.default_rng(0).standard_normal(obs_dim).astype(np.float32)
                calls: dict[str, Callable[[], object]] = {
                    "update": lambda a=agent, b=batch: a.update(b),
                    "act": lambda a=agent, o=obs: a.act(o, deterministic=False),
                }
                for op in OPS:
                    med, lo, hi = _time_ms(calls[op], repeats, warmup)
                    rows[op, variant, arch] = {
                        "op": op, "variant": variant, "q_arch": arch, "ms": med,
                        "ms_min": lo, "ms_max": hi, "flops": None, "floor_ms": None,
                    }
    finally:
        torch.set_num_threads(previous_threads)
    result = {
        "machine": info,
        "ops": [rows[op, v, a] for op in OPS for v in VARIANTS for a in ARCHS],
    }
    if json_path is not None:
        write_json_atomic(result, Path(json_path))
    return result


def format_table(result: dict) -> str:
    """Aligned text table of `run_bench` output, one row per op, then a line naming the machine."""
    header = ("op", "variant", "q_arch", "median ms", "min ms", "max ms")
    body = [
        (r["op"], r["variant"], r["q_arch"], f"{r['ms']:.3f}", f"{r['ms_min']:.3f}",
         f"{r['ms_max']:.3f}")
        for r in result["ops"]
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        text = [c.ljust(w) for c, w in zip(row[:3], widths[:3], strict=True)]
        nums = [c.rjust(w) for c, w in zip(row[3:], widths[3:], strict=True)]
        return "  ".join(text + nums)

    m = result["machine"]
    lines = [line(header), "  ".join("-" * w for w in widths), *map(line, body)]
    lines.append(
        f"machine: processor={m.get('processor', 'unknown')}, threads={m.get('threads')}, "
        f"torch={m.get('torch_version')}"
    )
    return "\n".join(lines)
