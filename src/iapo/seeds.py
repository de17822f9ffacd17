"""Every seed derived from a run's or a diagnostic's seed, in one place.

A run seeded `seed` seeds Python, NumPy and torch with it, and its own generators (warm-up actions,
replay sampling) too; everything else that needs fresh random numbers derives them here, so that
two streams never share a seed by accident and each is reproducible on its own (a checkpoint's
diagnostic rows do not depend on which other checkpoints were analysed; an evaluation's episodes do
not depend on how many training episodes came before).
"""

from __future__ import annotations

PRIME = 1_000_003  # a prime larger than any step count of a run between two evaluations or resumes
MAX_SEED = 2**63   # torch and NumPy take seeds below this


def at_step(seed: int, step: int) -> int:
    """A stream restarted at `step` of something seeded `seed`: a replay or CUDA generator reseeded
    on a resume on another kind of device, and a diagnostic's numbers at one checkpoint."""
    return (PRIME * seed + step) % MAX_SEED


def evaluation_episode(seed: int, n_evals: int, episode: int) -> int:
    """The environment seed of episode `episode` of the run's `n_evals`-th evaluation (0-based):
    apart from the training environment's seed and from every other evaluation's episodes."""
    return PRIME * (seed + 1) + 1_000 * n_evals + episode


def diagnostic_start(seed: int, step: int, offset: int) -> int:
    """Starting points of a diagnostic's optimizer runs at the checkpoint of env step `step` (the
    `offset`-th batch of them): the same starts whatever else the diagnostic computes."""
    return PRIME * (seed + step) + offset
