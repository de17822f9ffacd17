"""Replay buffer of transitions (s, a, r, s', d), FIFO, sampled uniformly (Table 7; SAC [32])."""

from __future__ import annotations

import numpy as np
import torch

from iapo.agent import Batch
from iapo.seeds import at_step


class ReplayBuffer:
    """Fixed-capacity ring buffer on the training device; `d` marks true terminations only.

    One float32 row [s, a, r, s', d] per transition, so storing a step is one host→device copy;
    batches are drawn on the device by its own generator (seeded from the run's seed, saved in
    the resume state), so sampling reads nothing back to the host. With `stage` (the default on
    CUDA) the row goes through one pinned staging row and is copied without blocking the host,
    which steps the environment meanwhile; the next row waits for that copy before it reuses the
    staging row.
    """

    def __init__(
        self, obs_dim: int, act_dim: int, capacity: int, device: str | torch.device = "cpu", seed: int = 0,
        stage: bool | None = None,
    ) -> None:
        self.obs_dim, self.act_dim, self.capacity = obs_dim, act_dim, capacity
        self.device = torch.device(device)
        self.rows = torch.zeros(capacity, 2 * obs_dim + act_dim + 2, dtype=torch.float32, device=self.device)
        self.seed = seed
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.ptr, self.size = 0, 0
        self._staging: torch.Tensor | None = None
        self._staged: torch.cuda.Event | None = None  # recorded after the staging row's last copy
        if self.device.type == "cuda" if stage is None else stage:
            pinned = self.device.type == "cuda"
            self._staging = torch.empty(self.rows.shape[1], dtype=torch.float32, pin_memory=pinned)
            self._staged = torch.cuda.Event() if pinned else None
        s, n = obs_dim, act_dim  # the columns of a row, computed once (read on every step)
        self._columns = {"obs": slice(0, s), "action": slice(s, s + n), "reward": slice(s + n, s + n + 1),
                         "next_obs": slice(s + n + 1, 2 * s + n + 1),
                         "done": slice(2 * s + n + 1, 2 * s + n + 2)}

    def add(
        self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
        terminated: bool,
    ) -> int:
        """Store one transition (one host→device copy); returns its row."""
        row = np.concatenate([np.asarray(obs, np.float32), np.asarray(action, np.float32),
                              np.float32([reward]), np.asarray(next_obs, np.float32),
                              np.float32([float(terminated)])])
        i = self.ptr
        if self._staging is None:
            self.rows[i].copy_(torch.from_numpy(row))
        else:
            if self._staged is not None:
                self._staged.synchronize()  # the previous row's copy has read the staging row
            self._staging.numpy()[:] = row
            self.rows[i].copy_(self._staging, non_blocking=True)
            if self._staged is not None:
                self._staged.record(torch.cuda.current_stream(self.device))
        self.ptr = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return i

    def next_obs(self, i: int) -> torch.Tensor:
        """s' of row i, a view on the device (valid until that row is overwritten)."""
        return self.rows[i, self._columns["next_obs"]]

    def sample(self, batch_size: int, dtype: torch.dtype = torch.float32) -> Batch:
        """B transitions drawn uniformly with replacement from what is stored, as `dtype`."""
        idx = torch.randint(0, self.size, (batch_size,), generator=self.generator, device=self.device)
        rows = self.rows[idx].to(dtype)
        c = self._columns
        return Batch(rows[:, c["obs"]], rows[:, c["action"]], rows[:, c["reward"]].view(-1),
                     rows[:, c["next_obs"]], rows[:, c["done"]].view(-1))

    _FIELDS = ("obs", "next_obs", "action", "reward", "done")

    def state_dict(self) -> dict:
        """The stored part only (a checkpoint does not carry the empty capacity), as CPU numpy
        arrays, and the sampling generator's state: a state written on any device loads on any."""
        stored = self.rows[: self.size].cpu().numpy()
        arrays = {k: stored[:, c].copy() for k, c in self._columns.items()}
        arrays["reward"], arrays["done"] = arrays["reward"].reshape(-1), arrays["done"].reshape(-1)
        return {"capacity": self.capacity, "size": self.size, "ptr": self.ptr,
                "generator": self.generator.get_state(), "generator_kind": self.device.type} | arrays

    def load_state_dict(self, state: dict) -> bool:
        """Restore a saved state; True if the sampling stream had to be reseeded instead: a generator
        state is specific to its device kind (16 bytes on CUDA, 5056 on the CPU), so a state saved on
        another kind reseeds this one from the run's seed and the number of stored rows (the same
        numbers on every resume at that point, so still reproducible, not bit-identical to staying)."""
        if state["capacity"] != self.capacity:
            raise ValueError(f"replay capacity {state['capacity']} != configured {self.capacity}")
        self.size, self.ptr = state["size"], state["ptr"]
        stored = np.concatenate([np.asarray(state[k], np.float32).reshape(self.size, -1)
                                 for k in ("obs", "action", "reward", "next_obs", "done")], axis=1)
        self.rows[: self.size].copy_(torch.from_numpy(stored))
        saved = state.get("generator")
        if saved is None:  # states of versions that sampled with NumPy: a fresh stream
            return False
        saved_kind = state.get("generator_kind") or ("cuda" if saved.numel() == 16 else "cpu")
        if saved_kind != self.device.type:
            self.generator.manual_seed(at_step(self.seed, self.size))
            return True
        self.generator.set_state(saved.cpu())
        return False

