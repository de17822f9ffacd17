"""Per-step improvement (B.3, Figures 4b, 17): J at each iteration of the iterative optimizer and
the improvement ΔJ over the iterations, over training and per seed.

Two sources, one table: `training` reads the J_iter0 … J_iterK columns the training loop logs in
metrics.csv (batch means over each log interval, all of training); `states` recomputes J per
iteration on on-policy states at each checkpoint (optionally for more iterations than trained).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from iapo.diagnostics.common import (
    IDENTITY,
    DiagnosticError,
    Options,
    RecordingObjective,
    evaluate_J,
    fixed_noise,
    frame,
    iter_snapshots,
    load_snapshot,
    objective,
    on_policy_states,
    option,
    require_iterative,
    reseed,
    resolve_beta,
    select_checkpoints,
)

NAME = "improvement"

COLUMNS = {"main": {
    **IDENTITY,
    "source": "training (metrics.csv row; step = its env step) | states (recomputed at a checkpoint)",
    "state": "index of the on-policy state (empty for source training)",
    "iteration": "i: J is at λ_i (0 = the initialization λ_0)",
    "J": "J(s, λ_i) (training: mean over the logged batches)",
    "dJ": "J_i − J_0: improvement from the initialization",
    "dJ_step": "J_i − J_{i−1}: improvement of this iteration (empty at i = 0)",
    "n_iters_trained": "K, iterations the optimizer was trained with",
}}


@dataclass
class ImprovementOptions(Options):
    """Rows: training: one per metrics.csv row × iteration; states: one per checkpoint × state ×
    iteration. Needs an iterative run."""

    source: str = option("both", "training | states | both", ["training", "states", "both"])
    states: int = option(100, "on-policy states per checkpoint (source states)")
    collect_steps: int | None = option(None, "on-policy steps the states are spread over (default: "
                                             "the episode limit)")
    iters: int | None = option(None, "iterations to run on states (default: K, as trained)")
    eval_samples: int | None = option(None, "measure J at every iterate with this many samples of "
                                            "common noise (default: the optimizer's own N-sample "
                                            "estimates, as logged in training)")
    beta: str = option("train", "β of J on states: train | acting | a number")


def from_metrics(opts: ImprovementOptions) -> list[dict]:
    """Rows from metrics.csv (training source)."""
    path = opts.run / "metrics.csv"
    if not path.is_file():
        raise DiagnosticError(f"{path}: not found; is {opts.run} a run folder written by `iapo train`?")
    snap = load_snapshot(select_checkpoints(opts.run, "last")[0][1], "cpu")
    require_iterative(snap, NAME)
    metrics = pd.read_csv(path)
    k = snap.cfg.n_iters
    columns = [f"J_iter{i}" for i in range(k + 1)]
    missing = [c for c in columns if c not in metrics]
    if missing:
        raise DiagnosticError(f"{path}: no columns {missing}; the run logged {list(metrics.columns)}")
    metrics = metrics.dropna(subset=columns)  # rows logged before the first update
    ident = snap.identity()
    rows = []
    for _, m in metrics.iterrows():
        J = [float(m[c]) for c in columns]
        for i, value in enumerate(J):
            rows.append(ident | {
                "step": int(m["env_step"]), "source": "training", "iteration": i, "J": value,
                "dJ": value - J[0], "dJ_step": value - J[i - 1] if i else float("nan"),
                "n_iters_trained": k,
            })
    return rows


def from_states(opts: ImprovementOptions) -> list[dict]:
    rows = []
    for snap in iter_snapshots(opts):
        require_iterative(snap, NAME)
        agent, cfg = snap.agent, snap.cfg
        reseed(opts.seed, snap.step)
        s = on_policy_states(snap, opts)
        beta = resolve_beta(cfg, opts.beta)
        obj = RecordingObjective(objective(agent, s, beta))
        trace = agent.optimizer.optimize(obj, n_iters=opts.iters)
        if opts.eval_samples:
            eps = fixed_noise(opts.eval_samples, agent.act_dim, opts.seed + snap.step, agent.device)
            obj_eval = objective(agent, s, beta, opts.eval_samples)
            Js = [evaluate_J(obj_eval, mu, ls, eps).J for mu, ls in obj.visited]
        else:
            Js = trace.J
        J = torch.stack(Js, 1).cpu()  # [B, iterations + 1]
        for b in range(J.shape[0]):
            for i in range(J.shape[1]):
                rows.append(snap.identity() | {
                    "source": "states", "state": b, "iteration": i, "J": J[b, i].item(),
                    "dJ": (J[b, i] - J[b, 0]).item(),
                    "dJ_step": (J[b, i] - J[b, i - 1]).item() if i else float("nan"),
                    "n_iters_trained": cfg.n_iters,
                })
    return rows


def run(opts: ImprovementOptions) -> dict[str, pd.DataFrame]:
    rows = []
    if opts.source in ("training", "both"):
        rows += from_metrics(opts)
    if opts.source in ("states", "both"):
        rows += from_states(opts)
    return {"main": frame(rows, COLUMNS["main"])}
