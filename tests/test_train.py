"""Training runs for real: exact resume after SIGKILL / SIGTERM, corrupt checkpoints, NaN, learning."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from iapo import checkpoint
from iapo.config import load_params, resolve
from iapo.envs import make_env, scale_action
from iapo.train import EXIT_PREEMPTED, Run, TrainingError
from tests.conftest import small_params

ROOT = Path(__file__).resolve().parents[1]
IAPO = str(Path(sys.executable).with_name("iapo"))


def train_cmd(params: Path, out: Path, variant: str = "direct", env: str = "InvertedPendulum-v2"):
    return [IAPO, "--params", str(params), "train", "--env", env, "--variant", variant,
            "--scale", "smoke", "--seed", "3", "--out", str(out), "--threads", "1"]


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    start = time.time()
    while not path.exists():
        assert proc.poll() is None, f"training ended before {path} appeared"
        assert time.time() - start < timeout, f"{path} did not appear in {timeout} s"
        time.sleep(0.05)


def assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical logs and final weights."""
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()
    assert (a / "eval.csv").read_bytes() == (b / "eval.csv").read_bytes()
    final_a, final_b = (checkpoint.load(p / "checkpoints" / "step_400.pt")["model"] for p in (a, b))
    assert final_a.keys() == final_b.keys()
    for key in final_a:
        assert torch.equal(final_a[key], final_b[key]), key


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Uninterrupted runs, one per variant, to compare resumed runs against."""
    tmp = tmp_path_factory.mktemp("reference")
    params = small_params(tmp)
    runs = {}
    for variant in ("direct", "iterative"):
        out = tmp / variant
        subprocess.run(train_cmd(params, out, variant), check=True, cwd=tmp, capture_output=True)
        runs[variant] = (params, out)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["direct", "iterative"])
def test_sigkill_then_resume_is_bit_identical(reference_runs, tmp_path, variant):
    params, reference = reference_runs[variant]
    out = tmp_path / "run"
    proc = subprocess.Popen(train_cmd(params, out, variant), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(out / "resume" / "step_200.pt", proc)
    time.sleep(0.3)  # somewhere after it: mid-episode, mid-interval
    proc.kill()
    proc.wait()
    assert not (out / "run.json").exists()
    # every resume state carries the wall time so far, so a killed session's time is not lost
    step, state = checkpoint.load_newest_valid(out / "resume", "cpu")
    before = state["counters"]["wall_time"]
    assert before > 0, f"the resume state of step {step} records no wall time"
    done = subprocess.run(train_cmd(params, out, variant), cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"resumed at env step {step}" in done.stderr
    assert_same_run(out, reference)
    info = json.loads((out / "run.json").read_text())
    assert info["resumed_at"] == [step] and info["wall_time_s"] > before  # the sessions add up


@pytest.mark.slow
def test_rerunning_a_finished_run_touches_nothing(reference_runs, tmp_path):
    """`iapo train` (or `dvc repro`) on a finished run is a no-op: every file of the run folder keeps
    its bytes and its modification time, so no pipeline downstream of it is replanned."""
    import shutil

    params, reference = reference_runs["direct"]
    out = tmp_path / "run"
    shutil.copytree(reference, out)  # copy2: modification times kept

    def files() -> dict[str, tuple[int, bytes]]:
        return {str(p.relative_to(out)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).digest())
                for p in sorted(out.rglob("*")) if p.is_file()}

    before = files()
    done = subprocess.run(train_cmd(params, out), cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "already finished" in done.stderr and "nothing to do" in done.stderr
    assert files() == before
    # other settings in the same folder (another variant) are refused, not mistaken for the finished
    # run, and its completion marker stays
    refused = subprocess.run(train_cmd(params, out, "iterative"), cwd=tmp_path, capture_output=True,
                             text=True)
    assert refused.returncode == 2 and "other settings" in refused.stderr
    assert files() == before


@pytest.mark.slow
def test_sigterm_saves_mid_run_and_resumes_exactly(reference_runs, tmp_path):
    params, reference = reference_runs["direct"]
    out = tmp_path / "run"
    proc = subprocess.Popen(train_cmd(params, out), cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    wait_for(out / "resume" / "step_200.pt", proc)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_PREEMPTED, err
    saved = checkpoint.by_step(out / "resume")[0][0]
    assert saved > 200 and f"step_{saved}.pt" in err
    assert not (out / "run.json").exists()
    done = subprocess.run(train_cmd(params, out), cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"resumed at env step {saved}" in done.stderr
    assert_same_run(out, reference)


@pytest.mark.slow
def test_corrupt_newest_checkpoint_falls_back_to_previous(reference_runs, tmp_path):
    params, reference = reference_runs["direct"]
    out = tmp_path / "run"
    proc = subprocess.Popen(train_cmd(params, out), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(out / "resume" / "step_300.pt", proc)
    proc.kill()
    proc.wait()
    newest = out / "resume" / "step_300.pt"
    newest.write_bytes(newest.read_bytes()[:-1000])  # truncated, as by a full disk
    done = subprocess.run(train_cmd(params, out), cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "step_300.pt" in done.stderr and "truncated or corrupt" in done.stderr
    assert "resumed at env step 200" in done.stderr
    assert_same_run(out, reference)


def test_nan_stops_with_clear_message_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    params = load_params(small_params(tmp_path, steps=300))
    cfg = resolve(params, "InvertedPendulum-v2", "direct", 0, "smoke")
    run = Run(cfg, tmp_path / "run")
    real_update = run.agent.critic_loss

    def poisoned(batch):
        loss, metrics = real_update(batch)
        return (loss * torch.nan if run.agent.n_updates >= 60 else loss), metrics

    monkeypatch.setattr(run.agent, "critic_loss", poisoned)
    with pytest.raises(TrainingError, match="diverged") as err:
        run.run()
    # found on the device at the next log (env step 250), named with the update it happened at
    assert "not finite at update 61" in str(err.value) and "q_loss nan" in str(err.value)
    assert "found at env step 250" in str(err.value)
    assert "resume/step_200.pt" in str(err.value)          # the last good checkpoint, by name
    assert not (tmp_path / "run" / "run.json").exists()    # not marked complete
    assert checkpoint.load(tmp_path / "run" / "resume" / "step_200.pt")["counters"]["step"] == 200


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    params = load_params(small_params(tmp_path, steps=120, initial_random_steps=200))
    out = tmp_path / "run"
    Run(resolve(params, "InvertedPendulum-v2", "direct", 0, "smoke"), out).run()
    other = resolve(params, "InvertedPendulum-v2", "iterative", 0, "smoke")
    with pytest.raises(TrainingError, match="other settings"):
        Run(other, out).run()


def test_a_resume_saved_on_a_gpu_continues_on_the_cpu(tmp_path, capsys):
    """A resume state written on a CUDA device (16-byte generator states; a list of per-GPU CUDA
    states, as earlier versions saved) resumes on the CPU: the replay stream is reseeded from the
    run's seed, the message and run.json say where, and training finishes."""
    params = load_params(small_params(tmp_path, steps=120, initial_random_steps=200))
    cfg = resolve(params, "InvertedPendulum-v2", "direct", 0, "smoke")
    out = tmp_path / "run"
    Run(cfg, out).run()
    step, state = checkpoint.load_newest_valid(out / "resume", "cpu")
    state["device"] = state["device"] | {"device": "cuda:1", "device_kind": "cuda", "gpu_name": "H100"}
    state["replay"] |= {"generator": torch.zeros(16, dtype=torch.uint8), "generator_kind": "cuda"}
    state["cuda_rng"] = [torch.zeros(16, dtype=torch.uint8)] * 2
    checkpoint.save(state, out / "resume" / f"step_{step}.pt")
    (out / "run.json").unlink()
    capsys.readouterr()
    info = Run(cfg, out).run()
    err = capsys.readouterr().err
    assert "saved on cuda (H100) and resumes on cpu" in err and "reseeded from the run's seed" in err
    assert info["rng_reseeded_at"] == [step] and info["resumed_at"] == [step]
    assert json.loads((out / "run.json").read_text())["rng_reseeded_at"] == [step]


