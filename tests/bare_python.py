"""A Python with torch and numpy and nothing else of the project's: what a bare GPU machine has.

Made from this test environment's base interpreter (a venv with its own pip) whose site-packages
links the distributions of torch, numpy and torch's own requirements from this environment, so
nothing is downloaded. tools/gpu-check-bare is rehearsed with it (tests/test_gpu_check.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import Distribution, PackageNotFoundError, distribution
from pathlib import Path

BROUGHT = ("torch", "numpy")
"""What the bare machine's Python brings (with torch's own requirements)."""


def closure(names: tuple[str, ...]) -> dict[str, Distribution]:
    """The distributions `names` need to run, requirements of requirements included (no extras)."""
    found: dict[str, Distribution] = {}
    todo = list(names)
    while todo:
        name = re.split(r"[\s<>=!~;\[(]", todo.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if name in found:
            continue
        try:
            found[name] = dist = distribution(name)
        except PackageNotFoundError:
            continue  # an optional platform-specific requirement this environment lacks
        todo += [r for r in dist.requires or [] if "extra ==" not in r and "sys_platform" not in r
                 and "platform_system" not in r]
    return found


def make_bare_python(folder: Path) -> Path:
    """A venv at `folder` whose site-packages holds only links to `closure(BROUGHT)`; its python."""
    subprocess.run([sys._base_executable, "-m", "venv", str(folder)], check=True)  # pip from ensurepip
    site = Path(subprocess.run([str(folder / "bin" / "python"), "-c", "import sysconfig; "
                               "print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    for dist in closure(BROUGHT).values():
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            source = Path(dist.locate_file(top))
            if source.exists() and not (site / top).exists() and top != "__pycache__":
                (site / top).symlink_to(source)
    return folder / "bin" / "python"
