"""`iapo evaluate`, `Agent.load` / `act`, videos, and TensorBoard curves, on one tiny real run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio
import numpy as np
import pandas as pd
import pytest
import torch

from iapo import Agent, checkpoint
from iapo.cli import main
from iapo.config import load_params, resolve
from iapo.curves import Curves
from iapo.envs import make_env
from iapo.train import Run
from iapo.video import VideoError, choose_gl_backend, gif_stride
from tests.conftest import small_params

SEED = 3
EVAL_EPISODES = 2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple:
    """InvertedPendulum, direct, 200 env steps (50 updates), snapshots at 100 and 200: ~3 s."""
    tmp = tmp_path_factory.mktemp("tiny")
    params = load_params(small_params(tmp, steps=200, initial_random_steps=150, eval_every=100,
                                      eval_episodes=EVAL_EPISODES, checkpoint_steps=[100, 200]))
    cfg = resolve(params, "InvertedPendulum-v2", "direct", SEED, "smoke")
    torch.set_num_threads(1)
    Run(cfg, tmp / "run").run()
    return cfg, tmp / "run"


def to_env(env, a: np.ndarray) -> np.ndarray:
    """[−1, 1] → the env's bounds, affinely, in float64, then the env's float32 (as training does)."""
    low, high = env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)
    return np.clip(low + (np.asarray(a, np.float64) + 1.0) * 0.5 * (high - low), low, high).astype(np.float32)


def by_hand(agent: Agent, seeds: list[int], deterministic: bool = True) -> list[float]:
    """The returns of `agent` on its task from these env seeds, the episode loop written out here."""
    returns = []
    for seed in seeds:
        env, obs = make_env("InvertedPendulum-v2", seed)
        total, done = 0.0, False
        while not done:
            a = agent.act(obs, deterministic=deterministic)
            assert np.all(np.abs(a) <= 1.0)  # the policy's tanh units
            obs, reward, terminated, truncated, _ = env.step(to_env(env, a))
            total, done = total + reward, terminated or truncated
        returns.append(total)
    return returns


def test_evaluate_reproduces_the_training_loops_last_evaluation(tiny, tmp_path, capsys):
    """The training loop evaluated its final agent on env seeds 1_000_003 (seed + 1) + 1000 n_evals + i
    (its third evaluation: n_evals = 2); the snapshot of step 200, on those seeds, gets eval.csv's returns."""
    _, run = tiny
    first = 1_000_003 * (SEED + 1) + 1_000 * 2
    out = tmp_path / "eval.csv"
    assert main(["evaluate", "--run", str(run), "--episodes", str(EVAL_EPISODES), "--seed", str(first),
                 "--out", str(out)]) == 0
    mine = pd.read_csv(out)
    train_eval = pd.read_csv(run / "eval.csv").query("env_step == 200")
    assert mine["return"].tolist() == train_eval["return"].tolist()
    assert mine["length"].tolist() == train_eval["length"].tolist()
    assert mine["env_seed"].tolist() == [first, first + 1]
    assert set(mine.checkpoint) == {"step_200"} and set(mine.updates) == {51}
    printed = capsys.readouterr().out
    assert f"mean return over 2 episodes: {mine['return'].mean():.2f}" in printed


def test_agent_load_and_act_match_the_cli_and_repeat(tiny):
    """Agent.load (run folder / checkpoint name / file) rebuilds the same agent; the CLI's returns
    (deterministic and stochastic) equal an episode loop written out by hand with the same seeds."""
    _, run = tiny
    agent = Agent.load(run)
    same = Agent.load(run / "checkpoints" / "step_200.pt")
    older = Agent.load(run, checkpoint="step_100")
    state, other = agent.state_dict(), same.state_dict()
    assert all(torch.equal(state[k], other[k]) for k in state)
    assert agent.n_updates == 51 and older.n_updates == 0 and not agent.training
    assert not torch.equal(state["log_alpha"], older.state_dict()["log_alpha"])
    env, _ = agent.make_env(seed=0)
    assert agent.env_action(env, np.array([1.0])) == env.action_space.high == 3.0
    assert agent.env_action(env, np.array([-0.5])) == -1.5

    assert main(["evaluate", "--run", str(run), "--episodes", "3"]) == 0
    deterministic = pd.read_csv(run / "evaluate" / "step_200_3ep_seed0.csv")
    assert deterministic["return"].tolist() == by_hand(agent, [0, 1, 2])
    # another episode count (a one-episode video run, say) keeps its own file: nothing is replaced
    assert main(["evaluate", "--run", str(run), "--episodes", "1"]) == 0
    assert pd.read_csv(run / "evaluate" / "step_200_3ep_seed0.csv").equals(deterministic)
    assert len(pd.read_csv(run / "evaluate" / "step_200_1ep_seed0.csv")) == 1

    for _ in range(2):  # torch seeded with --seed: the sampled actions repeat
        assert main(["evaluate", "--run", str(run), "--episodes", "3", "--stochastic", "--seed", "5"]) == 0
        stochastic = pd.read_csv(run / "evaluate" / "step_200_stochastic_3ep_seed5.csv")
        torch.manual_seed(5)
        assert stochastic["return"].tolist() == by_hand(agent, [5, 6, 7], deterministic=False)
    assert set(stochastic.policy) == {"stochastic"}


