"""The audit engine: verdicts follow the data, flip when the data say the opposite, and say why."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from iapo.audit import evaluate_claim, run_audit
from iapo.audit_inputs import RUN_META, Context
from iapo.audit_report import write_report
from iapo.claims import Claim, load_claims, load_untestable
from iapo.derivations import (
    DERIVATIONS,
    NotDecidable,
    beyond_k_gain,
    final_return,
    gap_fraction,
    gap_negative_share,
    objective_gain,
    overestimation,
    step_decline,
    surface_suboptimality,
    trajectory_end,
)
from iapo.errors import AuditError
from iapo.figures.registry import FIGURES
from iapo.summary import read_table
from tests.conftest import write_scale_json

ROOT = Path(__file__).resolve().parents[1]
FIGURE_ENVS = {f.name: f.envs for f in FIGURES}


def returns(better: str, n_seeds: int = 5, gap: float = 300.0, noise: float = 30.0) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for env in ("Hopper-v2", "HalfCheetah-v2"):
        for variant in ("direct", "iterative"):
            base = 1000.0 + (gap if variant == better else 0.0)
            rows += [{"env": env, "variant": variant, "seed": s, "ret": base + rng.normal(0, noise)}
                     for s in range(n_seeds)]
    return pd.DataFrame(rows)


ENVS = ["Hopper-v2", "HalfCheetah-v2"]


def claim(kind: str, scope: list[str] | None = None, **test) -> Claim:
    return Claim.model_validate({
        "id": "c", "section": "§4.2.2", "claim": "iterative beats direct", "metric": "final return",
        "table": "runs", "value": "ret", "scope": scope or ENVS,
        "test": {"kind": kind, "column": "variant", "a": "iterative", "b": "direct", "by": ["env"]} | test,
    })


def test_greater_flips_with_the_data():
    assert evaluate_claim(claim("greater"), returns("iterative")).verdict == "supported"
    result = evaluate_claim(claim("greater"), returns("direct"))
    assert result.verdict == "contradicted" and "Hopper-v2" in result.reason
    assert evaluate_claim(claim("less"), returns("direct")).verdict == "supported"


def test_checkpoints_before_training_are_left_out(tmp_path):
    """The untrained checkpoint (step ≤ initial_random_steps) says the opposite of the trained
    ones: with it the claim is contradicted, without it (run_audit reads scale.json) supported."""
    trained, untrained = returns("iterative").assign(step=2000), returns("direct", gap=3000).assign(step=1000)
    table = pd.concat([trained, untrained])
    assert evaluate_claim(claim("greater"), table).verdict == "contradicted"
    assert evaluate_claim(claim("greater"), table, warmup=1000).verdict == "supported"
    assert evaluate_claim(claim("greater"), table, warmup=999).verdict == "contradicted"
    claims, summary = tmp_path / "claims.yaml", tmp_path / "summary"
    claims.write_text(yaml.safe_dump({"claims": [claim("greater").model_dump()]}))
    summary.mkdir()
    table.to_csv(summary / "runs.csv", index=False)
    write_scale_json(summary, "mini", preset={"initial_random_steps": 1000})
    assert [r.verdict for r in run_audit(claims, summary)] == ["supported"]


def test_a_group_without_one_arm_is_not_tested():
    """An env where the scale runs only one arm is no evidence: the other envs decide, the reason
    names the untested one; with no group holding both arms the claim is inconclusive."""
    table = returns("iterative")
    table = table[~((table.env == "HalfCheetah-v2") & (table.variant == "direct"))]
    result = evaluate_claim(claim("greater"), table)
    assert result.verdict == "supported" and [g.group for g in result.groups] == ["Hopper-v2"]
    assert "not tested: HalfCheetah-v2 (no runs of direct)" in result.reason
    only_iterative = table[table.variant == "iterative"]
    result = evaluate_claim(claim("greater"), only_iterative)
    assert result.verdict == "inconclusive" and "no group has both arms" in result.reason


def test_not_worse_and_similar():
    equal = returns("nobody", gap=0.0, noise=5.0)
    assert evaluate_claim(claim("not_worse", margin=0.1), equal).verdict == "supported"
    assert evaluate_claim(claim("similar", margin=0.1), equal).verdict == "supported"
    assert evaluate_claim(claim("not_worse", margin=0.1), returns("direct")).verdict == "contradicted"
    assert evaluate_claim(claim("similar", margin=0.1), returns("iterative")).verdict == "contradicted"


def test_too_few_seeds_is_inconclusive_with_reason():
    result = evaluate_claim(claim("greater"), returns("iterative", n_seeds=1))
    assert result.verdict == "inconclusive" and "too few seeds" in result.reason


def test_noise_larger_than_the_effect_is_inconclusive():
    result = evaluate_claim(claim("greater"), returns("iterative", n_seeds=3, gap=10.0, noise=300.0))
    assert result.verdict == "inconclusive"


def test_one_arm_tests():
    df = pd.DataFrame({"env": "E", "seed": range(6), "dJ": [0.5, 0.6, 0.4, 0.55, 0.5, 0.45]})
    base = {"id": "p", "section": "B.3", "claim": "ΔJ > 0", "metric": "ΔJ", "table": "t", "value": "dJ",
            "scope": ["E"]}
    positive = Claim.model_validate(base | {"test": {"kind": "positive"}})
    assert evaluate_claim(positive, df).verdict == "supported"
    assert evaluate_claim(positive, df.assign(dJ=-df.dJ)).verdict == "contradicted"
    within = Claim.model_validate(base | {"test": {"kind": "within", "low": 0.3, "high": 0.7}})
    assert evaluate_claim(within, df).verdict == "supported"
    assert evaluate_claim(within, df.assign(dJ=df.dJ + 2)).verdict == "contradicted"


def scale_json(folder, diagnostics: dict) -> None:
    grid = [{"envs": ["Hopper-v2"], "variants": ["direct", "iterative"]}]
    write_scale_json(folder, "mini", preset={"grid": grid, "diagnostics": diagnostics})


def test_missing_table_or_column_is_inconclusive(tmp_path):
    """A table the scale produces but that is absent is 'not present: rebuild with …'; one no job of
    the scale writes is 'not produced'; without scale.json the audit cannot tell and says so."""
    claims, summary = tmp_path / "claims.yaml", tmp_path / "summary"
    gap = claim("greater").model_dump() | {"id": "g", "table": "amortization_gap"}
    claims.write_text(yaml.safe_dump({"claims": [claim("greater").model_dump(), gap]}))
    summary.mkdir()
    runs, gaps = run_audit(claims, summary)
    assert "not present (no scale.json" in runs.reason and "rebuild with" in runs.reason
    scale_json(summary, {"amortization_gap": {"variants": ["direct"], "envs": None}})
    runs, gaps = run_audit(claims, summary)
    for r in (runs, gaps):
        assert r.verdict == "inconclusive" and "not present: rebuild with" in r.reason
        assert "--config scale=mini" in r.reason and "not produced" not in r.reason
    scale_json(summary, {"amortization_gap": {"variants": ["direct_flow"], "envs": None}})  # no such run
    runs, gaps = run_audit(claims, summary)
    assert "not present: rebuild" in runs.reason and "not produced at scale mini" in gaps.reason
    returns("iterative").drop(columns="ret").to_csv(summary / "runs.csv", index=False)
    runs, _ = run_audit(claims, summary)
    assert "lacks columns" in runs.reason and "iapo summarize --scale mini" in runs.reason


def test_report_lists_every_claim(tmp_path):
    claims = tmp_path / "claims.yaml"
    with_pipe = claim("less").model_dump() | {"id": "d", "metric": "x / 2√|A|"}
    claims.write_text(yaml.safe_dump({"claims": [claim("greater").model_dump(), with_pipe]}))
    returns("iterative").to_csv(tmp_path / "runs.csv", index=False)
    results = run_audit(claims, tmp_path)
    md, page = write_report(results, tmp_path, tmp_path / "out" / "audit.md")
    text = md.read_text()
    assert "| c |" in text and "| d |" in text and "**supported**" in text and "**contradicted**" in text
    # every verdict row has the table's six cells, a `|` inside a cell included (escaped)
    rows = [line for line in text.splitlines() if line.startswith(("| c |", "| d |"))][:2]
    assert all(len(re.findall(r"(?<!\\)\|", row)) == 7 for row in rows) and "2√\\|A\\|" in rows[1]
    html = page.read_text()  # one card per claim, the pipe kept literally (escaped for HTML only)
    assert html.count('<article class="card') == 2 and "x / 2√|A|" in html
    assert (md.parent / "audit_overview.png").stat().st_size > 0


def test_bad_claims_file(tmp_path):
    bad = tmp_path / "claims.yaml"
    spec = claim("greater").model_dump() | {"test": {"kind": "greater"}}
    bad.write_text(yaml.safe_dump({"claims": [spec]}))
    with pytest.raises(AuditError, match="needs column, a and b"):
        load_claims(bad)


def test_inconclusive_groups_say_what_would_decide_them(tmp_path):
    """Open groups carry a power estimate (heading, scenarios, seeds needed); decided ones do not; the
    report lists them, prints the β note once for β-dependent claims and the statements not testable."""
    noisy = evaluate_claim(claim("greater"), returns("iterative", n_seeds=3, gap=30.0, noise=60.0))
    assert noisy.verdict == "inconclusive"
    assert all(g.power is not None and g.power.heading != "neither" and g.power.scenarios
               for g in noisy.groups)
    clear = evaluate_claim(claim("greater"), returns("iterative"))
    assert all(g.power is None for g in clear.groups)
    early = returns("nobody", n_seeds=3, gap=0.0, noise=60.0).assign(step=1000)
    late = returns("iterative", n_seeds=3, gap=30.0, noise=60.0).assign(step=2000)
    both = evaluate_claim(claim("greater"), pd.concat([early, late]))
    assert both.groups and all(g.verdict == "inconclusive" for g in both.groups)
    for g in both.groups:  # the difference of the arms' means at each checkpoint, by hand
        table = late[late.env == g.group].groupby("variant")["ret"].mean()
        assert f", at 2000: {table['iterative'] - table['direct']:.3g}" in g.by_step
        table = early[early.env == g.group].groupby("variant")["ret"].mean()
        assert f"a − b at step 1000: {table['iterative'] - table['direct']:.3g}" in g.by_step
    claims = tmp_path / "claims.yaml"
    spec = claim("greater").model_dump() | {"beta_dependent": True, "source": "We find it better."}
    untestable = [{"section": "§5", "sentence": "It scales linearly.", "reason": "no cost table"}]
    claims.write_text(yaml.safe_dump({"claims": [spec], "not_testable": untestable}))
    returns("iterative", n_seeds=3, gap=30.0, noise=60.0).to_csv(tmp_path / "runs.csv", index=False)
    md, _ = write_report(run_audit(claims, tmp_path), tmp_path, tmp_path / "out" / "audit.md",
                         claims_path=claims)
    text = md.read_text()
    assert "## What would decide the open claims" in text and "seeds per arm" in text
    assert text.count("Note on β-dependent claims") == 1 and "(β-dependent: see the note below)" in text
    assert "It scales linearly." in text and "no cost table" in text and "We find it better." in text


def test_verdicts_across_scales(tmp_path):
    """With summaries of several scales side by side, the report tabulates every claim's verdict at each."""
    claims = tmp_path / "claims.yaml"
    claims.write_text(yaml.safe_dump({"claims": [claim("greater").model_dump()]}))
    for scale, better in (("mini", "iterative"), ("paper", "direct")):
        scale_json(tmp_path / scale, {})
        returns(better).to_csv(tmp_path / scale / "runs.csv", index=False)
    results = run_audit(claims, tmp_path / "mini")
    md, _ = write_report(results, tmp_path / "mini", tmp_path / "audit.md", claims_path=claims)
    assert "Verdicts across scales" not in md.read_text()  # unless asked: one scale's tables alone
    md, _ = write_report(results, tmp_path / "mini", tmp_path / "audit.md", claims_path=claims,
                         across_scales=True)
    text = md.read_text()
    assert "## Verdicts across scales" in text and "| id | mini | paper |" in text
    assert "| c | supported | contradicted |" in text


