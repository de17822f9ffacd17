"""The figures: the registry against the notebooks, the statistics of the curves, the empty-panel
path, and real papermill executions of notebooks on tiny hand-built summary folders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import matplotlib
import numpy as np
import pandas as pd
import papermill
import pytest

from iapo import figures as F
from iapo.diagnostics import REGISTRY, table_names
from iapo.stats import mean_band
from iapo.summary import SUMMARY_FILES
from iapo.tables import write_tables
from tests.conftest import write_scale_json

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def source(notebook: str) -> str:
    return (NOTEBOOKS / f"{notebook}.py").read_text()


# ---------------------------------------------------------------- the registry
def test_every_notebook_is_registered_and_every_registered_notebook_exists():
    on_disk = {p.stem for p in NOTEBOOKS.glob("*.py")}
    assert on_disk == set(F.notebooks())


def test_names_are_unique_and_file_safe():
    names = [e.name for e in F.FIGURES]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z0-9_]+", n) for n in names)


@pytest.mark.parametrize("entry", F.FIGURES, ids=lambda e: e.name)
def test_each_entry_has_both_numberings_or_an_explicit_none(entry):
    for number in (entry.neurips, entry.v1):
        assert number == F.NONE or re.match(r"(Fig\.|Tables?) \d", number), number
    assert entry.description and entry.inputs


def test_every_paper_figure_with_data_is_covered():
    """NeurIPS figures 1-9 and 11-26 (10 and 12 are diagrams) each have at least one entry."""
    covered = set()
    for e in F.FIGURES:
        if e.neurips.startswith("Fig."):
            covered |= {int(n) for a, b in re.findall(r"(\d+)[a-c]?(?:-(\d+))?", e.neurips)
                        for n in range(int(a), int(b or a) + 1)}
    assert covered >= set(range(1, 27)) - {10, 12}


def test_inputs_are_summary_tables():
    known = set(SUMMARY_FILES) | {f"{t}.csv" for name in REGISTRY for t in table_names(name)}
    for e in F.FIGURES:
        if e.notebook is not None:
            assert set(e.inputs) <= known, e.name


@pytest.mark.parametrize("notebook", sorted(F.notebooks()))
def test_notebook_reads_its_declared_inputs_and_saves_its_figures(notebook):
    """The tables a notebook opens are the registry's inputs for it (Snakemake declares those)."""
    text = source(notebook)
    opened = {f"{t}.csv" for t in re.findall(r'summary\.table\("(\w+)"\)', text)}
    assert opened | {"scale.json"} == set(F.notebook_inputs(notebook))
    saved = set(re.findall(r'F\.save\(fig, out_dir, "(\w+)"\)', text))
    saved |= set(re.findall(r'"(\w+)"\)\s*$', text, re.M)) & {e.name for e in F.FIGURES}
    assert {e.name for e in F.notebooks()[notebook]} <= saved


@pytest.mark.parametrize("notebook", sorted(F.notebooks()))
def test_notebook_has_a_papermill_parameters_cell(notebook):
    nb = jupytext.reads(source(notebook), fmt="py:percent")
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    for name in ("summary_dir", "scale", "out_dir", "band"):
        assert re.search(rf"^{name} = ", cells[0].source, re.M), name


# The environments each figure's caption names, in either version of the paper (written out here
# from the captions, independently of the registry): the registry must keep them all.
CAPTION_ENVS = {
    "value_bias": {"Ant-v2"}, "policy_change": {"Ant-v2"}, "policy_change_online": {"Ant-v2"},  # v1 3
    "modes_projections": {"Ant-v2"}, "modes_density": {"Ant-v2"},                                # 2
    "modes_histogram": {"Walker2d-v2", "Hopper-v2", "HalfCheetah-v2", "Ant-v2"},                # 7, 24-26
    "iterations_performance": {"HalfCheetah-v2"}, "iterations_gap": {"HalfCheetah-v2"},         # 8; v1 17
    "value_architecture": {"Hopper-v2"},                                                         # 11; v1 10
    "flow_amortization_gap": {"HalfCheetah-v2"},                                                 # 15
}


