"""Evaluation episodes of an agent: the training loop's evaluations (eval.csv) and `iapo evaluate`,
which replays a saved snapshot of a run for any number of episodes, optionally filming the first.

One episode (`play_episode`) runs the agent's policy on a freshly seeded environment of its task
until the task terminates or its time limit truncates it: in each state the action is tanh(μ), the
policy's mode (deterministic: how the training loop evaluates, §4 / A.4 with β_acting), or a sample
a ~ π(·|s) (stochastic: how it collects data), mapped onto the task's action bounds. The return is
the undiscounted sum of the rewards.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from iapo.config import ConfigError

if TYPE_CHECKING:  # imported where used: `iapo --help` stays quick
    import pandas as pd

    from iapo.agent import Agent
    from iapo.video import VideoRecorder

COLUMNS = {
    "env": "paper task name",
    "variant": "agent variant of params.yaml",
    "train_seed": "seed of the training run",
    "checkpoint": "snapshot evaluated (step_N: checkpoints/step_N.pt)",
    "env_step": "env steps the agent had trained for",
    "updates": "updates it had made",
    "policy": "deterministic (tanh μ) | stochastic (a ~ π)",
    "episode": "episode index, 0-based",
    "env_seed": "seed of the episode's environment (--seed + episode)",
    "return": "undiscounted return of the episode",
    "length": "env steps of the episode",
}
"""Columns of `iapo evaluate`'s CSV, one row per episode."""


@dataclass(frozen=True)
class Episode:
    """One evaluation episode: its environment seed, return and length."""

    seed: int
    total: float
    length: int


def play_episode(agent: Agent, seed: int, deterministic: bool = True,
                 video: VideoRecorder | None = None) -> Episode:
    """One episode of `agent` on its task, from an environment seeded with `seed` (see the module
    docstring); `video` also receives a frame after the reset and after every step."""
    env, obs = agent.make_env(seed, render_size=None if video is None else video.size)
    try:
        if video is not None:
            video.capture(env)
        total, length, done = 0.0, 0, False
        while not done:
            a = agent.act(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, _ = env.step(agent.env_action(env, a))
            total, length, done = total + float(reward), length + 1, terminated or truncated
            if video is not None:
                video.capture(env)
    finally:
        env.close()
    return Episode(seed, total, length)


def default_csv(snapshot: Path, deterministic: bool = True, episodes: int = 10, seed: int = 0) -> Path:
    """RUN/evaluate/step_N_<E>ep_seed<S>.csv (step_N_stochastic_… with sampled actions) for the snapshot
    RUN/checkpoints/step_N.pt: evaluations of other episode counts or seeds (a one-episode video run
    next to a ten-episode evaluation) never replace each other."""
    run = snapshot.parent.parent if snapshot.parent.name == "checkpoints" else snapshot.parent
    mode = "" if deterministic else "_stochastic"
    return run / "evaluate" / f"{snapshot.stem}{mode}_{episodes}ep_seed{seed}.csv"


def evaluate(
    run: str | Path, checkpoint: str | None = None, episodes: int = 10, seed: int = 0,
    deterministic: bool = True, out: str | Path | None = None, video: str | Path | None = None,
    video_size: int = 480, device: str = "cpu",
) -> tuple[pd.DataFrame, Path]:
    """`iapo evaluate`: the snapshot of `run` (found as by `Agent.load`) plays `episodes` episodes,
    episode i from the environment seed `seed` + i, after `torch.manual_seed(seed)` (the agent's sampled
    actions, and an iterative agent's samples of J, repeat); the first is filmed into `video`
    (`iapo.video`). Writes the table (`COLUMNS`) to `out`, default `default_csv`, and returns it and
    its path. Every input is checked before the first episode; the video and the table are written
    only once every episode has run, each atomically, so a failure leaves neither."""
    import pandas as pd
    import torch

    from iapo import video as videos
    from iapo.agent import Agent
    from iapo.devices import resolve_device
    from iapo.diagnostics.common import write_table

    resolved = resolve_device(device)
    if out is not None and Path(out).is_dir():
        raise ConfigError(f"--out {out} is a folder; name the CSV file to write, e.g. "
                          f"{Path(out) / 'evaluate.csv'}.")
    if video is not None:
        videos.check_target(Path(video))
    agent = Agent.load(run, checkpoint, resolved)
    file = agent.source
    if video is not None:
        videos.choose_gl_backend()
    policy = "deterministic" if deterministic else "stochastic"
    cfg = agent.cfg
    print(f"iapo evaluate: {file} ({cfg.env} {cfg.variant} seed {cfg.seed}, env step {agent.env_step}), "
          f"{episodes} {policy} episode{'s' if episodes > 1 else ''} from env seed {seed}", file=sys.stderr)
    torch.manual_seed(seed)
    rows = []
    recorder = videos.VideoRecorder(video, video_size) if video is not None else None
    with recorder or nullcontext():
        for i in range(episodes):
            played = play_episode(agent, seed + i, deterministic, recorder if i == 0 else None)
            print(f"episode {i} (env seed {played.seed}): return {played.total:.2f}, "
                  f"length {played.length}", flush=True)
            rows.append({"env": cfg.env, "variant": cfg.variant, "train_seed": cfg.seed,
                         "checkpoint": file.stem, "env_step": agent.env_step, "updates": agent.n_updates,
                         "policy": policy, "episode": i, "env_seed": played.seed,
                         "return": played.total, "length": played.length})
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    returns = table["return"].to_numpy()
    print(f"mean return over {episodes} episodes: {returns.mean():.2f} (std {np.std(returns):.2f}, "
          f"min {returns.min():.2f}, max {returns.max():.2f})", flush=True)
    if recorder is not None:
        print(f"written: {video} ({recorder.frames} frames of episode 0)", file=sys.stderr)
    target = Path(out) if out is not None else default_csv(file, deterministic, episodes, seed)
    path = write_table(table, target)
    print(f"written: {path}", file=sys.stderr)
    return table, path
