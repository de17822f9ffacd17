"""The Snakemake pipeline for real: config schema, job grids per scale, the smoke DAG end to end,
the report, and a training job killed mid-run that finishes from its checkpoint on the rerun.

The smoke DAG runs once per test session in a copy of the repository (`smoke_workspace`); the DVC
and Slurm tests reuse its results instead of training again.
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

import pandas as pd
import psutil
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SMOKE_TIMEOUT_S = 1800
"""Hang protection only (not a speed target: the smoke DAG's wall time is printed and written to the
workspace's .smoke-done.json; it shares the machine with the other test worker)."""


# ------------------------------------------------------------------ helpers (also used by
# tests/test_dvc.py and tests/test_slurm.py)
def tool_env(**extra: str) -> dict[str, str]:
    """The environment for pipeline commands: this venv's `iapo`, `snakemake`, `dvc` first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("SNAKEMAKE_PROFILE", None)
    return env | extra


def run(cmd: list[str], cwd: Path, timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run to the end with a hard timeout; on timeout the whole process group is killed (no orphans)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env or tool_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"timed out after {timeout} s: {' '.join(map(str, cmd))}\n{out[-4000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def check(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{' '.join(map(str, result.args))} failed:\n{result.stdout[-6000:]}"
    return result.stdout


def snakemake(*args: str) -> list[str]:
    return [str(BIN / "snakemake"), *args]


def copy_repo(dst: Path, git: bool = True) -> Path:
    """The repository's source files (tracked or not ignored) copied to `dst`, as a fresh git repo.

    A copy rather than a clone, so uncommitted work is tested too; results/, logs/ and .venv are
    git-ignored and so not copied.
    """
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
    for name in filter(None, listed.decode().split("\0")):
        src = ROOT / name
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)
    if git:
        git_commit(dst, "copy of the working tree")
    return dst


def git_commit(repo: Path, message: str) -> None:
    ident = ["-c", "user.name=iapo tests", "-c", "user.email=tests@iapo.invalid"]
    if not (repo / ".git").exists():
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True, timeout=60)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, timeout=60)
    subprocess.run(["git", *ident, "commit", "-q", "--allow-empty", "-m", message], cwd=repo,
                   check=True, timeout=60)


def yaml_grid(scale: str) -> list[tuple[str, str, int]]:
    """The runs of a scale read straight from params.yaml: each group's envs × variants × seeds."""
    sc = yaml.safe_load((ROOT / "params.yaml").read_text())["scales"][scale]
    return [(e, v, s) for g in sc["grid"] for e in g["envs"] for v in g["variants"]
            for s in range(g.get("seeds", sc["seeds"]))]


def smoke_grid() -> list[tuple[str, str, int]]:
    return yaml_grid("smoke")


def run_folder(ws: Path, env: str, variant: str, seed: int, scale: str = "smoke") -> Path:
    return ws / "results" / "runs" / scale / env / variant / f"seed{seed}"


def session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test session's base folder: shared by all pytest-xdist workers (each works below it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def smoke_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository copy in which the smoke DAG ran (`snakemake --cores 2 --config scale=smoke`).

    Built once per test session, whichever worker asks first (the others wait on a lock); the
    marker file makes the pipeline, DVC and Slurm tests reuse it. Tests read it, never change it.
    """
    root = session_root(tmp_path_factory)
    ws = root / "smoke-workspace"
    marker = ws / ".smoke-done.json"
    with open(root / "smoke-workspace.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return ws
        if ws.exists():
            shutil.rmtree(ws)
        copy_repo(ws)
        start = time.perf_counter()
        out = check(run(snakemake("--cores", "2", "--config", "scale=smoke"), ws, timeout=SMOKE_TIMEOUT_S))
        wall = time.perf_counter() - start
        (ws / ".smoke-snakemake.log").write_text(out)
        marker.write_text(json.dumps({"wall_time_s": round(wall, 1)}))
    return ws


@pytest.fixture(scope="session")
def smoke_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return smoke_workspace(tmp_path_factory)


def is_trainer(process: psutil.Process, out: str) -> bool:
    """Whether this is the `iapo train … --out OUT` process (not the shell that started it)."""
    try:
        cmdline = process.cmdline()
    except psutil.Error:
        return False
    return "train" in cmdline and out in cmdline


def parse_dry_run(text: str) -> list[dict]:
    """Jobs of `snakemake -n` output (the workflow profile sets printshellcmds): rule, outputs, shell,
    and where printed, wildcards (a dict) and resources (the line as printed)."""
    jobs: list[dict] = []
    for line in text.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line):
            jobs.append({"rule": m.group(1), "output": [], "shell": None})
        elif jobs and (m := re.match(r"^\s+output: (.*)$", line)):
            jobs[-1]["output"] = m.group(1).split(", ")
        elif jobs and (m := re.match(r"^\s+wildcards: (.*)$", line)):
            jobs[-1]["wildcards"] = dict(kv.split("=", 1) for kv in m.group(1).split(", "))
        elif jobs and (m := re.match(r"^\s+resources: (.*)$", line)):
            jobs[-1]["resources"] = m.group(1)
        elif jobs and line.startswith("Shell command: "):
            shell = line.removeprefix("Shell command: ")
            jobs[-1]["shell"] = None if shell == "None" else shell
    return jobs


def dry_run_jobs(ws: Path, scale: str, *extra: str) -> list[dict]:
    out = check(run(snakemake("-n", "--forceall", *extra, "--config", f"scale={scale}"), ws, timeout=120))
    return parse_dry_run(out)


@pytest.fixture(scope="session")
def bare_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository copy without results, for dry runs."""
    return copy_repo(tmp_path_factory.mktemp("bare-workspace"), git=False)


# ------------------------------------------------------------------ config and DAG shape
def test_schema_is_generated_from_the_config_models() -> None:
    """workflow/schemas/params.schema.json is `iapo schema` (one definition: iapo.config)."""
    generated = check(run([str(BIN / "iapo"), "schema"], ROOT, timeout=60))
    committed = (ROOT / "workflow" / "schemas" / "params.schema.json").read_text()
    assert json.loads(generated) == json.loads(committed), "stale schema: run `make schema`"


def test_every_scale_lists_its_full_grid(bare_ws: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params["scale"] == "mini"
    for scale in params["scales"]:
        jobs = dry_run_jobs(bare_ws, scale)
        train = sorted(tuple(j["output"][0].split("/")[3:6]) for j in jobs if j["rule"] == "train")
        expected = sorted((e, v, f"seed{s}") for e, v, s in yaml_grid(scale))
        assert train == expected, scale
        assert [j["rule"] for j in jobs].count("summarize") == 1
        for job in jobs:
            if job["rule"] == "train":  # every job is one `iapo` command, one thread locally
                assert job["shell"].startswith(f"iapo train --scale {scale} ")
                assert "--device cpu --threads 1" in job["shell"]
    # the default scale (params.yaml `scale: mini`) needs no --config
    default = parse_dry_run(check(run(snakemake("-n", "--forceall"), bare_ws, timeout=120)))
    assert sorted(j["output"] for j in default) == sorted(j["output"] for j in dry_run_jobs(bare_ws, "mini"))


def test_readme_states_the_job_counts(bare_ws: Path) -> None:
    """What the README and docs/pipeline.md say `snakemake -n` plans at each scale is what it plans:
    the tables of training / other / all jobs, the diagnostic jobs per scale, and the counts quoted
    for the smoke DAG (the test suite) and the committed mini study."""
    full = (ROOT / "README.md").read_text()
    docs = (ROOT / "docs" / "pipeline.md").read_text()
    plans = docs.split("### What `snakemake -n` plans at each scale")[1].split("\n#")[0]
    for scale in yaml.safe_load((ROOT / "params.yaml").read_text())["scales"]:
        jobs = dry_run_jobs(bare_ws, scale)
        n_train = sum(j["rule"] == "train" for j in jobs)
        n_diag = sum(j["rule"].startswith("diagnose_") for j in jobs)
        row = re.search(rf"^\| `{scale}` \|[^\n]*$", plans, re.M)
        assert row, f"docs/pipeline.md: no job-count row for scale {scale}"
        cells = [c.strip() for c in row.group(0).strip("|").split("|")]
        assert cells[1:4] == [str(n_train), str(len(jobs) - n_train), str(len(jobs))], (scale, cells)
        assert re.search(rf"\b{n_diag} at\s+`{scale}`", plans), f"docs/pipeline.md: {n_diag} at {scale}"
        row = re.search(rf"^\| `{scale}` \|[^\n]*$", docs.split("\n## Scales\n")[1], re.M)
        assert row and row.group(0).endswith(f"| {n_train} / {len(jobs) - n_train} / {len(jobs)} |"), scale
        row = re.search(rf"^\| `{scale}` \|[^\n]*$", full, re.M)  # the README's overview of the scales
        assert row and row.group(0).split("|")[3].strip() == str(len(jobs)), (scale, row)
        if scale == "smoke":
            stated = f"({len(jobs)} jobs: {n_train} trainings, {n_diag} diagnostics,"
            assert stated in full, f"README: the smoke DAG is {stated}"
        if scale == "mini":
            stated = f"({n_train} trainings:"
            assert stated in full and re.search(rf"\b{n_diag} diagnostic\s+jobs", full), "README: mini study"


def test_readme_states_the_test_count(request: pytest.FixtureRequest) -> None:
    """The README's "(N tests)" is what a run of the whole suite collects (checked in such a run)."""
    from tests.conftest import COLLECTED

    collected = request.config.stash.get(COLLECTED, None)
    if collected is None:
        pytest.skip("only a run of the whole suite (`make test`) knows the number of tests")
    readme = (ROOT / "README.md").read_text()
    stated = re.search(r"`make test` runs `ruff` and `pytest` \((\d+) tests\)", readme)
    assert stated, "README: the sentence stating the number of tests is gone"
    assert int(stated.group(1)) == collected, f"README: {stated.group(1)} tests; the suite has {collected}"


def test_config_keys_the_jobs_ignore_are_refused(bare_ws: Path) -> None:
    """A --config typo, or a key no job reads (they read params.yaml), is one paragraph, exit code 2."""
    for arg, key in (("scael=smoke", "scael"), ("training={'lr': 0.1}", "training")):
        out = run(snakemake("-n", "--config", arg), bare_ws, timeout=120)
        assert out.returncode == 2, out.stdout[-3000:]
        errors = [line for line in out.stdout.splitlines() if line.startswith("iapo pipeline: error: ")]
        assert len(errors) == 1 and len(out.stdout.splitlines()) < 6, out.stdout[-3000:]
        assert f"{key!r}" in errors[0] and "Allowed --config keys: scale (" in errors[0]
        assert "params.yaml" in errors[0]
    assert "did you mean 'scale'?" in run(snakemake("-n", "--config", "scael=smoke"), bare_ws, 120).stdout


def test_cli_defaults_are_the_workflow_paths(bare_ws: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A product made by hand with the `iapo` commands' default --out lands where the workflow puts it."""
    from types import SimpleNamespace

    import iapo.audit
    import iapo.audit_report
    import iapo.train
    from iapo.cli import main
    from iapo.config import load_params, resolve
    from iapo.diagnostics import runner

    jobs = dry_run_jobs(bare_ws, "smoke")
    outputs: dict[str, list[str]] = {}
    for job in jobs:
        outputs.setdefault(job["rule"], []).extend(job["output"])
    params = ["--params", str(ROOT / "params.yaml")]
    monkeypatch.chdir(tmp_path)
    assert main([*params, "tables", "--scale", "smoke"]) == 0
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(outputs["figures_tables"])

    seen: dict[str, Path] = {}
    monkeypatch.setattr(iapo.audit, "run_audit", lambda claims, summary: seen.update(summary=summary) or [])
    monkeypatch.setattr(iapo.audit_report, "write_report",
                        lambda results, summary, out, *_, **kw: (seen.update(audit=out), out, out)[1:])
    monkeypatch.setattr(iapo.train, "train", lambda cfg, out, **kw: seen.update(run=out))
    assert main([*params, "audit", "--scale", "smoke"]) == 0
    assert main([*params, "train", "--env", "Hopper-v5", "--variant", "direct", "--scale", "smoke"]) == 0
    assert str(seen["audit"]) == outputs["audit"][0]
    assert str(seen["summary"] / "runs.csv") in outputs["summarize"]
    assert str(seen["run"] / "run.json") in outputs["train"]

    cfg = resolve(load_params(ROOT / "params.yaml"), "InvertedPendulum-v2", "iterative", 0, "smoke")
    monkeypatch.setattr(runner, "select_checkpoints", lambda run, which: [(1000, Path("step_1000.pt"))])
    monkeypatch.setattr(runner, "load_snapshot", lambda path, device: SimpleNamespace(cfg=cfg))
    out = runner.default_out("amortization_gap", SimpleNamespace(run=Path("any")))
    assert str(out) in outputs["diagnose_amortization_gap"]


def test_make_figures_never_trains(bare_ws: Path, tmp_path: Path) -> None:
    """Without run folders (a fresh clone) `make figures` rebuilds from the committed summary tables
    and says what it cannot rebuild; with every run folder it summarizes them. It never trains."""
    make = check(run(["make", "-n", "figures", "SCALE=mini", f"VENV={BIN.parent}"], bare_ws, timeout=60))
    assert "iapo rebuild-figures --scale mini" in make and "snakemake" not in make
    cmd = [str(BIN / "iapo"), "rebuild-figures", "--scale", "mini", "-n"]
    out = run(cmd, bare_ws, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]  # all it can: the runs are the normal absence
    rules = {job["rule"] for job in parse_dry_run(out.stdout)}
    assert "figures_tables" in rules and "figures_performance" in rules
    assert not rules & {"train", "summarize"}, rules
    assert "40 run folder(s) of scale 'mini' are missing" in out.stdout
    # the committed study's large tables (NAME.csv.gz) count: every notebook and the audit are planned
    assert "not rebuilt:" not in out.stdout and {"figures_surface_2d", "audit"} <= rules, out.stdout[-3000:]
    assert "make pull SCALE=mini" in out.stdout and "make reproduce SCALE=mini" in out.stdout
    # and `make pull` on it: no dvc.lock is committed, so it names what git alone rebuilds
    venv = BIN.parent
    pull = run(["make", "--no-print-directory", "pull", "SCALE=mini", f"VENV={venv}", "TORCH=cpu", "-o",
                f"{venv}/.installed-torch-cpu"], bare_ws, timeout=60)
    assert pull.returncode == 2 and "workflow/dvc/mini/dvc.lock is missing" in pull.stdout, pull.stdout
    assert "make figures SCALE=mini" in pull.stdout and "/dvc pull" not in pull.stdout
    # a scale with neither runs nor summary tables (smoke's are not committed): nothing to rebuild
    out = run([*cmd[:3], "smoke", "-n"], bare_ws, timeout=120)
    assert out.returncode == 2 and "error:" in out.stdout and "make reproduce SCALE=smoke" in out.stdout

    ws = copy_repo(tmp_path / "ws", git=False)
    for env, variant, seed in smoke_grid():
        fake_run(run_folder(ws, env, variant, seed), env, variant, seed)
    out = run([*cmd[:3], "smoke", "-n"], ws, timeout=120)
    rules = {job["rule"] for job in parse_dry_run(check(out))}
    assert "summarize" in rules and "audit" in rules and "train" not in rules, rules


def audit_verdicts(text: str) -> dict[str, str]:
    """The audit's verdicts: `id` → verdict (its verdict table) and `id | group` → the whole row of
    its per-group table (statistic, interval, verdict)."""
    out = {}
    for section in ("Verdicts", "Per group"):
        body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
        for line in body.splitlines():
            if line.startswith("| ") and not line.startswith("| id "):
                cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]  # not \| in a cell
                if section == "Verdicts":
                    out[cells[0]] = cells[4].strip("*")
                else:
                    out[f"{cells[0]} | {cells[1]}"] = " | ".join(cells[2:])
    return out


def test_fresh_clone_audit_reproduces_the_committed_study(tmp_path: Path) -> None:
    """`iapo audit` on a fresh clone's committed summary tables (the large ones as .csv.gz) gives the
    committed paper_figures/mini/audit.md verdict for verdict, and group for group."""
    ws = copy_repo(tmp_path / "ws", git=False)
    assert not (ws / "results/summary/mini/surface_2d.csv").exists()  # git keeps it compressed only
    out = tmp_path / "audit.md"
    check(run([str(BIN / "iapo"), "audit", "--claims", "claims.yaml", "--summary", "results/summary/mini",
               "--deviations", "docs/deviations.md", "--out", str(out)], ws, timeout=600))
    committed = audit_verdicts((ROOT / "paper_figures/mini/audit.md").read_text())
    rebuilt = audit_verdicts(out.read_text())
    assert len(committed) >= 42 and rebuilt == committed
    assert "not present" not in out.read_text().split("## Verdicts")[1].split("## Per group")[0]


def test_readme_states_the_committed_verdicts() -> None:
    """The README's table of the committed mini study lists every claim of its audit.md, each with
    the audit's verdict."""
    readme = (ROOT / "README.md").read_text()
    study = readme.split("\n## The committed mini study\n", 1)[1].split("\n## ", 1)[0]
    stated = {m[1]: m[2] for m in re.finditer(r"^\| `(\w+)` \| (\w+)", study, re.M)}
    audit = {k: v for k, v in audit_verdicts((ROOT / "paper_figures/mini/audit.md").read_text()).items()
             if " | " not in k}
    assert stated == audit


@pytest.mark.slow
def test_make_figures_on_a_fresh_clone_rebuilds_every_notebook_and_the_audit(tmp_path: Path) -> None:
    """`make figures SCALE=mini` on a fresh clone (no run folder): the committed summary tables are
    enough for every notebook and the audit, so it exits 0 with a note on the runs; every file it
    writes is byte for byte the committed one (git status stays clean), none goes missing."""
    ws = copy_repo(tmp_path / "ws")
    committed = {p.relative_to(ROOT) for p in (ROOT / "paper_figures/mini").rglob("*") if p.is_file()}
    out = run([str(BIN / "iapo"), "rebuild-figures", "--scale", "mini", "--cores", "2"], ws, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:]
    assert "run folder(s) of scale 'mini' are missing" in out.stdout and "not rebuilt:" not in out.stdout
    rebuilt = {p.relative_to(ws) for p in (ws / "paper_figures/mini").rglob("*") if p.is_file()}
    assert rebuilt == committed
    assert "Finished job" in out.stdout and "audit" in out.stdout  # rebuilt, not found up to date
    status = subprocess.run(["git", "status", "--porcelain"], cwd=ws, capture_output=True, text=True,
                            check=True, timeout=60).stdout
    assert status == "", status


def test_slurm_profile_dry_run_needs_no_cluster(bare_ws: Path) -> None:
    """`snakemake --cores 8 --profile slurm -n` as typed from the repository root, no Slurm here: the
    profile trains every seed of an (env, variant) in one GPU job (`train: pack: 1`), also with a
    scale chosen on the command line; without `pack` in the train block, one job per seed."""
    from iapo.config import load_params

    params = load_params(bare_ws / "params.yaml")
    for scale in (None, "mini"):
        cmd = snakemake("--cores", "8", "--profile", "slurm", "-n", "--forceall",
                        *(("--config", f"scale={scale}") if scale else ()))
        out = check(run(cmd, bare_ws, timeout=120))
        assert "Using profiles slurm and workflow specific profile profiles/default" in out
        sc = params.scales[scale or params.scale]
        packs = [j for j in parse_dry_run(out) if j["rule"].startswith("train_pack_")]
        assert not [j for j in parse_dry_run(out) if j["rule"] == "train"]
        assert sorted(p["wildcards"]["run"] for p in packs) == sorted(f"{e}/{v}" for e, v in sc.runs())
        for p in packs:
            env, variant = p["wildcards"]["run"].split("/")
            n = sc.seeds_of(env, variant)
            assert p["rule"] == f"train_pack_{n}" and f"--seeds {' '.join(map(str, range(n)))} " in p["shell"]
            assert "--device cuda " in p["shell"]  # the one GPU each job is given, shared by its seeds
            assert f"cpus_per_task={2 * n}" in p["resources"] and "gpu=1" in p["resources"]
    # a site sharing GPUs asks for a shard (or MPS share) instead; a job asking for neither gets the CPU;
    # `--set-resources` replaces the profile's whole train block, so `pack` goes unless repeated
    cases = ((["train:gres=shard:1", "train:pack=1"], "train_pack_", "cuda"),
             (["train:gres=shard:1"], "train", "cuda"), (["train:runtime=60"], "train", "cpu"))
    for resources, rule, device in cases:
        cmd = snakemake("--cores", "8", "--profile", "slurm", "-n", "--forceall", "--set-resources",
                        *resources)
        out = check(run(cmd, bare_ws, timeout=120))
        train = [j for j in parse_dry_run(out) if j["rule"].startswith(rule)]
        assert train and all(j["rule"] == rule or rule.endswith("_") for j in train), resources
        assert all(f"--device {device} " in j["shell"] for j in train), resources


def test_bad_config_is_refused_before_any_job(bare_ws: Path, tmp_path: Path) -> None:
    out = run(snakemake("-n", "--config", "scale=huge"), bare_ws, timeout=120)
    assert out.returncode != 0 and "scale" in out.stdout and "'huge'" in out.stdout
    assert "mini, paper, smoke" in out.stdout
    ws = copy_repo(tmp_path / "ws", git=False)
    raw = yaml.safe_load((ws / "params.yaml").read_text())
    raw["training"]["batch_size"] = "big"
    (ws / "params.yaml").write_text(yaml.safe_dump(raw))
    out = run(snakemake("-n"), ws, timeout=120)
    assert out.returncode != 0
    assert "batch_size" in out.stdout and "'big'" in out.stdout  # the JSON schema names the key


def test_rulegraph_svg_shows_every_rule(bare_ws: Path) -> None:
    listed = check(run(snakemake("--list-rules"), bare_ws, timeout=120)).splitlines()
    rules = [line.strip() for line in listed if re.fullmatch(r"\w+", line.strip())]
    assert {"train", "summarize", "all"} <= set(rules)
    svg = (ROOT / "docs" / "rulegraph.svg").read_text()
    for rule in rules:
        assert f">{rule}<" in svg, f"docs/rulegraph.svg lacks rule {rule}: run `make rulegraph`"


# ------------------------------------------------------------------ iapo summarize
def fake_run(folder: Path, env: str, variant: str, seed: int, scale: str = "smoke") -> None:
    """A finished run folder as `iapo train` leaves it (the files summarize reads)."""
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("env_step,updates,q_loss\n100,0,\n200,100,1.5\n")
    (folder / "eval.csv").write_text("env_step,updates,episode,return,length\n0,0,0,9.0,10\n")
    info = {"env": env, "variant": variant, "seed": seed, "scale": scale, "steps": 200, "updates": 100,
            "final_eval_return": 9.0, "resumed_at": [], "config": {"family": "direct", "q_arch": "A"}}
    (folder / "run.json").write_text(json.dumps(info))


def test_summarize_tables_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from iapo.cli import main

    runs, out = tmp_path / "runs", tmp_path / "summary"
    for env, variant, seed in smoke_grid():
        fake_run(runs / "smoke" / env / variant / f"seed{seed}", env, variant, seed)
    args = ["--params", str(ROOT / "params.yaml"), "summarize", "--scale", "smoke", "--runs", str(runs),
            "--out", str(out), "--no-diagnostics"]
    assert main(args) == 0
    table = pd.read_csv(out / "runs.csv")
    assert sorted(zip(table.env, table.variant, table.seed, strict=True)) == sorted(smoke_grid())
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns[:4]) == ["env", "variant", "seed", "env_step"]
    assert len(metrics) == 2 * len(smoke_grid())
    before = (out / "runs.csv").read_bytes()

    env, variant, seed = smoke_grid()[0]
    marker = runs / "smoke" / env / variant / f"seed{seed}" / "run.json"
    marker.write_text(json.dumps({"env": env, "variant": variant, "seed": seed + 1, "scale": "smoke",
                                  "steps": 200}))
    assert main(args) == 2
    assert "should hold" in capsys.readouterr().err
    marker.write_text(json.dumps({"env": env, "variant": variant, "seed": seed, "scale": "smoke"}))
    assert main(args) == 2
    assert "not a run's record (steps: Field required)" in capsys.readouterr().err
    marker.unlink()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no run.json" in err and str(marker.parent) in err
    assert (out / "runs.csv").read_bytes() == before  # a failed summary leaves the old tables


# ------------------------------------------------------------------ the smoke DAG for real
@pytest.mark.slow
@pytest.mark.smoke_workspace
def test_smoke_pipeline_end_to_end(smoke_ws: Path) -> None:
    wall = json.loads((smoke_ws / ".smoke-done.json").read_text())["wall_time_s"]
    print(f"smoke DAG wall time: {wall} s")
    from iapo.config import load_params, resolve
    from iapo.figures import FIGURES, notebooks
    from iapo.summary import diagnostic_tables

    params = load_params(ROOT / "params.yaml")
    grid = smoke_grid()
    cfgs = {(e, v, s): resolve(params, e, v, s, "smoke") for e, v, s in grid}
    for (env, variant, seed), cfg in cfgs.items():
        folder = run_folder(smoke_ws, env, variant, seed)
        info = json.loads((folder / "run.json").read_text())
        assert (info["env"], info["variant"], info["seed"], info["scale"]) == (env, variant, seed, "smoke")
        assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == sorted(
            f"step_{s}.pt" for s in cfg.checkpoint_steps)
        assert (smoke_ws / "logs" / "smoke" / "train" / env / variant / f"seed{seed}.log").exists()
    summary = smoke_ws / "results" / "summary" / "smoke"
    runs = pd.read_csv(summary / "runs.csv")
    assert sorted(zip(runs.env, runs.variant, runs.seed, strict=True)) == sorted(grid)
    assert (runs.threads == 1).all()
    assert {(r.env, r.variant, r.seed): r.steps for r in runs.itertuples()} == {
        k: cfg.steps for k, cfg in cfgs.items()}
    evals = pd.read_csv(summary / "eval.csv")
    assert {"env", "variant", "seed", "env_step", "return"} <= set(evals.columns)
    for key, cfg in cfgs.items():  # every eval_every steps, and the final policy of each run
        episodes = evals[(evals.env == key[0]) & (evals.variant == key[1]) & (evals.seed == key[2])]
        assert set(episodes.env_step) == {*range(0, cfg.steps + 1, cfg.eval_every), cfg.steps}, key
    metrics = pd.read_csv(summary / "metrics.csv")
    assert len(metrics) == sum(-(-cfg.steps // cfg.log_every) for cfg in cfgs.values())
    scale = json.loads((summary / "scale.json").read_text())
    assert scale["scale"] == "smoke" and "steps" in scale["reduced"]
    # every analysis the scale lists has a non-empty table, every run it names has rows in it
    tables = diagnostic_tables(params, "smoke")
    assert len(tables) >= 10
    for table in tables:
        df = pd.read_csv(summary / f"{table}.csv")
        assert len(df) > 0, table
    for name, job in params.scales["smoke"].diagnostics.items():
        df = pd.read_csv(summary / f"{name}.csv")
        assert set(df.variant) == set(job.variants), name
    # every figure and table file of the registry, every executed notebook, the audit of every claim
    figures = smoke_ws / "paper_figures" / "smoke"
    for entry in FIGURES:
        for file in entry.files:
            assert (figures / file).stat().st_size > 0, file
    for group in notebooks():
        assert (figures / "notebooks" / f"{group}.html").stat().st_size > 0, group
    audit = (figures / "audit.md").read_text()
    assert "# Claims audit" in audit and "inconclusive" in audit  # one seed decides nothing
    claims = yaml.safe_load((ROOT / "claims.yaml").read_text())["claims"]
    assert all(f"| {c['id']} |" in audit for c in claims)
    assert (figures / "audit.html").exists()
    # nothing left to do: a second call plans no job
    again = check(run(snakemake("-n", "--config", "scale=smoke"), smoke_ws, timeout=120))
    assert "Nothing to be done" in again


@pytest.mark.slow
@pytest.mark.smoke_workspace
def test_report_holds_the_summary(smoke_ws: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    check(run(snakemake("--report", str(report), "--config", "scale=smoke"), smoke_ws, timeout=300))
    html = report.read_text(errors="replace")
    assert "runs.csv" in html and "summarize" in html and "audit.html" in html
    assert "audit_overview.png" in html and "forest plot" in html  # the overview, with its caption
    assert "Drawn by" in html and "Evaluation return over env steps" in html  # figures, captioned


@pytest.mark.slow
@pytest.mark.smoke_workspace
def test_killed_training_job_finishes_from_its_checkpoint(smoke_ws: Path, tmp_path: Path) -> None:
    """Kill `iapo train` mid-run under Snakemake: the workflow fails; rerunning it resumes the run
    from its last checkpoint and ends bit-identical to the uninterrupted smoke run."""
    ws = copy_repo(tmp_path / "ws", git=False)
    env, variant, seed = "InvertedPendulum-v2", "iterative", 0
    folder = run_folder(ws, env, variant, seed)
    target = str((folder / "run.json").relative_to(ws))
    cmd = snakemake("--cores", "1", target, "--config", "scale=smoke")
    proc = subprocess.Popen(cmd, cwd=ws, env=tool_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not (folder / "resume" / "step_750.pt").exists():  # 50 of its 300 updates done
            assert proc.poll() is None, proc.stdout.read()
            assert time.time() < deadline, "no checkpoint after 300 s"
            time.sleep(0.05)
        trainers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                    if is_trainer(p, str(folder.relative_to(ws)))]
        assert len(trainers) == 1, trainers
        trainers[0].kill()
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0 and "Error in rule train" in out
    assert not (folder / "run.json").exists() and (folder / "resume" / "step_750.pt").exists()

    out = check(run(cmd, ws, timeout=300))
    info = json.loads((folder / "run.json").read_text())
    assert info["resumed_at"] == [750], info["resumed_at"]
    reference = run_folder(smoke_ws, env, variant, seed)
    for name in ("metrics.csv", "eval.csv"):
        assert (folder / name).read_bytes() == (reference / name).read_bytes(), name
