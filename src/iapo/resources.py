"""What one training job asks of a cluster, derived from the run's own settings.

Memory: the process itself (torch, the CUDA context, MuJoCo, the networks: `BASE_GIB`) plus
`REPLAY_COPIES` copies of the replay buffer: the live buffer (in host memory on the CPU path), and
up to four more while a resume state is written (device → host, one array per field, the
serialised bytes) or read back. Rounded up to steps of `STEP_GIB`. Humanoid-class tasks
(348-dimensional states in gymnasium's -v5, 1 M transitions: 2.9 GB per copy) get 32 GiB, Ant
24 GiB, the other tasks 20 GiB.
"""

from __future__ import annotations

import functools
import math

from iapo.config import RunConfig
from iapo.envs import env_dims

GIB = 1024**3
BASE_GIB = 16
REPLAY_COPIES = 5
STEP_GIB = 4


def replay_bytes(obs_dim: int, act_dim: int, capacity: int) -> int:
    """float32 rows [s, a, r, s', d] of the replay buffer (`iapo.replay.ReplayBuffer`)."""
    return capacity * (2 * obs_dim + act_dim + 2) * 4


def train_mem_mb(cfg: RunConfig) -> int:
    """Memory (MB, as Slurm's --mem) for training `cfg`."""
    obs_dim, act_dim = _dims(cfg.env, cfg.training.truncated_obs)
    need = BASE_GIB * GIB + REPLAY_COPIES * replay_bytes(obs_dim, act_dim, cfg.training.replay_size)
    return math.ceil(need / (STEP_GIB * GIB)) * STEP_GIB * 1024


@functools.cache
def _dims(env: str, truncated_obs: bool) -> tuple[int, int]:  # one env per task while the DAG is built
    return env_dims(env, truncated_obs=truncated_obs)