def test_derivations_on_hand_made_curves():
    """J per iteration of two states: gain = J_last − J_0; decline = ΔJ_1 − ΔJ_K; beyond K = J_last − J_K;
    gap fraction = gap / |J(amortized)|."""
    rows = []
    for state, curve in ((0, [0.0, 2.0, 3.0, 3.5, 3.6]), (1, [1.0, 1.5, 1.6, 1.6, 1.7])):
        for i, j in enumerate(curve):
            rows.append({"env": "E", "variant": "iterative", "seed": 0, "step": 5, "state": state,
                         "iteration": i, "J": j, "dJ_step": j - curve[i - 1] if i else np.nan,
                         "n_iters_trained": 2})
    df = pd.DataFrame(rows)
    assert objective_gain(df).set_index("state")["gain"].to_dict() == pytest.approx({0: 3.6, 1: 0.7})
    assert step_decline(df).set_index("state")["decline"].to_dict() == pytest.approx({0: 1.0, 1: 0.4})
    assert beyond_k_gain(df).set_index("state")["beyond_k"].to_dict() == pytest.approx({0: 0.6, 1: 0.1})
    gaps = pd.DataFrame({"gap": [1.0, 0.5], "J_amortized": [-10.0, 5.0]})
    assert gap_fraction(gaps)["gap_fraction"].tolist() == pytest.approx([0.1, 0.1])


