"""Every diagnostic end to end through `iapo diagnose` on real run folders (direct and iterative,
InvertedPendulum and HalfCheetah), checking each CSV against its documented schema."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from iapo.cli import main
from iapo.config import load_params, resolve
from iapo.diagnostics import REGISTRY
from iapo.diagnostics.runner import load
from iapo.train import Run

ROOT = Path(__file__).resolve().parents[1]
ENVS = ("InvertedPendulum-v2", "HalfCheetah-v2")
VARIANTS = ("direct", "iterative")
STEPS = (150, 300)
TIMINGS: dict[str, float] = {}


class Runs:
    """Real runs of `iapo.train.Run`, each trained the first time a test asks for it (so `-k` trains
    only what the selected tests need): 300 env steps, 150 of them random warm-up, snapshots at 150
    and 300. Networks are shrunk to 32 units and batches to 32 so each takes seconds; everything else
    is the real params.yaml. Keys: (env, variant), e.g. direct and iterative on both envs, and on
    HalfCheetah iterative_mb (model-based analyses) and direct_flow (Fig. 15)."""

    def __init__(self, tmp: Path) -> None:
        raw = yaml.safe_load((ROOT / "params.yaml").read_text())
        raw["scales"]["smoke"] |= {
            "steps": STEPS[-1], "initial_random_steps": STEPS[0], "eval_every": 10_000,
            "eval_episodes": 1, "log_every": 50, "checkpoint_steps": list(STEPS), "resume_every": 10_000,
        }
        raw["training"]["batch_size"] = 32
        raw["policy"]["n_units"] = 32
        for arch in raw["q_architectures"].values():
            arch["n_units"] = 32
        raw["model_based"] |= {"n_units": 32, "pretrain_updates": 20}
        (tmp / "params.yaml").write_text(yaml.safe_dump(raw))
        self.tmp, self.params = tmp, load_params(tmp / "params.yaml")
        self.trained: dict[tuple[str, str], Path] = {}

    def __getitem__(self, key: tuple[str, str]) -> Path:
        if key not in self.trained:
            env, variant = key
            folder = self.tmp / env / variant
            start = time.perf_counter()
            Run(resolve(self.params, env, variant, 0, "smoke"), folder).run()
            TIMINGS[f"(train) {env}/{variant}"] = time.perf_counter() - start
            torch.set_num_threads(1)
            self.trained[key] = folder
        return self.trained[key]


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> Runs:
    return Runs(tmp_path_factory.mktemp("diag_runs"))


def diagnose(name: str, run: Path, out: Path, *args: str) -> dict[str, pd.DataFrame]:
    """Run through the real CLI; return every table it wrote, checked against the schema."""
    start = time.perf_counter()
    assert main(["diagnose", name, "--run", str(run), "--out", str(out), *args]) == 0
    TIMINGS[f"{name} {run.parent.name}/{run.name}"] = time.perf_counter() - start
    tables = {}
    for table, columns in load(name).COLUMNS.items():
        path = out if table == "main" else out.with_name(f"{out.stem}_{table}{out.suffix}")
        df = pd.read_csv(path)
        assert list(df.columns) == list(columns), f"{path}: columns differ from the documented schema"
        assert not list(out.parent.glob(".*.tmp")), "a temporary file was left behind"
        tables[table] = df
    return tables


ALL = [(e, v) for e in ENVS for v in VARIANTS]
COLLECT = ("--collect-steps", "12")


@pytest.mark.parametrize(("env", "variant"), ALL)
def test_value_bias(runs, tmp_path, env, variant):
    df = diagnose("value_bias", runs[env, variant], tmp_path / "vb.csv",
                  "--states", "3", "--rollouts", "3", "--horizon", "25", "--batch-envs", "4")["main"]
    assert len(df) == 2 * 3 and sorted(df.step.unique()) == list(STEPS)
    assert (df.rollout_length <= 25).all() and (df.rollout_length >= 1).all()
    np.testing.assert_allclose(df.bias, df.q_hat - df.q_mc)
    np.testing.assert_allclose(df.q_hat, df.q_mean - df.beta * df.q_sigma, rtol=1e-3, atol=1e-3)
    assert (df.gamma == 0.99).all() and df.alpha.between(0, 2).all()
    # the pairs are the same for every checkpoint: a checkpoint's q is all that changes
    assert df[df.step == 150].pair.tolist() == df[df.step == 300].pair.tolist()


@pytest.mark.parametrize(("env", "variant"), ALL)
def test_policy_change(runs, tmp_path, env, variant):
    df = diagnose("policy_change", runs[env, variant], tmp_path / "pc.csv", "--horizon", "20")["main"]
    assert set(df.step) == {300} and set(df.prev_step) == {150}
    assert 1 <= len(df) <= 20 and (df.kl >= 0).all() and df.state.tolist() == list(range(len(df)))
    # the noise floor: none for a direct policy (deterministic in s), some for an iterative one, whose
    # λ depends on the samples of J its optimizer draws
    assert (df.kl_floor >= 0).all()
    assert (df.kl_floor == 0).all() if variant == "direct" else (df.kl_floor > 0).any()


@pytest.mark.parametrize(("env", "variant"), ALL)
def test_amortization_gap(runs, tmp_path, env, variant):
    df = diagnose("amortization_gap", runs[env, variant], tmp_path / "gap.csv",
                  "--states", "4", *COLLECT, "--iters", "15", "--eval-samples", "50")["main"]
    estimates = {"amortized", "amortized_extra"} if variant == "iterative" else {"amortized"}
    assert set(df.estimate) == estimates and len(df) == 2 * 4 * len(estimates)
    assert (df.opt_steps == 15).all()
    np.testing.assert_allclose(df.gap, df.J_optimized - df.J_amortized, rtol=1e-6, atol=1e-6)
    if variant == "iterative":
        assert set(df[df.estimate == "amortized_extra"].amortized_iters) == {10}
    code = diagnose("amortization_gap", runs[env, variant], tmp_path / "gap_code.csv", "--states", "3",
                    *COLLECT, "--estimator", "code", "--extra-iters", "0")["main"]
    assert (code.gap >= 0).all() and set(code.estimator) == {"code"}


def test_amortization_gap_of_a_flow_policy(runs, tmp_path):
    """Direct + NF (B.2, Fig. 15): Adam (paper settings) on the base Gaussian's λ with the flow's
    transforms fixed improves the flow policy's J from the amortized estimate, up to noise."""
    df = diagnose("amortization_gap", runs["HalfCheetah-v2", "direct_flow"], tmp_path / "gap.csv",
                  "--states", "6", *COLLECT, "--eval-samples", "1000")["main"]
    assert set(df.family) == {"direct_flow"} and set(df.estimate) == {"amortized"} and len(df) == 2 * 6
    assert (df.opt_steps == 100).all() and (df.amortized_iters == 1).all()
    assert np.isfinite(df[["J_amortized", "J_optimized", "gap"]].to_numpy()).all()
    np.testing.assert_allclose(df.gap, df.J_optimized - df.J_amortized, rtol=1e-6, atol=1e-6)
    # noise: Adam's 10-sample steps near a flat optimum can end slightly below the start (docs), by
    # far less than J itself; on average over the states of a checkpoint the gap is positive
    assert (df.J_optimized >= df.J_amortized - 0.05 * df.J_amortized.abs()).all()
    assert (df.groupby("step").gap.mean() > 0).all()


