"""DVC's description of the pipeline: it covers every Snakemake product at every scale, runs the same
`iapo` commands, records a Snakemake run (`make dvc-record`), pushes it to the default remote, and a
fresh clone pulls it and rebuilds the downstream products without retraining (`make figures`);
`dvc repro` retrains exactly what is missing.

The smoke results come from the session's Snakemake run (tests/test_pipeline.py), not a second one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from dvc.repo import Repo

from tests.test_pipeline import (
    BIN,
    ROOT,
    check,
    copy_repo,
    dry_run_jobs,
    git_commit,
    run,
    run_folder,
    smoke_grid,
    smoke_workspace,
    tool_env,
    yaml_grid,
)

SCALES = ("smoke", "mini", "paper")


def dvc_file(scale: str) -> str:
    """Where each scale's stages live: the root dvc.yaml is the smoke scale (what `dvc repro` runs)."""
    return "dvc.yaml" if scale == "smoke" else f"workflow/dvc/{scale}/dvc.yaml"


def dvc(*args: str) -> list[str]:
    return [str(BIN / "dvc"), *args]


def make(*args: str) -> list[str]:
    """`make TARGET` with this venv (treated as set up: no reinstall inside a temporary copy)."""
    venv = BIN.parent
    return ["make", "--no-print-directory", f"VENV={venv}", "TORCH=cpu", "-o", f"{venv}/.installed-torch-cpu",
            *args]


def without_redirect(shell: str) -> str:
    """A Snakemake job's command as DVC runs it: no log redirection, the device left at its default."""
    return shell.split(" > ")[0].replace(" --device cpu", "")


@pytest.fixture(scope="module")
def git_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_repo(tmp_path_factory.mktemp("dvc-layout"))


def test_dvc_stages_cover_the_snakemake_dag(git_ws: Path) -> None:
    """Per scale: every Snakemake product lies in a DVC out, every DVC out holds Snakemake products,
    and each DVC stage runs the command of the Snakemake job(s) writing into its outs."""
    with Repo(str(git_ws)) as repo:
        stages = list(repo.index.stages)
    files = {os.path.relpath(s.path, git_ws) for s in stages}
    assert files == {dvc_file(s) for s in SCALES}, files
    for scale in SCALES:
        mine = [s for s in stages if os.path.relpath(s.path, git_ws) == dvc_file(scale)]
        outs = {os.path.relpath(o.fs_path, git_ws): s for s in mine for o in s.outs}
        assert all(o.persist for s in mine for o in s.outs)
        covered: dict[str, list[str]] = {out: [] for out in outs}
        for job in dry_run_jobs(git_ws, scale):
            if job["rule"] == "all":
                continue
            for product in job["output"]:
                holders = [o for o in outs if product == o or product.startswith(o + "/")]
                assert len(holders) == 1, f"{scale}: {product} is in no DVC out (or in several)"
                covered[holders[0]].append(product)
                stage = outs[holders[0]]
                if job["rule"].startswith("diagnose_"):  # DVC: one stage runs the analysis on every run
                    name = job["rule"].removeprefix("diagnose_")
                    assert stage.cmd == f"iapo diagnose-scale {name} --scale {scale}", stage.addressing
                    assert job["shell"].startswith(f"iapo diagnose {name} --run "), job["shell"]
                elif job["rule"].startswith("figures_") and job["rule"] != "figures_tables":
                    group = job["rule"].removeprefix("figures_")  # DVC: one stage runs every notebook
                    assert stage.cmd == f"iapo notebook --scale {scale}", stage.addressing
                    assert job["shell"].startswith(f"iapo notebook {group} --scale {scale} >"), job["shell"]
                else:
                    assert stage.cmd == without_redirect(job["shell"]), (stage.addressing, job["shell"])
        assert all(covered.values()), [o for o, p in covered.items() if not p]
        n_train = len([s for s in mine if s.name.startswith("train_")])
        assert n_train == len(yaml_grid(scale)), scale


