"""Micro-benchmark of the agent's update and action selection against their GEMM floor.

For direct and iterative agents (HalfCheetah sizes, batch 256, N = 10, K = 5) with Q architectures
A and B, each operation is timed on the fast path (`training.fused: true`, what training runs) and,
when asked, on the reference path (`training.fused: false`, plain autograd). Operations:

* `update`: one `Agent.update` (Bellman target, critic step, policy step, α, targets);
* `policy_update`: the policy optimizer's loss, backward and Adam step alone (where the direct and
  iterative agents differ);
* `act`: one stochastic `Agent.act` (one state), interleaved with the agent's other operations: its
  caches are cold, as in training, where each action follows an update;
* `act_warm`: the same, the median of the last `WARM_CALLS` of 1 + `WARM_CALLS` back-to-back calls
  (warm caches; its floor is timed the same way): the per-operation cost alone.

`run_device_bench` times `update` and `act` on a device (`iapo bench --device cuda`): eagerly and,
on CUDA, captured as CUDA graphs (`training.graphs: on`, `iapo.graphs`).

Every row also carries the analytic FLOP count of the matrix products the operation needs
(`iapo.tools.flops`) and their *floor*: the same GEMMs as bare `torch.mm` calls, timed in this process on
the same threads. The operations of one agent are timed with their floors, interleaved round by
round, so load from other processes hits them alike; each agent's rows are printed as they end.
efficiency = floor / median time;
efficiency_min = fastest floor / fastest time and efficiency_cpu = the ratio of median thread CPU
times are the steadier figures on a shared machine (a descheduled thread's wait is not counted).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from iapo import atomic
from iapo.agent import Agent, Batch
from iapo.config import RunConfig, load_params, resolve
from iapo.devices import describe, resolve_device
from iapo.envs import env_dims
from iapo.graphs import WARMUP, synchronize
from iapo.provenance import machine
from iapo.tools.flops import floor_runner, op_gemms, total_flops

__all__ = [
    "ARCHS", "BENCH_ENV", "DEVICE_OPS", "OPS", "PATHS", "VARIANTS", "bench_dims",
    "format_device_table", "format_loop", "format_table", "loop_overhead", "run_bench", "run_device_bench",
]

BENCH_ENV = "HalfCheetah-v2"
OPS = ("update", "policy_update", "act", "act_warm")
WARM_CALLS = 4
VARIANTS = ("direct", "iterative")
ARCHS = ("A", "B")
PATHS = ("reference", "fast")
"""The timed agents: reference = `training.fused: false`; fast = `training.fused: true`."""
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


class _SelfTimed(NamedTuple):
    """What a timed function returns when it times itself (`_warm`): wall and thread CPU ms."""

    ms: float
    cpu_ms: float


def _warm(fn: Callable[[], object]) -> Callable[[], _SelfTimed]:
    """`fn` run 1 + WARM_CALLS times back to back; the median over the last WARM_CALLS calls (a call
    that another process preempted does not move it)."""

    def run() -> _SelfTimed:
        fn()
        wall, thread = [], []
        for _ in range(WARM_CALLS):
            c0, t0 = time.thread_time(), time.perf_counter()
            fn()
            wall.append((time.perf_counter() - t0) * 1e3)
            thread.append((time.thread_time() - c0) * 1e3)
        return _SelfTimed(statistics.median(wall), statistics.median(thread))

    return run


def _time_interleaved(
    calls: dict[tuple, Callable[[], object]], repeats: int, warmup: int, cpu: dict | None = None,
) -> dict[tuple, list[float]]:
    """Wall times (ms) of each call over `repeats` rounds; every round runs every call once, in order.

    If `cpu` is given it receives the same calls' thread CPU times (ms): the time the thread ran,
    without the time other processes held the core (the steadier figure on a shared machine).
    """
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    times: dict[tuple, list[float]] = {key: [] for key in calls}
    cpu_times: dict[tuple, list[float]] = {key: [] for key in calls}
    for _ in range(repeats):
        for key, fn in calls.items():
            c0, t0 = time.thread_time(), time.perf_counter()
            out = fn()
            wall, thread = (time.perf_counter() - t0) * 1e3, (time.thread_time() - c0) * 1e3
            if isinstance(out, _SelfTimed):
                wall, thread = out
            times[key].append(wall)
            cpu_times[key].append(thread)
    if cpu is not None:
        cpu.update(cpu_times)
    return times


def _configure(base: RunConfig, arch: str, params, path: str) -> RunConfig:
    training = base.training.model_copy(update={"fused": path == "fast"})
    return dataclasses.replace(base, q_arch=arch, q_architecture=params.q_architectures[arch],
                               training=training)


def _policy_update(agent: Agent, batch: Batch) -> None:
    """The policy optimizer's step alone: loss (K iterations), backward, Adam."""
    loss, _, _ = agent.policy_loss(batch)
    agent.pi_opt.zero_grad(set_to_none=True)
    loss.backward()
    agent.pi_opt.step()