def test_rows_of_a_checkpoint_do_not_depend_on_the_others(runs, tmp_path):
    """Each checkpoint is seeded from (--seed, step): reruns and subsets give the same rows."""
    run, args = runs["HalfCheetah-v2", "iterative"], ("--states", "3", *COLLECT, "--iters", "5")
    both = diagnose("amortization_gap", run, tmp_path / "a.csv", *args)["main"]
    again = diagnose("amortization_gap", run, tmp_path / "b.csv", *args)["main"]
    last = diagnose("amortization_gap", run, tmp_path / "c.csv", *args, "--checkpoints", "300")["main"]
    pd.testing.assert_frame_equal(both, again)
    pd.testing.assert_frame_equal(both[both.step == 300].reset_index(drop=True), last)
    other = diagnose("amortization_gap", run, tmp_path / "d.csv", *args, "--seed", "1")["main"]
    assert not np.allclose(other.J_amortized, both.J_amortized)


@pytest.mark.parametrize("env", ENVS)
def test_improvement(runs, tmp_path, env, capsys):
    tables = diagnose("improvement", runs[env, "iterative"], tmp_path / "imp.csv", "--states", "3",
                      *COLLECT, "--iters", "7", "--refinement-steps", "12")
    df = tables["main"]
    training, states = df[df.source == "training"], df[df.source == "states"]
    metrics = pd.read_csv(runs[env, "iterative"] / "metrics.csv").dropna(subset=["J_iter5"])
    assert len(training) == 6 * len(metrics) and set(training.iteration) == set(range(6))
    first = training[training.step == metrics.env_step.iloc[0]].set_index("iteration").J
    np.testing.assert_allclose(first.values, metrics.iloc[0][[f"J_iter{i}" for i in range(6)]].values)
    assert len(states) == 2 * 3 * 8 and (states[states.iteration == 0].dJ == 0).all()
    assert set(df.n_iters_trained) == {5}
    check_refinement(tables["refinement"], 7)
    # the episode does not depend on --states
    other = diagnose("improvement", runs[env, "iterative"], tmp_path / "imp5.csv", "--source", "states",
                     "--states", "5", *COLLECT, "--iters", "7", "--refinement-steps", "12")["refinement"]
    pd.testing.assert_frame_equal(other, tables["refinement"])
    # a direct agent has no iterations: a clear error, exit code 2, nothing written
    assert main(["diagnose", "improvement", "--run", str(runs[env, "direct"]),
                 "--out", str(tmp_path / "no.csv")]) == 2
    assert "needs an iterative agent" in capsys.readouterr().err and not (tmp_path / "no.csv").exists()


