"""Tests for iapo.checkpoint: round trip, detection of damaged files, newest-valid fallback, atomicity."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from iapo import checkpoint
from iapo.checkpoint import CheckpointError, by_step, load, load_newest_valid, save


def sample_state(seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    return {
        "step": 100 + seed,
        "model": {"w": torch.randn(4, 3, generator=g), "b": torch.zeros(3, dtype=torch.float64)},
        "replay": {"obs": rng.normal(size=(5, 2)).astype(np.float32), "done": np.array([True, False])},
        "rng": rng.bit_generator.state,
        "rows": [{"env_step": 1, "ret": float("nan")}],
        "name": "HalfCheetah-v2",
    }


def assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    assert a["step"] == b["step"] and a["name"] == b["name"] and a["rng"] == b["rng"]
    for key in ("w", "b"):
        assert a["model"][key].dtype == b["model"][key].dtype
        assert torch.equal(a["model"][key], b["model"][key])
    for key in ("obs", "done"):
        assert a["replay"][key].dtype == b["replay"][key].dtype
        np.testing.assert_array_equal(a["replay"][key], b["replay"][key])
    assert np.isnan(b["rows"][0]["ret"]) and b["rows"][0]["env_step"] == 1


def test_round_trip(tmp_path: Path) -> None:
    state = sample_state()
    path = save(state, tmp_path / "deep" / "folder" / "step_100.pt")
    assert path == tmp_path / "deep" / "folder" / "step_100.pt"
    assert path.read_bytes().startswith(checkpoint.MAGIC)
    loaded = load(path)
    assert_same_state(state, loaded)
    assert loaded["model"]["w"].device.type == "cpu"


def test_round_trip_str_path(tmp_path: Path) -> None:
    state = sample_state(1)
    save(state, str(tmp_path / "x.pt"))
    assert_same_state(state, load(str(tmp_path / "x.pt")))


# ------------------------------------------------------------------ damaged files
def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def empty(path: Path) -> None:
    path.write_bytes(b"")


def text_file(path: Path) -> None:
    path.write_text("this is not a checkpoint\n" * 20)


def plain_torch_save(path: Path) -> None:
    torch.save(sample_state(), path)  # a real torch file, but not written by checkpoint.save


def only_magic(path: Path) -> None:
    path.write_bytes(checkpoint.MAGIC + b"\0" * 10)


@pytest.mark.parametrize("damage", [truncate, flip_middle_byte, empty, text_file, plain_torch_save,
                                    only_magic])
def test_damaged_file_raises_with_path(tmp_path: Path, damage: Any) -> None:
    path = save(sample_state(), tmp_path / "step_100.pt")
    damage(path)
    with pytest.raises(CheckpointError) as err:
        load(path)
    assert str(path) in str(err.value)


def test_missing_file_raises_with_path(tmp_path: Path) -> None:
    path = tmp_path / "step_1.pt"
    with pytest.raises(CheckpointError) as err:
        load(path)
    assert str(path) in str(err.value)


def test_valid_checksum_over_garbage_payload(tmp_path: Path) -> None:
    """A file whose checksum matches but whose payload torch cannot read is still a CheckpointError."""
    payload = b"not a pickle at all"
    path = tmp_path / "step_5.pt"
    path.write_bytes(checkpoint.MAGIC + payload + hashlib.sha256(payload).digest())
    with pytest.raises(CheckpointError, match=r"torch\.load failed") as err:
        load(path)
    assert str(path) in str(err.value)


# ------------------------------------------------------------------ by_step / newest valid
def test_by_step_orders_newest_first_and_ignores_other_files(tmp_path: Path) -> None:
    for step in (5, 100, 20, 1000):
        save({"step": step}, tmp_path / f"step_{step}.pt")
    for name in ("notes.txt", "step_7.pt.tmp", ".step_9.pt.123.tmp", "step_x.pt", "step_.pt",
                 "step_300.pth", "last.pt"):
        (tmp_path / name).write_text("x")
    assert by_step(tmp_path) == [(s, tmp_path / f"step_{s}.pt") for s in (1000, 100, 20, 5)]


def test_by_step_missing_or_empty_folder(tmp_path: Path) -> None:
    assert by_step(tmp_path / "absent") == []
    assert by_step(tmp_path) == []


def test_by_step_requires_whole_name(tmp_path: Path) -> None:
    save({"step": 100}, tmp_path / "step_100.pt")
    save({"step": 500}, tmp_path / "backup_step_500.pt")
    assert by_step(tmp_path) == [(100, tmp_path / "step_100.pt")]


def test_load_newest_valid_skips_corrupt_and_warns(tmp_path: Path) -> None:
    save(sample_state(0), tmp_path / "step_100.pt")
    save(sample_state(1), tmp_path / "step_200.pt")
    truncate(tmp_path / "step_200.pt")
    warnings: list[str] = []
    found = load_newest_valid(tmp_path, warn=warnings.append)
    assert found is not None
    step, state = found
    assert step == 100
    assert_same_state(sample_state(0), state)
    assert len(warnings) == 1
    assert "step_200.pt" in warnings[0]


def test_load_newest_valid_prefers_newest_and_stays_quiet(tmp_path: Path) -> None:
    for step in (100, 200, 300):
        save({"step": step}, tmp_path / f"step_{step}.pt")
    warnings: list[str] = []
    found = load_newest_valid(tmp_path, warn=warnings.append)
    assert found == (300, {"step": 300})
    assert warnings == []


def test_load_newest_valid_none_when_nothing_usable(tmp_path: Path) -> None:
    warnings: list[str] = []
    assert load_newest_valid(tmp_path / "absent", warn=warnings.append) is None
    assert load_newest_valid(tmp_path, warn=warnings.append) is None
    assert warnings == []
    for step in (1, 2):
        (tmp_path / f"step_{step}.pt").write_bytes(b"")
    assert load_newest_valid(tmp_path, warn=warnings.append) is None
    assert len(warnings) == 2
    assert "step_2.pt" in warnings[0] and "step_1.pt" in warnings[1]


# ------------------------------------------------------------------ atomic writes
def test_save_leaves_no_temp_files(tmp_path: Path) -> None:
    for i in range(3):
        save(sample_state(i), tmp_path / "step_10.pt")  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_10.pt"]
    assert_same_state(sample_state(2), load(tmp_path / "step_10.pt"))


def test_crash_during_replace_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save(sample_state(0), tmp_path / "step_10.pt")
    before = path.read_bytes()
    calls: list[tuple[str, str]] = []

    def crash(src: str | os.PathLike, dst: str | os.PathLike) -> None:
        calls.append((str(src), str(dst)))
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save(sample_state(1), path)
    monkeypatch.undo()

    # the write went to a temporary file in the same folder, then was to be renamed over `path`
    assert len(calls) == 1
    src, dst = map(Path, calls[0])
    assert dst == path and src.parent == path.parent and src != path
    assert path.read_bytes() == before
    assert_same_state(sample_state(0), load(path))
    # whatever the crash left behind is not mistaken for a checkpoint
    assert by_step(tmp_path) == [(10, path)]
    assert load_newest_valid(tmp_path, warn=pytest.fail) is not None