def _row(key: tuple, times: list[float], cpu: list[float], floor_times: list[float], floor_cpu: list[float],
         flops: int) -> dict:
    op, variant, arch, path = key
    floor, ms = statistics.median(floor_times), statistics.median(times)
    return {
        "op": op, "variant": variant, "q_arch": arch, "path": path,
        "ms": ms, "ms_min": min(times), "ms_max": max(times), "flops": flops,
        "floor_ms": floor, "efficiency": floor / ms,
        # the same ratio from the fastest repeats: less sensitive to other processes' load
        "floor_ms_min": min(floor_times), "efficiency_min": min(floor_times) / min(times),
        # and from thread CPU times (medians): the time the thread actually ran
        "cpu_ms": statistics.median(cpu), "floor_cpu_ms": statistics.median(floor_cpu),
        "efficiency_cpu": statistics.median(floor_cpu) / statistics.median(cpu),
    }


def run_bench(
    params_path: str | Path = "params.yaml", repeats: int = 15, warmup: int = 2,
    json_path: str | Path | None = None, threads: int = 1, quick: bool = False,
    variants: tuple[str, ...] = VARIANTS, archs: tuple[str, ...] = ARCHS, reference: bool = False,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """Time every (op, variant, q_arch, path) on CPU and compare with its GEMM floor.

    The fast path always, the reference path with `reference`. Runs on `threads` torch threads
    (restored afterwards); `quick` means repeats=3, warmup=1. The four operations of one agent and
    their floors are timed interleaved (`repeats` rounds after `warmup`: each action follows an
    update, as in training), and their rows handed to `progress` as they end. Returns
    {"machine": ..., "ops": [one row per timed operation]} and, if `json_path` is given, also
    writes it there (after every agent: an interrupted run keeps what it measured).
    """
    if quick:
        repeats, warmup = _QUICK_REPEATS, _QUICK_WARMUP
    if repeats < 1 or warmup < 0 or threads < 1:
        raise ValueError(
            f"need repeats >= 1, warmup >= 0, threads >= 1; got {repeats}, {warmup}, {threads}"
        )
    params = load_params(params_path)
    obs_dim, act_dim = bench_dims()
    paths = PATHS if reference else ("fast",)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    info = machine() | {"torch_version": torch.__version__, "threads": threads}
    result: dict = {"machine": info, "ops": []}
    try:
        for variant in variants:
            base = resolve(params, BENCH_ENV, variant, seed=0, scale="smoke")
            for arch in archs:
                batch = _synthetic_batch(base.training.batch_size, obs_dim, act_dim)
                obs = np.random.default_rng(0).standard_normal(obs_dim).astype(np.float32)
                for path in paths:
                    torch.manual_seed(0)
                    agent = Agent(_configure(base, arch, params, path), obs_dim, act_dim)
                    calls = {"update": lambda a=agent, b=batch: a.update(b),
                             "policy_update": lambda a=agent, b=batch: _policy_update(a, b),
                             "act": lambda a=agent, o=obs: a.act(o),
                             "act_warm": _warm(lambda a=agent, o=obs: a.act(o))}
                    timed, flops = {}, {}
                    for op in OPS:
                        gemms = op_gemms(op.removesuffix("_warm"), agent.cfg, obs_dim, act_dim)
                        floor = floor_runner(gemms)
                        timed[op], flops[op] = calls[op], total_flops(gemms)
                        timed["floor", op] = _warm(floor) if op == "act_warm" else floor
                    cpu: dict = {}
                    times = _time_interleaved(timed, repeats, warmup, cpu)
                    for op in OPS:
                        row = _row((op, variant, arch, path), times[op], cpu[op], times["floor", op],
                                   cpu["floor", op], flops[op])
                        result["ops"].append(row)
                        if progress is not None:
                            progress(row)
                    if json_path is not None:
                        atomic.write_json(json_path, result)
    finally:
        torch.set_num_threads(previous_threads)
    result["ops"].sort(key=lambda r: (OPS.index(r["op"]), r["variant"], r["q_arch"], PATHS.index(r["path"])))
    if json_path is not None:
        atomic.write_json(json_path, result)
    return result


DEVICE_OPS = ("update", "act")


def _on_device(batch: Batch, device: torch.device) -> Batch:
    return Batch(*(t.to(device) for t in batch.tensors()))


def _device_times(
    calls: dict[tuple, Callable[[], object]], device: torch.device, repeats: int, warmup: int,
) -> dict[tuple, tuple[list[float], list[float]]]:
    """Per call, wall ms and device ms over `repeats` interleaved rounds, after `warmup` rounds.

    Each call is timed alone between two `synchronize`s (wall: what a training step waits for,
    host launches included); on CUDA also by two CUDA events around it (device time from the
    first kernel's start to the last one's end, the gaps while the host launches included). On
    the CPU the device time is the wall time."""
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    times: dict[tuple, tuple[list[float], list[float]]] = {key: ([], []) for key in calls}
    cuda = device.type == "cuda"
    for _ in range(repeats):
        for key, fn in calls.items():
            synchronize(device)
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
            t0 = time.perf_counter()
            fn()
            if cuda:
                end.record()
            synchronize(device)
            wall = (time.perf_counter() - t0) * 1e3
            times[key][0].append(wall)
            times[key][1].append(start.elapsed_time(end) if cuda else wall)
    return times


def run_device_bench(
    params_path: str | Path = "params.yaml", device: str = "cuda", repeats: int = 20, warmup: int = 3,
    json_path: str | Path | None = None, variants: tuple[str, ...] = VARIANTS,
    archs: tuple[str, ...] = ARCHS,
) -> dict:
    """Time `update` and `act` on `device`, eagerly (path `eager`) and, on CUDA, captured as CUDA
    graphs (path `captured`: `training.graphs: on`); the fast fp32 path, HalfCheetah sizes, batch
    256, N = 10, K = 5 as `run_bench`.

    Captured agents run `iapo.graphs.WARMUP` eager calls and the capture before the timed rounds.
    Returns {"machine": ..., "ops": [one row per (op, variant, q_arch, path): ms, ms_min, ms_max
    (wall, synchronized), device_ms (median, CUDA events), flops, speedup (eager ms / ms)]} and, if
    `json_path` is given, also writes it there. A device this machine lacks raises `DeviceError`.
    """
    target = resolve_device(device)
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1, warmup >= 0; got {repeats}, {warmup}")
    params = load_params(params_path)
    obs_dim, act_dim = bench_dims()
    paths = ("eager", "captured") if target.type == "cuda" else ("eager",)
    calls: dict[tuple, Callable[[], object]] = {}
    flops: dict[tuple, int] = {}
    for variant in variants:
        base = resolve(params, BENCH_ENV, variant, seed=0, scale="smoke")
        for arch in archs:
            batch = _on_device(_synthetic_batch(base.training.batch_size, obs_dim, act_dim), target)
            obs = np.random.default_rng(0).standard_normal(obs_dim).astype(np.float32)
            fast = _configure(base, arch, params, "fast")
            for op in DEVICE_OPS:
                flops[op, variant, arch] = total_flops(op_gemms(op, fast, obs_dim, act_dim))
            for path in paths:
                graphs = {"graphs": "on" if path == "captured" else "off"}
                cfg = dataclasses.replace(fast, training=fast.training.model_copy(update=graphs))
                torch.manual_seed(0)
                agent = Agent(cfg, obs_dim, act_dim, device=target)
                calls["update", variant, arch, path] = lambda a=agent, b=batch: a.update(b)
                calls["act", variant, arch, path] = lambda a=agent, o=obs: a.act(o)
    times = _device_times(calls, target, repeats, max(warmup, WARMUP + 1 if "captured" in paths else 0))
    rows = []
    for (op, variant, arch, path), (wall, on_device) in times.items():
        eager = statistics.median(times[op, variant, arch, "eager"][0])
        rows.append({"op": op, "variant": variant, "q_arch": arch, "path": path,
                     "ms": statistics.median(wall), "ms_min": min(wall), "ms_max": max(wall),
                     "device_ms": statistics.median(on_device), "flops": flops[op, variant, arch]})
        rows[-1]["speedup"] = eager / rows[-1]["ms"]
    rows.sort(key=lambda r: (DEVICE_OPS.index(r["op"]), r["variant"], r["q_arch"], paths.index(r["path"])))
    info = machine() | {"torch_version": torch.__version__} | describe(target)
    result = {"machine": info, "ops": rows}
    if json_path is not None:
        atomic.write_json(json_path, result)
    return result


def _timed(fn: Callable, total: dict[str, float], key: str) -> Callable:
    """`fn` that adds its wall time (s) to `total[key]` and counts its calls in `total[key + '_n']`."""

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            total[key] += time.perf_counter() - t0
            total[key + "_n"] += 1

    return wrapper


def loop_overhead(
    params_path: str | Path = "params.yaml", env: str = BENCH_ENV, variant: str = "iterative",
    scale: str = "smoke", repeats: int = 20, out: str | Path | None = None,
) -> dict:
    """Training steps/s of a real run against its update + act + env step.

    Runs the `scale`'s training of (env, variant, seed 0) in `out` (a temporary folder if None; on
    the current thread count) with timers around `Agent.update`, `Agent.act` and the training
    environment's `step`. `overhead` = wall time not spent in them (evaluation env steps counted at
    the training env's mean step time) / the time spent in them: what logging, replay sampling,
    checkpointing, environment creation and the loop itself add. Measured inside the run, it is
    robust to other processes' load. `separate_*` repeat the comparison with update, act
    and env step timed separately after the run (`repeats` interleaved calls on the trained agent).
    """
    import tempfile

    from iapo.envs import make_env, scale_action
    from iapo.train import Run

    params = load_params(params_path)
    cfg = resolve(params, env, variant, seed=0, scale=scale)
    spent = dict.fromkeys(("update", "update_n", "act", "act_n", "env_step", "env_step_n"), 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(cfg, Path(out or tmp) / "run")
        run.agent.update = _timed(run.agent.update, spent, "update")
        run.agent.act_on_device = _timed(run.agent.act_on_device, spent, "act")
        run.env.step = _timed(run.env.step, spent, "env_step")
        t0 = time.perf_counter()
        run.run()
        wall = time.perf_counter() - t0
        del run.agent.update, run.agent.act_on_device, run.env.step  # the timers go; the methods stay
    eval_steps = sum(r["length"] for r in run.c.eval_rows)
    mean_env_step = spent["env_step"] / max(spent["env_step_n"], 1)
    inside = spent["update"] + spent["act"] + spent["env_step"] + eval_steps * mean_env_step
    agent, rng, n_updates = run.agent, np.random.default_rng(1), int(spent["update_n"])
    batch = run.buffer.sample(cfg.training.batch_size, agent.dtype)
    probe, obs = make_env(env, 12345, truncated_obs=cfg.training.truncated_obs)

    def env_step() -> None:
        nonlocal obs
        a = rng.uniform(-1.0, 1.0, agent.act_dim).astype(np.float32)
        obs, _, terminated, truncated, _ = probe.step(scale_action(probe, a))
        if terminated or truncated:
            obs, _ = probe.reset()

    unit = {key[0]: statistics.median(t) / 1e3 for key, t in _time_interleaved({
        ("update",): lambda: agent.update(batch), ("act",): lambda: agent.act(obs),
        ("act_deterministic",): lambda: agent.act(obs, deterministic=True), ("env_step",): env_step,
    }, repeats, warmup=2).items()}
    n_policy = cfg.steps - min(cfg.initial_random_steps, cfg.steps)
    separate = (cfg.steps * unit["env_step"] + n_policy * unit["act"] + n_updates * unit["update"]
                + eval_steps * (unit["act_deterministic"] + unit["env_step"]))
    return {
        "env": env, "variant": variant, "scale": scale, "steps": cfg.steps, "updates": n_updates,
        "eval_steps": eval_steps, "wall_s": wall, "steps_per_s": cfg.steps / wall,
        "in_parts_s": inside, "overhead": wall / inside - 1.0, "spent_s": spent,
        "separate_s": separate, "separate_overhead": wall / separate - 1.0, "unit_s": unit,
    }


TABLE_HEADER = ("op", "variant", "q_arch", "path", "median ms", "min ms", "max ms", "cpu ms", "GFLOP",
                "floor ms", "eff", "eff(min)", "eff(cpu)")


def table_row(r: dict) -> tuple[str, ...]:
    """One row of `format_table` (also the progress line `iapo bench` prints as each row ends)."""
    return (r["op"], r["variant"], r["q_arch"], r.get("path", "reference"),
            f"{r['ms']:.3f}", f"{r['ms_min']:.3f}", f"{r['ms_max']:.3f}", _num(r.get("cpu_ms"), "{:.3f}"),
            _num(r["flops"] and r["flops"] / 1e9, "{:.3f}"), _num(r["floor_ms"], "{:.3f}"),
            _num(r.get("efficiency"), "{:.0%}"), _num(r.get("efficiency_min"), "{:.0%}"),
            _num(r.get("efficiency_cpu"), "{:.0%}"))


def format_table(result: dict) -> str:
    """Aligned text table of `run_bench` output: one row per timed op."""
    lines = _aligned(TABLE_HEADER, [table_row(r) for r in result["ops"]], n_text=4)
    m = result["machine"]
    lines.append(
        f"machine: processor={m.get('processor', 'unknown')}, threads={m.get('threads')}, "
        f"torch={m.get('torch_version')}"
    )
    return "\n".join(lines)


def format_device_table(result: dict) -> str:
    """Aligned text table of `run_device_bench` output."""
    header = ("op", "variant", "q_arch", "path", "median ms", "min ms", "max ms", "device ms", "GFLOP",
              "speed-up")
    body = [(r["op"], r["variant"], r["q_arch"], r["path"], f"{r['ms']:.3f}", f"{r['ms_min']:.3f}",
             f"{r['ms_max']:.3f}", f"{r['device_ms']:.3f}", f"{r['flops'] / 1e9:.3f}", f"{r['speedup']:.2f}x")
            for r in result["ops"]]
    m = result["machine"]
    gpu = m.get("gpu_name")
    where = f"{gpu}, CUDA {m['cuda_version']}" if gpu else m.get("processor", "unknown")
    return "\n".join([*_aligned(header, body, n_text=4),
                      f"device: {m['device']} ({where}), torch={m['torch_version']}"])


def format_loop(rows: list[dict]) -> str:
    """Aligned table of `loop_overhead` results: steps/s of the whole run against its parts."""
    header = ("env", "variant", "scale", "steps", "updates", "wall s", "steps/s", "in parts s", "overhead",
              "separate s", "overhead (separate)")
    body = [(r["env"], r["variant"], r["scale"], str(r["steps"]), str(r["updates"]), f"{r['wall_s']:.1f}",
             f"{r['steps_per_s']:.1f}", f"{r['in_parts_s']:.1f}", f"{r['overhead']:+.1%}",
             f"{r['separate_s']:.1f}", f"{r['separate_overhead']:+.1%}") for r in rows]
    return "\n".join(_aligned(header, body, n_text=3))


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else fmt.format(x)


def _aligned(header: tuple[str, ...], body: list[tuple[str, ...]], n_text: int) -> list[str]:
    """Header, rule and rows; the first `n_text` columns left-aligned, the rest right-aligned."""
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        cells = [c.ljust(w) if i < n_text else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                         strict=True))]
        return "  ".join(cells)

    return [line(header), "  ".join("-" * w for w in widths), *map(line, body)]