def _where_names(where: str | None) -> set[str]:
    """Column names a pandas `query` filter reads (its bare names; `in` lists are constants)."""
    return {n.id for n in ast.walk(ast.parse(where or "True", mode="eval")) if isinstance(n, ast.Name)}


def _schema(table: str) -> set[str]:
    """The columns a summary table has: diagnostics from their COLUMNS, the rest from the summary code."""
    import importlib

    from iapo.diagnostics import REGISTRY, table_names
    from iapo.run_record import RunRecord
    from iapo.summary import run_row

    for name in REGISTRY:
        if table in table_names(name):
            module = importlib.import_module(f"iapo.diagnostics.{name}")
            return set(module.COLUMNS["main" if table == name else table.removeprefix(f"{name}_")])
    if table == "runs":
        return set(run_row(RunRecord(env="", variant="", seed=0, scale="", steps=0)))
    committed = pd.read_csv(ROOT / "results/summary/mini" / f"{table}.csv", nrows=1).columns
    meta = set(RUN_META) if table in ("eval", "metrics") else set()  # joined from runs.csv by the audit
    return set(committed) | meta | ({"policy_kl"} if table == "metrics" else set())


def test_every_claim_is_evaluated_by_the_audit():
    """Every entry of the repository's claims.yaml gets a verdict from the audit, and every column it
    names (filter, value, arms, groups) exists in its table, or is made by its derivation."""
    claims = load_claims(ROOT / "claims.yaml")
    assert len(claims) >= 42 and len(load_untestable(ROOT / "claims.yaml")) >= 10
    results = run_audit(ROOT / "claims.yaml", ROOT / "results/summary/mini")
    assert [r.claim.id for r in results] == [c.id for c in claims]
    for r in results:
        assert r.verdict in ("supported", "contradicted", "inconclusive")
        assert "failed" not in r.reason and f"{r.claim.derive}: table lacks" not in r.reason, r.claim.id
    for c in claims:
        schema = _schema(c.table)
        t = c.test
        needed = _where_names(c.where) | set(t.by) | ({t.column} if t.column else set())
        needed |= set(t.pair_on or [])
        assert needed | ({"seed"} if c.derive else {c.value, "seed"}) <= schema | {"seed"}, c.id
        if c.derive:
            assert c.derive in DERIVATIONS, c.id
        assert c.source, f"{c.id}: every claim names the sentence it comes from"
        # a scope from the figure registry, or narrower: the environments the sentence names
        assert c.figure and c.scope and set(c.scope) <= set(FIGURE_ENVS[c.figure]), c.id


