"""Shared fixtures: the real params.yaml and run configs resolved from it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

from iapo.config import Params, RunConfig, load_params, resolve

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(ROOT / "params.yaml")


@pytest.fixture
def make_cfg(params: Params):
    def make(env: str = "HalfCheetah-v2", variant: str = "direct", seed: int = 0, **kw) -> RunConfig:
        return resolve(params, env, variant, seed, kw.pop("scale", "smoke"), kw.pop("steps", None))

    return make


@pytest.fixture(autouse=True)
def _one_thread_and_seed():
    torch.set_num_threads(1)
    torch.manual_seed(0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests on the smoke workspace first: with `pytest -n 2 --dist worksteal` (`make test`)
    the first worker starts at once on that chain (the smoke DAG, then the pipeline, DVC and Slurm
    tests: the longest of the suite) while the other takes the rest, and steals from the first's
    queue when done. Order otherwise kept."""
    items.sort(key=lambda item: item.get_closest_marker("smoke_workspace") is None)  # stable


SIDE_NICE = 10
"""Niceness of a pytest-xdist worker once it runs a test off the smoke workspace's chain: the chain
(the smoke DAG runs `--cores 2`) then gets the CPU it asks for and sets the suite's length, and the
other tests fill what it leaves. A process cannot lower its niceness again; that is fine, as the
chain is scheduled first."""


@pytest.fixture(autouse=True)
def _the_smoke_chain_first(request: pytest.FixtureRequest) -> None:
    side = os.environ.get("PYTEST_XDIST_WORKER") and not request.node.get_closest_marker("smoke_workspace")
    if side and os.getpriority(os.PRIO_PROCESS, 0) < SIDE_NICE:
        os.setpriority(os.PRIO_PROCESS, 0, SIDE_NICE)


COLLECTED = pytest.StashKey[int]()
"""How many tests this session collected, kept only for a run of the whole suite (no -k, -m or
paths narrowing it): tests/test_pipeline.py checks the README's count against it."""


def pytest_collection_finish(session: pytest.Session) -> None:
    opt = session.config.option
    whole = not opt.keyword and not opt.markexpr and not getattr(opt, "deselect", None)
    paths = [Path(arg.split("::")[0]).resolve() for arg in session.config.args]
    if whole and all(path in (ROOT, ROOT / "tests") for path in paths):
        session.config.stash[COLLECTED] = len(session.items)


def write_scale_json(folder: Path, scale: str = "mini", preset: dict | None = None,
                     paper: dict | None = None) -> None:
    """`folder/scale.json` as `iapo summarize` writes it (a full `ScaleReport`): params.yaml's preset
    of `scale` (mini's if params.yaml has no such scale) and its paper preset, with the keys in
    `preset` / `paper` replaced (grid, seeds, steps, steps_per_env, diagnostics, …)."""
    from iapo.config import Scale
    from iapo.summary import ScaleReport

    params = load_params(ROOT / "params.yaml")
    base = ScaleReport.of(params, scale if scale in params.scales else "mini")

    def changed(preset_: Scale, changes: dict | None) -> Scale:
        return Scale.model_validate(preset_.model_dump() | (changes or {}))

    folder.mkdir(parents=True, exist_ok=True)
    ScaleReport(scale=scale, preset=changed(base.preset, preset), paper=changed(base.paper, paper),
                reduced=base.reduced).write(folder)


def small_params(tmp_path: Path, **scale) -> Path:
    """params.yaml with a tiny `smoke` scale (same algorithm settings as the real file)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["scales"]["smoke"] |= {
        "steps": 400, "initial_random_steps": 150, "eval_every": 200, "eval_episodes": 1,
        "log_every": 50, "checkpoint_steps": [200, 400], "resume_every": 100,
    } | scale
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
