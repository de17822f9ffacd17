"""`make gpu-check DEVICE=cpu`: the GPU check's script, run end to end at its CPU sizes (real
`iapo train` processes, a SIGKILL and a resume, snapshots reloaded, the benchmark, a pack of runs)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from iapo.config import load_params
from iapo.summary import run_grid
from iapo.tools.gpucheck import LOOP_VARIANTS, PATHS, TRAIN_VARIANTS, same_csv

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def check(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("gpu_check")
    # the Makefile target itself, with this test's Python environment (`-o setup`: no set-up step)
    proc = subprocess.run(["make", "-o", "setup", "gpu-check", "DEVICE=cpu", f"GPU_CHECK_OUT={out}",
                           f"VENV={sys.prefix}"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"written: {out}/gpu_check-cpu.json" in proc.stderr
    # the table is printed (under `make test`, make's own lines surround it)
    assert (out / "gpu_check-cpu.md").read_text().rstrip() in proc.stdout
    return json.loads((out / "gpu_check-cpu.json").read_text()), out


pytestmark = pytest.mark.slow


def test_every_training_ran_and_has_a_learning_phase_rate(check: tuple[dict, Path]) -> None:
    result, _ = check
    for name, variants in (("train", TRAIN_VARIANTS), ("loop", LOOP_VARIANTS)):
        rows = result[name]
        assert {(r["variant"], r["path"]) for r in rows} == {(v, p) for v in variants for p in PATHS}
        for r in rows:
            assert math.isfinite(r["steps_per_s"]) and r["steps_per_s"] > 0, r
            assert not r["killed"]
            assert json.loads((Path(r["folder"]) / "run.json").read_text())["variant"] == r["variant"]


def test_the_killed_run_was_killed_and_resumed_to_the_uninterrupted_run(check: tuple[dict, Path]) -> None:
    resume = check[0]["resume"]
    assert resume["killed"]
    assert resume["metrics.csv"] == {"identical": True, "max_rel_diff": 0.0}
    assert resume["eval.csv"] == {"identical": True, "max_rel_diff": 0.0}


def test_snapshots_act_alike_on_both_devices(check: tuple[dict, Path]) -> None:
    ck = check[0]["checkpoints"]
    assert ck["cpu_written_max_action_diff"] == 0.0 and ck["device_written_max_action_diff"] == 0.0


def test_bench_rows_are_the_eager_update_and_act_of_both_agents(check: tuple[dict, Path]) -> None:
    rows = check[0]["bench"]
    assert sorted((r["op"], r["variant"], r["path"]) for r in rows) == sorted(
        (op, v, "eager") for op in ("update", "act") for v in LOOP_VARIANTS)
    assert all(r["ms"] > 0 for r in rows)


def test_pack_and_grid_cost_follow_from_the_measured_rates(check: tuple[dict, Path]) -> None:
    result = check[0]
    pack, grid = result["pack"], result["grid"]
    assert pack["runs"] == len(pack["per_run_steps_per_s"]) == 2
    assert pack["aggregate_steps_per_s"] == pytest.approx(sum(pack["per_run_steps_per_s"]))
    single = {(r["variant"], r["path"]): r["steps_per_s"] for r in result["loop"]}["iterative", "captured"]
    assert pack["speedup"] == pytest.approx(pack["aggregate_steps_per_s"] / single)
    # recomputed here: every paper run's steps at its family's best loop rate
    params = load_params(ROOT / "params.yaml")
    keys = run_grid(params, "paper")
    rate = {v: max(r["steps_per_s"] for r in result["loop"] if r["variant"] == v) for v in LOOP_VARIANTS}
    hours = sum(params.scales["paper"].steps_of(k.env, k.variant)
                / rate["iterative" if params.variants[k.variant].family == "iterative" else "direct"]
                for k in keys) / 3600
    assert grid["runs"] == len(keys)
    assert grid["hours_alone"] == pytest.approx(hours)
    assert grid["hours_packed"] == pytest.approx(hours / pack["speedup"])


def test_markdown_table_is_written(check: tuple[dict, Path]) -> None:
    md = (check[1] / "gpu_check-cpu.md").read_text()
    assert md.startswith("# gpu-check on cpu")
    assert md.count("| train |") == 8 and md.count("| loop |") == 4
    assert "metrics.csv identical, eval.csv identical" in md


def test_same_csv_reports_the_largest_relative_difference(tmp_path: Path) -> None:
    a, b, c = (tmp_path / f"{n}.csv" for n in "abc")
    a.write_text("step,x,name\n1,2.0,u\n2,4.0,v\n")
    b.write_text(a.read_text())
    c.write_text("step,x,name\n1,2.0,u\n2,5.0,v\n")
    assert same_csv(a, b) == {"identical": True, "max_rel_diff": 0.0}
    assert same_csv(a, c) == {"identical": False, "max_rel_diff": pytest.approx(0.2)}
