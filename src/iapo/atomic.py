"""Files written whole or not at all: each is written to a temporary sibling and renamed over its
target only once complete, so a crash, a kill or an error never leaves a half-written file that
looks finished (a reader sees the old file or the new one)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: str | Path, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` for the block to write; renamed over `path` when the block
    ends normally, removed when it raises. Its name, `.NAME.PID.tmp`, is unique per process (two
    writers of one file never share it) and git-ignored; with `keep_suffix`, `.STEM.PID.tmp.SUFFIX`,
    for writers that choose the format by the extension (videos)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    tmp = path.with_name(f".{path.stem}.{pid}.tmp{path.suffix}" if keep_suffix else f".{path.name}.{pid}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    with replacing(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | Path, obj: object) -> Path:
    """`obj` as indented JSON (anything JSON cannot hold as its `str`)."""
    return write_text(path, json.dumps(obj, indent=2, default=str) + "\n")
