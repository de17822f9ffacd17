"""The audit engine: verdicts follow the data, flip when the data say the opposite, and say why."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml

from iapo.audit import AuditError, Claim, evaluate_claim, load_claims, run_audit, write_report


def returns(better: str, n_seeds: int = 5, gap: float = 300.0, noise: float = 30.0) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for env in ("Hopper-v2", "HalfCheetah-v2"):
        for variant in ("direct", "iterative"):
            base = 1000.0 + (gap if variant == better else 0.0)
            rows += [{"env": env, "variant": variant, "seed": s, "ret": base + rng.normal(0, noise)}
                     for s in range(n_seeds)]
    return pd.DataFrame(rows)


def claim(kind: str, **test) -> Claim:
    return Claim.model_validate({
        "id": "c", "section": "§4.2.2", "claim": "iterative beats direct", "metric": "final return",
        "table": "runs", "value": "ret",
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
    (summary / "scale.json").write_text('{"scale": "mini", "preset": {"initial_random_steps": 1000}}')
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
    df = pd.DataFrame({"seed": range(6), "dJ": [0.5, 0.6, 0.4, 0.55, 0.5, 0.45]})
    base = {"id": "p", "section": "B.3", "claim": "ΔJ > 0", "metric": "ΔJ", "table": "t", "value": "dJ"}
    positive = Claim.model_validate(base | {"test": {"kind": "positive"}})
    assert evaluate_claim(positive, df).verdict == "supported"
    assert evaluate_claim(positive, df.assign(dJ=-df.dJ)).verdict == "contradicted"
    within = Claim.model_validate(base | {"test": {"kind": "within", "low": 0.3, "high": 0.7}})
    assert evaluate_claim(within, df).verdict == "supported"
    assert evaluate_claim(within, df.assign(dJ=df.dJ + 2)).verdict == "contradicted"


def test_missing_table_or_column_is_inconclusive(tmp_path):
    claims = tmp_path / "claims.yaml"
    claims.write_text(yaml.safe_dump({"claims": [claim("greater").model_dump()]}))
    (tmp_path / "summary").mkdir()
    [result] = run_audit(claims, tmp_path / "summary")
    assert result.verdict == "inconclusive" and "not produced" in result.reason
    returns("iterative").drop(columns="ret").to_csv(tmp_path / "summary" / "runs.csv", index=False)
    [result] = run_audit(claims, tmp_path / "summary")
    assert "lacks columns" in result.reason


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
    assert "<table" in page.read_text()


def test_bad_claims_file(tmp_path):
    bad = tmp_path / "claims.yaml"
    spec = claim("greater").model_dump() | {"test": {"kind": "greater"}}
    bad.write_text(yaml.safe_dump({"claims": [spec]}))
    with pytest.raises(AuditError, match="needs column, a and b"):
        load_claims(bad)
