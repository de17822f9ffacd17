"""The workflow on a real Slurm cluster: a one-node cluster on localhost (tests/slurm/start.sh),
jobs submitted by `snakemake --profile slurm` through snakemake-executor-plugin-slurm.

Installs Debian's slurm-wlm and munge when missing (needs root and the Debian mirrors), runs part
of the smoke DAG as Slurm jobs the way the profile trains (`train: pack: 1`: two trainings of two
seeds each, both seeds of one (env, variant) at once in one job, and an analysis), stops one pack
mid-run as a preemption would (requeue) and the other as the profile's early time-limit signal does
(every seed saves, resumes and ends bit-identical), checks that a failing job makes snakemake fail
after its retry, and stops the daemons it started.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.test_pipeline import (
    ROOT,
    check,
    parse_dry_run,
    run,
    run_folder,
    session_root,
    smoke_workspace,
    snakemake,
    tool_env,
)

SCRIPTS = ROOT / "tests" / "slurm"
pytestmark = [pytest.mark.slow, pytest.mark.smoke_workspace]

PROFILE = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
# The test node has no GPU and 2 CPUs: the profile's per-rule GPU, memory and time requests are
# replaced on the command line (`--set-resources` there replaces the profile's whole per-rule block,
# so the training job's early time-limit signal, `slurm_extra`, is passed on as the profile types it);
# everything else comes from profiles/slurm as typed. Without Slurm accounting the plugin must poll
# with squeue (docs/pipeline.md, "On a Slurm cluster").
TEST_NODE_ARGS = [
    "--set-resources", "train:mem_mb=1000", "train:runtime=20", "train:cpus_per_task=1",
    f"train:pack={PROFILE['set-resources']['train']['pack']}",
    f"train:slurm_extra={PROFILE['set-resources']['train']['slurm_extra']}", "summarize:mem_mb=1000",
    "--default-resources", "mem_mb=1000", "runtime=20",
    "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
    "--latency-wait", "5", "--slurm-keep-successful-logs",
]


def slurm_cmd(*extra: str) -> list[str]:
    return snakemake("--cores", "2", "--profile", "slurm", *TEST_NODE_ARGS, *extra, "--config", "scale=smoke")


def squeue(env: dict) -> list[dict]:
    out = subprocess.run(["squeue", "-h", "-o", "%i|%k|%T"], env=env, capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return [dict(zip(("id", "comment", "state"), line.split("|"), strict=True))
            for line in out.splitlines() if line.strip()]


def release_when_pending(job_id: str, env: dict, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = {j["id"]: j["state"] for j in squeue(env)}.get(job_id)
        if state == "PENDING":
            check(run_cmd(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], env))
            return
        time.sleep(0.2)
    pytest.fail(f"Slurm job {job_id} did not go back to PENDING after the requeue")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A running one-node cluster; yields the environment for Slurm commands. Stopped afterwards.

    One cluster per machine (fixed ports, /etc/slurm/slurm.conf): a pytest-xdist worker holds the
    session's lock while its cluster runs; another worker's Slurm tests wait for it."""
    with open(session_root(tmp_path_factory) / "slurm-cluster.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        start = time.perf_counter()
        install = run([str(SCRIPTS / "install.sh")], ROOT, timeout=600)
        if install.returncode == 3 and os.geteuid() != 0:
            pytest.skip("Slurm is not installed and installing it needs root")
        check(install)
        base = tmp_path_factory.mktemp("slurm")
        try:
            check(run([str(SCRIPTS / "start.sh"), str(base)], ROOT, timeout=120))
            print(f"cluster up in {time.perf_counter() - start:.1f} s (install included)")
            yield tool_env(SLURM_CONF=str(base / "slurm.conf"))
        finally:
            check(run([str(SCRIPTS / "stop.sh"), str(base)], ROOT, timeout=120))
            assert not (base / "pids").exists()


@pytest.fixture
def slurm_ws(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """A copy of the smoke workspace (results included); the session's smoke DAG is not rerun."""
    ws = tmp_path / "ws"
    shutil.copytree(smoke_workspace(tmp_path_factory), ws, symlinks=True,
                    ignore=shutil.ignore_patterns(".snakemake", ".dvc/cache"))
    return ws


def job_of(name: str, env: dict) -> dict:
    """The one queued or running Slurm job of a training (its comment names env and variant)."""
    jobs = [j for j in squeue(env) if name in j["comment"]]
    assert len(jobs) == 1, jobs
    return jobs[0]


def preempt(name: str, env: dict) -> None:
    """`scontrol requeue`, as PreemptMode=REQUEUE does: SIGTERM now (the job saves and exits), and
    the same job back in the queue; a requeued job waits about 2 minutes to start again: released
    at once."""
    job = job_of(name, env)
    assert job["state"] == "RUNNING", job
    check(run_cmd(["scontrol", "requeue", job["id"]], env))
    release_when_pending(job["id"], env)


def near_time_limit(name: str, env: dict) -> None:
    """The job's time limit cut to 5 minutes, well inside the profile's `--signal=TERM@600`: Slurm
    itself sends SIGTERM at its next time-limit check, as it would 10 minutes before a real limit.
    The job saves and exits 143, and Snakemake submits it again (the profile's `retries`)."""
    job = job_of(name, env)
    assert job["state"] == "RUNNING", job
    check(run_cmd(["scontrol", "update", f"JobId={job['id']}", "TimeLimit=5"], env))


def run_cmd(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    return run(cmd, ROOT, timeout=30, env=env)


def two_seeds(ws: Path) -> None:
    """The workspace's smoke scale with two seeds for its main grid group (one seed elsewhere)."""
    raw = yaml.safe_load((ws / "params.yaml").read_text())
    main = next(g for g in raw["scales"]["smoke"]["grid"] if g["purpose"] == "main")
    main["seeds"] = 2
    (ws / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def test_smoke_subset_runs_on_slurm_and_survives_preemption_and_time_limit(
        cluster: dict, slurm_ws: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """Two packs of two seeds, each one Slurm job running both seeds at once, stopped mid-run the two
    ways a cluster stops jobs: the direct pack preempted (requeued), the iterative one signalled by
    the profile's `--signal` ahead of its time limit. Every seed saves on SIGTERM, resumes, and ends
    bit-identical to its uninterrupted run (seed 0: the smoke workspace's; seed 1: trained here)."""
    ws, smoke = slurm_ws, smoke_workspace(tmp_path_factory)
    two_seeds(ws)
    env = "InvertedPendulum-v2"
    packs = {v: [run_folder(ws, env, v, s) for s in (0, 1)] for v in ("direct", "iterative")}
    for folders in packs.values():
        for folder in folders:
            if folder.exists():
                shutil.rmtree(folder)
    # the uninterrupted seed-1 runs, trained here meanwhile (their folders outside the workspace)
    refs = {v: tmp_path / "ref" / v for v in packs}
    reference_runs = [subprocess.Popen(
        [sys.executable, "-m", "iapo.cli", "--params", str(ws / "params.yaml"), "train", "--scale", "smoke",
         "--env", env, "--variant", v, "--seed", "1", "--out", str(refs[v])], cwd=ws, env=cluster,
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT) for v in packs]
    # the two packs and one analysis of a resumed run (the summary job runs in the next test)
    targets = [str((f / "run.json").relative_to(ws)) for folders in packs.values() for f in folders]
    targets.append(f"results/diagnostics/smoke/value_bias/{env}/iterative/seed0.csv")
    planned = parse_dry_run(check(run(slurm_cmd("-n", *targets), ws, timeout=120, env=cluster)))
    rules = sorted(j["rule"] for j in planned)
    assert rules == ["diagnose_value_bias", "train_pack_2", "train_pack_2"], planned
    start = time.perf_counter()
    proc = subprocess.Popen(slurm_cmd(*targets), cwd=ws, env=cluster, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    # each stop once both seeds of the pack have saved their step-750 resume state and neither has
    # finished: the two run at once, in one job
    stops = {f"{env}_direct": (packs["direct"], preempt),
             f"{env}_iterative": (packs["iterative"], near_time_limit)}
    try:
        deadline = time.time() + 500
        while stops:
            for name, (folders, stop) in list(stops.items()):
                if all((f / "resume" / "step_750.pt").exists() for f in folders):
                    assert not any((f / "run.json").exists() for f in folders), name
                    stop(name, cluster)
                    del stops[name]
            assert proc.poll() is None, proc.stdout.read()
            assert time.time() < deadline, f"no step-750 resume states after 500 s: {list(stops)}"
            time.sleep(0.2)
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for r in reference_runs:
            r.wait(timeout=600)
    wall = time.perf_counter() - start
    print(f"Slurm: 2 packs of 2 seeds (one preempted, one signalled) and {len(planned) - 2} downstream "
          f"job(s) in {wall:.0f} s")
    assert proc.returncode == 0, out[-6000:]
    assert [r.returncode for r in reference_runs] == [0, 0]
    # every planned job once, plus the signalled pack's second submission (a requeue keeps its id)
    assert out.count("has been submitted with SLURM jobid") == len(planned) + 1, out[-6000:]
    for variant, folders in packs.items():
        for seed, folder in enumerate(folders):
            assert (folder / "run.json").exists()
            ref = run_folder(smoke, env, variant, 0) if seed == 0 else refs[variant]
            for name in ("metrics.csv", "eval.csv"):  # stopped and resumed = never interrupted
                assert (folder / name).read_bytes() == (ref / name).read_bytes(), (folder, name)
            resumed = json.loads((folder / "run.json").read_text())["resumed_at"]
            if variant == "iterative":  # saved when the signal came, not at a periodic save (every 250)
                assert len(resumed) == 1 and 750 < resumed[0] < 1000, (folder, resumed)
            else:
                assert len(resumed) == 1 and resumed[0] >= 750, (folder, resumed)
            log = (ws / "logs" / "smoke" / "train" / env / variant / f"seed{seed}.log").read_text()
            assert "SIGTERM: saved" in log, log[-2000:]  # each seed's own log, kept across attempts
        pack_log = (ws / "logs" / "smoke" / "train_pack" / env / f"{variant}.log").read_text()
        cores = re.findall(r"--seed (\d) .* on cores \[(\d+)\]", pack_log)
        assert sorted(set(cores))[:2] == [("0", "0"), ("1", "1")], pack_log  # one core each
    # the analysis of the resumed run's checkpoint is the uninterrupted run's, to the byte
    assert (ws / targets[-1]).read_bytes() == (smoke / targets[-1]).read_bytes()
    logs = ws / ".snakemake" / "slurm_logs"
    assert len(list(logs.glob("rule_train_pack_2/*/*.log"))) == 3  # the signalled job ran twice
    assert list(logs.glob("rule_diagnose_value_bias/*/*.log"))
    assert not squeue(cluster)  # nothing left pending or running


def test_failing_job_makes_snakemake_fail(cluster: dict, slurm_ws: Path) -> None:
    """A job that fails on every attempt: snakemake retries it once (`--retries 1`), then exits 1."""
    (run_folder(slurm_ws, "Hopper-v2", "direct", 0) / "run.json").write_text("not json\n")
    result = run(slurm_cmd("--retries", "1"), slurm_ws, timeout=400, env=cluster)
    assert result.returncode != 0, result.stdout[-4000:]
    assert "Error in rule summarize" in result.stdout
    assert len(re.findall(r"Job \d+ has been submitted with SLURM jobid", result.stdout)) == 2  # retried
    log = (slurm_ws / "logs" / "smoke" / "summarize.log").read_text()
    assert "not valid JSON" in log and "Hopper-v2/direct/seed0/run.json" in log