@pytest.mark.parametrize("name", sorted(CAPTION_ENVS))
def test_registry_keeps_every_environment_a_caption_names(name):
    assert CAPTION_ENVS[name] <= set(F.by_name(name).envs)


def test_paper_grid_trains_and_analyses_every_figures_environments(params):
    """Every (env, variant) a figure needs is a run of the `paper` grid, and each diagnostic table the
    figure reads analyses it there (or borrows its optimizer: `donor`)."""
    from iapo.summary import diagnostic_runs

    runs = set(params.scales["paper"].runs())
    diagnostic_of = {t: name for name in REGISTRY for t in table_names(name)}
    missing = []
    for e in F.FIGURES:
        needed = {(env, v) for env in e.envs for v in e.variants}
        missing += [f"{e.name}: {env} × {v} not trained" for env, v in sorted(needed - runs)]
        for table in {diagnostic_of.get(i.removesuffix(".csv")) for i in e.inputs} - {None}:
            jobs = diagnostic_runs(params, "paper", table)
            covered = {(j.key.env, j.key.variant) for j in jobs}
            covered |= {(j.donor.env, j.donor.variant) for j in jobs if j.donor is not None}
            missing += [f"{e.name}: {env} × {v} not analysed by {table}"
                        for env, v in sorted(needed - covered)]
    assert not missing, "\n".join(missing)
    # and the figures name an environment for every panel the paper draws
    assert all(e.envs and e.variants for e in F.FIGURES if e.notebook is not None), \
        [e.name for e in F.FIGURES if e.notebook is not None and not (e.envs and e.variants)]


def test_paper_grid_runs_both_value_architectures_for_both_optimizers(params):
    """Figure 11: on each of its environments, direct and iterative each with Q architectures A and B
    (the variant's own table entry, Tables 5-6, and the other one)."""
    from iapo.config import resolve

    arch_variants = {"direct", "iterative", "direct_qA", "direct_qB", "iterative_qA", "iterative_qB"}
    runs = params.scales["paper"].runs()
    for env in F.by_name("value_architecture").envs:
        cfgs = [resolve(params, env, v, 0, "paper") for e, v in runs if e == env and v in arch_variants]
        found = {(c.family, c.q_arch) for c in cfgs}
        assert found == {(f, a) for f in ("direct", "iterative") for a in "AB"}, (env, found)


def test_table_files_are_what_iapo_tables_writes(params, tmp_path):
    written = write_tables(params, tmp_path / "tables")
    assert sorted(str(p.relative_to(tmp_path)) for p in written) == sorted(F.TABLE_FILES)


def test_index_has_one_row_per_entry_with_a_thumbnail():
    text = F.index_markdown("mini")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == len(F.FIGURES)
    for e in F.FIGURES:
        if e.notebook is not None:
            assert f'src="mini/figures/{e.name}.png"' in text


def test_committed_index_is_up_to_date():
    readme = ROOT / "paper_figures" / "README.md"
    assert readme.read_text() == F.index_markdown("mini"), "stale: run `iapo figures-index`"


# ---------------------------------------------------------------- statistics
def test_band_over_seeds_matches_iapo_stats_on_a_hand_worked_case():
    # seeds 0..3, two episodes each: per-seed means 1, 2, 3, 4 (episodes are averaged first)
    df = pd.DataFrame({"seed": [0, 0, 1, 1, 2, 2, 3, 3], "step": 10,
                       "return": [0.5, 1.5, 2.0, 2.0, 1.0, 5.0, 4.0, 4.0]})
    ci = F.over_seeds(df, "step", "return", band="ci").iloc[0]
    expected = mean_band(np.array([1.0, 2.0, 3.0, 4.0]))
    assert (ci["mean"], ci["low"], ci["high"]) == (expected.estimate, expected.low, expected.high)
    assert ci["mean"] == 2.5 and ci["n_seeds"] == 4
    sd = F.over_seeds(df, "step", "return", band="std").iloc[0]
    sample_std = np.sqrt(5 / 3)  # deviations ±1.5, ±0.5 → (2.25 + 0.25) · 2 / 3
    assert (sd["low"], sd["high"]) == pytest.approx((2.5 - sample_std, 2.5 + sample_std))


