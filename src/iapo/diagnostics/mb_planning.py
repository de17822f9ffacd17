"""Planning with model-based values (Appendix A.5, Figure 13b-c): for on-policy states, the
iterative optimizer's estimate λ_i at every iteration, J(s, λ_i), and the model rollout that
estimate plans: from (s, tanh μ_i) the model's mean states for h steps, the rollout policy acting.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from iapo.diagnostics.common import IDENTITY, frame
from iapo.diagnostics.objectives import objective, resolve_beta
from iapo.diagnostics.options import Options, option
from iapo.diagnostics.recording import RecordingObjective
from iapo.diagnostics.rollouts import on_policy_states
from iapo.diagnostics.snapshots import iter_snapshots, require_iterative, reseed
from iapo.errors import DiagnosticError

NAME = "mb_planning"

COLUMNS = {
    "main": {
        **IDENTITY,
        "state": "index of the on-policy state",
        "iteration": "i: the estimate λ_i (0 = λ_0)",
        "J": "J(s, λ_i) under the model-based value estimate (return units)",
    },
    "rollout": {
        **IDENTITY,
        "state": "index of the on-policy state",
        "iteration": "i: the plan of λ_i",
        "t": "rollout step (0 = the real state s)",
        "dim": "state dimension",
        "value": "planned (model mean) state value s_t[dim]",
        "reward": "predicted reward r̂(s_t, a_t)",
    },
}


@dataclass
class MBPlanningOptions(Options):
    """Rows (main): checkpoint × state × iteration. Rows (rollout, <stem>_rollout.csv): checkpoint ×
    state × iteration × rollout step × state dimension."""

    checkpoints: str = option("last", "which snapshots: all | last | first | N,M (env steps)")
    states: int = option(5, "on-policy states per checkpoint")
    collect_steps: int | None = option(None, "on-policy steps the states are spread over (default: "
                                             "the episode limit)")
    iters: int | None = option(None, "iterations (default: K, as trained)")
    beta: str = option("acting", "β inside J: acting | train | a number")


@torch.no_grad()
def plan(agent, obs: torch.Tensor, mu: torch.Tensor, horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean states [h+1, B, S] and predicted rewards [h, B] of the rollout from (s, tanh μ)."""
    states, rewards, s, a = [obs], [], obs, torch.tanh(mu)
    for _ in range(horizon):
        s, r = agent.model(s, a)
        a, _ = agent.rollout_sample(s)
        states.append(s)
        rewards.append(r)
    return torch.stack(states), torch.stack(rewards) if rewards else obs.new_zeros(0, obs.shape[0])


def run(opts: MBPlanningOptions) -> dict[str, pd.DataFrame]:
    rows, plans = [], []
    for snap in iter_snapshots(opts):
        require_iterative(snap, NAME)
        if not snap.agent.model_based:
            raise DiagnosticError(f"{NAME}: {snap.path} is model-free; pass a model-based iterative run")
        agent, cfg = snap.agent, snap.cfg
        reseed(opts.seed, snap.step)
        obs = on_policy_states(snap, opts)
        recording = RecordingObjective(objective(agent, obs, resolve_beta(cfg, opts.beta)))
        trace = agent.optimizer.optimize(recording, n_iters=opts.iters, score=True)
        iterates = recording.visited
        horizon = cfg.model_based.horizon
        for i, ((mu, _), J) in enumerate(zip(iterates, trace.J, strict=True)):
            states, rewards = plan(agent, obs, mu, horizon)
            for k in range(obs.shape[0]):
                rows.append(snap.identity() | {"state": k, "iteration": i, "J": float(J[k])})
                for t in range(horizon + 1):
                    r = float(rewards[t, k]) if t < horizon else float("nan")
                    plans += [snap.identity() | {"state": k, "iteration": i, "t": t, "dim": d,
                                                 "value": float(states[t, k, d]), "reward": r}
                              for d in range(states.shape[-1])]
    return {"main": frame(rows, COLUMNS["main"]), "rollout": frame(plans, COLUMNS["rollout"])}