def test_scale_section_names_each_groups_own_seeds_and_steps(tmp_path):
    """A group with its own seeds and steps (mini's InvertedPendulum pair) says both, once."""
    from iapo.audit_report import _scale_note

    grid = [{"envs": ["InvertedPendulum-v2"], "variants": ["direct", "iterative"], "seeds": 8, "steps": 2000},
            {"envs": ["Hopper-v2"], "variants": ["direct"]},
            {"envs": ["InvertedPendulum-v2"], "variants": ["iterative_mb"], "steps": 1500}]
    write_scale_json(tmp_path, "mini", preset={"grid": grid, "seeds": 3, "steps": 3000})
    line = _scale_note(tmp_path).splitlines()[1]
    assert line.startswith("- **this scale**: 3 seeds, 3000 env steps")
    assert line.endswith("runs: InvertedPendulum-v2 × direct, iterative (8 seeds, 2000 steps); "
                         "Hopper-v2 × direct; InvertedPendulum-v2 × iterative_mb (1500 steps)")


# ---------------------------------------------------------------- scope, units, pairing, multiplicity


def test_an_out_of_scope_group_never_decides():
    """A planted contradiction outside the claim's scope is reported (scope "out") but leaves the verdict
    to the in-scope group; moved into the scope it contradicts the claim."""
    table = pd.concat([returns("iterative")[lambda d: d.env == "Hopper-v2"],
                       returns("direct", gap=3000.0)[lambda d: d.env == "HalfCheetah-v2"]])
    result = evaluate_claim(claim("greater", scope=["Hopper-v2"]), table)
    assert result.verdict == "supported"
    out = next(g for g in result.groups if g.group == "HalfCheetah-v2")
    assert not out.in_scope and "outside the claim's scope" in out.reason
    assert "outside the scope, reported only: HalfCheetah-v2" in result.reason
    assert evaluate_claim(claim("greater", scope=ENVS), table).verdict == "contradicted"
    nothing = evaluate_claim(claim("greater", scope=["Ant-v2"]), table)
    assert nothing.verdict == "inconclusive"
    assert "no run of this scale in the claim's scope (Ant-v2)" in nothing.reason