def test_band_of_one_seed_is_its_value_and_groups_stay_apart():
    df = pd.DataFrame({"seed": 0, "variant": ["a", "b"], "step": 1, "return": [1.0, 7.0]})
    out = F.over_seeds(df, "step", "return", by=["variant"], band="std").set_index("variant")
    assert out.loc["a", ["mean", "low", "high"]].tolist() == [1.0, 1.0, 1.0]
    assert out.loc["b", "mean"] == 7.0


# ---------------------------------------------------------------- captions and empty panels
def write_scale(folder: Path, scale: str = "smoke", seeds: int = 2, steps: int = 1000) -> None:
    grid = [{"envs": ["InvertedPendulum-v2", "Hopper-v2"], "variants": ["direct", "iterative"]}]
    write_scale_json(folder, scale,
                     preset={"grid": grid, "seeds": seeds, "steps": steps, "steps_per_env": {}},
                     paper={"grid": grid, "seeds": 5, "steps": 3_000_000, "steps_per_env": {}})


def test_caption_states_scale_seeds_steps_and_the_paper(tmp_path):
    write_scale(tmp_path)
    caption = F.Summary(tmp_path, "smoke").caption("ci")
    assert caption.startswith("scale smoke: 2 seeds, 1k env steps (paper: 5 seeds, 3M env steps)")
    assert "95% bootstrap CI" in caption


