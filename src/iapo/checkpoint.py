"""Checkpoint files: atomic writes, a checksum that exposes truncation or corruption, safe loads."""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path
from typing import Any

import torch

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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC)
            f.write(payload)
            f.write(hashlib.sha256(payload).digest())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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
