"""Packaging: pyproject.toml pins the direct dependencies exactly, requirements/lock.txt the whole environment
at their resolution, and `make setup` and environment.yml install that lock."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
ENVIRONMENT = ROOT / "environment.yml"

# name, optional extras, operator, version; anything after (markers, comments) is ignored
REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<op>[=<>!~]=?=?)?\s*(?P<version>[^\s;#,]*)"
)


def normalise(name: str) -> str:
    """PEP 503-ish: lowercase, `_` and `.` become `-`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(requirement: str) -> tuple[str, str, str]:
    """`Name[extra] == 1.2  # comment` -> ("name", "==", "1.2")."""
    match = REQUIREMENT.match(requirement.split("#", 1)[0])
    assert match, f"cannot parse requirement {requirement!r}"
    return normalise(match["name"]), match["op"] or "", match["version"]


def pins(requirements: list[str], where: str) -> dict[str, str]:
    """name -> exact version; fails on unpinned or duplicated requirements."""
    found: dict[str, str] = {}
    for requirement in requirements:
        name, op, version = parse(requirement)
        assert op == "==" and version, f"{where}: {requirement!r} is not pinned with =="
        assert name not in found, f"{where}: {name} is listed twice"
        found[name] = version
    return found


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text())


@pytest.fixture(scope="module")
def environment() -> dict:
    assert ENVIRONMENT.is_file(), "environment.yml is missing from the repository root"
    return yaml.safe_load(ENVIRONMENT.read_text())