def check_refinement(ref: pd.DataFrame, iters: int) -> None:
    """Fig. 4a data: per checkpoint, one episode's consecutive time steps × iterations 0 … iters of
    action dimension 0, with μ ± σ after tanh; λ_0 is the iterative optimizer's (μ = 0, σ = 1)."""
    assert sorted(ref.step.unique()) == list(STEPS) and set(ref.dim) == {0}
    for _, run in ref.groupby("step"):
        n_t = run.t.max() + 1
        assert 1 <= n_t <= 12 and len(run) == n_t * (iters + 1)
        assert list(zip(run.t, run.iteration, strict=True)) == [
            (t, i) for t in range(n_t) for i in range(iters + 1)]  # in time order
        first, last = run[run.iteration == 0], run[run.iteration == iters]
        assert (first.mu == 0).all() and np.allclose(first.sigma, 1.0)
        assert not np.allclose(last.mu, 0)  # the iterations moved the estimate
    np.testing.assert_allclose(ref.tanh_mu, np.tanh(ref.mu), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ref.tanh_low, np.tanh(ref.mu - ref.sigma), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ref.tanh_high, np.tanh(ref.mu + ref.sigma), rtol=1e-5, atol=1e-6)
    assert (ref.sigma > 0).all()
    assert (ref.tanh_low <= ref.tanh_mu).all() and (ref.tanh_mu <= ref.tanh_high).all()
    assert np.isfinite(ref.J).all() and set(ref.n_iters_trained) == {5}


@pytest.mark.parametrize(("env", "variant"), ALL)
def test_test_time(runs, tmp_path, env, variant):
    df = diagnose("test_time", runs[env, variant], tmp_path / "tt.csv", "--episodes", "2",
                  "--horizon", "15", "--iters", "3", "--samples", "8")["main"]
    assert len(df) == 2 * 2 * 2 and set(df["mode"]) == {"amortized", "optimized"}
    kind = "iterations" if variant == "iterative" else "adam"
    assert set(df[df["mode"] == "optimized"].extra_kind) == {kind}
    assert (df.length <= 15).all()