def test_outputs_and_provenance(tmp_path):
    params = load_params(small_params(tmp_path, steps=220, initial_random_steps=150))
    cfg = resolve(params, "InvertedPendulum-v2", "iterative", 0, "smoke")
    Run(cfg, tmp_path / "run").run()
    out = tmp_path / "run"
    metrics = pd.read_csv(out / "metrics.csv")
    # every log_every steps, and the final step although 220 is not a multiple of 50
    assert list(metrics.env_step) == [50, 100, 150, 200, 220]
    for col in ("q_loss", "q1", "q2", "sigma_q", "alpha", "entropy", "J", "J_iter0", "J_iter5"):
        assert col in metrics.columns
    # updates start once the 150 random transitions are stored: steps 150…200
    assert metrics.loc[metrics.env_step == 200, "updates"].item() == 51
    assert metrics.loc[metrics.env_step == 220, "updates"].item() == 71
    evals = pd.read_csv(out / "eval.csv")
    assert set(evals.env_step) == {0, 200, 220}  # the final policy is evaluated too
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_200.pt", "step_220.pt"]
    info = json.loads((out / "run.json").read_text())
    for key in ("git_commit", "params_hash", "versions", "machine", "device", "seed", "wall_time_s",
                "env_steps_per_s_last_session"):
        assert key in info
    assert info["versions"]["torch"].startswith("2.13.0")
    lock = (ROOT / "requirements" / "lock.txt").read_bytes()
    assert info["lock"] == {"sha256": hashlib.sha256(lock).hexdigest(), "matches": True}