def test_scale_files_differ_only_by_scale() -> None:
    """workflow/dvc/<scale>/dvc.yaml is the root dvc.yaml with another scale (no drift between them):
    one `train_<i>` stage per group of the scale's grid, every other stage identical."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())

    def normalized(scale: str) -> str:
        doc = yaml.safe_load((ROOT / dvc_file(scale)).read_text())
        for stage in doc["stages"].values():
            stage.pop("wdir", None)
            stage.get("do", {}).pop("wdir", None)
        doc["vars"] = [v for v in doc["vars"] if not (isinstance(v, str) and v.endswith(":scales"))]
        sc = params["scales"][scale]
        assert doc["vars"][0].pop("seeds") == list(range(sc["seeds"])), scale
        assert doc["vars"][0]["at_scale"] == scale
        doc["vars"][0] |= {"at_scale": "SCALE"}
        n_groups = len(sc["grid"])
        train = [name for name in doc["stages"] if name.startswith("train_")]
        assert train == [f"train_{i}" for i in range(n_groups)], scale
        bodies = []
        for i, name in enumerate(train):
            stage = doc["stages"].pop(name)
            own = sc["grid"][i].get("seeds")  # a group with its own seed count reads vars' seeds_<i>
            if own is not None:
                assert doc["vars"][0].pop(f"seeds_{i}") == list(range(own)), (scale, name)
            seeds = f"${{seeds_{i}}}" if own is not None else "${seeds}"
            assert stage.pop("matrix") == {"env": f"${{scales.{scale}.grid[{i}].envs}}",
                                           "variant": f"${{scales.{scale}.grid[{i}].variants}}",
                                           "seed": seeds}, (scale, name)
            bodies.append(stage)
        assert all(body == bodies[0] for body in bodies), scale
        doc["stages"]["train"] = bodies[0]
        return json.dumps(doc, sort_keys=True).replace(f"${{scales.{scale}.", "${scales.SCALE.")

    assert normalized("mini") == normalized("smoke") == normalized("paper")


def tree_digest(folder: Path) -> dict[str, str]:
    """md5 of every file below `folder` except resume/ (which DVC ignores, see .dvcignore)."""
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "resume" not in p.parts}


@pytest.mark.slow
@pytest.mark.smoke_workspace
def test_record_push_pull_and_rebuild_without_retraining(tmp_path_factory, tmp_path: Path) -> None:
    smoke = smoke_workspace(tmp_path_factory)
    ws = tmp_path / "ws"
    shutil.copytree(smoke, ws, symlinks=True, ignore=shutil.ignore_patterns(".snakemake"))
    env = tool_env(HOME=str(tmp_path / "home"))  # the default remote is ~/iapo-dvc-remote

    # 1. a finished Snakemake run → dvc.lock + the remote (the documented command)
    out = check(run(make("dvc-record", "SCALE=smoke"), ws, timeout=300, env=env))
    assert "files pushed" in out
    lock = yaml.safe_load((ws / "dvc.lock").read_text())
    n_diagnostics = len(yaml.safe_load((ROOT / "params.yaml").read_text())["scales"]["smoke"]["diagnostics"])
    assert len(lock["stages"]) == len(smoke_grid()) + n_diagnostics + 4  # + summarize, figures, tables, audit
    assert "up to date" in check(run(dvc("status", "dvc.yaml"), ws, timeout=120, env=env))
    assert "Running stage" not in check(run(dvc("repro"), ws, timeout=300, env=env))
    assert any((tmp_path / "home" / "iapo-dvc-remote").rglob("*"))
    assert not (ws / "results" / "runs" / "smoke" / ".gitignore").exists()  # git ignores results/
    git_commit(ws, "record the smoke results")

    # 2. a fresh clone: pull, then rebuild the downstream products; nothing is trained
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ws), str(clone)], check=True, timeout=120)
    # git holds no run and no smoke table (only the committed mini study's small tables)
    assert not (clone / "results" / "runs").exists()
    assert not (clone / "results" / "summary" / "smoke").exists()
    check(run(make("pull", "SCALE=smoke"), clone, timeout=300, env=env))
    for key in smoke_grid():
        assert tree_digest(run_folder(clone, *key)) == tree_digest(run_folder(ws, *key))
    out = check(run(make("figures", "SCALE=smoke", "CORES=2"), clone, timeout=900, env=env))
    assert "rule summarize:" in out and "rule audit:" in out and "rule train:" not in out
    runs_csv = Path("results", "summary", "smoke", "runs.csv")
    assert (clone / runs_csv).read_bytes() == (ws / runs_csv).read_bytes()

    # 3. `dvc repro train_0` reproduces the missing run (only it) with the same numbers; what depends
    #    on it is then out of date (run.json records wall time and machine) for a full `dvc repro`
    lost = run_folder(clone, "InvertedPendulum-v2", "direct", 0)
    shutil.rmtree(lost)
    out = check(run(dvc("repro", "train_0"), clone, timeout=600, env=env))
    assert "Running stage 'train_0@InvertedPendulum-v2-direct-0'" in out
    assert out.count("Running stage '") == 1
    original = run_folder(ws, "InvertedPendulum-v2", "direct", 0)
    for name in ("metrics.csv", "eval.csv"):
        assert (lost / name).read_bytes() == (original / name).read_bytes(), name
    status = check(run(dvc("status", "dvc.yaml"), clone, timeout=120, env=env))
    assert "summarize:" in status and "train_0@" not in status, status
