"""The training loop: act, store, update, log, evaluate, checkpoint; resumable bit for bit."""

from __future__ import annotations

import math
import random
import signal
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from iapo import atomic, checkpoint, run_record
from iapo.agent import Agent, Batch
from iapo.config import RunConfig
from iapo.curves import FOLDER as CURVES_FOLDER
from iapo.curves import Curves
from iapo.devices import describe, kind, resolve_device, set_deterministic
from iapo.distributions import gaussian_kl
from iapo.envs import env_dims, get_state, make_env, scale_action, set_state
from iapo.errors import TrainingError
from iapo.evaluation import play_episode
from iapo.provenance import provenance
from iapo.replay import ReplayBuffer
from iapo.run_record import RunRecord
from iapo.seeds import at_step, evaluation_episode

EXIT_PREEMPTED = 143  # 128 + SIGTERM: the job was stopped and saved; rerunning resumes it
KEEP_RESUME = 2       # newest full-state checkpoints kept in DIR/resume/


def last_eval_return(eval_rows: list[dict]) -> float:
    """The mean return of the last evaluation's episodes (eval.csv's rows are in env-step order)."""
    step = eval_rows[-1]["env_step"]
    return float(np.mean([row["return"] for row in eval_rows if row["env_step"] == step]))


def _rows(saved: object, device: torch.device) -> list[torch.Tensor]:
    """Saved rows (a tensor stacked on the CPU; Python floats in states of earlier versions, float64
    values of float32 numbers) as a list of tensors on `device`."""
    if saved is None or (isinstance(saved, list) and not saved):
        return []
    tensor = saved if isinstance(saved, torch.Tensor) else torch.tensor(saved, dtype=torch.float64)
    return list(tensor.to(device).unbind(0))


@dataclass
class Pending:
    """The agent's metrics since the last metrics row, kept on the device until that row is written:
    one stacked row per update (its metrics in `names` order: one kernel, one list entry) and the
    other metrics (the online policy change) by name. `order` is the order in which the metrics
    first came in this interval: the order of the row's columns."""

    names: list[str] = field(default_factory=list)
    rows: list[torch.Tensor] = field(default_factory=list)
    other: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def add_update(self, metrics: dict[str, torch.Tensor]) -> None:
        names = list(metrics)
        if names != self.names:
            for j, name in enumerate(self.names if self.rows else []):  # other metrics now: keep the old
                self.other.setdefault(name, []).extend(row[j] for row in self.rows)
            self.names, self.rows = names, []
        if not self.rows:
            self.order += [name for name in names if name not in self.order]
        self.rows.append(torch.stack(list(metrics.values())))

    def add(self, name: str, value: torch.Tensor) -> None:
        self.other.setdefault(name, []).append(value)
        if name not in self.order:
            self.order.append(name)

    def means(self) -> dict[str, float]:
        """The mean of each metric, in `order`: one device→host copy for all of them. Each mean is
        NumPy's over its values in the order they came, as float64 (as of a list of Python floats)."""
        tensors = [torch.stack(self.rows).reshape(-1)] if self.rows else []
        tensors += [t.reshape(-1) for values in self.other.values() for t in values]
        if not tensors:
            return {}
        host = torch.cat(tensors).cpu().numpy().astype(np.float64)
        table = host[: len(self.rows) * len(self.names)].reshape(len(self.rows), len(self.names))
        start, other = table.size, {}
        for name, values in self.other.items():
            size = sum(t.numel() for t in values)
            other[name], start = host[start:start + size], start + size
        means = {}
        for name in self.order:
            parts = [other[name]] if name in other else []
            if name in self.names and self.rows:
                parts.append(table[:, self.names.index(name)])
            means[name] = float(np.mean(np.concatenate(parts)))
        return means

    def clear(self) -> None:
        self.rows, self.other, self.order = [], {}, []

    def state(self) -> dict:
        """For a resume state: the tensors stacked on the CPU."""
        return {"names": self.names, "rows": torch.stack(self.rows).cpu() if self.rows else None,
                "other": {k: torch.stack(v).cpu() for k, v in self.other.items()}, "order": self.order}

    @classmethod
    def from_state(cls, saved: dict, device: torch.device) -> Pending:
        """Back on `device`; a state of an earlier version holds {name: values} (all as `other`)."""
        if set(saved) == {"names", "rows", "other", "order"}:
            return cls(list(saved["names"]), _rows(saved["rows"], device),
                       {k: _rows(v, device) for k, v in saved["other"].items()}, list(saved["order"]))
        return cls(other={k: _rows(v, device) for k, v in saved.items()}, order=list(saved))


