"""Files written whole or not at all (`iapo.atomic`)."""

from __future__ import annotations

from pathlib import Path

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