def _nothing_written(run: Path) -> None:
    assert not (run / "evaluate").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--checkpoint", "step_7"], "no such snapshot; available: step_100, step_200"),
    (["--checkpoint", "step_100", "--video", "x.avi"], "cannot tell the format from '.avi'"),
    (["--device", "tpu"], "--device 'tpu' is not a device name torch knows"),
])
def test_bad_input_is_one_paragraph_exit_2_nothing_written(tiny, tmp_path, capsys, args, message):
    _, src = tiny
    run = tmp_path / "run"
    shutil.copytree(src / "checkpoints", run / "checkpoints")
    assert main(["evaluate", "--run", str(run), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("iapo evaluate: error:") and "\n" not in err
    _nothing_written(run)


def test_missing_run_or_snapshots_and_a_corrupt_checkpoint(tiny, tmp_path, capsys):
    _, src = tiny
    assert main(["evaluate", "--run", str(tmp_path / "nowhere")]) == 2
    assert "no such run folder or checkpoint file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", "--run", str(tmp_path / "empty")]) == 2
    assert "no agent snapshots" in capsys.readouterr().err
    run = tmp_path / "run"
    shutil.copytree(src / "checkpoints", run / "checkpoints")
    newest = run / "checkpoints" / "step_200.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    assert main(["evaluate", "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert "step_200.pt: checksum mismatch" in err
    assert "choose another of the run's checkpoints (step_100)" in err
    _nothing_written(run)
    with pytest.raises(checkpoint.CheckpointError, match="checksum mismatch"):
        Agent.load(run)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_video_of_the_first_episode(tiny, tmp_path, monkeypatch, suffix):
    """A real MuJoCo rendering (OSMesa or EGL): one frame after the reset and one per step, frames
    that show something and change; filming does not change the episode."""
    if "MUJOCO_GL" not in os.environ:
        monkeypatch.setenv("MUJOCO_GL", "")  # the backend chosen below is forgotten after the test
    try:
        choose_gl_backend()
    except VideoError as err:
        if os.environ.get("IAPO_REQUIRE_RENDERING"):
            raise
        pytest.skip(f"no OpenGL backend for MuJoCo here (.ci/run installs OSMesa): {err}")
    _, run = tiny
    video, out = tmp_path / f"episode{suffix}", tmp_path / "eval.csv"
    assert main(["evaluate", "--run", str(run), "--episodes", "2", "--video", str(video),
                 "--video-size", "64", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    frames = np.stack(imageio.mimread(video, memtest=False))
    assert frames.shape == (table.length[0] + 1, 64, 64, 3)
    assert all(frame.std() > 1.0 for frame in frames)  # not blank
    assert np.abs(frames[0].astype(int) - frames[-1]).max() > 50  # the pendulum moved
    assert table["return"].tolist() == by_hand(Agent.load(run), [0, 1])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file


def test_gif_plays_in_real_time_with_whole_centisecond_delays():
    """GIF delays are whole centiseconds, and browsers slow down delays under 20 ms: the tasks'
    frame rates (Hopper and Walker2d 125 fps: 8 ms per step; Humanoid 67; Reacher 50; the
    pendulums and Swimmer 25 or 20) keep every k-th frame, by hand: 40 ms, 30 ms, 20 ms, 40/50 ms."""
    assert {fps: gif_stride(fps) for fps in (125, 67, 50, 25, 20)} == {125: 5, 67: 2, 50: 1, 25: 1, 20: 1}


def test_rendering_unavailable_is_exit_2_nothing_written(tiny, tmp_path):
    """glfw without a display cannot make a context: the message names MUJOCO_GL and the fix."""
    _, src = tiny
    run = tmp_path / "run"
    shutil.copytree(src / "checkpoints", run / "checkpoints")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run([sys.executable, "-m", "iapo.cli", "evaluate", "--run", str(run), "--episodes",
                           "1", "--video", str(tmp_path / "v.mp4"), "--video-size", "64"],
                          env=env | {"MUJOCO_GL": "glfw"}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "MUJOCO_GL=glfw" in done.stderr and "apt-get install libosmesa6" in done.stderr
    _nothing_written(run)
    assert list(tmp_path.glob("*.mp4")) == list(tmp_path.glob(".*")) == []


# --------------------------------------------------------------------------- TensorBoard curves

def read_events(folder: Path) -> list[tuple[str, int, float]]:
    """Every scalar in every event file of `folder`: (tag, step, value), in file order."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util.tensor_util import make_ndarray

    found = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():  # scalars come back as 0-d tensors
            found += [(v.tag, event.step, make_ndarray(v.tensor).item()) for v in event.summary.value]
    return found


def expected_events(run: Path) -> list[tuple[str, int, float]]:
    """metrics.csv and eval.csv as the scalars the curves should hold (float32, NaN left out)."""
    metrics, evals = pd.read_csv(run / "metrics.csv"), pd.read_csv(run / "eval.csv")
    rows = [(f"metrics/{col}", int(step), float(np.float32(value)))
            for step, row in zip(metrics.env_step, metrics.drop(columns="env_step").to_dict("records"),
                                 strict=True)
            for col, value in row.items() if not np.isnan(value)]
    for step, group in evals.groupby("env_step"):
        rows += [("eval/return", int(step), float(np.float32(group["return"].mean()))),
                 ("eval/length", int(step), float(np.float32(group["length"].mean())))]
    return sorted(rows)


def test_curves_are_the_rows_once_and_a_restart_drops_stale_points(tmp_path):
    folder = tmp_path / "tensorboard"
    metrics = [{"env_step": 50, "updates": 0, "train_return": float("nan"), "q_loss": 1.5},
               {"env_step": 100, "updates": 50, "train_return": 12.0, "q_loss": 0.25}]
    evals = [{"env_step": 0, "updates": 0, "episode": 0, "return": 3.0, "length": 4},
             {"env_step": 0, "updates": 0, "episode": 1, "return": 5.0, "length": 6}]
    curves = Curves(folder, metrics[:1], evals)
    curves.metrics(metrics[1])
    curves.metrics({"env_step": 150, "updates": 100, "train_return": 99.0, "q_loss": 9.0})  # stale later
    curves.close()
    assert ("metrics/q_loss", 150, 9.0) in read_events(folder)
    Curves(folder, metrics, evals).close()  # a resume from the state of step 100
    assert sorted(read_events(folder)) == sorted([
        ("metrics/updates", 50, 0.0), ("metrics/q_loss", 50, 1.5),
        ("metrics/updates", 100, 50.0), ("metrics/train_return", 100, 12.0), ("metrics/q_loss", 100, 0.25),
        ("eval/return", 0, 4.0), ("eval/length", 0, 5.0)])


def test_tensorboard_run_resumed_mid_way_holds_exactly_the_csv_rows(tiny, tmp_path):
    """The tiny run, resumed from its state of step 100 with --tensorboard on and a stale event file
    of an earlier session: bit-identical CSVs and weights (the curves change nothing), and its event
    files hold each metrics.csv / eval.csv value once."""
    cfg, src = tiny
    run = tmp_path / "run"
    shutil.copytree(src, run)
    for stale in ("resume/step_200.pt", "checkpoints/step_200.pt", "run.json"):
        (run / stale).unlink()
    Curves(run / "tensorboard", [{"env_step": 150, "updates": 1, "q_loss": 123.0}], []).close()
    torch.set_num_threads(1)
    resumed = Run(cfg, run, tensorboard=True)
    resumed.run()
    assert resumed.c.resumed_at == [100]
    for name in ("metrics.csv", "eval.csv"):
        assert (run / name).read_bytes() == (src / name).read_bytes()
    final = [checkpoint.load(r / "checkpoints" / "step_200.pt")["model"] for r in (run, src)]
    assert all(torch.equal(final[0][k], final[1][k]) for k in final[0])
    assert sorted(read_events(run / "tensorboard")) == expected_events(run)


def test_progress_bar_shows_the_last_finished_episode_also_after_resume(tmp_path):
    """An interval in which no episode ends logs train_return NaN; the bar keeps the return of the
    last episode that ended (here summed by hand over the run's own uniform warm-up actions), and a
    resumed run shows it again."""
    params = load_params(small_params(tmp_path, steps=400, initial_random_steps=400))
    cfg = resolve(params, "InvertedPendulum-v2", "direct", 0, "smoke")
    run = Run(cfg, tmp_path / "run")
    (tmp_path / "run").mkdir()
    env, _ = make_env(cfg.env, cfg.seed)
    rng, expected, done = np.random.default_rng(cfg.seed), 0.0, False
    while not done:
        a = rng.uniform(-1.0, 1.0, 1).astype(np.float32)
        _, reward, terminated, truncated, _ = env.step(to_env(env, a))
        expected, done = expected + float(reward), terminated or truncated
    while not run.env_step():
        pass
    run.env_step()  # one step into the next episode, which cannot have ended yet
    run.log()       # its interval ended an episode
    assert run.c.metrics_rows[-1]["train_return"] == expected
    run.env_step()
    run.log()       # this one did not
    assert np.isnan(run.c.metrics_rows[-1]["train_return"])
    assert run.bar_postfix["last_return"] == f"{expected:.1f}"
    run.save_resume()
    again = Run(cfg, tmp_path / "run")
    assert again.try_resume() and again.bar_postfix["last_return"] == f"{expected:.1f}"