@pytest.mark.parametrize(("env", "variant"), ALL)
def test_optimizer_comparison(runs, tmp_path, env, variant):
    extra = ["--optimizer-from", str(runs[env, "iterative"])] if variant == "direct" else []
    df = diagnose("optimizer_comparison", runs[env, variant], tmp_path / "oc.csv", "--states", "3",
                  *COLLECT, "--iters", "12", "--cem-samples", "20", "--cem-top", "4", *extra)["main"]
    iterative = "iterative_transfer" if variant == "direct" else "iterative"
    assert set(df.optimizer) == {iterative, "adam", "cem"} and set(df.step) == {300}
    assert len(df) == 3 * 3 * 13
    assert np.allclose(df[df.optimizer == iterative].time_ratio, 1.0) and (df.sec_per_iter > 0).all()
    assert set(df[df.optimizer == "cem"].n_samples) == {20} and set(df.n_iters_trained) == {5}
    # every optimizer starts from the same λ_0: the iteration-0 estimates agree in distribution,
    # and CEM's 20-sample J at λ_0 is finite
    assert np.isfinite(df.J).all()


@pytest.mark.parametrize(("env", "variant"), ALL)
def test_surface_2d(runs, tmp_path, env, variant):
    df = diagnose("surface_2d", runs[env, variant], tmp_path / "s2d.csv", *COLLECT, "--grid", "8",
                  "--iters", "4", "--runs", "2", "--optimizer-from", str(runs[env, "iterative"]))["main"]
    one_d = env == "InvertedPendulum-v2"
    grid = df[df.kind == "grid"]
    assert len(grid) == (8 if one_d else 64) and grid.x.between(-1, 1).all()
    assert grid.dim_y.isna().all() == one_d and grid.y.isna().all() == one_d
    (optimum,) = df[df.kind == "optimum"].J
    assert optimum == grid.J.max() and len(df[df.kind == "estimate"]) == 1
    # re-evaluated on fresh noise: the same two points (tanh μ on the plotted dims), other J values
    fresh = df[df.kind.isin(["optimum_fresh", "estimate_fresh"])].set_index("kind")
    for kind in ("optimum", "estimate"):
        row = df[df.kind == kind].iloc[0]
        assert fresh.loc[f"{kind}_fresh", "x"] == pytest.approx(row.x, abs=1e-5)
        assert fresh.loc[f"{kind}_fresh", "J"] != row.J
    optimizers = {"iterative_transfer"} | ({"iterative"} if variant == "iterative" else set())
    traj = df[df.kind == "trajectory"]
    assert set(traj.optimizer) == optimizers and len(traj) == len(optimizers) * 2 * 5
    # each run from its own random initialization, the same two for every optimizer; β = 1
    starts = traj[traj.iteration == 0]
    assert set(traj.init) == {"random"} and set(df.beta) == {1.0}
    assert starts.groupby("optimizer").x.nunique().eq(2).all()
    assert starts.groupby("run").x.nunique().eq(1).all()


@pytest.mark.parametrize(("env", "variant"), ALL)
def test_modes(runs, tmp_path, env, variant):
    tables = diagnose("modes", runs[env, variant], tmp_path / "modes.csv", "--states", "3", *COLLECT,
                      "--runs", "4", "--grid", "5", "--density-points", "7")
    pairs, state = tables["main"], tables["state"]
    n = 1 if env == "InvertedPendulum-v2" else 6
    assert len(pairs) == 3 * 6 and (pairs.l2_tanh_mu <= pairs.max_l2).all()
    np.testing.assert_allclose(pairs.max_l2, 2 * np.sqrt(n))
    if variant == "direct":  # one feedforward estimate: every run is the same
        np.testing.assert_allclose(pairs.l2_tanh_mu, 0, atol=1e-6)
    chosen = pairs.groupby("state").l2_tanh_mu.max().idxmax()
    assert set(state.state) == {chosen}
    counts = state.kind.value_counts()
    assert counts["mean"] == 4 * n and counts["density"] == 4 * n * 7
    assert counts["surface"] == (5 if n == 1 else 15 * 25)
    assert set(pairs.init) == set(state.init) == {"same"} and set(pairs.beta) == {1.0}
    if variant == "direct":  # one pass of a network: no λ_0, no random λ_0
        assert "init" not in counts
        assert main(["diagnose", "modes", "--run", str(runs[env, variant]), "--out", str(tmp_path / "r.csv"),
                     "--init", "random"]) == 2
    else:
        assert counts["init"] == 4 * n and state[state.kind == "init"].x.nunique() == 1  # all from λ_0
    if variant == "iterative":  # --init both: the same states, runs from λ_0 and from random λ_0
        both = diagnose("modes", runs[env, variant], tmp_path / "both.csv", "--states", "3", *COLLECT,
                        "--runs", "4", "--grid", "5", "--density-points", "7", "--init", "both")
        assert len(both["main"]) == 2 * 3 * 6
        same = both["main"][both["main"].init == "same"].reset_index(drop=True)
        pd.testing.assert_frame_equal(same, pairs, check_dtype=False)
        starts = both["state"][(both["state"].kind == "init") & (both["state"].init == "random")]
        assert starts.x.nunique() == 4 * n  # four runs, each from its own μ_0