def paired_table(effect: float, n_seeds: int = 4, states: int = 5) -> pd.DataFrame:
    """Two arms measured on the same seeds and states; seed and state effects (spread 50) shared by
    both, own noise 1: only a paired analysis sees an effect of a few units."""
    rng = np.random.default_rng(9)
    rows = []
    for seed in range(n_seeds):
        for state in range(states):
            shared = 50.0 * rng.normal()
            for arm, shift in (("extra", effect), ("plain", 0.0)):
                rows.append({"env": "E", "seed": seed, "step": 10, "state": state, "estimate": arm,
                             "gap": shared + shift + rng.normal()})
    return pd.DataFrame(rows)


def test_paired_designs_are_matched_on_seed_and_state():
    spec = {"id": "p", "section": "A.3", "claim": "extra lowers the gap", "metric": "gap", "table": "t",
            "value": "gap", "scope": ["E"],
            "test": {"kind": "less", "column": "estimate", "a": "extra", "b": "plain", "units": "absolute"}}
    paired = Claim.model_validate(spec | {"test": spec["test"] | {"pair_on": ["step", "state"]}})
    unpaired = Claim.model_validate(spec)
    table = paired_table(effect=-3.0)
    assert evaluate_claim(paired, table).verdict == "supported"
    assert evaluate_claim(unpaired, table).verdict == "inconclusive"
    # the paired estimate is the mean over seeds of the per-seed mean difference, by hand
    by_hand = (table.pivot_table(index=["seed", "state"], columns="estimate", values="gap")
               .pipe(lambda w: (w["extra"] - w["plain"]).groupby(level="seed").mean().mean()))
    assert evaluate_claim(paired, table).groups[0].estimate == pytest.approx(by_hand)
    # rows without a partner are dropped, not compared with another state's
    lonely = table[~((table.estimate == "plain") & (table.state == 0))]
    assert evaluate_claim(paired, lonely).groups[0].n_seeds == "4 vs 4"
    with pytest.raises(AuditError, match="pair_on is for two-arm tests"):
        bad = tmp_claims_file(spec | {"test": {"kind": "positive", "pair_on": ["state"]}})
        load_claims(bad)


