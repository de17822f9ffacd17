"""Tests of the update/act micro-benchmark: result shape, timings, JSON output and table."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

from iapo.bench import ARCHS, OPS, VARIANTS, format_table, run_bench

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
OP_KEYS = {"op", "variant", "q_arch", "ms", "ms_min", "ms_max", "flops", "floor_ms"}
COMBOS = set(itertools.product(OPS, VARIANTS, ARCHS))


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    threads_before = torch.get_num_threads()
    result = run_bench(PARAMS, json_path=path, threads=1, quick=True)
    assert torch.get_num_threads() == threads_before  # the thread count is restored
    return result, path


def test_ops_cover_every_combination_with_exact_keys(bench: tuple[dict, Path]) -> None:
    result, _ = bench
    assert set(result) == {"machine", "ops"}
    ops = result["ops"]
    assert len(ops) == 8
    assert {(r["op"], r["variant"], r["q_arch"]) for r in ops} == COMBOS
    for r in ops:
        assert set(r) == OP_KEYS
        assert r["flops"] is None and r["floor_ms"] is None


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
    assert {tuple(row[:3]) for row in rows if len(row) == 6 and row[0] in OPS} == COMBOS
    last = table.splitlines()[-1]
    assert "threads=1" in last and torch.__version__ in last


def test_table_formats_given_numbers() -> None:
    result = {
        "machine": {"processor": "cpu-x", "threads": 4, "torch_version": "9.9"},
        "ops": [{"op": "act", "variant": "direct", "q_arch": "B", "ms": 1.5, "ms_min": 1.25,
                 "ms_max": 2.0, "flops": None, "floor_ms": None}],
    }
    lines = format_table(result).splitlines()
    assert lines[2].split() == ["act", "direct", "B", "1.500", "1.250", "2.000"]
    assert lines[-1] == "machine: processor=cpu-x, threads=4, torch=9.9"
    assert len({len(line) for line in lines[:3]}) == 1  # columns are aligned


@pytest.mark.parametrize("kwargs", [{"repeats": 0}, {"warmup": -1}, {"threads": 0}])
def test_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="repeats"):
        run_bench(PARAMS, **kwargs)
