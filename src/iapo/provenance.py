"""Where a result came from: code version, package versions, machine."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import socket
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

PACKAGES = ("iapo", "torch", "gymnasium", "mujoco", "numpy", "pandas", "pydantic")
LOCK = Path(__file__).resolve().parents[2] / "requirements" / "lock.txt"
"""The environment's lock file, in the repository this package is installed from (editable)."""


def git_commit() -> str:
    """HEAD of the repository holding this package, with '+dirty' if it has local changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def installed_version(name: str) -> str:
    """The version Python imports: the first distribution of that name on sys.path (copies vendored
    inside other packages, e.g. setuptools/_vendor, come later)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def lock_state(lock: Path = LOCK) -> dict:
    """The lock file's sha256 and whether the running environment is that lock (the packages whose
    installed version differs from it, at most 10, named)."""
    if not lock.is_file():
        return {"sha256": None, "matches": None}
    text = lock.read_text()
    pinned = dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$", text, re.M))
    installed = {name: installed_version(name) for name in pinned}
    differ = {name: found for name, found in installed.items() if found != pinned[name]}
    return {"sha256": hashlib.sha256(text.encode()).hexdigest(), "matches": not differ,
            **({"differs": dict(sorted(differ.items())[:10])} if differ else {})}


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux; platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    return {
        "host": socket.gethostname(), "platform": platform.platform(),
        "python": platform.python_version(), "processor": cpu_model(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
    }


def provenance(device: torch.device | str) -> dict:
    return {"git_commit": git_commit(), "versions": package_versions(), "lock": lock_state(),
            "machine": machine(), "device": str(device)}
