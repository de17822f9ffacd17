"""Files written whole or not at all: each is written to a temporary sibling and renamed over its
target only once complete, so a crash, a kill or an error never leaves a half-written file that
looks finished (a reader sees the old file or the new one)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import numbers
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


def write_rows(path: str | Path, rows: list[dict]) -> Path:
    """`rows` as CSV, written as pandas' `DataFrame(rows).to_csv(index=False)` writes them, byte for
    byte, without pandas (training imports no table library): columns in the order their names first
    appear, a missing value empty, a column of integers as integers, any other column of numbers as
    floats (Python's shortest round-trip form; NaN empty), and text as it is."""
    columns = list(dict.fromkeys(name for row in rows for name in row))
    cells = {name: _column([row.get(name) for row in rows], name) for name in columns}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(zip(*(cells[name] for name in columns), strict=True))
    return write_text(path, buffer.getvalue() if columns else "\n")


def _column(values: list, name: str) -> list[str]:
    """One column's cells, typed as pandas types a column of these values."""
    present = [v for v in values if v is not None]
    for v in present:
        if not isinstance(v, (str, bool, numbers.Integral, float)):
            raise TypeError(f"write_rows: column {name!r} holds a {type(v).__name__} ({v!r}); "
                            "only int, float, bool and str are written")
    if not present or any(isinstance(v, str) for v in present):
        return ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]
    if present and len(present) == len(values) and all(isinstance(v, bool) for v in present):
        return [str(v) for v in values]
    if present and len(present) == len(values) and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in present):
        return [str(int(v)) for v in values]
    return ["" if v is None or math.isnan(float(v)) else repr(float(v)) for v in values]
