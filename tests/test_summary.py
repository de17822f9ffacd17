"""Tests for the scale grid and the diagnostics jobs of iapo.summary (no training: hand-built tables)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pandas as pd
import pytest

from iapo.config import Params
from iapo.diagnostics import EXTRA_TABLES, REGISTRY, table_names
from iapo.summary import (
    DiagnosticRun,
    RunKey,
    ScaleReport,
    SummaryError,
    collect_diagnostic,
    diagnose_argv,
    diagnostic_runs,
    diagnostic_tables,
    run_grid,
)


def with_scale(params: Params, **changes) -> Params:
    """params with scales.smoke changed (validated again, as params.yaml would be)."""
    raw = params.model_dump()
    raw["scales"]["smoke"] |= changes
    return Params.model_validate_json(json.dumps(raw))


def test_extra_tables_match_the_modules() -> None:
    for name in REGISTRY:
        module = importlib.import_module(f"iapo.diagnostics.{name}")
        assert [t for t in module.COLUMNS if t != "main"] == list(EXTRA_TABLES.get(name, ())), name
        assert table_names(name)[0] == name


def test_grid_is_the_union_of_its_groups(params: Params) -> None:
    p = with_scale(params, seeds=2, grid=[
        {"envs": ["Hopper-v2", "Ant-v2"], "variants": ["direct"]},
        {"envs": ["Hopper-v2"], "variants": ["iterative", "direct_flow"], "steps": 77}])
    assert run_grid(p, "smoke") == [RunKey(e, v, s) for e, v in [
        ("Hopper-v2", "direct"), ("Ant-v2", "direct"), ("Hopper-v2", "iterative"),
        ("Hopper-v2", "direct_flow")] for s in (0, 1)]
    sc = p.scales["smoke"]
    assert sc.steps_of("Hopper-v2", "iterative") == 77
    assert sc.steps_of("Hopper-v2", "direct") == sc.steps


def test_diagnostic_jobs_follow_variants_envs_and_donor(params: Params) -> None:
    p = with_scale(params, seeds=2, grid=[
        {"envs": ["Hopper-v2", "Ant-v2"], "variants": ["direct", "iterative"]}], diagnostics={
        "surface_2d": {"variants": ["direct", "iterative"], "envs": ["Ant-v2"], "donor": "iterative",
                       "options": {"grid": 7}},
        "modes": {"variants": ["iterative"]}})
    jobs = diagnostic_runs(p, "smoke", "surface_2d")
    assert [(j.key.variant, j.key.seed, j.donor) for j in jobs] == [
        ("direct", 0, RunKey("Ant-v2", "iterative", 0)), ("direct", 1, RunKey("Ant-v2", "iterative", 1)),
        ("iterative", 0, None), ("iterative", 1, None)]
    assert {j.key.env for j in jobs} == {"Ant-v2"}
    assert diagnose_argv(jobs[0], p, "smoke") == [
        "--run", "results/runs/smoke/Ant-v2/direct/seed0",
        "--out", "results/diagnostics/smoke/surface_2d/Ant-v2/direct/seed0.csv",
        "--grid", "7", "--optimizer-from", "results/runs/smoke/Ant-v2/iterative/seed0"]
    assert len(diagnostic_runs(p, "smoke", "modes")) == 4
    assert diagnostic_tables(p, "smoke") == ["surface_2d", "modes", "modes_state"]


def test_a_donor_missing_from_the_grid_is_named(params: Params) -> None:
    p = with_scale(params, grid=[{"envs": ["Hopper-v2"], "variants": ["direct"]}],
                   diagnostics={"surface_2d": {"variants": ["direct"], "donor": "iterative"}})
    with pytest.raises(SummaryError, match=r"surface_2d.donor: 'iterative' has no run on Hopper-v2"):
        diagnostic_runs(p, "smoke")


def test_collect_concatenates_every_run_and_names_a_missing_one(params: Params, tmp_path: Path) -> None:
    p = with_scale(params, seeds=2, grid=[{"envs": ["Hopper-v2"], "variants": ["iterative"]}],
                   diagnostics={"modes": {"variants": ["iterative"]}})
    jobs = diagnostic_runs(p, "smoke", "modes")
    for job in jobs:
        out = job.out("smoke", tmp_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"seed": [job.key.seed] * 3, "d": [0.1, 0.2, 0.3]}).to_csv(out, index=False)
        pd.DataFrame({"seed": [job.key.seed], "x": [1.0]}).to_csv(
            out.with_name(f"{out.stem}_state.csv"), index=False)
    tables = collect_diagnostic(p, "smoke", "modes", tmp_path)
    assert list(tables) == ["modes", "modes_state"]
    assert tables["modes"]["seed"].tolist() == [0, 0, 0, 1, 1, 1]
    assert tables["modes_state"]["seed"].tolist() == [0, 1]
    lost = DiagnosticRun("modes", RunKey("Hopper-v2", "iterative", 1)).out("smoke", tmp_path)
    lost.unlink()
    with pytest.raises(SummaryError, match=str(lost)):
        collect_diagnostic(p, "smoke", "modes", tmp_path)


@pytest.mark.parametrize("scale", ["smoke", "mini", "paper"])
def test_scale_json_alone_names_the_tables_a_scale_produces(params: Params, scale: str,
                                                            tmp_path: Path) -> None:
    """What the audit and the figures read from scale.json (written, then read back as its typed
    model) agrees with the summary's own list; the warm-up is the scale's, else the training default."""
    ScaleReport.of(params, scale).write(tmp_path)
    report = ScaleReport.read(tmp_path)
    assert report is not None and report.scale == scale
    assert report.produced_tables() == {"runs", "eval", "metrics", *diagnostic_tables(params, scale)}
    expected = params.scales[scale].initial_random_steps
    assert report.warmup == (params.training.initial_random_steps if expected is None else expected)
    no_jobs = with_scale(params, diagnostics={})
    assert ScaleReport.of(no_jobs, "smoke").produced_tables() == {"runs", "eval", "metrics"}
    (tmp_path / "scale.json").write_text("{not json")
    assert ScaleReport.read(tmp_path) is None and ScaleReport.read(tmp_path / "absent") is None


def test_compressed_tables_are_read_and_unpacked(tmp_path: Path) -> None:
    """A committed study's large table as NAME.csv.gz (gzip -n, as `make compress-tables` writes it):
    readers find it, `unpack_tables` restores NAME.csv byte for byte, and a present .csv wins."""
    import gzip

    from iapo.summary import table_file, unpack_tables

    plain = tmp_path / "surface_2d.csv"
    text = "env,seed,J\nHopper-v2,0,1.5\nHopper-v2,1,-2.25\n"
    (tmp_path / "surface_2d.csv.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    assert table_file(tmp_path, "surface_2d") == tmp_path / "surface_2d.csv.gz"
    assert pd.read_csv(table_file(tmp_path, "surface_2d"))["J"].tolist() == [1.5, -2.25]
    assert table_file(tmp_path, "modes_state") == tmp_path / "modes_state.csv"  # neither: the plain name
    assert unpack_tables(tmp_path) == [plain] and plain.read_text() == text
    assert table_file(tmp_path, "surface_2d") == plain
    plain.write_text("env,seed,J\n")  # an existing .csv is never overwritten
    assert unpack_tables(tmp_path) == [] and plain.read_text() == "env,seed,J\n"
    assert not list(tmp_path.glob(".*.tmp"))
