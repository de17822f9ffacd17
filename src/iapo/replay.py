"""Replay buffer of transitions (s, a, r, s', d), FIFO, sampled uniformly (Table 7; SAC [32])."""

from __future__ import annotations

import numpy as np
import torch

from iapo.agent import Batch


class ReplayBuffer:
    """Fixed-capacity ring buffer in float32 numpy arrays; `d` marks true terminations only."""

    def __init__(self, obs_dim: int, act_dim: int, capacity: int) -> None:
        self.capacity, self.size, self.ptr = capacity, 0, 0
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros((capacity, act_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, np.float32)

    def __len__(self) -> int:
        return self.size

    def add(
        self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
        terminated: bool,
    ) -> None:
        i = self.ptr
        self.obs[i], self.action[i], self.reward[i] = obs, action, reward
        self.next_obs[i], self.done[i] = next_obs, float(terminated)
        self.ptr = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(
        self, batch_size: int, rng: np.random.Generator, device: torch.device,
        dtype: torch.dtype = torch.float32,
    ) -> Batch:
        """B transitions drawn uniformly with replacement from what is stored, as `dtype` on `device`."""
        idx = rng.integers(0, self.size, size=batch_size)

        def put(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(x[idx]).to(device, dtype)

        return Batch(put(self.obs), put(self.action), put(self.reward), put(self.next_obs),
                     put(self.done))

    _FIELDS = ("obs", "next_obs", "action", "reward", "done")

    def state_dict(self) -> dict:
        """The stored part only (a checkpoint does not carry the empty capacity)."""
        arrays = {k: getattr(self, k)[: self.size].copy() for k in self._FIELDS}
        return {"capacity": self.capacity, "size": self.size, "ptr": self.ptr} | arrays

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"replay capacity {state['capacity']} != configured {self.capacity}")
        self.size, self.ptr = state["size"], state["ptr"]
        for k in self._FIELDS:
            getattr(self, k)[: self.size] = state[k]