def test_missing_table_gives_labelled_panels_with_the_reason(tmp_path):
    write_scale(tmp_path)
    summary = F.Summary(tmp_path, "smoke")
    table = summary.table("mb_transfer")
    assert table.frame is None and "mb_transfer.csv" in table.why
    fig, panels = F.curves(summary, table, y="return", hues=["own"], envs=["HalfCheetah-v2"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert panels == {} and any(t.startswith("no data:") for t in texts)
    assert "does not produce it" in table.why  # the scale has no mb_transfer job


def test_table_the_scale_produces_but_absent_says_rebuild(tmp_path):
    """A table the scale's diagnostics produce that is not in the folder (e.g. left out of a commit)
    is 'not present: rebuild with …', never 'not produced'."""
    write_scale(tmp_path)
    info = json.loads((tmp_path / "scale.json").read_text())
    info["preset"]["diagnostics"] = {"surface_2d": {"variants": ["direct"], "envs": None}}
    (tmp_path / "scale.json").write_text(json.dumps(info))
    summary = F.Summary(tmp_path, "smoke")
    why = summary.table("surface_2d").why
    assert "not present: rebuild with" in why and "scale=smoke" in why and "not produce" not in why
    assert "does not produce it" in summary.table("modes").why
    assert "not present" in F.Summary(tmp_path / "nowhere", "smoke").table("eval").why  # no scale.json


def test_reason_names_an_env_or_variant_the_scale_does_not_train(tmp_path):
    write_scale(tmp_path)
    pd.DataFrame({"env": ["Hopper-v2"], "variant": ["direct"], "seed": [0], "step": [0],
                  "return": [1.0]}).to_csv(tmp_path / "eval.csv", index=False)
    summary = F.Summary(tmp_path, "smoke")
    evals = summary.table("eval")
    assert "Ant-v2 is not trained" in summary.reason(evals, "Ant-v2", ["direct"])
    assert "not trained on Hopper-v2" in summary.reason(evals, "Hopper-v2", ["direct_mb"])
    assert "no rows" in summary.reason(evals, "Hopper-v2", ["iterative"])


def with_warmup(folder: Path, steps: int = 500) -> F.Summary:
    """The summary of `write_scale` with `initial_random_steps` = steps."""
    info = json.loads((folder / "scale.json").read_text())
    info["preset"]["initial_random_steps"] = steps
    (folder / "scale.json").write_text(json.dumps(info))
    return F.Summary(folder, "smoke")


def test_return_curves_draw_the_untrained_policy_and_the_warmup(tmp_path):
    """baseline = the eval table: a dashed line at each env's mean return at step 0 (over all its runs),
    a span over the warm-up, and both once in the legend."""
    write_scale(tmp_path)
    summary = with_warmup(tmp_path)
    rows = [{"env": "Hopper-v2", "variant": v, "seed": s, "env_step": step, "episode": 0,
             "return": float(s + (10 * step if step else 0) + (v == "direct"))}
            for v in ("direct", "iterative") for s in (0, 1) for step in (0, 500, 1000)]
    pd.DataFrame(rows).to_csv(tmp_path / "eval.csv", index=False)
    evals = summary.table("eval")
    assert F.untrained_returns(evals) == {"Hopper-v2": 1.0}  # (1 + 2 + 0 + 1) / 4
    fig, panels = F.curves(summary, evals, y="return", hues=["direct", "iterative"],
                           envs=["Hopper-v2", "Ant-v2"], baseline=evals)
    ax = panels["Hopper-v2"]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_ydata()) == [1.0, 1.0]
    spans = [p for p in ax.patches if p.get_x() == 0]
    assert len(spans) == 1 and spans[0].get_width() == 500  # from step 0 to the warm-up's end
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["direct", "iterative", F.UNTRAINED, F.WARMUP]
    fig, _ = F.curves(summary, evals, y="return", hues=["direct"], envs=["Hopper-v2"])  # no baseline
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["direct"]


def test_gap_curves_can_leave_out_the_checkpoints_of_the_warmup(tmp_path):
    write_scale(tmp_path)
    summary = with_warmup(tmp_path, 1000)
    gap = pd.DataFrame({"env": ["Hopper-v2"] * 4 + ["InvertedPendulum-v2"] * 2, "variant": "direct",
                        "seed": [0, 1, 0, 1, 0, 1], "step": [1000, 1000, 2000, 2000, 1000, 1000],
                        "gap": [9.0, 9.0, 0.1, 0.2, 5.0, 5.0]})
    kept = F.past_warmup(summary, gap)
    assert set(kept["step"]) == {2000} and "1k env steps" in F.warmup_note(summary)
    fig, panels = F.curves(summary, F.Table("amortization_gap", gap), y="gap", hues=["direct"],
                           envs=["Hopper-v2", "InvertedPendulum-v2"], skip_warmup=True)
    assert list(panels) == ["Hopper-v2"] and panels["Hopper-v2"].get_ylim()[1] < 1
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert any("warm-up" in t for t in texts), texts
    assert F.warmup_note(F.Summary(tmp_path / "nowhere", "smoke")) == ""  # unknown warm-up: all rows


def test_timing_device_is_the_diagnostics_option_or_its_default(tmp_path):
    write_scale(tmp_path)
    info = json.loads((tmp_path / "scale.json").read_text())
    assert F.Summary(tmp_path, "smoke").timing_device("optimizer_comparison") == "cpu"
    info["preset"]["diagnostics"] = {"optimizer_comparison": {"variants": ["iterative"],
                                                              "options": {"device": "cuda:0"}}}
    (tmp_path / "scale.json").write_text(json.dumps(info))
    device = F.Summary(tmp_path, "smoke").timing_device("optimizer_comparison")
    assert device == "cuda:0" and "GPU" in F.timing_text(device)
    assert "not the paper's GPU timings" in F.timing_text("cpu")


# ---------------------------------------------------------------- papermill, for real
def execute(notebook: str, summary_dir: Path, out_dir: Path) -> Path:
    """What `iapo notebook` does (out_dir plays paper_figures/<scale>): jupytext → papermill -k python3."""
    nb_in = out_dir / "notebooks" / f".{notebook}.source.ipynb"
    nb_in.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(jupytext.read(NOTEBOOKS / f"{notebook}.py"), nb_in)
    nb_out = out_dir / "notebooks" / f"{notebook}.ipynb"
    parameters = {"summary_dir": str(summary_dir), "scale": "smoke", "out_dir": str(out_dir / "figures")}
    papermill.execute_notebook(str(nb_in), str(nb_out), kernel_name="python3", language="python",
                               progress_bar=False, parameters=parameters)
    return nb_out


def assert_figures_written(notebook: str, out_dir: Path) -> None:
    for entry in F.notebooks()[notebook]:
        for file in entry.files:
            assert (out_dir / file).stat().st_size > 1000, file


def test_performance_notebook_executes_on_a_tiny_summary(tmp_path):
    summary_dir, out_dir = tmp_path / "summary", tmp_path / "figures"
    write_scale(summary_dir)
    rng = np.random.default_rng(0)
    rows = [{"env": env, "variant": v, "seed": s, "env_step": step, "updates": 0, "episode": ep,
             "return": float(rng.normal(step / 100, 1)), "length": 10}
            for env in ("InvertedPendulum-v2", "Hopper-v2") for v in ("direct", "iterative")
            for s in (0, 1) for step in (0, 500, 1000) for ep in (0, 1)]
    pd.DataFrame(rows).to_csv(summary_dir / "eval.csv", index=False)
    executed = execute("performance", summary_dir, out_dir)
    assert executed.stat().st_size > 0
    assert_figures_written("performance", out_dir)


def test_modes_notebook_draws_runs_from_both_initializations(tmp_path):
    """The modes figures on a tiny summary holding runs from the same λ0 and from random λ0 (with
    each run's initialization, Fig. 2's squares) and on one without the `init` column (older tables)."""
    import itertools

    summary_dir, out_dir = tmp_path / "summary", tmp_path / "figures"
    write_scale(summary_dir)
    rng = np.random.default_rng(0)
    ident = {"env": "Hopper-v2", "variant": "iterative", "family": "iterative", "step": 1000, "beta": 1.0}
    pairs, state = [], []
    for seed, init in itertools.product((0, 1), ("same", "random")):
        base = ident | {"seed": seed, "init": init}
        pairs += [base | {"state": b, "run_i": i, "run_j": j, "l2_tanh_mu": rng.uniform(0, 1), "l2_mu": 0.0,
                          "kl": 0.0, "max_l2": 2 * np.sqrt(3)}
                  for b in range(2) for i, j in itertools.combinations(range(3), 2)]
        base |= {"state": 1}
        for dx, dy in itertools.combinations(range(3), 2):
            state += [base | {"kind": "surface", "dim_x": dx, "dim_y": dy, "x": x, "y": y, "value": -y}
                      for x in (-0.5, 0.0, 0.5) for y in (-0.5, 0.0, 0.5)]
        for kind, r, d in itertools.product(("init", "mean"), range(3), range(3)):
            state.append(base | {"kind": kind, "run": r, "dim_x": d, "x": rng.uniform(-1, 1), "value": 0.3})
        state += [base | {"kind": "density", "run": r, "dim_x": d, "x": a, "value": 1 - a * a}
                  for r in range(3) for d in range(3) for a in (-0.5, 0.0, 0.5)]
    pd.DataFrame(pairs).to_csv(summary_dir / "modes.csv", index=False)
    pd.DataFrame(state).to_csv(summary_dir / "modes_state.csv", index=False)
    for expected in ("random λ0", "same λ0"):
        executed = json.loads(execute("modes", summary_dir, out_dir).read_text())
        assert_figures_written("modes", out_dir)
        printed = [line for cell in executed["cells"] for out in cell.get("outputs", [])
                   for line in out.get("text", [])]
        assert any(expected in line for line in printed), printed
        for table in ("modes", "modes_state"):  # then tables without `init`: from the same λ0
            path = summary_dir / f"{table}.csv"
            df = pd.read_csv(path)
            if "init" in df:
                df[df["init"] == "same"].drop(columns="init").to_csv(path, index=False)


def test_wall_clock_ratio_is_placed_at_each_envs_own_last_checkpoint(tmp_path):
    """Envs trained for different lengths (mini: InvertedPendulum 2000 steps, Hopper 3000): each
    env's wall-clock ratios sit at, and are labelled with, that env's last checkpoint."""
    summary_dir, out_dir = tmp_path / "summary", tmp_path / "figures"
    write_scale(summary_dir)
    rows = [{"env": env, "variant": "iterative", "family": "iterative", "seed": seed, "step": step,
             "optimizer": opt, "state": 0, "iteration": it, "J": float(it), "n_samples": 10,
             "sec_per_iter": 0.01, "time_ratio": ratio, "n_iters_trained": 5, "beta": 1.0}
            for env, step in (("InvertedPendulum-v2", 2000), ("Hopper-v2", 3000)) for seed in (0, 1)
            for opt, ratio in (("iterative", 1.0), ("adam", 0.5), ("cem", 2.0)) for it in (0, 1, 2)]
    pd.DataFrame(rows).to_csv(summary_dir / "optimizer_comparison.csv", index=False)
    executed = json.loads(execute("optimizer_comparison", summary_dir, out_dir).read_text())
    assert_figures_written("optimizer_comparison", out_dir)
    printed = "".join(line for cell in executed["cells"] for out in cell.get("outputs", [])
                      for line in out.get("text", []))
    table = {tuple(line.split()[:3]) for line in printed.splitlines() if line.split()[:1] in
             (["InvertedPendulum-v2"], ["Hopper-v2"])}
    assert {("InvertedPendulum-v2", "2000", "adam"), ("Hopper-v2", "3000", "adam")} <= table, printed
    assert not any(row[0] == "InvertedPendulum-v2" and row[1] != "2000" for row in table), printed


def test_model_based_notebook_draws_no_data_panels_without_its_tables(tmp_path):
    summary_dir, out_dir = tmp_path / "summary", tmp_path / "figures"
    write_scale(summary_dir)  # scale.json only: no eval.csv, no mb_* tables
    execute("model_based", summary_dir, out_dir)
    assert_figures_written("model_based", out_dir)


@pytest.mark.slow
@pytest.mark.parametrize("notebook", sorted(F.notebooks()))
def test_every_notebook_survives_an_empty_summary(tmp_path, notebook):
    summary_dir, out_dir = tmp_path / "summary", tmp_path / "figures"
    summary_dir.mkdir()  # not even scale.json
    execute(notebook, summary_dir, out_dir)
    assert_figures_written(notebook, out_dir)


def test_html_page_is_standalone_with_the_figures_embedded() -> None:
    import base64

    import nbformat

    from iapo.notebooks import html_page

    png = base64.b64encode(b"\x89PNG\r\n\x1a\n-a-tiny-figure-").decode()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Value bias <&>"),
        nbformat.v4.new_code_cell("x = 1", execution_count=1, outputs=[
            nbformat.v4.new_output("display_data", data={"image/png": png})]),
    ])
    page = html_page(nb, "value_bias (mini) <&>")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>value_bias (mini) &lt;&amp;&gt;</title>" in page
    assert "Value bias &lt;&amp;&gt;</h1>" in page or "Value bias &lt;&amp;&gt;<a" in page
    assert f"data:image/png;base64,{png}" in page  # the figure travels with the page
    assert ".highlight" in page and "x</span>" in page  # code is highlighted
