"""Write requirements/lock.txt: every package of the environment at one exact version.

`make lock` runs this after `pip lock` has resolved the project's pins (pyproject.toml, with the
`dev` extra) against PyPI for this platform (Linux x86-64, CPython 3.11) into a PEP 751 file.
The lock keeps everything but the torch build: torch itself (its version is pinned in
pyproject.toml; `make setup TORCH=…` picks the CPU or a CUDA build of it from the matching index)
and the packages only a CUDA build pulls in (NVIDIA libraries, triton), whose versions that torch
build pins exactly. Usage: python requirements/make_lock.py PYLOCK_TOML > requirements/lock.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
from datetime import date

BUILD_SPECIFIC = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")
"""Chosen with the torch build at set-up time, not locked here."""


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_lines(pylock: dict) -> list[str]:
    """`name==version` of every locked package but the project and the torch build, sorted."""
    lines = []
    for package in pylock["packages"]:
        name = normalise(package["name"])
        if "version" not in package or BUILD_SPECIFIC.match(name):
            continue  # the project itself (a directory), or chosen with the torch build
        lines.append(f"{name}=={package['version']}")
    return sorted(lines)


def main(path: str) -> None:
    with open(path, "rb") as f:
        pylock = tomllib.load(f)
    print("# Every package of the iapo environment but the torch build, at one exact version.")
    print(f"# Resolved from PyPI for Linux x86-64, CPython 3.11 on {date.today()} by `make lock`")
    print("# (pip lock, then requirements/make_lock.py); installed by `make setup` and environment.yml.")
    print("# torch==2.13.0 comes from the index `make setup TORCH=…` chooses (README, set-up).")
    print("\n".join(lock_lines(pylock)))


if __name__ == "__main__":
    main(sys.argv[1])
