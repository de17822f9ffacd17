"""The checkpoints a diagnostic reads: a run's `checkpoints/step_N.pt` chosen by `--checkpoints`, each
rebuilt into its frozen agent (one at a time), seeded per checkpoint, checked for the policy a
diagnostic needs, and another run's snapshot whose optimizer acts on this run's objective."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iapo import checkpoint
from iapo.agent import Agent
from iapo.config import RunConfig
from iapo.diagnostics.common import progress
from iapo.diagnostics.options import Options
from iapo.errors import DiagnosticError
from iapo.seeds import at_step


@dataclass
class Snapshot:
    """One checkpoint of a run, rebuilt: the agent with its weights, settings and step."""

    path: Path
    step: int
    n_updates: int
    cfg: RunConfig
    agent: Agent
    obs_dim: int
    act_dim: int

    def identity(self) -> dict[str, Any]:
        c = self.cfg
        return {"env": c.env, "variant": c.variant, "family": c.family, "seed": c.seed, "step": self.step}


def load_snapshot(path: str | Path, device: str = "cpu") -> Snapshot:
    """Rebuild the agent of `checkpoints/step_N.pt` (written by `Run.save_snapshot`), frozen."""
    try:
        agent = Agent.load(path, device=device)
    except checkpoint.CheckpointError as err:
        raise DiagnosticError(str(err)) from err
    return Snapshot(Path(path), agent.env_step, agent.n_updates, agent.cfg, agent,
                    agent.obs_dim, agent.act_dim)


def select_checkpoints(run: Path, spec: str) -> list[tuple[int, Path]]:
    """Snapshots of `run` chosen by `spec` (all | last | first | N,M), oldest first."""
    folder = Path(run) / "checkpoints"
    found = sorted(checkpoint.by_step(folder))
    if not found:
        raise DiagnosticError(
            f"{folder}: no step_N.pt snapshots. Is {run} a run folder written by `iapo train --out`?"
        )
    if spec == "all":
        return found
    if spec == "last":
        return found[-1:]
    if spec == "first":
        return found[:1]
    try:
        wanted = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise DiagnosticError(
            f"--checkpoints {spec!r}: expected all, last, first or env steps like 5000,10000"
        ) from None
    by_step = dict(found)
    missing = [s for s in wanted if s not in by_step]
    if missing or not wanted:
        raise DiagnosticError(
            f"--checkpoints {spec!r}: no snapshot for step(s) {missing} in {folder}; "
            f"available: {', '.join(str(s) for s, _ in found)}"
        )
    return [(s, by_step[s]) for s in sorted(set(wanted))]


def iter_snapshots(opts: Options, spec: str | None = None) -> Iterator[Snapshot]:
    """Load the chosen snapshots one at a time (only one agent in memory), with a progress bar."""
    chosen = select_checkpoints(opts.run, spec or opts.checkpoints)
    for step, path in progress(chosen, "checkpoints", unit="ckpt"):
        snap = load_snapshot(path, opts.device)
        if snap.step != step:
            raise DiagnosticError(f"{path}: holds step {snap.step}, its name says {step}")
        yield snap


def reseed(seed: int, step: int) -> np.random.Generator:
    """Seed torch for one checkpoint and return a NumPy generator: a checkpoint's rows do not
    depend on which other checkpoints were selected."""
    s = at_step(seed, step)
    torch.manual_seed(s)
    return np.random.default_rng(s)


def require_tanh_normal(snap: Snapshot, name: str) -> None:
    """Diagnostics that act on λ = (μ, σ) of a tanh-Normal need one (not a flow; the amortization
    gap takes a flow through `PolicyObjective`)."""
    if not snap.agent.optimizer.tanh_normal:
        raise DiagnosticError(
            f"{name} works on tanh-Normal policies λ = (μ, σ); {snap.path} is a {snap.cfg.family} "
            "agent whose policy is not (a flow). Run it on direct or iterative runs."
        )


def transfer_snapshot(run: Path, step: str, target: Snapshot, device: str, name: str) -> Snapshot:
    """A snapshot of another run whose optimizer will act on `target`'s objective (§3.2:
    generalization across objectives). `step`: same (the target's step if that run has it, else
    its last) | last | an env step."""
    chosen = select_checkpoints(run, "all")
    by_step = dict(chosen)
    if step == "same":
        path = by_step.get(target.step, chosen[-1][1])
    elif step == "last":
        path = chosen[-1][1]
    else:
        path = select_checkpoints(run, step)[0][1]
    other = load_snapshot(path, device)
    require_iterative(other, f"{name} --optimizer-from")
    dims, mine = (other.obs_dim, other.act_dim), (target.obs_dim, target.act_dim)
    if other.cfg.env != target.cfg.env or dims != mine:
        raise DiagnosticError(
            f"--optimizer-from {run}: that run is {other.cfg.env} (obs, act dims {dims}); "
            f"{target.path} is {target.cfg.env} {mine}. Use a run of the same task."
        )
    return other


def require_iterative(snap: Snapshot, name: str) -> None:
    if snap.cfg.family != "iterative":
        raise DiagnosticError(
            f"{name} needs an iterative agent; {snap.path} is {snap.cfg.family!r} "
            f"(variant {snap.cfg.variant!r}). Pass an iterative run folder."
        )
