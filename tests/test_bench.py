"""Tests of the benchmark: result shape, FLOP counts and floors, timings, JSON output and table."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

from iapo.config import resolve
from iapo.tools.bench import OPS, PATHS, VARIANTS, format_table, run_bench
from iapo.tools.flops import Gemm, floor_ms, op_gemms, q_value, total_flops

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
OP_KEYS = {"op", "variant", "q_arch", "ms", "ms_min", "ms_max", "flops", "floor_ms",
           "path", "efficiency", "floor_ms_min", "efficiency_min", "cpu_ms", "floor_cpu_ms",
           "efficiency_cpu"}
ARCHS = ("A",)  # the test runs architecture A only (B's reference update takes seconds)
COMBOS = set(itertools.product(OPS, VARIANTS, ARCHS, PATHS))


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    threads_before = torch.get_num_threads()
    # two timed rounds, no warm-up: the shapes and relations checked here, not the numbers
    shown: list[dict] = []
    result = run_bench(PARAMS, json_path=path, threads=1, repeats=2, warmup=0, archs=ARCHS, reference=True,
                       progress=shown.append)
    assert torch.get_num_threads() == threads_before  # the thread count is restored
    assert sorted(map(str, shown)) == sorted(map(str, result["ops"]))  # every row shown as it ended
    return result, path


def test_ops_cover_every_combination_with_exact_keys(bench: tuple[dict, Path]) -> None:
    result, _ = bench
    assert set(result) == {"machine", "ops"}
    ops = result["ops"]
    assert len(ops) == len(COMBOS)
    assert {(r["op"], r["variant"], r["q_arch"], r["path"]) for r in ops} == COMBOS
    for r in ops:
        assert set(r) == OP_KEYS
        assert r["flops"] > 0 and r["floor_ms"] > 0
        assert r["efficiency"] == pytest.approx(r["floor_ms"] / r["ms"])
        assert r["efficiency_min"] == pytest.approx(r["floor_ms_min"] / r["ms_min"])
        assert r["floor_ms_min"] <= r["floor_ms"]
        assert 0 < r["cpu_ms"] <= 1.5 * r["ms_max"]
        assert r["efficiency_cpu"] == pytest.approx(r["floor_cpu_ms"] / r["cpu_ms"])


def test_timings_are_positive_and_ordered(bench: tuple[dict, Path]) -> None:
    for r in bench[0]["ops"]:
        assert r["ms"] > 0
        assert r["ms_min"] <= r["ms"] <= r["ms_max"]


def test_machine_records_torch_and_threads(bench: tuple[dict, Path]) -> None:
    m = bench[0]["machine"]
    assert m["torch_version"] == torch.__version__
    assert m["threads"] == 1 and m["torch_threads"] == 1
    assert {"host", "platform", "python", "processor"} <= set(m)


def test_json_file_matches_result(bench: tuple[dict, Path]) -> None:
    result, path = bench
    assert json.loads(path.read_text()) == result


def test_table_lists_every_combination(bench: tuple[dict, Path]) -> None:
    table = format_table(bench[0])
    rows = [line.split() for line in table.splitlines()]
    listed = {(row[0], row[1], row[2], row[3]) for row in rows if len(row) == 13 and row[0] in OPS}
    assert listed == COMBOS
    last = table.splitlines()[-1]
    assert "threads=1" in last and torch.__version__ in last


def test_table_formats_given_numbers() -> None:
    result = {
        "machine": {"processor": "cpu-x", "threads": 4, "torch_version": "9.9"},
        "ops": [{"op": "act", "variant": "direct", "q_arch": "B", "path": "fast",
                 "ms": 1.5, "ms_min": 1.25, "ms_max": 2.0, "flops": 3e9, "floor_ms": 0.75,
                 "efficiency": 0.5, "floor_ms_min": 0.5, "efficiency_min": 0.4, "cpu_ms": 1.4,
                 "floor_cpu_ms": 0.7, "efficiency_cpu": 0.5}],
    }
    lines = format_table(result).splitlines()
    assert lines[2].split() == ["act", "direct", "B", "fast", "1.500", "1.250", "2.000", "1.400",
                                "3.000", "0.750", "50%", "40%", "50%"]
    assert lines[-1] == "machine: processor=cpu-x, threads=4, torch=9.9"
    assert len({len(line) for line in lines[:3]}) == 1  # columns are aligned


@pytest.mark.parametrize("kwargs", [{"repeats": 0}, {"warmup": -1}, {"threads": 0}])
def test_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="repeats"):
        run_bench(PARAMS, **kwargs)


# ------------------------------------------------------------------ FLOP counts (iapo.tools.flops)
def test_gemm_flops_and_q_products_hand_counted(params) -> None:
    assert Gemm(3, 4, 5, count=2).flops == 2 * 3 * 4 * 5 * 2
    arch = params.q_architectures["A"]
    # Q̂ alone: (23→256, 256→256, 256→1) × 2 members, 10 rows
    fwd = q_value(arch, 10, 17, 6, action_grad=False)
    assert total_flops(fwd) == 2 * 10 * (23 * 256 + 256 * 256 + 256) * 2
    # with ∇_a Q̂: input gradients of every layer, the first only for the 6 action columns
    both = q_value(arch, 10, 17, 6, action_grad=True)
    assert total_flops(both) - total_flops(fwd) == 2 * 10 * (256 + 256 * 256 + 256 * 6) * 2


def test_iterative_policy_update_matches_a_hand_count(make_cfg) -> None:
    """A count by hand: ~9.1 GFLOP for the optimizer update (K=5, N=10, B=256), 88 % in the 256×256
    Q layers."""
    cfg = make_cfg(variant="iterative")
    gemms = op_gemms("policy_update", cfg, 17, 6)
    total = total_flops(gemms)
    q_hidden = sum(g.flops for g in gemms if (g.k, g.n) == (256, 256) and g.m == 2560)
    assert total == pytest.approx(9.1e9, rel=0.02)
    assert q_hidden / total == pytest.approx(0.88, abs=0.01)
    # the whole update adds the Bellman target's K acting iterations and the critic step
    assert total_flops(op_gemms("update", cfg, 17, 6)) > 1.8 * total


def test_floor_is_a_positive_time(params) -> None:
    cfg = resolve(params, "HalfCheetah-v2", "iterative", 0, "smoke")
    assert floor_ms(op_gemms("act", cfg, 17, 6), repeats=2, warmup=1) > 0


def test_loop_overhead_accounts_for_every_step(tmp_path) -> None:
    from iapo.tools.bench import loop_overhead
    from tests.conftest import small_params

    params = small_params(tmp_path, steps=220, initial_random_steps=150, eval_every=220, eval_episodes=1,
                          checkpoint_steps=[220], resume_every=220)
    r = loop_overhead(params, env="InvertedPendulum-v2", variant="direct", repeats=3, out=tmp_path)
    assert r["steps"] == 220 and r["updates"] == 71 and r["eval_steps"] > 0
    spent = r["spent_s"]
    assert spent["update_n"] == 71 and spent["act_n"] == 220 - 150 + r["eval_steps"]
    assert spent["env_step_n"] == 220
    assert 0 < r["in_parts_s"] < r["wall_s"]
    assert r["overhead"] == pytest.approx(r["wall_s"] / r["in_parts_s"] - 1)
    assert set(r["unit_s"]) == {"update", "act", "act_deterministic", "env_step"}
    from iapo.tools.bench import format_loop

    table = format_loop([r])
    assert "InvertedPendulum-v2" in table and f"{r['steps_per_s']:.1f}" in table
    assert f"{r['overhead']:+.1%}" in table


def test_bench_loop_refuses_a_malformed_pair(capsys) -> None:
    from iapo.cli import main

    assert main(["bench", "--loop", "Hopper-v2", "--quick"]) == 2
    assert "expected ENV:VARIANT" in capsys.readouterr().err


def test_act_floor_has_the_products_of_one_state(make_cfg) -> None:
    """Acting (batch 1): K = 5 evaluations of ∇ₐQ̂ on N = 10 sample rows (both members; no Q̂ at λ_K)
    and K policy steps on one row, no weight gradients."""
    cfg = make_cfg(variant="iterative")
    gemms = op_gemms("act", cfg, 17, 6)
    assert {g.layout for g in gemms} == {"nt", "nn"}
    assert {g.m for g in gemms} == {10, 1}
    q = 2 * 10 * (23 * 256 + 256 * 256 + 256 + 256 * 6 + 256 * 256 + 256) * 2
    policy = 2 * 1 * (41 * 256 + 256 * 256 + 256 * 24)
    assert total_flops(gemms) == 5 * (q + policy)
    assert sum(g.count for g in gemms) == 5 * (2 * 6 + 3)  # 75 products


def test_warm_timing_reports_the_calls_after_the_first() -> None:
    from iapo.tools.bench import WARM_CALLS, _SelfTimed, _time_interleaved, _warm

    calls = []
    timed = _warm(lambda: calls.append(1))
    out = timed()
    assert isinstance(out, _SelfTimed) and len(calls) == 1 + WARM_CALLS and out.ms >= 0
    cpu: dict = {}
    times = _time_interleaved({("x",): lambda: _SelfTimed(1.5, 1.25)}, repeats=2, warmup=0, cpu=cpu)
    assert times == {("x",): [1.5, 1.5]} and cpu == {("x",): [1.25, 1.25]}


def test_fast_rows_only_unless_the_reference_is_asked(tmp_path) -> None:
    """The default times the fast path alone (what training runs); an interrupted run keeps in its
    JSON the agents it finished."""
    path = tmp_path / "bench.json"
    result = run_bench(PARAMS, json_path=path, repeats=1, warmup=0, variants=("direct",), archs=ARCHS)
    assert {r["path"] for r in result["ops"]} == {"fast"} and len(result["ops"]) == len(OPS)
    assert json.loads(path.read_text()) == result