def tmp_claims_file(spec: dict) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": [spec]}))
    return path


def test_holm_across_groups_for_contradicted():
    """Ten environments each mildly against the claim (one-sided p between 0.025/10 and 0.025): each
    alone would contradict it, after Holm none does; one strongly against it contradicts it."""
    rows = []
    envs = [f"E{k}" for k in range(10)]
    for env in envs:
        for seed, x in enumerate((-1.0, 0.0, 1.0)):
            rows.append({"env": env, "variant": "iterative", "seed": seed, "ret": x - 4.0})
            rows.append({"env": env, "variant": "direct", "seed": seed, "ret": 0.0})
    table = pd.DataFrame(rows)
    result = evaluate_claim(claim("greater", scope=envs), table)
    ps = [g.p_contradiction for g in result.groups]
    assert all(0.025 / 10 < p < 0.025 for p in ps), ps
    assert result.verdict == "inconclusive" and all("not after Holm" in g.reason for g in result.groups)
    e0 = (table.env == "E0") & (table.variant == "iterative")
    strong = table.assign(ret=np.where(e0, table.ret * 0.01 - 20, table.ret))
    result = evaluate_claim(claim("greater", scope=envs), strong)
    assert result.verdict == "contradicted" and result.reason.startswith("contradicted for E0")


def test_a_difference_below_the_practical_threshold_is_negligible():
    """A tiny but clear difference: supported without a practical threshold, negligible (open) with one."""
    tiny = returns("iterative", gap=3.0, noise=0.5)
    assert evaluate_claim(claim("greater"), tiny).verdict == "supported"
    result = evaluate_claim(claim("greater", min_effect=0.1), tiny)  # 10% of |mean(direct)| ≈ 100
    assert result.verdict == "inconclusive" and "negligible" in result.reason
    assert all(g.power.too_small for g in result.groups)


def test_by_must_name_env_and_every_claim_needs_a_scope(tmp_path):
    spec = claim("greater").model_dump()
    with pytest.raises(AuditError, match="must name env"):
        load_claims(tmp_claims_file(spec | {"test": spec["test"] | {"by": ["variant"]}}))
    with pytest.raises(AuditError, match="needs a scope"):
        load_claims(tmp_claims_file(spec | {"scope": None}))
    with pytest.raises(AuditError, match="unknown figure"):
        load_claims(tmp_claims_file(spec | {"scope": None, "figure": "nope"}))
    from_figure = load_claims(tmp_claims_file(spec | {"scope": None, "figure": "performance_pendulums"}))
    assert from_figure[0].scope == ["InvertedPendulum-v2", "InvertedDoublePendulum-v2"]