def test_online_policy_change_leaves_training_unchanged(tmp_path):
    """`policy_kl` (Fig. 3b, logged per episode) re-runs the iterative optimizer on the episode's
    states with forked random numbers: the same run without it has bit-identical weights and logs."""
    params = load_params(small_params(tmp_path, steps=260, initial_random_steps=150, log_every=65,
                                      eval_every=260, checkpoint_steps=[260], resume_every=260))
    cfg = resolve(params, "InvertedPendulum-v2", "iterative", 0, "smoke")
    with_kl = Run(cfg, tmp_path / "with")  # a Run seeds the process's generators: one at a time
    with_kl.run()
    without = Run(cfg, tmp_path / "without")
    without.tracks_policy_change = False
    without.run()
    kl = pd.read_csv(tmp_path / "with" / "metrics.csv")["policy_kl"].dropna()
    assert len(kl) >= 2 and (kl >= 0).all() and kl.max() > 0  # iterative λ is stochastic: KL > 0
    assert "policy_kl" not in pd.read_csv(tmp_path / "without" / "metrics.csv")
    assert (tmp_path / "with" / "eval.csv").read_bytes() == (tmp_path / "without" / "eval.csv").read_bytes()
    final = [checkpoint.load(r.out / "checkpoints" / "step_260.pt")["model"] for r in (with_kl, without)]
    assert all(torch.equal(final[0][k], final[1][k]) for k in final[0])


def test_online_policy_change_is_zero_when_the_policy_does_not_move(tmp_path):
    """Direct λ is a function of the state: with lr ≈ 0 (1e-30) nothing changes and the KL is 0 (to float
    precision); with the paper's lr it is positive. Hand check of one episode's value."""
    def run(lr: float, out: str) -> Run:
        params = small_params(tmp_path / out, steps=240, initial_random_steps=150, log_every=60,
                              eval_every=240, checkpoint_steps=[240], resume_every=240)
        raw = yaml.safe_load(params.read_text())
        raw["training"]["lr"] = lr
        params.write_text(yaml.safe_dump(raw))
        cfg = resolve(load_params(params), "InvertedPendulum-v2", "direct", 0, "smoke")
        r = Run(cfg, tmp_path / out / "run")
        r.run()
        return r

    (tmp_path / "frozen").mkdir()
    (tmp_path / "learning").mkdir()
    frozen, learning = run(1e-30, "frozen"), run(3e-4, "learning")  # lr must be > 0
    kl_frozen = pd.read_csv(frozen.out / "metrics.csv")["policy_kl"].dropna()
    kl_learning = pd.read_csv(learning.out / "metrics.csv")["policy_kl"].dropna()
    assert len(kl_frozen) >= 2 and kl_frozen.abs().max() < 1e-6
    assert kl_learning.max() > 1e-4
    # by hand: λ of the agent now on two states against a shifted λ
    obs = torch.zeros(2, 4)
    lam = learning.agent.policy(obs)
    learning.c.episode_states = obs.tolist()
    learning.c.episode_lams = list(torch.cat([lam.mu + 0.1, lam.log_sigma - 0.2], -1))
    learning.c.pending.clear()
    learning.record_policy_change()
    p = torch.distributions.Normal(lam.mu + 0.1, (lam.log_sigma - 0.2).exp())
    q = torch.distributions.Normal(lam.mu, lam.log_sigma.exp())
    expected = torch.distributions.kl_divergence(p, q).sum(-1).mean().item()
    assert learning.c.pending.means() == {"policy_kl": pytest.approx(expected, rel=1e-5)}
    assert learning.c.episode_states == [] and learning.c.episode_lams == []


