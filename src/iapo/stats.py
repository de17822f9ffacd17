"""Statistics for comparing agents over few seeds: IQM, stratified bootstrap CIs, P(improvement).

Following the reporting practice of rliable (Agarwal et al., 2021): scores are arrays
[n_runs, n_tasks] (runs = seeds, tasks = environments); confidence intervals resample runs with
replacement *within each task* (stratified bootstrap) and take percentiles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Statistic = Callable[[np.ndarray], float]


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of all scores (⌊n/4⌋ trimmed each side, as
    scipy.stats.trim_mean(·, 0.25) does)."""
    ordered = np.sort(np.asarray(scores, dtype=float).ravel())
    cut = len(ordered) // 4
    return float(ordered[cut:len(ordered) - cut].mean())


def mean(scores: np.ndarray) -> float:
    return float(np.mean(scores))


@dataclass(frozen=True)
class Interval:
    """A point estimate with its (1 − α) percentile bootstrap interval."""

    estimate: float
    low: float
    high: float

    def excludes(self, value: float) -> bool:
        return not self.low <= value <= self.high


def _as_runs_by_tasks(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=float)
    return scores[:, None] if scores.ndim == 1 else scores


def stratified_bootstrap(
    statistic: Statistic, *groups: np.ndarray, n_boot: int = 2000, confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile CI of `statistic(*groups)`; each group [n_runs, n_tasks] is resampled over its
    runs independently within every task column (stratified by task)."""
    groups = tuple(_as_runs_by_tasks(g) for g in groups)
    rng = np.random.default_rng(seed)
    estimate = statistic(*groups)
    boots = np.empty(n_boot)
    for b in range(n_boot):
        resampled = []
        for g in groups:
            idx = rng.integers(0, g.shape[0], size=g.shape)  # per task column, runs with replacement
            resampled.append(np.take_along_axis(g, idx, axis=0))
        boots[b] = statistic(*resampled)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(boots, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + ½ P(X = Y) per task (Mann-Whitney), averaged over tasks: x, y are [runs, tasks]."""
    x, y = _as_runs_by_tasks(x), _as_runs_by_tasks(y)
    per_task = []
    for k in range(x.shape[1]):
        diff = x[:, k][:, None] - y[:, k][None, :]
        per_task.append(np.mean(diff > 0) + 0.5 * np.mean(diff == 0))
    return float(np.mean(per_task))


def mean_band(values: np.ndarray, n_boot: int = 2000, confidence: float = 0.95,
              seed: int = 0) -> Interval:
    """Mean over seeds with a bootstrap (1 − α) band: the figures' curves at one x."""
    return stratified_bootstrap(mean, np.asarray(values, dtype=float), n_boot=n_boot,
                                confidence=confidence, seed=seed)
