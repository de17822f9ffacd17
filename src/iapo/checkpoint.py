"""Checkpoint files: atomic writes, a checksum that exposes truncation or corruption, safe loads."""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path
from typing import Any

import torch

from iapo import atomic
from iapo.errors import CheckpointError

MAGIC = b"IAPOCKPT1\n"
DIGEST_BYTES = 32


def save(obj: Any, path: str | Path) -> Path:
    """Write `obj` to `path` atomically: temp file in the same folder, fsync, rename.

    Layout: MAGIC | torch.save payload | sha256(payload). A reader can tell a complete file from
    a truncated or altered one; a crash mid-write leaves only a `.tmp` file, never a bad `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getbuffer()
    with atomic.replacing(path) as tmp, open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(payload)
        f.write(hashlib.sha256(payload).digest())
        f.flush()
        os.fsync(f.fileno())
    return path


def load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Read a checkpoint written by `save`, verifying its checksum; raise `CheckpointError` if bad."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read checkpoint ({err})") from err
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + DIGEST_BYTES:
        raise CheckpointError(f"{path}: not an iapo checkpoint or truncated ({len(data)} bytes)")
    payload, digest = data[len(MAGIC):-DIGEST_BYTES], data[-DIGEST_BYTES:]
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"{path}: checksum mismatch: the file is truncated or corrupt")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=False)
    except Exception as err:  # a valid checksum over an unreadable payload: report, never guess
        raise CheckpointError(f"{path}: checksum ok but torch.load failed ({err})") from err


STEP_FILE = re.compile(r"step_(\d+)\.pt")
STEP_NAME = re.compile(r"(?:step_)?(\d+)(?:\.pt)?")
"""How a user names a snapshot of a run: step_N, step_N.pt or N."""


def by_step(folder: str | Path) -> list[tuple[int, Path]]:
    """`step_<N>.pt` files in `folder`, newest (largest N) first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir()
             if (m := STEP_FILE.fullmatch(p.name)) and p.is_file()]
    return sorted(found, reverse=True)


def load_newest_valid(
    folder: str | Path, map_location: str | torch.device = "cpu", warn=print
) -> tuple[int, Any] | None:
    """Load the newest valid `step_<N>.pt` in `folder`; report and skip bad ones; None if none."""
    for step, path in by_step(folder):
        try:
            return step, load(path, map_location)
        except CheckpointError as err:
            warn(f"warning: skipping checkpoint: {err}; trying the previous one")
    return None


def find_snapshot(path: str | Path, name: str | None = None) -> Path:
    """The agent snapshot a user names (written by `iapo train`): `path` is a run folder, whose
    `checkpoints/step_N.pt` named `name` (step_N, step_N.pt or N; default: the newest) is meant, or a
    snapshot file itself. A `CheckpointError` names what is missing and what to pass instead."""
    path = Path(path)
    if path.is_file():
        if name is not None:
            raise CheckpointError(f"{path} is a checkpoint file; name a checkpoint ({name!r}) only "
                                  "together with a run folder, or pass the file of that checkpoint")
        return path
    if not path.is_dir():
        raise CheckpointError(
            f"{path}: no such run folder or checkpoint file. Pass a run folder written by `iapo train` "
            "(by default results/runs/<scale>/<env>/<variant>/seed<k>) or one of its "
            "checkpoints/step_N.pt files.")
    folder = path / "checkpoints"
    found = by_step(folder)
    if not found:
        raise CheckpointError(
            f"{path}: no agent snapshots ({folder}/step_N.pt). Is it a run folder written by "
            "`iapo train`? A run writes its first snapshot at the first of its scale's "
            "checkpoint_steps (its resume/ states are not snapshots); wait for it or pass another run.")
    if name is None:
        return found[0][1]
    match = STEP_NAME.fullmatch(name.strip())
    wanted = int(match.group(1)) if match else None
    chosen = [p for step, p in found if step == wanted]
    if not chosen:
        available = ", ".join(f"step_{step}" for step, _ in sorted(found))
        raise CheckpointError(
            f"checkpoint {name!r}: {folder} has no such snapshot; available: {available} "
            "(give one as step_N, step_N.pt or N, or leave it out for the newest).")
    return chosen[0]


def read_snapshot(path: str | Path, name: str | None = None) -> tuple[Path, dict]:
    """`find_snapshot`, then its contents, verified (`load`, onto the CPU): the snapshot's file and
    dict. A damaged file is a `CheckpointError` that names the run's other snapshots."""
    file = find_snapshot(path, name)
    try:
        return file, load(file, "cpu")
    except CheckpointError as err:
        others = [f"step_{step}" for step, p in sorted(by_step(file.parent)) if p != file]
        fix = (f"choose another of the run's checkpoints ({', '.join(others)})" if others
               else "fetch the run again or retrain it")
        raise CheckpointError(f"{err}; {fix}") from err