@dataclass
class Counters:
    """Loop state that is not inside the agent, the buffer or the environment."""

    step: int = 0
    episodes: int = 0
    episode_return: float = 0.0
    episode_length: int = 0
    last_return: float | None = None  # of the last episode that ended (the progress bar shows it)
    n_evals: int = 0
    model_pretrained: bool = False
    wall_time: float = 0.0
    finished_returns: list[float] = field(default_factory=list)
    pending: Pending = field(default_factory=Pending)  # the metrics of the next metrics row
    # the current episode's states and the λ = [μ, log σ] the agent acted with (online policy change)
    episode_states: list[list[float]] = field(default_factory=list)
    episode_lams: list[torch.Tensor] = field(default_factory=list)  # rows on the device
    metrics_rows: list[dict] = field(default_factory=list)
    eval_rows: list[dict] = field(default_factory=list)
    resumed_at: list[int] = field(default_factory=list)
    reseeded_at: list[int] = field(default_factory=list)  # resumes on another kind of device

    def state(self) -> dict:
        """As a resume state holds it: the device tensors stacked and on the CPU, so that it loads on
        any device (`from_state` moves them to the training device)."""
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        state["pending"] = self.pending.state()
        state["episode_lams"] = torch.stack(self.episode_lams).cpu() if self.episode_lams else None
        return state

    @classmethod
    def from_state(cls, state: dict, device: torch.device) -> Counters:
        """The counters of a resume state, their tensors on `device`. States of earlier versions hold
        Python floats (float64 values of float32 numbers) where these hold tensors."""
        return cls(**state | {"pending": Pending.from_state(state["pending"], device),
                              "episode_lams": _rows(state["episode_lams"], device)})


