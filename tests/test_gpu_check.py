"""`make gpu-check DEVICE=cpu`: the GPU check's script, run end to end at its CPU sizes (real
`iapo train` processes, a SIGKILL and a resume, snapshots reloaded, the benchmark, a pack of runs)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from iapo.config import load_params
from iapo.summary import run_grid
from iapo.tools.gpucheck import (
    BENCH_AGENTS,
    LOOP_ENV,
    LOOP_VARIANTS,
    PATHS,
    STEPS,
    TRAIN_ENV,
    TRAIN_RUNS,
    Report,
    RunFailed,
    aggregate_rate,
    pinned,
    same_csv,
    step_seconds,
    targets,
    window_rate,
)
from tests.bare_python import make_bare_python

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def check(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The rehearsal of the bare GPU machine, on the CPU: `make device-wheels` for this Python, then
    tools/gpu-check-bare from a Python that has torch and numpy only, installing those wheels without
    an index (DEVICE=cpu: the check's small sizes). Returns the report and the folder of results."""
    tmp = tmp_path_factory.mktemp("gpu_check")
    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    made = subprocess.run(["make", "-o", "setup", "device-wheels", f"DEVICE_PY={py}",
                           f"DEVICE_WHEELS={tmp / 'wheels'}", f"VENV={sys.prefix}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    bare = make_bare_python(tmp / "bare")
    lacking = subprocess.run([str(bare), "-c", "import pydantic"], capture_output=True, text=True)
    assert lacking.returncode != 0 and "No module named 'pydantic'" in lacking.stderr  # bare indeed
    results = tmp / "results"
    env = {"PYTHON": str(bare), "DEVICE": "cpu", "WHEELS": str(tmp / "wheels"), "TMPDIR": str(tmp),
           "PIP_CONFIG_FILE": os.devnull}  # no pip configuration: no index, no find-links
    proc = subprocess.run([str(ROOT / "tools" / "gpu-check-bare"), str(results)], capture_output=True,
                          text=True, timeout=900, cwd=tmp, env=os.environ | env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(f.name for f in results.iterdir()) == sorted(BARE_RESULTS)
    assert f"written: {' '.join(sorted(BARE_RESULTS))} in {results}" in proc.stderr
    # the table is printed, and kept in the log
    table = (results / "gpu_check-cpu.md").read_text().rstrip()
    assert table in proc.stdout and table in (results / "gpu_check.log").read_text()
    with tarfile.open(results / "gpu_check-runs.tar.gz") as tar:
        tar.extractall(tmp / "runs", filter="data")
    assert not list(tmp.glob("gpu-check-bare.*"))  # its temporary folder is gone
    return json.loads((results / "gpu_check-cpu.json").read_text()), results


BARE_RESULTS = ("gpu_check-cpu.json", "gpu_check-cpu.md", "gpu_check.log", "gpu_check-runs.tar.gz")
"""What tools/gpu-check-bare leaves (the device tool brings back at most 8 files)."""


def unpacked(folder: str, results: Path) -> Path:
    """A run folder of the report, as unpacked from gpu_check-runs.tar.gz beside the results."""
    return results.parent / "runs" / folder.split("/out/", 1)[1]


slow = pytest.mark.slow


@slow
def test_every_step_ran_and_every_training_has_a_learning_phase_rate(check: tuple[dict, Path]) -> None:
    result = check[0]
    assert list(result["steps"]) == list(STEPS)
    assert all(s["status"] == "ok" for s in result["steps"].values()), result["steps"]
    expected = {"train": set(TRAIN_RUNS), "loop": {(v, p) for v in LOOP_VARIANTS for p in PATHS}}
    for name, runs in expected.items():
        rows = result[name]["runs"] if name == "train" else result[name]
        assert {(r["variant"], r["path"]) for r in rows} == runs
        for r in rows:
            assert math.isfinite(r["steps_per_s"]) and r["steps_per_s"] > 0, r
            assert not r["killed"]
            run = unpacked(r["folder"], check[1])
            assert json.loads((run / "run.json").read_text())["variant"] == r["variant"]


@slow
def test_the_cuda_tests_ran_with_pytest_and_every_target_passes(check: tuple[dict, Path]) -> None:
    """The CUDA tests run in the bare Python (pytest among the wheels): here the CUDA-only cases skip
    and the device tests pass. Deterministic runs repeat; captured = eager on the CPU exactly (the
    graphs setting runs eagerly there); every target is decided and passes."""
    result = check[0]
    tests = result["cuda_tests"]
    assert tests["failures"] == tests["errors"] == 0 and tests["skipped"] == 3 and tests["passed"] >= 20
    assert result["deterministic"] == {name: {"identical": True, "max_rel_diff": 0.0}
                                       for name in ("metrics.csv", "eval.csv")}
    assert result["train"]["captured_vs_eager"] == {v: {"identical": True, "max_rel_diff": 0.0}
                                                    for v in LOOP_VARIANTS}
    verdicts = {t["target"]: t["pass"] for t in result["targets"]}
    assert len(verdicts) == 3 + len(LOOP_VARIANTS) + 3 and all(v is True for v in verdicts.values()), verdicts


def test_targets_fail_on_what_a_broken_device_would_give() -> None:
    """The targets from a report whose numbers are off: each one fails, a missing step is not
    measured, and nothing passes by default."""
    broken = {"cuda_tests": {"passed": 5, "failures": 1, "errors": 0, "skipped": 0},
              "resume": {"metrics.csv": {"identical": False, "max_rel_diff": 1e-3},
                         "eval.csv": {"identical": True, "max_rel_diff": 0.0}},
              "train": {"captured_vs_eager": {"iterative": {"identical": False, "max_rel_diff": 2e-3}}},
              "checkpoints": {"direct, cuda-written": {"relative": 2e-4},
                              "iterative captured, cuda-written": {"relative": math.nan}}}
    verdicts = {t["target"]: t["pass"] for t in targets(broken)}
    assert verdicts.pop("--deterministic repeats to the byte") is None  # its step did not run
    assert verdicts and all(v is False for v in verdicts.values()), verdicts
    fine = {"checkpoints": {"iterative captured, cuda-written": {"relative": 4e-2}}}
    assert [t["pass"] for t in targets(fine) if "snapshot" in t["target"]] == [True]


@slow
def test_the_killed_run_was_killed_and_resumed_to_the_uninterrupted_run(check: tuple[dict, Path]) -> None:
    resume = check[0]["resume"]
    assert resume["killed"]
    assert resume["metrics.csv"] == {"identical": True, "max_rel_diff": 0.0}
    assert resume["eval.csv"] == {"identical": True, "max_rel_diff": 0.0}


@slow
def test_snapshots_act_alike_on_both_devices(check: tuple[dict, Path]) -> None:
    """On one kind of device (here the CPU twice) a snapshot acts identically, the iterative one too
    (its samples seeded alike); the snapshots are the runs' last, whose actions are not near zero."""
    ck = check[0]["checkpoints"]
    assert set(ck) == {"direct, CPU-written", "direct, cpu-written", "iterative captured, cpu-written"}
    for c in ck.values():
        assert c["max_abs_diff"] == 0.0 and c["relative"] == 0.0 and c["max_abs_action"] > 0.0
        assert c["snapshot_step"] == 320  # warm-up 300 + 20 updates: the end of training


@slow
def test_bench_rows_are_update_and_act_of_every_agent_the_grid_trains(check: tuple[dict, Path]) -> None:
    rows = check[0]["bench"]
    agents = [(v, a) for variants, archs in BENCH_AGENTS for v in variants for a in archs]
    assert sorted((r["op"], r["variant"], r["q_arch"], r["path"]) for r in rows) == sorted(
        (op, v, a, "eager") for op in ("update", "act") for v, a in agents)
    assert all(r["ms"] > 0 for r in rows)


@slow
def test_pack_and_grid_cost_follow_from_the_measured_rates(check: tuple[dict, Path]) -> None:
    result = check[0]
    pack, grid = result["pack"], result["grid"]
    assert pack["runs"] == len(pack["per_run_steps_per_s"]) == 2 and pack["window_s"] > 0
    assert pack["aggregate_steps_per_s"] == pytest.approx(sum(pack["per_run_steps_per_s"]))
    assert pack["speedup"] == pytest.approx(pack["aggregate_steps_per_s"] / pack["single_steps_per_s"])
    assert pack["mps_active"] is False  # no GPU here, so no MPS server
    # every paper run priced; HalfCheetah's iterative arch-A price is the measured loop's, by calibration
    params = load_params(ROOT / "params.yaml")
    assert grid["runs"] == len(run_grid(params, "paper")) and grid["unpriced"] == []
    prices = {(g["env"], g["q_arch"], g["variant"]): g["s_per_step"] for g in grid["groups"]}
    loop = max(r["steps_per_s"] for r in result["loop"] if r["variant"] == "iterative")
    assert prices[LOOP_ENV, "A", "iterative"] == pytest.approx(1 / loop)
    total = sum(g["env_steps"] * g["s_per_step"] for g in grid["groups"])
    assert grid["hours_alone"] == pytest.approx(total / 3600)
    assert grid["hours_packed"] == pytest.approx(grid["hours_alone"] / pack["speedup"])
    # priced by env: the same agent and arch costs more per step on an env with a slower step (of
    # those whose episodes are 1000 steps long: the evaluation share is the same)
    envs = {e: ms for e, ms in result["envs"].items() if e != "Reacher-v2"}
    pairs = [(e1, e2, a, v) for (e1, a, v) in prices for e2 in envs
             if e1 in envs and envs[e1] > envs[e2] and (e2, a, v) in prices]
    assert pairs and all(prices[e1, a, v] > prices[e2, a, v] for e1, e2, a, v in pairs)


@slow
def test_markdown_table_is_written(check: tuple[dict, Path]) -> None:
    md = (check[1] / "gpu_check-cpu.md").read_text()
    assert md.startswith("# gpu-check on cpu")
    assert md.count(f"| train | {TRAIN_ENV} |") == len(TRAIN_RUNS) and md.count(f"| loop | {LOOP_ENV} |") == 4
    assert all(f"| {name} | ok (" in md for name in STEPS)
    assert "metrics.csv identical, eval.csv identical" in md
    assert "| target | verdict | measured |" in md and "FAIL" not in md


def test_same_csv_reports_the_largest_relative_difference(tmp_path: Path) -> None:
    a, b, c = (tmp_path / f"{n}.csv" for n in "abc")
    a.write_text("step,x,name\n1,2.0,u\n2,4.0,v\n")
    b.write_text(a.read_text())
    c.write_text("step,x,name\n1,2.0,u\n2,5.0,v\n")
    assert same_csv(a, b) == {"identical": True, "max_rel_diff": 0.0}
    assert same_csv(a, c) == {"identical": False, "max_rel_diff": pytest.approx(0.2)}


# ------------------------------------------------------------------ the pieces, alone
HEADER = {"machine": {"device": "cpu", "torch_version": "2.13.0", "processor": "test"}, "sizes": {}}


def test_a_failed_step_is_recorded_with_its_log_and_the_next_step_runs(tmp_path: Path) -> None:
    """The report is on disk after every step; a failed training's exit code and log tail are in it."""
    log = tmp_path / "run.log"
    log.write_text("line 1\nTraceback ...\nRuntimeError: CUDA error: an illegal memory access\n")
    report = Report(tmp_path, "cpu", None, HEADER)

    def broken() -> None:
        raise RunFailed(["iapo", "train"], 1, log)

    assert report.run("resume", "resume", broken) is None
    on_disk = json.loads((tmp_path / "gpu_check-cpu.json").read_text())
    failed = on_disk["steps"]["resume"]
    assert failed["status"] == "failed" and failed["exit_code"] == 1
    assert "illegal memory" in failed["log_tail"]
    diffs = {"direct, CPU-written": {"snapshot_step": 320, "max_abs_diff": 0.0, "max_abs_action": 0.5,
                                     "relative": 0.0}}
    assert report.run("checkpoints", "checkpoints", lambda: diffs) == diffs
    on_disk = json.loads((tmp_path / "gpu_check-cpu.json").read_text())
    assert on_disk["steps"]["checkpoints"]["status"] == "ok" and "checkpoints" in on_disk
    md = (tmp_path / "gpu_check-cpu.md").read_text()
    assert "| resume | FAILED: RunFailed" in md and "(exit 1)" in md and "| bench | not reached |" in md


def test_a_step_that_would_overrun_the_budget_is_skipped_and_says_so(tmp_path: Path) -> None:
    report = Report(tmp_path, "cpu", 5.0, HEADER)  # every step's estimate is above 5 s
    ran = []
    assert report.run("bench", "bench", lambda: ran.append(1)) is None and ran == []
    skipped = json.loads((tmp_path / "gpu_check-cpu.json").read_text())["steps"]["bench"]
    assert skipped["status"] == "skipped" and "--budget-s 5" in skipped["why"]


def test_runs_at_once_are_measured_over_the_window_they_share() -> None:
    """Run a: 10 steps/s throughout; run b starts later and is slow while both run, fast after a ends.
    Over the shared window [5 s, 10 s] they make 10 + 5 steps/s; each run's own rate would sum to 22.5."""
    a = [(0, 0.0), (100, 10.0)]
    b = [(0, 5.0), (25, 10.0), (125, 15.0)]
    assert window_rate(a, 5.0, 10.0) == pytest.approx(10.0)
    assert window_rate(b, 5.0, 10.0) == pytest.approx(5.0)
    together = aggregate_rate([a, b])
    assert together["window_s"] == pytest.approx(5.0)
    assert together["aggregate_steps_per_s"] == pytest.approx(15.0)
    assert math.isnan(window_rate(b, 0.0, 10.0))  # b's samples do not cover the window


def test_a_pinned_run_and_every_thread_it_starts_stay_on_their_core() -> None:
    import os

    cpu = sorted(os.sched_getaffinity(0))[-1]
    code = ("import os, threading; t = threading.Thread(target=lambda: None); t.start(); t.join(); "
            "print(sorted(os.sched_getaffinity(0)))")
    out = subprocess.run(pinned([sys.executable, "-c", code], cpu), capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == f"[{cpu}]"


def test_a_step_is_priced_by_its_updates_action_env_step_and_evaluation_share() -> None:
    # 1 update of 10 ms, an action of 2 ms and an env step of 1 ms, plus half an evaluation step
    assert step_seconds(10.0, 2.0, 1.0, 1, 0.5) == pytest.approx((10 + 1.5 * 3) / 1e3)
