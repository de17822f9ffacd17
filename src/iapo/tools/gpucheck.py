"""`iapo gpu-check`: every check that needs a GPU, as one prepared run (`make gpu-check`).

On `--device cuda` it is sized for one large GPU; on `--device cpu` it runs the same steps at small
sizes, so the script is exercised by the test suite and never rots. The steps, correctness first
(each a real `iapo train` process, the benchmark, or a measurement):

1. cuda_tests: the test suite's CUDA cases and device tests, with pytest (`CUDA_TESTS`);
2. resume: a captured iterative run killed (SIGKILL) after a resume state, restarted, and compared
   with the uninterrupted run;
3. deterministic: the captured iterative run twice with `--deterministic`, compared;
4. checkpoints: a CPU-written snapshot acting on the device, a device-written one on the CPU;
5. bench: update and act of every (agent, Q arch) the paper grid trains, eager and captured;
6. train: the learning loop of direct and iterative (eager and captured), direct_flow and
   iterative_mb (captured) on InvertedPendulum; the captured runs' first learning rows against the
   eager ones (same seed);
7. loop: env steps/s of whole training runs (direct and iterative, HalfCheetah);
8. pack: several captured iterative runs at once, one core each, their aggregate env steps/s over
   the window all of them share, against one run alone pinned the same way; whether an MPS server
   ran (without one, processes time-slice the GPU: they share it, they do not run at once); with
   `--mps`, once more under a CUDA MPS control daemon started for the step (`iapo.pack`);
9. envs: the env step time of each paper environment;
10. grid: the paper grid's training cost in device-hours, each run priced by its env, Q arch and agent.

Then each target (`targets`, `TOLERANCE`) is printed with pass or FAIL. The report
(OUT/gpu_check-<cpu|cuda>.json and .md) is written after every step. A step that fails
is recorded (error; a failed training's exit code and log tail) and the next one runs; with
`--budget-s`, a step that would not end within the budget is skipped and says so. Rates are measured
from outside the process: `metrics.csv` is rewritten at each log row, so its mtime and last env
step give the steps/s of the learning phase (the random warm-up excluded).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from iapo import atomic
from iapo.config import load_params
from iapo.pack import mps_daemon, on_cores, train_argv

if TYPE_CHECKING:
    import torch

TRAIN_ENV = "InvertedPendulum-v2"
LOOP_ENV = "HalfCheetah-v2"
LOOP_VARIANTS = ("direct", "iterative")
PATHS = ("eager", "captured")
TRAIN_RUNS = (*((v, p) for v in LOOP_VARIANTS for p in PATHS), ("direct_flow", "captured"),
              ("iterative_mb", "captured"))
"""The learning-loop runs: direct and iterative eager and captured; flow and model-based captured
only (their eager update and acting are in the bench rows)."""
TRAIN_VARIANTS = tuple(dict.fromkeys(v for v, _ in TRAIN_RUNS))
BENCH_AGENTS = ((("direct", "iterative", "direct_flow"), ("A", "B")), (("iterative_mb",), ("A",)),
                (("direct_mb",), ("B",)))
"""The benchmarked agents (variants × Q architectures): every (agent, Q arch) the paper grid trains."""
CHECK_SCALE = "smoke"  # the scale whose cadence the check's params copy rewrites


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much each step runs: env steps of random warm-up, updates after it, and the rest."""

    warmup: int
    updates: int  # train, resume and checkpoints
    loop_updates: int  # loop and pack
    pack: int  # runs at once in the pack step
    bench_repeats: int
    bench_warmup: int
    env_steps: int = 300  # timed env steps per paper environment
    mb_pretrain: int | None = None  # model-only updates after the warm-up (None: params.yaml's)


SIZES = {
    "cuda": Sizes(warmup=1000, updates=1000, loop_updates=1000, pack=8, bench_repeats=20, bench_warmup=3),
    "cpu": Sizes(warmup=300, updates=20, loop_updates=20, pack=2, bench_repeats=2, bench_warmup=0,
                 env_steps=50, mb_pretrain=20),
}