class Run:
    """One training run of `cfg` writing into `out` (see `iapo train --help` for the files); with
    `tensorboard`, also its live curves (`iapo.curves`)."""

    def __init__(self, cfg: RunConfig, out: Path, device: torch.device | None = None,
                 tensorboard: bool = False) -> None:
        self.cfg, self.out = cfg, Path(out)
        self.device = torch.device("cpu") if device is None else device
        self.tensorboard, self.curves = tensorboard, None
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        truncated = cfg.training.truncated_obs
        self.env, self.obs = make_env(cfg.env, cfg.seed, truncated_obs=truncated)
        obs_dim, act_dim = env_dims(cfg.env, truncated_obs=truncated)
        self.agent = Agent(cfg, obs_dim, act_dim, self.device)
        self.buffer = ReplayBuffer(obs_dim, act_dim, cfg.training.replay_size, self.device, cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)  # warm-up actions (replay sampling: the buffer's own)
        self.c = Counters()
        self.obs_on_device: torch.Tensor | None = None  # self.obs on the device (`device_obs`)
        self.stop_requested = False
        self.session: tuple[float, float] | None = None  # (perf_counter at its start, wall time before)
        self.bar_postfix: dict[str, str] = {}
        # λ = (μ, σ) of a tanh-Normal: not a flow policy, whose KL has no closed form
        self.tracks_policy_change = self.agent.optimizer.tanh_normal

    # ---------------------------------------------------------------- one environment step
    def env_step(self) -> int:
        """Act, step the environment, store the transition; the episode's length if it ended, else 0."""
        if self.c.step < self.cfg.initial_random_steps:
            action = self.rng.uniform(-1.0, 1.0, self.agent.act_dim).astype(np.float32)
        else:
            on_device, lam = self.agent.act_on_device(self.device_obs())
            action = on_device.cpu().numpy()  # the one device→host copy
            if self.tracks_policy_change:
                self.c.episode_states.append(np.asarray(self.obs, dtype=np.float32).tolist())
                self.c.episode_lams.append(torch.cat([lam.mu[0], lam.log_sigma[0]]))  # stays on the device
        next_obs, reward, terminated, truncated, _ = self.env.step(scale_action(self.env, action))
        # Only a true termination stops bootstrapping; a time-limit truncation does not.
        row = self.buffer.add(self.obs, action, float(reward), next_obs, terminated)  # one host→device copy
        self.c.step += 1
        self.c.episode_return += float(reward)
        self.c.episode_length += 1
        self.obs, self.obs_on_device = next_obs, self.buffer.next_obs(row)
        if not (terminated or truncated):
            return 0
        ended_length = self.c.episode_length
        self.c.finished_returns.append(self.c.episode_return)
        self.c.last_return = self.c.episode_return
        self.c.episodes += 1
        self.c.episode_return, self.c.episode_length = 0.0, 0
        self.obs, _ = self.env.reset()
        self.obs_on_device = None
        return ended_length

    def device_obs(self) -> torch.Tensor:
        """The current state on the device: the s' just stored in the buffer, or (after a reset or a
        resume) a copy of it, as float32 like the buffer's rows."""
        if self.obs_on_device is None:
            self.obs_on_device = torch.as_tensor(np.asarray(self.obs, np.float32), device=self.device)
        return self.obs_on_device.to(self.agent.dtype)

    def updates_due(self, ended_length: int) -> int:
        """Updates after this step: UTD ratio per step, or a burst per episode (original_code.md §1.7)."""
        t = self.cfg.training
        if self.c.step < self.cfg.initial_random_steps:
            return 0
        if t.update_schedule == "per_step":
            return t.updates_per_step
        return t.updates_per_step * ended_length

    def sample(self) -> Batch:
        """A replay batch on the agent's device, in its dtype."""
        return self.buffer.sample(self.cfg.training.batch_size, self.agent.dtype)

    def update(self) -> None:
        if self.agent.model_based and not self.c.model_pretrained:
            try:
                self.pretrain_model()
            except FloatingPointError as err:
                raise self.diverged(err) from err
        self.c.pending.add_update(self.agent.update(self.sample()))  # tensors: no host read

    def check_finite(self) -> None:
        """Stop with TrainingError if a loss was NaN or ±inf since the start (one host read).

        Called before every metrics row and every save: a divergence is caught at most `log_every`
        env steps (`log_every` × updates per step updates) after it happened, and nothing computed
        after it is ever saved."""
        try:
            self.agent.check_finite()
        except FloatingPointError as err:
            raise self.diverged(err) from err

    def diverged(self, err: FloatingPointError) -> TrainingError:
        newest = checkpoint.by_step(self.out / "resume")
        last = f"{newest[0][1]} (env step {newest[0][0]})" if newest else "none yet"
        return TrainingError(
            f"training diverged: {err} (found at env step {self.c.step}). Nothing was saved after it; "
            f"the last good checkpoint is {last}. Rerunning with the same seed and settings repeats "
            "the divergence: change the seed or the settings (e.g. lr, β)."
        )

    def record_policy_change(self) -> None:
        """Online policy change rate (Fig. 3b; original_code.md §6, `agent_kl`): the mean, over the states
        of the episode that just ended, of KL(π_old ‖ π_new), π_old the λ the agent acted with, π_new its λ
        now, after the updates that followed (analytic Gaussian KL, summed over dimensions); logged
        as `policy_kl`. The agent's random numbers are forked: training is the same without it."""
        c = self.c
        if c.episode_states:
            obs = torch.tensor(c.episode_states, dtype=self.agent.dtype, device=self.device)
            old = torch.stack(c.episode_lams).to(self.agent.dtype)
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                new = self.agent.policy(obs)
            mu_old, log_sigma_old = old.split(self.agent.act_dim, dim=-1)
            kl = gaussian_kl(mu_old, log_sigma_old, new.mu, new.log_sigma).mean()
            c.pending.add("policy_kl", kl)
        c.episode_states, c.episode_lams = [], []

    def pretrain_model(self) -> None:
        """A.5: model-only updates on the warm-up data, once, before the first agent update."""
        n = self.cfg.model_based.pretrain_updates
        batches = (self.sample() for _ in range(n))
        metrics = self.agent.pretrain_model(batches)
        self.c.model_pretrained = True
        print(f"model pre-trained: {n} updates, " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()),
              file=sys.stderr)

    # ---------------------------------------------------------------- logging and evaluation
    def log(self) -> None:
        """One metrics row: means over the interval since the previous row."""
        self.check_finite()
        returns = self.c.finished_returns
        row = {
            "env_step": self.c.step, "updates": self.agent.n_updates, "episodes": self.c.episodes,
            "train_return": float(np.mean(returns)) if returns else math.nan,
        } | self.c.pending.means()
        self.c.metrics_rows.append(row)
        self.show_last_return()
        self.c.pending.clear()
        self.c.finished_returns = []
        atomic.write_rows(self.out / "metrics.csv", self.c.metrics_rows)
        if self.curves is not None:
            self.curves.metrics(row)

    def show_last_return(self) -> None:
        """The progress bar's `last_return`: the return of the last episode that ended (the interval
        mean of metrics.csv is NaN when an episode outlasts a log interval)."""
        if self.c.last_return is not None:
            self.bar_postfix["last_return"] = f"{self.c.last_return:.1f}"

    def evaluate(self) -> float:
        """Deterministic episodes (tanh μ) on separate, freshly seeded environments (`play_episode`)."""
        rows = []
        for episode in range(self.cfg.eval_episodes):
            seed = evaluation_episode(self.cfg.seed, self.c.n_evals, episode)
            played = play_episode(self.agent, seed, deterministic=True)
            rows.append({"env_step": self.c.step, "updates": self.agent.n_updates,
                         "episode": episode, "return": played.total, "length": played.length})
        self.c.eval_rows += rows
        self.c.n_evals += 1
        atomic.write_rows(self.out / "eval.csv", self.c.eval_rows)
        if self.curves is not None:
            self.curves.evaluation(rows)
        return float(np.mean([row["return"] for row in rows]))

    # ---------------------------------------------------------------- checkpoints
    def save_snapshot(self) -> None:
        """checkpoints/step_<N>.pt: the agent and its settings, what the diagnostics read."""
        self.check_finite()
        checkpoint.save(self.agent.snapshot(self.c.step), self.out / "checkpoints" / f"step_{self.c.step}.pt")

    def save_resume(self) -> None:
        """resume/step_<N>.pt: everything needed to continue exactly; keeps the newest two."""
        self.check_finite()
        self.clock()  # the wall time so far goes into every resume state
        state = {
            "params_hash": self.cfg.params_hash(), "counters": self.c.state(),
            "agent": self.agent.training_state(), "replay": self.buffer.state_dict(),
            "env": get_state(self.env), "obs": self.obs, "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
            # the training device's CUDA generator only: a run saved on a node with several GPUs resumes
            # wherever Slurm puts it, with however many GPUs that node shows
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "device": describe(self.device),
        }
        folder = self.out / "resume"
        checkpoint.save(state, folder / f"step_{self.c.step}.pt")
        for _, old in checkpoint.by_step(folder)[KEEP_RESUME:]:
            old.unlink(missing_ok=True)

    def try_resume(self) -> bool:
        """Restore the newest valid resume checkpoint, if any; skip (and report) corrupt ones."""
        # to the CPU: the RNG states must stay CPU byte tensors; load_training_state moves the rest
        found = checkpoint.load_newest_valid(self.out / "resume", "cpu",
                                             warn=lambda m: print(m, file=sys.stderr))
        if found is None:
            return False
        step, state = found
        if state["params_hash"] != self.cfg.params_hash():
            raise TrainingError(
                f"{self.out}: holds a run with other settings (params hash {state['params_hash']} "
                f"!= {self.cfg.params_hash()}). Use another --out, or delete that folder to restart."
            )
        saved_on, here = kind(state.get("device")), kind(describe(self.device))
        if saved_on not in (here, "unknown"):
            print(f"note: {self.out} was saved on {saved_on} and resumes on {here}: training goes on "
                  "correctly, but the random streams and rounding differ from here on, so the run is "
                  "no longer bit-identical to an uninterrupted one", file=sys.stderr)
        self.c = Counters.from_state(state["counters"], self.device)
        self.agent.load_training_state(state["agent"])
        reseeded = self.buffer.load_state_dict(state["replay"])
        set_state(self.env, state["env"])
        self.obs = state["obs"]
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        reseeded |= self.restore_cuda_rng(state["cuda_rng"], step)
        if reseeded:
            self.c.reseeded_at.append(step)
            print(f"note: the random streams of the replay sampling and of CUDA could not carry over from "
                  f"{saved_on} to {here}; reseeded from the run's seed at env step {step} (recorded in "
                  "run.json as rng_reseeded_at)", file=sys.stderr)
        self.c.resumed_at.append(step)
        # Rows written after the checkpoint are dropped: the CSVs restart from the saved rows.
        atomic.write_rows(self.out / "metrics.csv", self.c.metrics_rows)
        atomic.write_rows(self.out / "eval.csv", self.c.eval_rows)
        self.show_last_return()
        if self.c.eval_rows:  # as the bar showed it
            self.bar_postfix["eval_return"] = f"{last_eval_return(self.c.eval_rows):.1f}"
        return True

    def restore_cuda_rng(self, saved: object, step: int) -> bool:
        """The training device's CUDA generator from a resume state; True if it had to be reseeded
        (a state from the CPU, or none for this device). States of earlier versions hold a list, one
        per visible GPU: the one of this device's index, if there is one."""
        if self.device.type != "cuda":
            return False
        if isinstance(saved, list | tuple):
            index = self.device.index or 0
            saved = saved[index] if index < len(saved) else None
        if isinstance(saved, torch.Tensor) and saved.numel() == torch.cuda.get_rng_state(self.device).numel():
            torch.cuda.set_rng_state(saved.cpu(), self.device)
            return False
        torch.cuda.manual_seed(at_step(self.cfg.seed, step))
        return True

    # ---------------------------------------------------------------- the loop
    def run(self) -> dict:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        resumed = self.try_resume()  # refuses another run's folder before anything in it changes
        (self.out / "run.json").unlink(missing_ok=True)  # the completion marker comes last
        where = f"resumed at env step {self.c.step}" if resumed else "new run"
        print(f"iapo train {cfg.env} {cfg.variant} seed {cfg.seed} ({cfg.scale}, {cfg.steps} "
              f"steps, {where}) -> {self.out}/", file=sys.stderr)
        if self.tensorboard:  # the curves so far, from the saved rows; then live
            self.curves = Curves(self.out / CURVES_FOLDER, self.c.metrics_rows, self.c.eval_rows)
            print(f"live curves: tensorboard --logdir {self.out / CURVES_FOLDER}", file=sys.stderr)
        if not resumed:
            self.evaluate()
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        start, start_step = time.perf_counter(), self.c.step
        self.session = (start, self.c.wall_time)
        bar = tqdm(total=cfg.steps, initial=self.c.step, unit="step", file=sys.stderr,
                   mininterval=1.0 if sys.stderr.isatty() else 30.0, dynamic_ncols=True)
        bar.set_postfix(self.bar_postfix, refresh=False)  # a resumed run's, until the next log
        try:
            while self.c.step < cfg.steps:
                ended = self.env_step()
                for _ in range(self.updates_due(ended)):
                    self.update()
                if ended:
                    self.record_policy_change()
                self._after_step(bar)
                if self.stop_requested:
                    self.save_resume()
                    print(f"SIGTERM: saved {self.out}/resume/step_{self.c.step}.pt; rerun the same "
                          "command to continue", file=sys.stderr)
                    raise SystemExit(EXIT_PREEMPTED)
        finally:
            bar.close()
            signal.signal(signal.SIGTERM, previous)
            if self.curves is not None:
                self.curves.close()
        elapsed = time.perf_counter() - start
        self.clock()
        info = self.finish((self.c.step - start_step) / max(elapsed, 1e-9))
        print(f"done: {self.out}/ (metrics.csv, eval.csv, checkpoints/, run.json)", file=sys.stderr)
        return info

    def _after_step(self, bar: tqdm) -> None:
        cfg, step = self.cfg, self.c.step
        last = step == cfg.steps  # the run's final policy is always logged and evaluated
        log_due, eval_due = step % cfg.log_every == 0 or last, step % cfg.eval_every == 0 or last
        if log_due:
            self.log()
        if eval_due:
            self.bar_postfix["eval_return"] = f"{self.evaluate():.1f}"
        if log_due or eval_due:
            bar.set_postfix(self.bar_postfix, refresh=False)
        if step in cfg.checkpoint_steps:
            self.save_snapshot()
        if step % cfg.resume_every == 0 or step in cfg.checkpoint_steps or step == cfg.steps:
            self.save_resume()
        bar.update(1)

    def clock(self) -> None:
        """Bring the run's wall time up to now: earlier sessions' (restored with the counters) plus this
        session's so far, so that it adds up across restarts whenever the process stops."""
        if self.session is not None:
            start, before = self.session
            self.c.wall_time = before + (time.perf_counter() - start)

    def _on_sigterm(self, signum: int, frame: object) -> None:
        self.stop_requested = True

    def finish(self, steps_per_s: float) -> dict:
        """run.json, written last and atomically: its presence marks a complete run."""
        final = last_eval_return(self.c.eval_rows)
        info = provenance(self.device) | describe(self.device) | {
            "env": self.cfg.env, "variant": self.cfg.variant, "seed": self.cfg.seed,
            "scale": self.cfg.scale, "steps": self.c.step, "updates": self.agent.n_updates,
            "episodes": self.c.episodes, "params_hash": self.cfg.params_hash(),
            "final_eval_return": final, "wall_time_s": round(self.c.wall_time, 2),
            "env_steps_per_s_last_session": round(steps_per_s, 2),
            "resumed_at": self.c.resumed_at, "rng_reseeded_at": self.c.reseeded_at,
            "threads": torch.get_num_threads(),
            "config": self.cfg.to_dict(),
        }
        run_record.write(self.out, info)
        return info