def pyproject_pins(pyproject: dict) -> dict[str, str]:
    project = pyproject["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return pins(requirements, "pyproject.toml")


def environment_pip_list(environment: dict) -> list[str]:
    pip_sections = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one `pip:` list"
    return [str(item) for item in pip_sections[0]]


def test_parse_normalises_names_extras_and_comments() -> None:
    assert parse("Snakemake_Executor.Plugin-slurm == 2.8.0  # why") == (
        "snakemake-executor-plugin-slurm", "==", "2.8.0")
    assert parse("gymnasium[mujoco]==1.4.0") == ("gymnasium", "==", "1.4.0")
    assert parse("numpy>=2") == ("numpy", ">=", "2")
    assert parse("numpy") == ("numpy", "", "")


def test_pins_rejects_loose_and_duplicate_requirements() -> None:
    with pytest.raises(AssertionError, match="not pinned"):
        pins(["numpy>=2.0"], "x")
    with pytest.raises(AssertionError, match="not pinned"):
        pins(["numpy"], "x")
    with pytest.raises(AssertionError, match="twice"):
        pins(["PyYAML==6.0.3", "pyyaml==6.0.3"], "x")


def test_every_pyproject_dependency_is_pinned_exactly(pyproject: dict) -> None:
    found = pyproject_pins(pyproject)
    assert "pytest" in found and "ruff" in found, "the dev extra must pin pytest and ruff"
    assert len(found) >= 10


LOCK = ROOT / "requirements" / "lock.txt"


@pytest.fixture(scope="module")
def lock() -> dict[str, str]:
    lines = [line for line in LOCK.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return pins(lines, "requirements/lock.txt")


def make_variable(name: str) -> str:
    match = re.search(rf"^{name}\s*[:?]?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert match, f"Makefile has no {name}"
    return match[1]


def test_lock_holds_every_pin_of_pyproject_but_the_torch_build(pyproject: dict, lock: dict[str, str]) -> None:
    """The lock (`make lock`) is the resolution of pyproject.toml's pins: each pin at its version,
    torch and the CUDA-only packages left to `make setup TORCH=…`."""
    expected = pyproject_pins(pyproject)
    assert expected.pop("torch") == make_variable("TORCH_VERSION") == "2.13.0"
    differ = {n: (v, lock.get(n)) for n, v in expected.items() if lock.get(n) != v}
    assert not differ, f"pyproject.toml vs requirements/lock.txt (run `make lock`): {differ}"
    build = [n for n in lock if n in ("torch", "triton") or n.startswith(("nvidia-", "cuda-"))]
    assert not build, f"the torch build's packages are chosen at set-up, not locked: {build}"
    assert len(lock) > 3 * len(expected), "the lock holds the whole environment, not only the direct pins"


def test_the_environment_is_the_lock(lock: dict[str, str]) -> None:
    """What `make setup` installed (this test's own environment) is exactly the lock plus torch."""
    from importlib.metadata import version

    differ = {n: (v, version(n)) for n, v in lock.items() if version(n) != v}
    assert not differ, f"installed packages differ from requirements/lock.txt (run `make setup`): {differ}"
    assert version("torch").split("+")[0] == "2.13.0"


def test_environment_yml_installs_the_lock(environment: dict) -> None:
    pip_list = environment_pip_list(environment)
    assert pip_list[0] == "-r requirements/lock.txt" and pip_list[-1] == "-e .", pip_list
    index = [item for item in pip_list if item.startswith("--extra-index-url")]
    torch = [item for item in pip_list if item.startswith("torch")]
    assert index == ["--extra-index-url https://download.pytorch.org/whl/cpu"], index
    assert torch == ["torch==2.13.0+cpu"], torch


def test_environment_yml_header(environment: dict, pyproject: dict) -> None:
    assert environment["name"] == "iapo"
    assert environment["channels"] == ["conda-forge"]
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    assert "pip" in conda
    assert "python=3.11" in conda
    assert pyproject["project"]["requires-python"] == ">=3.11,<3.12", "keep python=3.11 in sync"


def test_console_script_points_to_cli_main(pyproject: dict) -> None:
    assert pyproject["project"]["scripts"] == {"iapo": "iapo.cli:main"}
    module, _, attr = pyproject["project"]["scripts"]["iapo"].partition(":")
    target = getattr(__import__(module, fromlist=[attr]), attr)
    assert callable(target)


def test_make_help_lists_every_documented_target() -> None:
    import subprocess

    makefile = (ROOT / "Makefile").read_text()
    documented = re.findall(r"^([a-z-]+):[^\n]*## ", makefile, re.M)
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=True).stdout
    listed = re.findall(r"^  make (\S+) ", out, re.M)
    assert listed == documented and {"setup", "test", "reproduce", "figures", "help"} <= set(listed)


def test_setup_refuses_a_python_that_is_not_3_11(tmp_path: Path) -> None:
    """A .venv whose python is not 3.11 (here: one that fails) is removed, never reused; with no
    Python 3.11 to rebuild it, `make setup` says what to install (exit 2) and installs nothing."""
    import shutil
    import subprocess

    for name in ("Makefile", "pyproject.toml", "params.yaml", "requirements/lock.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    out = subprocess.run(["make", "setup", "TORCH=cuda"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "TORCH=cuda is not a torch build" in out.stderr, out.stderr
    broken = tmp_path / "not-python"
    broken.write_text("#!/bin/sh\necho 'Python 3.12.1'\nexit 1\n")
    broken.chmod(0o755)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(broken, tmp_path / ".venv" / "bin" / "python")
    make = ["make", "setup", f"PYTHON={broken}"]
    out = subprocess.run(make, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert ".venv was made by another Python or is broken" in out.stderr
    assert "install python3.11 and python3.11-venv" in out.stderr
    assert not (tmp_path / ".venv").exists()
    conda = tmp_path / "env"
    (conda / "bin").mkdir(parents=True)
    shutil.copy(broken, conda / "bin" / "python")
    out = subprocess.run(["make", "setup", f"VENV={conda}"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and f"{conda} is not a Python 3.11 environment with pip" in out.stderr
    assert (conda / "bin" / "python").exists()  # the user's environment is never deleted


OUTSIDE = re.compile(r"\.\./shared|shared/(?:paper|reference)|DESIGN\.md|STYLE\.md|(?<!original_)code §\d")
"""What points outside the repository: the maintainers' notes and texts a user does not have."""


def test_no_file_points_outside_the_repository() -> None:
    """Every tracked text file stands on its own, the committed study outputs included."""
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    found = []
    for name in filter(None, listed.decode().split("\0")):
        path = ROOT / name
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{name}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1)
                  if OUTSIDE.search(line)]
    assert not found, "pointers to files outside the repository:\n" + "\n".join(found)


def test_no_module_imports_back_into_a_loop() -> None:
    """The package's imports (module-level and inside functions) form no loop, and the ground floor
    (`layout`, `errors`, `atomic`: names, errors, file writes) imports nothing of the project. The
    tools (`iapo.tools`: benchmark, FLOP counts, GPU check) are reached from the CLI only."""
    import ast

    src = ROOT / "src"
    modules = {".".join(p.relative_to(src).with_suffix("").parts).removesuffix(".__init__"): p
               for p in (src / "iapo").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("iapo"):
                found = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                targets |= found or {node.module}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("iapo")}
        graph[name] = {t for t in targets if t in modules and t != name}
    for ground in ("iapo.layout", "iapo.errors", "iapo.atomic"):
        assert graph[ground] == set(), (ground, graph[ground])

    into_tools = sorted(f"{name} -> {t}" for name, targets in graph.items() for t in targets
                        if t.startswith("iapo.tools") and not name.startswith(("iapo.tools", "iapo.cli")))
    assert not into_tools, into_tools

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(t == goal or (t not in seen and not seen.add(t) and reaches(t, goal, seen))
                   for t in graph[start])

    loops = sorted(name for name in graph if reaches(name, name, set()))
    assert not loops, f"modules on an import loop: {loops}"


DEVICE_PACKAGES = ROOT / "requirements" / "device.txt"
GPU_CHECK_PATH = """
import sys
from importlib.metadata import packages_distributions
import iapo.cli, iapo.tools.gpucheck, iapo.tools.bench, iapo.train
import pytest  # gpu-check runs the test suite's CUDA cases
from iapo.envs import PAPER_ENVS, make_env
for env in PAPER_ENVS:
    make_env(env, seed=0)[0].close()
names = packages_distributions()
found = {d for m in list(sys.modules) for d in names.get(m.split(".")[0], [])}
print(" ".join(sorted(d.lower().replace("_", "-") for d in found)))
"""


def test_the_device_wheels_are_packages_the_gpu_check_imports() -> None:
    """Each package of requirements/device.txt is imported by `iapo gpu-check` and its trainings
    (making every paper environment, as they do); none is torch or numpy, which a bare machine
    brings; each is pinned by the lock. That they are enough is the bare rehearsal's part
    (tests/test_gpu_check.py: a Python with torch and numpy only runs the whole check with them)."""
    import subprocess
    import sys

    listed = [line.strip() for line in DEVICE_PACKAGES.read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    imported = set(subprocess.run([sys.executable, "-c", GPU_CHECK_PATH], capture_output=True, text=True,
                                  check=True, cwd=ROOT).stdout.split())
    assert listed == sorted(listed) and len(set(listed)) == len(listed)
    assert not {"torch", "numpy"} & set(listed)
    assert [p for p in listed if p not in imported] == []
    lock = (ROOT / "requirements" / "lock.txt").read_text().lower()
    assert [p for p in listed if f"\n{p}==" not in lock] == []


def python312() -> str | None:
    import shutil

    found = shutil.which("python3.12")
    candidates = [found] if found else []
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))
    import subprocess

    for c in candidates:
        if subprocess.run([c, "--version"], capture_output=True).returncode == 0:
            return c
    return None


def test_the_package_compiles_under_python_3_12(tmp_path: Path) -> None:
    """A bare GPU machine's Python is often 3.12 (the project's own is 3.11): every module of the
    package and the tests must at least compile there (syntax and the compiler's warnings as errors)."""
    import subprocess

    python = python312()
    if python is None:
        pytest.skip("no Python 3.12 on this machine (python3.12 on PATH or under ~/.pyenv)")
    code = ("import compileall, sys; "
            "sys.exit(not compileall.compile_dir(sys.argv[1], quiet=1, force=True, legacy=False))")
    proc = subprocess.run([python, "-W", "error", "-c", code, str(ROOT / "src")], capture_output=True,
                          text=True, env={"PYTHONPYCACHEPREFIX": str(tmp_path), "PATH": ""})
    assert proc.returncode == 0, proc.stdout + proc.stderr
