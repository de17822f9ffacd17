"""`iapo train-pack`: every seed of one (env, variant) trained in one job, one `iapo train` process
per seed, each on its own cores.

On a Slurm GPU cluster this is one job (one GPU) per (env, variant) instead of one per seed
(profiles/slurm: `train: pack: 1`). Each seed's run folder is exactly what `iapo train` writes there
alone (the processes are the same command), so every later step reads it unchanged. Stopping is
the training's: SIGTERM (a preemption, or the profile's early time-limit signal) is passed to every
seed, each saves its resume state and exits 143, and the job exits 143 too, so Slurm requeues it or
Snakemake retries it and every seed resumes where it stopped.

Processes of one GPU time-slice it (kernels of two processes do not run at once, Slurm's
`gres/shard` included: it shares an allocation, not the compute), so small-network runs gain little
from packing alone. `--mps` starts a CUDA MPS control daemon for the job (its pipe and log folders
in the job's temporary folder, stopped at exit), under which the seeds' kernels run concurrently;
it changes no GPU setting and needs the site to allow MPS (`nvidia-cuda-mps-control` on PATH).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from iapo.errors import DeviceError
from iapo.train import EXIT_PREEMPTED


def train_argv(params: str | Path, scale: str, env: str, variant: str, seed: int, device: str,
               threads: int = 1, *more: str) -> list[str]:
    """The command of one seed's `iapo train` (this Python, this package), `more` options appended."""
    return [sys.executable, "-m", "iapo.cli", "--params", str(params), "train", "--scale", scale,
            "--env", env, "--variant", variant, "--seed", str(seed), "--device", device,
            "--threads", str(threads), *more]


def core_sets(cpus: list[int], runs: int) -> list[list[int]]:
    """The cores of each of `runs` processes: `cpus` split into contiguous, equal shares (the first
    ones one larger when they do not divide); with fewer cores than runs, runs share cores in turn."""
    if len(cpus) < runs:
        return [[cpus[i % len(cpus)]] for i in range(runs)]
    size, extra = divmod(len(cpus), runs)
    sets, start = [], 0
    for i in range(runs):
        end = start + size + (i < extra)
        sets.append(cpus[start:end])
        start = end
    return sets


def on_cores(cmd: list[str], cores: list[int]) -> list[str]:
    """`cmd` confined to `cores` from its start (`taskset`: every thread it ever starts inherits them;
    pinning after the start would race with the threads torch starts at import)."""
    if shutil.which("taskset") is None:
        raise DeviceError("train-pack: pinning each seed to its cores needs `taskset` (util-linux), which is "
                          "not on PATH on this node")
    return ["taskset", "-c", ",".join(map(str, cores)), *cmd]


@contextmanager
def mps_daemon(enabled: bool) -> Iterator[dict[str, str]]:
    """The environment of processes under a job-local MPS control daemon (`enabled`), or nothing."""
    if not enabled:
        yield {}
        return
    control = shutil.which("nvidia-cuda-mps-control")
    if control is None:
        raise DeviceError("--mps: nvidia-cuda-mps-control is not on PATH on this node: MPS is not "
                          "installed or not allowed here. Run without --mps (the seeds then time-slice "
                          "the GPU), or ask the site for MPS (Slurm: `gres: mps:…`).")
    with tempfile.TemporaryDirectory(prefix="iapo-mps-") as folder:
        env = {"CUDA_MPS_PIPE_DIRECTORY": f"{folder}/pipe", "CUDA_MPS_LOG_DIRECTORY": f"{folder}/log"}
        for path in env.values():
            os.makedirs(path)
        daemon_env = os.environ | env
        started = subprocess.run([control, "-d"], env=daemon_env, capture_output=True, text=True)
        if started.returncode != 0:
            raise DeviceError(f"--mps: `{control} -d` failed (exit {started.returncode}: "
                              f"{(started.stderr or started.stdout).strip() or 'no message'}). The site may "
                              "not allow MPS on this node; run without --mps.")
        print(f"train-pack: MPS control daemon started (pipes in {env['CUDA_MPS_PIPE_DIRECTORY']})",
              file=sys.stderr)
        try:
            yield env
        finally:
            subprocess.run([control], input="quit\n", text=True, env=daemon_env, check=False)


def outcome(codes: list[int]) -> int:
    """The job's exit code: 143 if any seed was stopped and saved (the retry resumes every seed),
    else the first failure's, else 0."""
    if EXIT_PREEMPTED in codes:
        return EXIT_PREEMPTED
    return next((c for c in codes if c != 0), 0)


def train_pack(commands: list[list[str]], logs: list[Path] | None, mps: bool = False,
               cpus: list[int] | None = None) -> int:
    """Run each command (one seed's `iapo train`) at once, each pinned to its share of `cpus` (default:
    this process's CPUs), its output in its log (or this process's); pass SIGTERM and SIGINT on to
    every one; wait for all and return `outcome` of their exit codes."""
    cpus = sorted(os.sched_getaffinity(0)) if cpus is None else cpus
    shares = core_sets(cpus, len(commands))
    with mps_daemon(mps) as mps_env:
        procs: list[subprocess.Popen] = []
        files: list = []

        def forward(signum: int, frame: object) -> None:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signum)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for i, cmd in enumerate(commands):
                out = None
                if logs is not None:
                    logs[i].parent.mkdir(parents=True, exist_ok=True)
                    out = open(logs[i], "a")  # noqa: SIM115 (closed once every process has ended)
                    files.append(out)
                procs.append(subprocess.Popen(on_cores(cmd, shares[i]), stdout=out, env=os.environ | mps_env,
                                              stderr=subprocess.STDOUT if out else None))
                where = f"; log {logs[i]}" if logs is not None else ""
                print(f"train-pack: {' '.join(cmd[cmd.index('train'):])} on cores {shares[i]}{where}",
                      file=sys.stderr)
            codes = [p.wait() for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:  # this process is ending for another reason: stop them too
                    p.send_signal(signal.SIGTERM)
                    p.wait()
            for f in files:
                f.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
    result = outcome(codes)
    print(f"train-pack: exit codes {codes}: exit {result}", file=sys.stderr)
    return result