def test_hardware_dependent_claims_wait_for_their_hardware():
    spec = claim("positive").model_dump() | {"hardware": "cuda", "test": {"kind": "positive"}}
    c = Claim.model_validate(spec)
    table = returns("iterative")
    on_cpu = evaluate_claim(c, table, ctx=Context(devices={e: {"cpu"} for e in ENVS}))
    assert on_cpu.verdict == "inconclusive"
    assert on_cpu.reason.startswith("not comparable on this hardware (cpu)")
    assert "measured HalfCheetah-v2: mean 1.14e+03 [" in on_cpu.reason  # the measured values still shown
    on_gpu = evaluate_claim(c, table, ctx=Context(devices={e: {"cuda:0"} for e in ENVS}))
    assert on_gpu.verdict == "supported"


def test_normalized_units_use_the_untrained_and_reference_returns():
    """Margin 0.1 on the normalized scale = 10% of (reference − untrained) per environment."""
    table = returns("direct", gap=50.0, noise=5.0)  # iterative 50 below direct
    ctx = Context(untrained={"Hopper-v2": 0.0, "HalfCheetah-v2": 0.0},
                  reference={"Hopper-v2": 1000.0, "HalfCheetah-v2": 100.0})
    result = evaluate_claim(claim("not_worse", units="normalized", margin=0.1), table, ctx=ctx)
    verdicts = {g.group: g.verdict for g in result.groups}
    assert verdicts == {"Hopper-v2": "supported", "HalfCheetah-v2": "contradicted"}  # margins 100 and 10
    assert {g.group: g.unit for g in result.groups} == {"Hopper-v2": 1000.0, "HalfCheetah-v2": 100.0}
    missing = evaluate_claim(claim("not_worse", units="normalized"), table, ctx=Context())
    assert all("no normalization" in g.reason for g in missing.groups)


def test_an_aggregate_claim_is_decided_on_the_mean_over_environments():
    """Per env the effect is too noisy to decide; the mean over both envs (normalized) decides it."""
    table = returns("iterative", n_seeds=4, gap=60.0, noise=40.0)
    ctx = Context(untrained={e: 0.0 for e in ENVS}, reference={e: 1000.0 for e in ENVS})
    result = evaluate_claim(claim("greater", units="normalized", aggregate=True), table, ctx=ctx)
    assert result.aggregate is not None and result.aggregate.group == "aggregate (HalfCheetah-v2, Hopper-v2)"
    per_env = [(g.estimate / g.unit) for g in result.groups]
    assert result.aggregate.estimate == pytest.approx(np.mean(per_env))
    assert result.verdict == result.aggregate.verdict


def test_evaluations_before_training_are_left_out(tmp_path):
    """Warm-up also cuts the evaluation and log tables, whose files call the env step `env_step`
    (`read_table` names it `step`)."""
    trained = returns("iterative").assign(env_step=2000)
    untrained = returns("direct", gap=5000).assign(env_step=0)
    pd.concat([trained, untrained]).to_csv(tmp_path / "eval.csv", index=False)
    table = read_table(tmp_path, "eval")
    assert evaluate_claim(claim("greater"), table).verdict == "contradicted"
    assert evaluate_claim(claim("greater"), table, warmup=1000).verdict == "supported"


def test_report_states_scope_unit_pairing_seeds_and_interval(tmp_path):
    claims = tmp_path / "claims.yaml"
    spec = claim("greater").model_dump() | {"scope": ["Hopper-v2"]}
    claims.write_text(yaml.safe_dump({"claims": [spec]}))
    returns("iterative").to_csv(tmp_path / "runs.csv", index=False)
    md, _ = write_report(run_audit(claims, tmp_path), tmp_path, tmp_path / "out" / "audit.md")
    text = md.read_text()
    assert "## How each claim is tested" in text
    assert "Unit of replication: the seed of one environment" in text
    assert ("| c | Hopper-v2 | Hopper-v2 | seed of one env | unpaired (independent runs) | 5 vs 5 | "
            "Welch t | greater (iterative vs direct) | any |") in text
    assert "Student t 95%" in text and "Chance verdicts" in text
    assert "| c | HalfCheetah-v2 | out |" in text