def test_bad_inputs_exit_2_with_a_message(runs, tmp_path, capsys):
    out = tmp_path / "x.csv"
    assert main(["diagnose", "value_bias", "--run", str(tmp_path), "--out", str(out)]) == 2
    assert "no checkpoints/ folder" in capsys.readouterr().err
    run = runs["HalfCheetah-v2", "direct"]
    assert main(["diagnose", "modes", "--run", str(run), "--out", str(out), "--checkpoints", "999"]) == 2
    assert "available: 150, 300" in capsys.readouterr().err
    assert main(["diagnose", "surface_2d", "--run", str(run), "--out", str(out), "--dims", "0,9"]) == 2
    assert "--dims" in capsys.readouterr().err
    assert not out.exists()


def test_docs_list_every_column():
    """docs/diagnostics.md documents each table's columns, in the order the CSV has them."""
    text = (ROOT / "docs" / "diagnostics.md").read_text()
    for name in REGISTRY:
        for table, columns in load(name).COLUMNS.items():
            title = f"### `{name}`" if table == "main" else f"### `{name}` — `{table}` table"
            assert title in text, f"docs/diagnostics.md: no section {title!r}"
            section = text.split(title, 1)[1].split("\n### ", 1)[0]
            documented = re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)
            assert documented == list(columns), f"{title}: documented {documented}, CSV {list(columns)}"


def test_report_timings():
    """Not a check: prints the wall time of each diagnostic above (pytest -s shows it)."""
    for key, seconds in sorted(TIMINGS.items()):
        print(f"{key:<55} {seconds:6.2f} s")


def test_mb_transfer(runs, tmp_path):
    mb, mf = runs["HalfCheetah-v2", "iterative_mb"], runs["HalfCheetah-v2", "iterative"]
    df = diagnose("mb_transfer", mb, tmp_path / "t.csv", "--optimizer-from", str(mf),
                  "--episodes", "1", "--horizon", "20", "--checkpoints", "last")["main"]
    assert sorted(df.optimizer.unique()) == ["own", "transfer"] and (df.length == 20).all()
    assert set(df.source_step) == {300}
    # the two optimizers act differently (a transfer that left `own` with the donor's optimizer
    # gave identical episodes)
    own, transfer = (df[df.optimizer == o]["return"].to_numpy() for o in ("own", "transfer"))
    assert not np.array_equal(own, transfer)
    # a model-free run as --run is refused with a clear message
    assert main(["diagnose", "mb_transfer", "--run", str(mf), "--optimizer-from", str(mf),
                 "--out", str(tmp_path / "bad.csv")]) == 2


def test_mb_planning(runs, tmp_path):
    tables = diagnose("mb_planning", runs["HalfCheetah-v2", "iterative_mb"], tmp_path / "p.csv",
                      "--states", "2", "--collect-steps", "12")
    main_, rollout = tables["main"], tables["rollout"]
    assert sorted(main_.iteration.unique()) == list(range(6))  # λ_0 … λ_K
    assert len(rollout) == 2 * 6 * 3 * 17  # states × iterates × (h + 1) × state dims
    first = rollout[rollout.t == 0]
    # t = 0 is the real state: the same for every iteration
    assert first.groupby(["state", "dim"])["value"].nunique().max() == 1
