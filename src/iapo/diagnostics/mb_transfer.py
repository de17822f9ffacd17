"""Zero-shot transfer from model-free to model-based values (§4.2.5, Figure 9): the iterative
optimizer of a model-free run, unchanged, acts on a model-based agent's objective (its model
rollouts + Retrace, eq. 14); its evaluation return is compared with that agent's own optimizer on
the same episode seeds. Actions are deterministic, tanh(μ), as in evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from iapo.diagnostics.common import IDENTITY, frame, progress
from iapo.diagnostics.options import Options, doc, option
from iapo.diagnostics.rollouts import task_env
from iapo.diagnostics.snapshots import iter_snapshots, require_iterative, reseed, transfer_snapshot
from iapo.diagnostics.test_time import episode
from iapo.errors import DiagnosticError

NAME = "mb_transfer"

COLUMNS = {"main": {
    **IDENTITY,
    "optimizer": "own (the model-based agent's iterative optimizer) | transfer (the model-free run's)",
    "source_step": "env step of the checkpoint the optimizer comes from",
    "episode": "evaluation episode index (the same env seed for both optimizers)",
    "return": "undiscounted episode return",
    "length": "episode length in env steps",
}}


@dataclass
class MBTransferOptions(Options):
    """Rows: one per checkpoint of the model-based run × optimizer × episode."""

    optimizer_from: Path | None = field(default=None, metadata=doc(
        "model-free iterative run (same task) whose optimizer is transferred (required)"))
    from_step: str = option("last", "its checkpoint: last | same | an env step")
    episodes: int | None = option(None, "episodes per checkpoint and optimizer (default: eval_episodes)")
    horizon: int | None = option(None, "cap on episode length (default: the episode limit)")


def run(opts: MBTransferOptions) -> dict[str, pd.DataFrame]:
    rows: list[dict] = []
    if opts.optimizer_from is None:
        raise DiagnosticError(f"{NAME}: --optimizer-from RUN is required (a model-free iterative run)")
    for snap in iter_snapshots(opts):
        require_iterative(snap, NAME)
        if not snap.agent.model_based:
            raise DiagnosticError(f"{NAME}: {snap.path} is a model-free agent ({snap.cfg.variant}); "
                                  "pass a model-based iterative run (variant iterative_mb) as --run")
        donor = transfer_snapshot(opts.optimizer_from, opts.from_step, snap, opts.device, NAME)
        if donor.agent.model_based:
            raise DiagnosticError(f"{NAME}: --optimizer-from {opts.optimizer_from} is model-based; "
                                  "the transfer is from a model-free run")
        transferred = snap.agent.with_optimizer(donor.agent.optimizer)  # same values, α and model
        agents = [("own", snap.agent, snap.step), ("transfer", transferred, donor.step)]
        env, _ = task_env(snap.cfg, opts.seed)
        for name, agent, source_step in agents:
            reseed(opts.seed, snap.step)
            n_episodes = opts.episodes or snap.cfg.eval_episodes
            for ep in progress(range(n_episodes), f"{name} episodes (step {snap.step})", leave=False):
                ret, length = episode(env, 10_000 * opts.seed + ep, opts.horizon,
                                      lambda obs, a=agent: a.act(obs, deterministic=True))
                rows.append(snap.identity() | {"optimizer": name, "source_step": source_step,
                                               "episode": ep, "return": ret, "length": length})
        env.close()
    return {"main": frame(rows, COLUMNS["main"])}