# ---------------------------------------------------------------- derivations


def test_final_return_is_the_mean_of_the_last_three_evaluations():
    rows = [{"env": "E", "variant": "v", "seed": 0, "step": step, "updates": 0, "episode": ep,
             "return": float(step + ep), "length": 1} for step in (0, 100, 200, 300, 400) for ep in (0, 1)]
    out = final_return(pd.DataFrame(rows))
    assert out["final_return"].tolist() == [pytest.approx((200 + 300 + 400) / 3 + 0.5)]


def test_overestimation_keeps_only_positive_mean_bias():
    df = pd.DataFrame({"env": "E", "variant": "v", "seed": 0, "step": [1, 1, 2, 2],
                       "bias": [-3.0, -1.0, 2.0, 4.0], "q_mc": [10.0, 10.0, -20.0, -20.0]})
    out = overestimation(df).set_index("step")
    assert out["overestimation"].to_dict() == {1: 0.0, 2: 3.0}
    assert out["q_mc_scale"].to_dict() == {1: 10.0, 2: 20.0}


def test_surface_derivations():
    base = {"env": "E", "variant": "v", "seed": 0, "step": 1, "state": 0}
    rows = [base | {"kind": "estimate", "J": -10.0}, base | {"kind": "optimum", "J": -9.0}]
    curves = ((0, [-12.0, -10.5, -9.5]), (1, [-11.0, -10.2, -10.1]))
    rows += [base | {"kind": "trajectory", "optimizer": "iterative", "run": r, "iteration": i, "J": j}
             for r, curve in curves for i, j in enumerate(curve)]
    df = pd.DataFrame(rows)
    with pytest.raises(NotDecidable, match="fresh noise"):
        surface_suboptimality(df)
    fresh = pd.concat([df, pd.DataFrame([base | {"kind": "estimate_fresh", "J": -10.2},
                                         base | {"kind": "optimum_fresh", "J": -9.7}])])
    assert surface_suboptimality(fresh)["suboptimality"].tolist() == [pytest.approx(0.5)]
    ends = trajectory_end(df).set_index("run")
    assert ends["trajectory_gain"].to_dict() == pytest.approx({0: 2.5, 1: 0.9})
    assert ends["end_vs_estimate"].to_dict() == pytest.approx({0: 0.5, 1: -0.1})
    assert ends["end_vs_estimate_fraction"].to_dict() == pytest.approx({0: 0.05, 1: -0.01})


def test_gap_negative_share():
    df = pd.DataFrame({"env": "E", "variant": "v", "seed": 0, "step": [1, 1, 1, 1, 2],
                       "gap": [-0.1, 0.2, -0.3, 0.0, 0.5]})
    assert gap_negative_share(df).set_index("step")["negative"].to_dict() == {1: 0.5, 2: 0.0}


def test_a_lower_bound_supports_but_never_contradicts():
    spec = claim("positive").model_dump() | {"test": {"kind": "positive", "support_only": True}}
    low = returns("iterative").assign(ret=lambda d: -d.ret)  # clearly negative
    result = evaluate_claim(Claim.model_validate(spec), low)
    assert result.verdict == "inconclusive" and all("lower bound" in g.reason for g in result.groups)
    assert all(g.power is None and g.power_note for g in result.groups)
    assert evaluate_claim(Claim.model_validate(spec), returns("iterative")).verdict == "supported"


def test_policy_change_above_its_noise_floor():
    from iapo.derivations import policy_change_above_floor

    df = pd.DataFrame({"kl": [0.5, 0.2], "kl_floor": [0.1, 0.2]})
    assert policy_change_above_floor(df)["kl_above_floor"].tolist() == pytest.approx([0.4, 0.0])
    with pytest.raises(NotDecidable, match="noise floor"):
        policy_change_above_floor(df.drop(columns="kl_floor"))