def check_params(base: Path, out: Path, graphs: str, sizes: Sizes) -> Path:
    """A copy of `base` (params.yaml) whose `smoke` scale has the check's cadence: warm-up, one
    evaluation at the end, about ten log rows and two resume states in the learning phase."""
    raw = yaml.safe_load(base.read_text())
    raw["training"]["graphs"] = graphs
    if sizes.mb_pretrain is not None:
        raw["model_based"]["pretrain_updates"] = sizes.mb_pretrain
    longest = sizes.warmup + max(sizes.updates, sizes.loop_updates)
    raw["scales"][CHECK_SCALE].update({
        "initial_random_steps": sizes.warmup, "eval_every": longest, "eval_episodes": 1,
        "log_every": max(5, min(sizes.updates, sizes.loop_updates) // 10),
        "resume_every": max(5, sizes.updates // 2), "checkpoint_steps": [sizes.warmup],
    })
    path = out / f"params-graphs-{graphs}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    load_params(path)  # validated like any params file
    return path


def train_cmd(params: Path, env: str, variant: str, steps: int, folder: Path, device: str,
              seed: int = 0) -> list[str]:
    """One training of the check: `steps` env steps into `folder`, one thread."""
    return train_argv(params, CHECK_SCALE, env, variant, seed, device, 1, "--steps", str(steps),
                      "--out", str(folder))


def last_step(metrics: Path) -> int | None:
    """The env step of the last row of a metrics.csv (None while it has none)."""
    try:
        lines = metrics.read_text().splitlines()
    except FileNotFoundError:
        return None
    return int(float(lines[-1].split(",")[0])) if len(lines) > 1 else None


class RunFailed(RuntimeError):
    """An `iapo train` process of the check exited with an error: its command, exit code and log."""

    def __init__(self, cmd: list[str], returncode: int, log: Path) -> None:
        super().__init__(f"`{' '.join(cmd)}` failed (exit {returncode}); see {log}")
        self.cmd, self.returncode, self.log = cmd, returncode, log


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    """`cmd` on CPU `cpu` only (`taskset`, so every thread it ever starts inherits it), or as is."""
    return cmd if cpu is None else on_cores(cmd, [cpu])


class Watched:
    """One `iapo train` process, its own log, and the (env step, time) of each rewrite of its
    metrics.csv (whose mtime is when that row was written)."""

    def __init__(self, cmd: list[str], folder: Path, cpu: int | None = None, env: dict | None = None) -> None:
        self.cmd, self.folder, self.killed = cmd, folder, False
        folder.parent.mkdir(parents=True, exist_ok=True)
        self.log = folder.parent / f"{folder.name}.log"
        with open(self.log, "a") as sink:
            self.proc = subprocess.Popen(pinned(cmd, cpu), stdout=sink, stderr=subprocess.STDOUT,
                                         env=None if env is None else os.environ | env)
        self.samples: list[tuple[int, float]] = []
        self._mtime = 0

    def poll(self) -> None:
        try:
            mtime = (self.folder / "metrics.csv").stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime != self._mtime:
            step = last_step(self.folder / "metrics.csv")
            if step is not None:
                self.samples.append((step, mtime / 1e9))
                self._mtime = mtime

    def kill_after_resume_state(self, step: int) -> None:
        """SIGKILL once a resume state past env step `step` exists."""
        states = (self.folder / "resume").glob("step_*.pt")
        if not self.killed and self.proc.poll() is None and any(int(f.stem[5:]) > step for f in states):
            self.proc.send_signal(signal.SIGKILL)
            self.killed = True

    def learning(self, warmup: int) -> list[tuple[int, float]]:
        """The samples past the random warm-up."""
        return [(s, t) for s, t in self.samples if s > warmup]

    def rate(self, warmup: int) -> float:
        """Env steps/s from the first row past the warm-up to the last row."""
        learning = self.learning(warmup)
        if len(learning) < 2 or learning[-1][1] <= learning[0][1]:
            return math.nan
        return (learning[-1][0] - learning[0][0]) / (learning[-1][1] - learning[0][1])


def window_rate(samples: list[tuple[int, float]], t0: float, t1: float) -> float:
    """Env steps/s of one run within [t0, t1]: its env step interpolated linearly between the
    (step, time) samples at both ends; NaN when the samples do not cover the window."""
    if t1 <= t0 or len(samples) < 2 or samples[0][1] > t0 or samples[-1][1] < t1:
        return math.nan
    steps, times = [float(s) for s, _ in samples], [t for _, t in samples]
    return float(np.interp(t1, times, steps) - np.interp(t0, times, steps)) / (t1 - t0)


def aggregate_rate(runs: list[list[tuple[int, float]]]) -> dict:
    """Runs at once: the sum of their env steps/s over the window in which all of them were in
    their learning phase (from the last run's first row to the first run's last row); summing each
    run's rate over its own window would count a run that had the device alone as if it shared it."""
    t0 = max((r[0][1] for r in runs if r), default=math.nan)
    t1 = min((r[-1][1] for r in runs if r), default=math.nan)
    per_run = [window_rate(r, t0, t1) for r in runs]
    return {"window_s": t1 - t0 if t1 > t0 else 0.0, "per_run_steps_per_s": per_run,
            "aggregate_steps_per_s": float(sum(per_run))}


def run_watched(cmds: list[list[str]], folders: list[Path], warmup: int, stop_after: int | None = None,
                cpus: list[int] | None = None, env: dict | None = None) -> list[Watched]:
    """Run `cmds` at once (folder i is command i's --out, its log beside it) and watch them.

    `stop_after`: SIGKILL each process once it has saved a resume state past that env step.
    `cpus`: pin process i to CPU cpus[i] (each run on its own core). `env`: added to their
    environment. A run that fails (not one killed here) raises `RunFailed` once all have ended."""
    runs = [Watched(cmd, f, None if cpus is None else cpus[i], env)
            for i, (cmd, f) in enumerate(zip(cmds, folders, strict=True))]
    t0 = time.perf_counter()
    while any(r.proc.poll() is None for r in runs):
        for r in runs:
            r.poll()
            if stop_after is not None:
                r.kill_after_resume_state(stop_after)
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    for r in runs:
        r.poll()
        r.wall_s = wall
        if r.proc.returncode != 0 and not r.killed:
            raise RunFailed(r.cmd, r.proc.returncode, r.log)
    return runs


def measured(r: Watched, warmup: int) -> dict:
    return {"folder": str(r.folder), "steps_per_s": r.rate(warmup), "wall_s": r.wall_s, "killed": r.killed}


def same_csv(a: Path, b: Path, rows: slice = slice(None)) -> dict:
    """Whether two CSVs are byte-identical, and the largest relative difference of their numbers
    (over the data rows `rows` only, if given; rows of different counts differ infinitely)."""
    if a.read_bytes() == b.read_bytes():
        return {"identical": True, "max_rel_diff": 0.0}
    ra, rb = (list(csv.reader(p.open()))[1:][rows] for p in (a, b))
    worst = math.inf if len(ra) != len(rb) else 0.0
    for row_a, row_b in zip(ra, rb, strict=False):
        for x, y in zip(row_a, row_b, strict=False):
            try:
                fx, fy = float(x), float(y)
            except ValueError:
                continue
            if math.isfinite(fx) and math.isfinite(fy):
                worst = max(worst, abs(fx - fy) / max(abs(fx), abs(fy), 1e-12))
    return {"identical": False, "max_rel_diff": worst}


def first_learning_rows(metrics: Path, warmup: int, n: int = 2) -> slice:
    """The data rows of a metrics.csv that are its first `n` past the random warm-up."""
    steps = [int(float(line.split(",")[0])) for line in metrics.read_text().splitlines()[1:]]
    first = next((i for i, step in enumerate(steps) if step > warmup), len(steps))
    return slice(first, first + n)


CUDA_TESTS = ("tests/test_devices.py",
              "tests/test_graphs.py::test_captured_update_and_acting_match_eager_on_cuda",
              "tests/test_replay.py::test_rows_staged_on_a_gpu_match_the_cpu_rows")
"""The test suite's CUDA cases and device tests (skipped without a GPU), run by the check with pytest."""


def cuda_tests(root: Path, log: Path) -> dict:
    """`CUDA_TESTS` with pytest, from the source tree at `root` (on the default CUDA device): their
    counts, from a JUnit report."""
    import xml.etree.ElementTree as ET

    if not (root / "tests").is_dir():
        raise RuntimeError(f"no tests/ folder beside the package ({root}): the check runs from a source tree")
    report = log.with_suffix(".xml")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", f"--junitxml={report}",
           *CUDA_TESTS]
    env = os.environ | {"PYTHONDONTWRITEBYTECODE": "1"}  # the source tree stays as it is
    with open(log, "w") as sink:
        code = subprocess.run(cmd, cwd=root, stdout=sink, stderr=subprocess.STDOUT, env=env).returncode
    if not report.exists():
        raise RunFailed(cmd, code, log)
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    return counts | {"passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
                     "exit_code": code, "log": str(log)}


def cross_device_actions(folder: Path, device: str, n_obs: int = 5) -> dict:
    """The deterministic actions (tanh μ) of a run's last snapshot loaded on the CPU and on `device`,
    at `n_obs` states of its task: the largest |a_device − a_cpu|, the largest |a|, and their ratio.
    Each action is taken after `torch.manual_seed(i)` on both: an iterative agent's samples of J
    then repeat on one kind of device (on two kinds the generators differ, so the ratio shows how far
    its K steps carry the difference, not rounding alone)."""
    import torch

    from iapo.agent import Agent

    on_cpu, on_device = Agent.load(folder, device="cpu"), Agent.load(folder, device=device)
    env, obs = on_cpu.make_env(seed=123)
    rng, worst, largest = np.random.default_rng(0), 0.0, 0.0
    for i in range(n_obs):
        torch.manual_seed(i)
        a_cpu = on_cpu.act(obs, deterministic=True)
        torch.manual_seed(i)
        worst = max(worst, float(np.max(np.abs(on_device.act(obs, deterministic=True) - a_cpu))))
        largest = max(largest, float(np.max(np.abs(a_cpu))))
        obs, _, terminated, truncated, _ = env.step(on_cpu.env_action(env, rng.uniform(-1, 1, a_cpu.shape)))
        if terminated or truncated:
            obs, _ = env.reset()
    return {"snapshot_step": on_cpu.env_step, "max_abs_diff": worst, "max_abs_action": largest,
            "relative": worst / largest if largest > 0 else math.nan}


def env_step_ms(envs: list[str], steps: int) -> dict[str, float]:
    """Median wall ms of one `env.step` with uniform random actions, per paper environment (the CPU
    side of a training step, whatever the device)."""
    from iapo.envs import make_env, scale_action

    out = {}
    for name in envs:
        env, _ = make_env(name, seed=0)
        rng, times = np.random.default_rng(0), []
        for _ in range(steps):
            action = scale_action(env, rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
            t0 = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(action)
            times.append(time.perf_counter() - t0)
            if terminated or truncated:
                env.reset()
        env.close()
        out[name] = 1e3 * float(np.median(times))
    return out


def bench_variant(cfg) -> str:
    """The benchmarked agent that prices a run: its family, model-based or not (`BENCH_VARIANTS`).
    Iterative runs with fewer iterations (k1, k2) are priced at K = 5: an upper bound."""
    return f"{cfg.family}_mb" if cfg.value == "model_based" else cfg.family


def step_seconds(update_ms: float, act_ms: float, env_ms: float, updates_per_step: float,
                 eval_steps_per_step: float) -> float:
    """Seconds per training env step: its updates, one action and one env step, and its share of
    the evaluation episodes (an action and an env step each, no update)."""
    return (updates_per_step * update_ms + (1 + eval_steps_per_step) * (act_ms + env_ms)) / 1e3


def grid_cost(params_path: Path, bench_rows: list[dict], env_ms: dict[str, float],
              loop_rate: float | None, pack_speedup: float | None) -> dict:
    """Device-hours of the paper grid's training, each run priced by its (env, Q arch, benchmarked
    agent): `step_seconds` from the bench rows (the faster path of eager and captured), the env's
    measured step, updates per step and the scale's evaluation cadence (every episode its full
    length: an upper bound). `loop_rate` (env steps/s of the measured HalfCheetah iterative loop, if
    any) calibrates the prices for what the loop adds (logging, replay sampling, copies); the grid
    is given alone and packed (divided by the pack's aggregate speed-up)."""
    from iapo.config import resolve, run_grid
    from iapo.envs import make_env

    params = load_params(params_path)
    scale = params.scales["paper"]
    fastest: dict[tuple[str, str, str], float] = {}
    for b in bench_rows:
        key = (b["op"], b["variant"], b["q_arch"])
        fastest[key] = min(fastest.get(key, math.inf), b["ms"])
    limits = {}
    for env in {k.env for k in run_grid(params, "paper")}:
        e, _ = make_env(env, seed=0)
        limits[env] = e.spec.max_episode_steps or 1000
        e.close()

    def price(env: str, variant: str, arch: str) -> float:
        cfg_ups = params.training.updates_per_step
        eval_share = scale.eval_episodes * limits[env] / scale.eval_every
        return step_seconds(fastest["update", variant, arch], fastest["act", variant, arch], env_ms[env],
                            cfg_ups, eval_share)

    calibration = 1.0
    if loop_rate and math.isfinite(loop_rate) and ("update", "iterative", "A") in fastest:
        calibration = (1.0 / loop_rate) / price(LOOP_ENV, "iterative", "A")
    groups: dict[tuple[str, str, str], dict] = {}
    missing = set()
    for key in run_grid(params, "paper"):
        cfg = resolve(params, key.env, key.variant, key.seed, "paper")
        variant = bench_variant(cfg)
        if ("update", variant, cfg.q_arch) not in fastest:
            missing.add((variant, cfg.q_arch))
            continue
        g = groups.setdefault((key.env, cfg.q_arch, variant), {"runs": 0, "env_steps": 0})
        g["runs"] += 1
        g["env_steps"] += scale.steps_of(key.env, key.variant)
        g["s_per_step"] = calibration * price(key.env, variant, cfg.q_arch)
    hours = sum(g["env_steps"] * g["s_per_step"] for g in groups.values()) / 3600
    speedup = pack_speedup if pack_speedup and math.isfinite(pack_speedup) else None
    return {"runs": sum(g["runs"] for g in groups.values()), "unpriced": sorted(missing),
            "calibration": calibration, "hours_alone": hours,
            "pack_speedup": speedup, "hours_packed": hours / speedup if speedup else None,
            "groups": [{"env": e, "q_arch": a, "variant": v} | g for (e, a, v), g in sorted(groups.items())]}


def mps_active() -> bool:
    """Whether a CUDA MPS server or control daemon runs on this machine (kernels of several
    processes then run at once; without it a GPU time-slices between processes)."""
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in ("nvidia-cuda-mps-server", "nvidia-cuda-mps-control"):
                return True
        except OSError:
            continue
    return False


STEPS = ("cuda_tests", "resume", "deterministic", "checkpoints", "bench", "train", "loop", "pack", "envs",
         "grid")
"""In the order they run: correctness first, then costs; each is ok, failed or skipped."""

ESTIMATE_S = {
    "cuda": {"cuda_tests": 60, "resume": 120, "deterministic": 90, "checkpoints": 90, "bench": 90,
             "train": 150, "loop": 120, "pack": 120, "envs": 20, "grid": 5},
    "cpu": {"cuda_tests": 60, "resume": 40, "deterministic": 30, "checkpoints": 20, "bench": 60, "train": 40,
            "loop": 30, "pack": 30, "envs": 10, "grid": 5},
}
"""Rough wall seconds of each step at the check's sizes, for `--budget-s` (a step is skipped when
it would not end within the budget)."""


class Report:
    """The check's result, written (JSON and Markdown) after every step, whatever the step did: ok,
    failed (its error, and the exit code and log tail of a failed `iapo train`) or skipped (what it
    needed and what was left of the budget)."""

    def __init__(self, out: Path, kind: str, budget_s: float | None, header: dict) -> None:
        self.json, self.md = out / f"gpu_check-{kind}.json", out / f"gpu_check-{kind}.md"
        self.kind, self.budget_s, self.t0 = kind, budget_s, time.perf_counter()
        self.result: dict = header | {"budget_s": budget_s, "steps": {}}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def run(self, name: str, title: str, fn: Callable[[], object]) -> object | None:
        """Run step `name` unless it would overrun the budget; record its outcome; write the report."""
        n, estimate = STEPS.index(name) + 1, ESTIMATE_S[self.kind][name]
        left = None if self.budget_s is None else self.budget_s - self.elapsed()
        if left is not None and estimate > left:
            status = {"status": "skipped", "why": f"needs about {estimate} s; {max(left, 0):.0f} s of "
                                                  f"--budget-s {self.budget_s:.0f} left"}
            print(f"gpu-check [{n}/{len(STEPS)}] {title}: skipped ({status['why']})", file=sys.stderr)
            self.result["steps"][name] = status
            self.write()
            return None
        print(f"gpu-check [{n}/{len(STEPS)}] {title} ({self.elapsed():.0f} s so far)", file=sys.stderr)
        start = time.perf_counter()
        try:
            value = fn()
            status: dict = {"status": "ok"}
            self.result[name] = value
        except Exception as err:  # recorded, and the check goes on with the next step
            value, status = None, {"status": "failed", "error": f"{type(err).__name__}: {err}"}
            if isinstance(err, RunFailed):
                status |= {"exit_code": err.returncode, "log_tail": tail(err.log)}
            print(f"gpu-check: {name} failed: {status['error']}", file=sys.stderr)
        self.result["steps"][name] = status | {"seconds": round(time.perf_counter() - start, 1)}
        self.write()
        return value

    def write(self) -> None:
        self.result["wall_s"] = self.elapsed()
        atomic.write_json(self.json, self.result)
        atomic.write_text(self.md, format_markdown(self.result) + "\n")


def tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def gpu_check(device: str | torch.device = "cuda", out: str | Path = "results/gpu_check",
              params_path: str | Path = "params.yaml", budget_s: float | None = None,
              mps: bool = False) -> dict:
    """Run every step (module docstring) on `device` within `budget_s` seconds if given; write the
    report after each step and return it. `mps`: the pack step is measured a second time under a
    CUDA MPS control daemon started for it (`iapo.pack.mps_daemon`)."""
    import torch

    from iapo.config import resolve
    from iapo.devices import describe, resolve_device
    from iapo.envs import PAPER_ENVS
    from iapo.provenance import machine
    from iapo.tools.bench import run_device_bench

    target = resolve_device(device)
    kind = target.type
    sizes, out = SIZES[kind], Path(out)
    work = out / f"work-{kind}"
    work.mkdir(parents=True, exist_ok=True)
    params = {g: check_params(Path(params_path), work, g, sizes) for g in ("off", "on")}
    base_params = load_params(params_path)
    n_train, n_loop = sizes.warmup + sizes.updates, sizes.warmup + sizes.loop_updates
    dev = str(target)
    report = Report(out, kind, budget_s, {"machine": machine() | describe(target),
                                          "sizes": dataclasses.asdict(sizes)})
    done: dict[Path, dict] = {}  # finished trainings, by folder: a later step reuses them

    def folder(*parts: str) -> Path:
        return work.joinpath(*parts)

    def trained(env: str, variant: str, path: str, updates: int, name: str) -> dict:
        """One run alone on the device (or the one an earlier step made), with its env steps/s."""
        f = folder(name, variant, path)
        if f not in done:
            graphs = "on" if path == "captured" else "off"
            cmd = train_cmd(params[graphs], env, variant, sizes.warmup + updates, f, dev)
            done[f] = measured(run_watched([cmd], [f], sizes.warmup)[0], sizes.warmup)
        q_arch = resolve(base_params, env, variant, 0, CHECK_SCALE).q_arch
        return {"env": env, "variant": variant, "q_arch": q_arch, "path": path, "updates": updates} | done[f]

    def resume() -> dict:
        reference = trained(TRAIN_ENV, "iterative", "captured", sizes.updates, "train")
        f = folder("resume")
        cmd = train_cmd(params["on"], TRAIN_ENV, "iterative", n_train, f, dev)
        killed = run_watched([cmd], [f], sizes.warmup, stop_after=sizes.warmup)[0]
        run_watched([cmd], [f], sizes.warmup)
        return {"killed": killed.killed} | {
            name: same_csv(f / name, Path(reference["folder"]) / name)
            for name in ("metrics.csv", "eval.csv")}

    def deterministic() -> dict:
        """The captured iterative run twice with `--deterministic`: the same bytes both times."""
        folders = [folder("deterministic", f"run{i}") for i in (1, 2)]
        for f in folders:
            cmd = [*train_cmd(params["on"], TRAIN_ENV, "iterative", n_train, f, dev), "--deterministic"]
            run_watched([cmd], [f], sizes.warmup)
        return {name: same_csv(folders[0] / name, folders[1] / name) for name in ("metrics.csv", "eval.csv")}

    def checkpoints() -> dict:
        on_device = Path(trained(TRAIN_ENV, "direct", "eager", sizes.updates, "train")["folder"])
        on_cpu = on_device
        if kind != "cpu":
            on_cpu = folder("cpu-written")
            run_watched([train_cmd(params["off"], TRAIN_ENV, "direct", n_train, on_cpu, "cpu")],
                        [on_cpu], sizes.warmup)
        captured = Path(trained(TRAIN_ENV, "iterative", "captured", sizes.updates, "train")["folder"])
        return {"direct, CPU-written": cross_device_actions(on_cpu, dev),
                f"direct, {kind}-written": cross_device_actions(on_device, dev),
                f"iterative captured, {kind}-written": cross_device_actions(captured, dev)}

    def bench() -> list[dict]:
        torch.set_num_threads(1)
        rows = []
        for variants, archs in BENCH_AGENTS:
            rows += run_device_bench(params_path, device=dev, repeats=sizes.bench_repeats,
                                     warmup=sizes.bench_warmup, variants=variants, archs=archs)["ops"]
        return rows

    def train() -> dict:
        """The learning loop of each agent; the captured runs' first learning rows against the eager
        ones (same seed)."""
        rows = [trained(TRAIN_ENV, v, p, sizes.updates, "train") for v, p in TRAIN_RUNS]
        agreement = {}
        for v in LOOP_VARIANTS:
            eager, captured = (folder("train", v, p) / "metrics.csv" for p in PATHS)
            agreement[v] = same_csv(eager, captured, first_learning_rows(eager, sizes.warmup))
        return {"runs": rows, "captured_vs_eager": agreement}

    def loop() -> list[dict]:
        return [trained(LOOP_ENV, v, p, sizes.loop_updates, "loop") for v in LOOP_VARIANTS for p in PATHS]

    def pack() -> dict:
        cpus = sorted(os.sched_getaffinity(0))
        f = folder("pack", "alone")
        alone = run_watched([train_cmd(params["on"], LOOP_ENV, "iterative", n_loop, f, dev)], [f],
                            sizes.warmup, cpus=cpus[:1])[0]
        single = alone.rate(sizes.warmup)

        def together(name: str, env: dict | None) -> dict:
            folders = [folder("pack", name, f"seed{i}") for i in range(sizes.pack)]
            runs = run_watched([train_cmd(params["on"], LOOP_ENV, "iterative", n_loop, f, dev, seed=i)
                                for i, f in enumerate(folders)], folders, sizes.warmup,
                               cpus=[cpus[i % len(cpus)] for i in range(sizes.pack)], env=env)
            rates = aggregate_rate([r.learning(sizes.warmup) for r in runs])
            return rates | {"speedup": rates["aggregate_steps_per_s"] / single, "wall_s": runs[0].wall_s}

        # without MPS (the processes time-slice the GPU), unless a server already runs; with a
        # job-local MPS daemon only when asked (--mps): nothing here changes a GPU setting
        result = {"runs": sizes.pack, "mps_active": mps_active(), "pinned": "one core per run (taskset)",
                  "single_steps_per_s": single, **together("plain", None)}
        if mps:
            with mps_daemon(True) as env:
                result["with_mps"] = together("mps", env)
        return result

    def grid() -> dict:
        rows = report.result.get("bench")
        if not rows:
            raise RuntimeError("no bench rows to price the grid with (the bench step did not run)")
        rates = [r["steps_per_s"] for r in report.result.get("loop") or [] if r["variant"] == "iterative"]
        pack_result = report.result.get("pack") or {}
        return grid_cost(Path(params_path), rows, report.result.get("envs") or {},
                         max(rates) if rates else None, pack_result.get("speedup"))

    root = Path(__file__).resolve().parents[3]
    report.run("cuda_tests", "the test suite's CUDA cases and device tests (pytest)",
               lambda: cuda_tests(root, work / "cuda_tests.log"))
    report.run("resume", "kill and resume (captured iterative) against the uninterrupted run", resume)
    report.run("deterministic", "the captured iterative run twice with --deterministic", deterministic)
    report.run("checkpoints", "snapshots across devices", checkpoints)
    report.run("bench", f"update and act timed on {dev}, eager and captured", bench)
    report.run("train", f"training on {TRAIN_ENV}: the learning loop of each agent", train)
    report.run("loop", f"training loop env steps/s on {LOOP_ENV}", loop)
    report.run("pack", f"{sizes.pack} captured iterative runs at once, one core each", pack)
    report.run("envs", "env step times of the paper's environments",
               lambda: env_step_ms(list(PAPER_ENVS), sizes.env_steps))
    report.run("grid", "the paper grid's training cost", grid)
    result = report.result
    result["targets"] = targets(result)
    report.write()
    for t in result["targets"]:
        verdict = {True: "pass", False: "FAIL", None: "not measured"}[t["pass"]]
        print(f"gpu-check target: {t['target']}: {verdict} ({t['measured']})", file=sys.stderr)
    failed = [n for n, s in result["steps"].items() if s["status"] != "ok"]
    failed += [f"target '{t['target']}'" for t in result["targets"] if t["pass"] is False]
    not_ok = f"; not ok: {', '.join(failed)}" if failed else ""
    print(f"gpu-check: done in {report.elapsed():.0f} s{not_ok}"
          + f"; written: {report.json}, {report.md} (run folders and logs: {work})", file=sys.stderr)
    return result


TOLERANCE = {"captured_vs_eager": 1e-3, "direct_across_devices": 1e-4, "iterative_across_devices": 5e-2}
"""Targets of `targets`: the first learning rows of a captured run against the eager one (same seed,
largest relative difference of any number); a snapshot's deterministic action on the device against
the CPU, relative to the largest |a| (direct: rounding only; iterative: its K steps follow J's
samples, whose generators differ between device kinds)."""


def targets(r: dict) -> list[dict]:
    """Each target of the check, `pass` True, False or None (its step did not run or measure it)."""
    out = []

    def add(target: str, ok: bool | None, measured: str) -> None:
        out.append({"target": target, "pass": ok, "measured": measured})

    if (t := r.get("cuda_tests")) is not None:
        add("the CUDA tests pass", t["failures"] == 0 and t["errors"] == 0,
            f"{t['passed']} passed, {t['failures']} failed, {t['errors']} errors, {t['skipped']} skipped")
    else:
        add("the CUDA tests pass", None, "not run")
    for name, what in (("resume", "a killed and resumed run equals the uninterrupted one"),
                       ("deterministic", "--deterministic repeats to the byte")):
        x = r.get(name)
        ok = None if x is None else x["metrics.csv"]["identical"] and x["eval.csv"]["identical"]
        add(what, ok, "not run" if x is None else f"metrics.csv {_same(x['metrics.csv'])}, "
                                                   f"eval.csv {_same(x['eval.csv'])}")
    for variant, d in ((r.get("train") or {}).get("captured_vs_eager") or {}).items():
        tol = TOLERANCE["captured_vs_eager"]
        add(f"{variant}: captured = eager on the first learning rows (rel. ≤ {tol:g})",
            d["max_rel_diff"] <= tol, f"max rel. diff {d['max_rel_diff']:.1e}")
    for name, c in (r.get("checkpoints") or {}).items():
        kind = "iterative" if name.startswith("iterative") else "direct"
        tol = TOLERANCE[f"{kind}_across_devices"]
        add(f"{name} snapshot acts alike on both devices (rel. ≤ {tol:g})",
            bool(c["relative"] <= tol) if math.isfinite(c["relative"]) else False, f"{c['relative']:.1e}")
    return out


def format_markdown(r: dict) -> str:
    """The report as Markdown: each step's outcome, then a table per step that ran."""
    m = r["machine"]
    where = f"{m.get('gpu_name')}, CUDA {m.get('cuda_version')}" if m.get("gpu_name") else m.get("processor")
    budget = f", budget {r['budget_s']:.0f} s" if r.get("budget_s") else ""
    lines = [f"# gpu-check on {m['device']} ({where}), torch {m['torch_version']}, "
             f"{r.get('wall_s', 0):.0f} s{budget}", "", "| step | outcome |", "|---|---|"]
    for name in STEPS:
        s = r["steps"].get(name)
        if s is None:
            lines.append(f"| {name} | not reached |")
            continue
        text = {"ok": f"ok ({s.get('seconds', 0):.0f} s)", "skipped": f"skipped: {s.get('why')}",
                "failed": f"FAILED: {s.get('error')}"
                + (f" (exit {s['exit_code']})" if "exit_code" in s else "")}
        lines.append(f"| {name} | {text[s['status']].replace('|', '/')} |")
    runs = [(name, x) for name in ("train", "loop")
            for x in ((r.get(name) or {}).get("runs", []) if name == "train" else r.get(name) or [])]
    if runs:
        lines += ["", "| step | env | variant | Q arch | path | updates | env steps/s (learning phase) |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {name} | {x['env']} | {x['variant']} | {x['q_arch']} | {x['path']} | {x['updates']} | "
                  f"{x['steps_per_s']:.1f} |" for name, x in runs]
    checks = []
    if res := r.get("resume"):
        checks.append(f"| kill (SIGKILL after a resume state) and resume = uninterrupted run | metrics.csv "
                      f"{_same(res['metrics.csv'])}, eval.csv {_same(res['eval.csv'])} |")
    if ck := r.get("checkpoints"):
        checks += [f"| {name} snapshot (env step {c['snapshot_step']}) acting on the CPU and on "
                   f"{m['device']}: max abs action difference / max abs action | {c['max_abs_diff']:.2e} / "
                   f"{c['max_abs_action']:.2e} = {c['relative']:.1e} |" for name, c in ck.items()]
    if p := r.get("pack"):
        for how, x in (("MPS " + ("on" if p["mps_active"] else "off"), p), ("a job-local MPS daemon",
                                                                               p.get("with_mps"))):
            if x is not None:
                checks.append(f"| {p['runs']} runs at once, one core each ({how}): aggregate env steps/s "
                              f"over their common {x['window_s']:.0f} s (one run alone) | "
                              f"{x['aggregate_steps_per_s']:.1f} ({p['single_steps_per_s']:.1f}): "
                              f"{x['speedup']:.2f}x |")
    if g := r.get("grid"):
        packed = "n/a" if g["hours_packed"] is None else f"{g['hours_packed']:.0f}"
        checks.append(f"| paper grid ({g['runs']} runs, each priced by env, Q arch and agent; calibration "
                      f"{g['calibration']:.2f}): device-hours alone / packed | {g['hours_alone']:.0f} / "
                      f"{packed} |")
    if checks:
        lines += ["", "| check | result |", "|---|---|", *checks]
    if r.get("targets"):
        verdicts = {True: "pass", False: "**FAIL**", None: "not measured"}
        lines += ["", "| target | verdict | measured |", "|---|---|---|"]
        lines += [f"| {t['target']} | {verdicts[t['pass']]} | {t['measured']} |" for t in r["targets"]]
    if r.get("bench"):
        lines += ["", "| op | variant | Q arch | path | median ms | device ms | speed-up |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {b['op']} | {b['variant']} | {b['q_arch']} | {b['path']} | {b['ms']:.3f} | "
                  f"{b['device_ms']:.3f} | {b['speedup']:.2f}x |" for b in r["bench"]]
    return "\n".join(lines)


def _same(d: dict) -> str:
    return "identical" if d["identical"] else f"differs (max rel. diff {d['max_rel_diff']:.1e})"
