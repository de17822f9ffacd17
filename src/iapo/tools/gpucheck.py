"""`iapo gpu-check`: every check that needs a GPU, as one prepared run (`make gpu-check`).

On `--device cuda` it is sized for one large GPU (aimed at under 8 minutes on an H100/H200-class
GPU; its output records the time it took); on `--device cpu` it runs the same steps at small sizes
(about 2.5 minutes on 2 cores), so the script is exercised by the test suite and never rots.
Steps, each a real `iapo train` process (or the benchmark) on the device:

1. train: a short training run of direct, iterative, direct_flow and iterative_mb, eagerly and
   captured as CUDA graphs (`training.graphs: off | on`; on a CPU both are eager);
2. resume: the captured iterative run killed (SIGKILL) after a resume state, restarted, and
   compared with the uninterrupted run;
3. checkpoints: a CPU-written snapshot acting on the device, a device-written one on the CPU;
4. bench: `iapo bench --device D` rows (update and act, eager and captured);
5. loop: env steps/s of whole training runs (direct and iterative, HalfCheetah);
6. pack: several iterative runs at once on the device, their aggregate env steps/s;
7. grid: the paper grid's training cost in device-hours from the measured rates.

Rates are measured from outside the process: `metrics.csv` is rewritten at each log row, so its
mtime and last env step give the steps/s of the learning phase (the random warm-up excluded).
Writes OUT/gpu_check-<cpu|cuda>.json and .md.
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
from pathlib import Path

import numpy as np
import yaml

from iapo import atomic
from iapo.config import load_params

TRAIN_ENV = "InvertedPendulum-v2"
LOOP_ENV = "HalfCheetah-v2"
TRAIN_VARIANTS = ("direct", "iterative", "direct_flow", "iterative_mb")
LOOP_VARIANTS = ("direct", "iterative")
PATHS = ("eager", "captured")
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
    mb_pretrain: int | None = None  # model-only updates after the warm-up (None: params.yaml's)


SIZES = {
    "cuda": Sizes(warmup=1000, updates=1000, loop_updates=1000, pack=8, bench_repeats=20, bench_warmup=3),
    "cpu": Sizes(warmup=300, updates=20, loop_updates=10, pack=2, bench_repeats=2, bench_warmup=0,
                 mb_pretrain=20),
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
    return [sys.executable, "-m", "iapo.cli", "--params", str(params), "train", "--scale", CHECK_SCALE,
            "--env", env, "--variant", variant, "--seed", str(seed), "--steps", str(steps),
            "--out", str(folder), "--device", device, "--threads", "1"]


def last_step(metrics: Path) -> int | None:
    """The env step of the last row of a metrics.csv (None while it has none)."""
    try:
        lines = metrics.read_text().splitlines()
    except FileNotFoundError:
        return None
    return int(float(lines[-1].split(",")[0])) if len(lines) > 1 else None


class Watched:
    """One `iapo train` process and the (env step, mtime) of each rewrite of its metrics.csv."""

    def __init__(self, cmd: list[str], folder: Path, sink, cpu: int | None = None) -> None:
        pin = None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu}))
        self.cmd, self.folder, self.killed = cmd, folder, False
        self.proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, preexec_fn=pin)
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

    def rate(self, warmup: int) -> float:
        """Env steps/s from the first row past the warm-up to the last row."""
        learning = [(s, t) for s, t in self.samples if s > warmup]
        if len(learning) < 2 or learning[-1][1] <= learning[0][1]:
            return math.nan
        return (learning[-1][0] - learning[0][0]) / (learning[-1][1] - learning[0][1])


def run_watched(cmds: list[list[str]], folders: list[Path], warmup: int, log: Path,
                stop_after: int | None = None, cpus: list[int] | None = None) -> list[dict]:
    """Run `cmds` at once (folder i is command i's --out) and time their learning phases.

    `stop_after`: SIGKILL each process once it has saved a resume state past that env step.
    `cpus`: pin process i to CPU cpus[i] (each run on its own core)."""
    with open(log, "a") as sink:
        runs = [Watched(cmd, f, sink, None if cpus is None else cpus[i])
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
        if r.proc.returncode != 0 and not r.killed:
            raise RuntimeError(f"gpu-check: `{' '.join(r.cmd)}` failed (exit {r.proc.returncode}); see {log}")
    return [{"folder": str(r.folder), "steps_per_s": r.rate(warmup), "wall_s": wall, "killed": r.killed}
            for r in runs]


def same_csv(a: Path, b: Path) -> dict:
    """Whether two CSVs are byte-identical, and the largest relative difference of their numbers."""
    if a.read_bytes() == b.read_bytes():
        return {"identical": True, "max_rel_diff": 0.0}
    ra, rb = (list(csv.reader(p.open())) for p in (a, b))
    worst = math.inf if len(ra) != len(rb) else 0.0
    for row_a, row_b in zip(ra[1:], rb[1:], strict=False):
        for x, y in zip(row_a, row_b, strict=False):
            try:
                fx, fy = float(x), float(y)
            except ValueError:
                continue
            if math.isfinite(fx) and math.isfinite(fy):
                worst = max(worst, abs(fx - fy) / max(abs(fx), abs(fy), 1e-12))
    return {"identical": False, "max_rel_diff": worst}


def cross_device_actions(folder: Path, device: str, n_obs: int = 5) -> float:
    """Largest |a_device − a_cpu| of the deterministic actions of one snapshot loaded on each."""
    from iapo.agent import Agent

    on_cpu, on_device = Agent.load(folder, device="cpu"), Agent.load(folder, device=device)
    env, obs = on_cpu.make_env(seed=123)
    rng, worst = np.random.default_rng(0), 0.0
    for _ in range(n_obs):
        a_cpu = on_cpu.act(obs, deterministic=True)
        worst = max(worst, float(np.max(np.abs(on_device.act(obs, deterministic=True) - a_cpu))))
        obs, _, terminated, truncated, _ = env.step(on_cpu.env_action(env, rng.uniform(-1, 1, a_cpu.shape)))
        if terminated or truncated:
            obs, _ = env.reset()
    return worst


def grid_cost(params_path: Path, rates: dict[str, float], pack_speedup: float) -> dict:
    """Device-hours of the paper grid's training at the measured rates: each run's env steps over
    its optimizer family's env steps/s (iterative for `iterative*`, direct for the rest), alone
    and packed (divided by the pack's aggregate speed-up)."""
    from iapo.config import resolve
    from iapo.summary import run_grid

    params = load_params(params_path)
    scale = params.scales["paper"]
    steps, keys = {"direct": 0, "iterative": 0}, run_grid(params, "paper")
    for key in keys:
        family = resolve(params, key.env, key.variant, key.seed, "paper").family
        steps["iterative" if family == "iterative" else "direct"] += scale.steps_of(key.env, key.variant)
    hours = sum(n / rates[f] / 3600 for f, n in steps.items())
    packed = hours / pack_speedup if pack_speedup > 0 else math.nan
    return {"runs": len(keys), "env_steps": steps, "rates": rates, "hours_alone": hours,
            "pack_speedup": pack_speedup, "hours_packed": packed}


def gpu_check(device: str = "cuda", out: str | Path = "results/gpu_check",
              params_path: str | Path = "params.yaml") -> dict:
    """Run every step (module docstring) on `device`; write and return the result."""
    import torch

    from iapo.config import resolve
    from iapo.devices import describe, resolve_device
    from iapo.provenance import machine
    from iapo.tools.bench import run_device_bench

    target = resolve_device(device)
    kind = target.type
    sizes, out = SIZES[kind], Path(out)
    work = out / f"work-{kind}"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "train.log"
    log.write_text("")
    params = {g: check_params(Path(params_path), work, g, sizes) for g in ("off", "on")}
    base_params = load_params(params_path)
    n_train, n_loop = sizes.warmup + sizes.updates, sizes.warmup + sizes.loop_updates
    dev = str(target)
    result: dict = {"machine": machine() | describe(target), "sizes": dataclasses.asdict(sizes)}
    t_start = time.perf_counter()

    def step(n: int, what: str) -> None:
        print(f"gpu-check [{n}/7] {what} ({time.perf_counter() - t_start:.0f} s so far)", file=sys.stderr)

    def folder(*parts: str) -> Path:
        return work.joinpath(*parts)

    def trainings(name: str, env: str, variants: tuple[str, ...], updates: int) -> list[dict]:
        """One run per variant and path, alone on the device; their learning-phase env steps/s."""
        rows = []
        for variant in variants:
            q_arch = resolve(base_params, env, variant, 0, CHECK_SCALE).q_arch
            for path, graphs in zip(PATHS, ("off", "on"), strict=True):
                f = folder(name, variant, path)
                cmd = train_cmd(params[graphs], env, variant, sizes.warmup + updates, f, dev)
                row = {"env": env, "variant": variant, "q_arch": q_arch, "path": path, "updates": updates}
                rows.append(row | run_watched([cmd], [f], sizes.warmup, log)[0])
        return rows

    step(1, f"training {', '.join(TRAIN_VARIANTS)} on {TRAIN_ENV}, eager and captured")
    result["train"] = trainings("train", TRAIN_ENV, TRAIN_VARIANTS, sizes.updates)

    step(2, "kill and resume (captured iterative)")
    f = folder("resume")
    cmd = train_cmd(params["on"], TRAIN_ENV, "iterative", n_train, f, dev)
    killed = run_watched([cmd], [f], sizes.warmup, log, stop_after=sizes.warmup)[0]
    run_watched([cmd], [f], sizes.warmup, log)
    reference = folder("train", "iterative", "captured")
    result["resume"] = {"killed": killed["killed"]} | {
        name: same_csv(f / name, reference / name) for name in ("metrics.csv", "eval.csv")}

    step(3, "snapshots across devices")
    written_on_device = folder("train", "direct", "eager")
    written_on_cpu = written_on_device
    if kind != "cpu":
        written_on_cpu = folder("cpu-written")
        run_watched([train_cmd(params["off"], TRAIN_ENV, "direct", n_train, written_on_cpu, "cpu")],
                    [written_on_cpu], sizes.warmup, log)
    result["checkpoints"] = {"cpu_written_max_action_diff": cross_device_actions(written_on_cpu, dev),
                             "device_written_max_action_diff": cross_device_actions(written_on_device, dev)}

    step(4, f"iapo bench --device {dev}")
    torch.set_num_threads(1)
    bench = run_device_bench(params_path, device=dev, repeats=sizes.bench_repeats, warmup=sizes.bench_warmup,
                             variants=LOOP_VARIANTS, archs=("A",))
    result["bench"] = bench["ops"]

    step(5, f"training loop env steps/s on {LOOP_ENV}")
    result["loop"] = trainings("loop", LOOP_ENV, LOOP_VARIANTS, sizes.loop_updates)

    step(6, f"{sizes.pack} captured iterative runs at once")
    loop = {(r["variant"], r["path"]): r["steps_per_s"] for r in result["loop"]}
    single = loop["iterative", "captured"]
    folders = [folder("pack", f"seed{i}") for i in range(sizes.pack)]
    cpus = sorted(os.sched_getaffinity(0))
    rows = run_watched([train_cmd(params["on"], LOOP_ENV, "iterative", n_loop, f, dev, seed=i)
                        for i, f in enumerate(folders)], folders, sizes.warmup, log,
                       cpus=[cpus[i % len(cpus)] for i in range(sizes.pack)])
    aggregate = sum(r["steps_per_s"] for r in rows)
    result["pack"] = {"runs": sizes.pack, "per_run_steps_per_s": [r["steps_per_s"] for r in rows],
                      "aggregate_steps_per_s": aggregate, "single_steps_per_s": single,
                      "speedup": aggregate / single, "wall_s": rows[0]["wall_s"]}

    step(7, "the paper grid's training cost")
    best = {v: max(r["steps_per_s"] for r in result["loop"] if r["variant"] == v) for v in LOOP_VARIANTS}
    result["grid"] = grid_cost(Path(params_path), best, result["pack"]["speedup"])
    result["wall_s"] = time.perf_counter() - t_start
    json_path, md_path = out / f"gpu_check-{kind}.json", out / f"gpu_check-{kind}.md"
    atomic.write_json(json_path, result)
    md_path.write_text(format_markdown(result) + "\n")
    print(f"gpu-check: done in {result['wall_s']:.0f} s; written: {json_path}, {md_path} "
          f"(run folders and logs: {work})", file=sys.stderr)
    return result


def format_markdown(r: dict) -> str:
    """The result as Markdown tables, one per step."""
    m = r["machine"]
    where = f"{m.get('gpu_name')}, CUDA {m.get('cuda_version')}" if m.get("gpu_name") else m.get("processor")
    lines = [f"# gpu-check on {m['device']} ({where}), torch {m['torch_version']}, {r['wall_s']:.0f} s", "",
             "| step | env | variant | Q arch | path | updates | env steps/s (learning phase) |",
             "|---|---|---|---|---|---|---|"]
    for name in ("train", "loop"):
        lines += [f"| {name} | {x['env']} | {x['variant']} | {x['q_arch']} | {x['path']} | {x['updates']} | "
                  f"{x['steps_per_s']:.1f} |" for x in r[name]]
    res, ck, p, g = r["resume"], r["checkpoints"], r["pack"], r["grid"]
    lines += ["", "| check | result |", "|---|---|",
              f"| kill (SIGKILL after a resume state) and resume = uninterrupted run | metrics.csv "
              f"{_same(res['metrics.csv'])}, eval.csv {_same(res['eval.csv'])} |",
              f"| CPU-written snapshot acting on {m['device']}: max abs action difference | "
              f"{ck['cpu_written_max_action_diff']:.2e} |",
              f"| {m['device']}-written snapshot acting on the CPU: max abs action difference | "
              f"{ck['device_written_max_action_diff']:.2e} |",
              f"| {p['runs']} runs at once: aggregate env steps/s (one run alone) | "
              f"{p['aggregate_steps_per_s']:.1f} ({p['single_steps_per_s']:.1f}): {p['speedup']:.2f}x |",
              f"| paper grid ({g['runs']} runs) at the loop step's rates (iterative* variants: iterative's; "
              f"the rest: direct's): device-hours alone / packed | {g['hours_alone']:.0f} / "
              f"{g['hours_packed']:.0f} |",
              "", "| op | variant | path | median ms | device ms | speed-up |", "|---|---|---|---|---|---|"]
    lines += [f"| {b['op']} | {b['variant']} | {b['path']} | {b['ms']:.3f} | {b['device_ms']:.3f} | "
              f"{b['speedup']:.2f}x |" for b in r["bench"]]
    return "\n".join(lines)


def _same(d: dict) -> str:
    return "identical" if d["identical"] else f"differs (max rel. diff {d['max_rel_diff']:.1e})"