def baseline_return(policy: str, episodes: int = 5) -> float:
    """InvertedPendulum return of a zero-action or uniform-random policy (what a broken agent gets)."""
    rng, returns = np.random.default_rng(0), []
    for seed in range(episodes):
        env, _ = make_env("InvertedPendulum-v2", 100 + seed)
        total, done = 0.0, False
        while not done:
            a = np.zeros(1) if policy == "zero" else rng.uniform(-1, 1, 1)
            _, r, terminated, truncated, _ = env.step(scale_action(env, a))
            total, done = total + r, terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


@pytest.mark.slow
def test_direct_sac_learns_inverted_pendulum(tmp_path):
    """3000 env steps (2000 updates): far above what a zero or random policy can reach."""
    params = load_params(small_params(
        tmp_path, steps=3000, initial_random_steps=1000, eval_every=1000, eval_episodes=3,
        log_every=500, checkpoint_steps=[3000], resume_every=3000,
    ))
    cfg = resolve(params, "InvertedPendulum-v2", "direct", 0, "smoke")
    info = Run(cfg, tmp_path / "run").run()
    broken = max(baseline_return("zero"), baseline_return("random"))
    assert broken < 40
    assert info["final_eval_return"] > 2.5 * broken, (info["final_eval_return"], broken)
    assert os.path.exists(tmp_path / "run" / "checkpoints" / "step_3000.pt")


def test_counters_round_trip_through_a_resume_state_and_read_states_of_earlier_versions() -> None:
    """The loop's pending metrics (a row per update, the policy change by name) and λ rows are saved
    stacked on the CPU and come back as tensors on the training device; states of earlier versions,
    which held Python floats by name, load to the same means."""
    from iapo.train import Counters, Pending

    c = Counters(step=7, episode_lams=[torch.tensor([0.1, -1.0]), torch.tensor([0.2, -2.0])])
    c.pending.add("policy_kl", torch.tensor(0.125))
    for q, a in ((0.5, 1.0), (0.25, 3.0)):
        c.pending.add_update({"q_loss": torch.tensor(q), "alpha": torch.tensor(a)})
    assert c.pending.means() == {"policy_kl": 0.125, "q_loss": 0.375, "alpha": 2.0}  # first-seen order
    state = c.state()
    assert state["pending"]["rows"].equal(torch.tensor([[0.5, 1.0], [0.25, 3.0]]))
    assert state["episode_lams"].shape == (2, 2) and state["episode_lams"].device.type == "cpu"
    back = Counters.from_state(state, torch.device("cpu"))
    assert back.step == 7 and back.pending.means() == c.pending.means()
    assert list(back.pending.means()) == ["policy_kl", "q_loss", "alpha"]
    assert torch.stack(back.episode_lams).equal(torch.stack(c.episode_lams))
    old = state | {"pending": {"q_loss": [0.5, 0.25], "policy_kl": [0.125]},
                   "episode_lams": [[0.1, -1.0], [0.2, -2.0]]}
    older = Counters.from_state(old, torch.device("cpu"))
    older.pending.add_update({"q_loss": torch.tensor(1.25), "alpha": torch.tensor(2.0)})  # goes on after it
    assert older.pending.means() == {"q_loss": pytest.approx((0.5 + 0.25 + 1.25) / 3), "policy_kl": 0.125,
                                     "alpha": 2.0}
    assert torch.stack(older.episode_lams).float().equal(torch.stack(c.episode_lams))
    empty = Counters.from_state(Counters().state() | {"episode_lams": []}, torch.device("cpu"))
    assert empty.pending == Pending() and empty.episode_lams == []