def train(
    cfg: RunConfig, out: str | Path, device: str | torch.device = "cpu", threads: int = 1,
    deterministic: bool = False, tensorboard: bool = False,
) -> dict:
    """Train one agent; resume from `out/resume/` if a previous attempt stopped part-way. With
    `tensorboard`, also write its live curves into `out/tensorboard/`."""
    torch.set_num_threads(threads)
    resolved = resolve_device(device)  # DeviceError (exit 2) before anything is written
    if cfg.training.graphs == "on" and resolved.type != "cuda":
        print(f"note: training.graphs: on captures CUDA graphs on a CUDA device only; on {resolved} the "
              "update and acting run eagerly (the same computation)", file=sys.stderr)
    done = finished_run(cfg, Path(out))
    if done is not None:
        print(f"iapo train {cfg.env} {cfg.variant} seed {cfg.seed}: already finished ({Path(out)}/run.json, "
              f"{done['steps']} steps, same settings): nothing to do, no file touched", file=sys.stderr)
        return done
    if deterministic:
        set_deterministic()
    return Run(cfg, Path(out), resolved, tensorboard).run()


def finished_run(cfg: RunConfig, out: Path) -> dict | None:
    """The run.json of this very run if it finished (same settings, every step, its logs present);
    None otherwise (absent, unreadable, other settings, or part-way)."""
    try:
        record = RunRecord.read(out)
    except (OSError, ValueError):
        return None
    same = record.params_hash == cfg.params_hash() and record.steps == cfg.steps
    logs = all((out / name).is_file() for name in ("metrics.csv", "eval.csv"))
    return record.model_dump() if same and logs else None
