"""Files written whole or not at all (`iapo.atomic`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from iapo import atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "table.csv"
    atomic.write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic.replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.csv"]


def test_a_finished_write_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    atomic.write_json(target, {"a": 1, "path": tmp_path})
    assert target.read_text() == f'{{\n  "a": 1,\n  "path": "{tmp_path}"\n}}\n'
    assert atomic.write_bytes(target, b"\x00\x01") == target and target.read_bytes() == b"\x00\x01"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def random_rows(rng: np.random.Generator, n: int) -> list[dict]:
    """Rows like training's logs: integer counters, float metrics (NaN, tiny, huge, -0.0, inf among
    them), a column that appears only later, a float column whose first values are whole numbers."""
    specials = [math.nan, 1e-5, 1e16, -0.0, math.inf, 1 / 3, 0.1, 123456789.0, 2.0]
    rows = []
    for i in range(n):
        row = {"env_step": int(rng.integers(0, 10**7)), "updates": np.int64(i),
               "train_return": float(rng.choice(specials)) if rng.random() < 0.5 else float(rng.normal()),
               "whole": float(i) if i < n // 2 else float(rng.normal())}
        if i >= n // 3:
            row["late"] = np.float64(rng.choice(specials) if rng.random() < 0.3 else rng.lognormal(0, 20))
        if i % 2:
            row["sometimes_int"] = i
        rows.append(row)
    return rows


@pytest.mark.parametrize("seed", range(5))
def test_rows_are_written_byte_for_byte_as_pandas_writes_them(tmp_path: Path, seed: int) -> None:
    import pandas as pd

    rows = random_rows(np.random.default_rng(seed), 30)
    path = atomic.write_rows(tmp_path / "rows.csv", rows)
    expected = pd.DataFrame(rows).to_csv(index=False)
    assert path.read_text() == expected
    for few in ([], rows[:1], [{"episode": 0, "return": 1.5, "length": 7, "done": True}]):
        written = atomic.write_rows(tmp_path / "few.csv", few).read_text()
        assert written == pd.DataFrame(few).to_csv(index=False)


def test_rows_of_an_unsupported_type_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="column 'x' holds a float32"):
        atomic.write_rows(tmp_path / "rows.csv", [{"x": np.float32(0.5)}])
