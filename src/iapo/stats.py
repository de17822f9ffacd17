"""Statistics for comparing agents over few seeds: studentized (t) estimates the audit decides on,
and the stratified bootstrap bands and P(improvement) the figures report.

Following the reporting practice of rliable (Agarwal et al., 2021): scores are arrays
[n_runs, n_tasks] (runs = seeds, tasks = environments); confidence intervals resample runs with
replacement *within each task* (stratified bootstrap) and take percentiles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Statistic = Callable[[np.ndarray], float]


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


# ---------------------------------------------------------------- studentized group estimates
# The audit's tests decide on these (not on percentile bootstraps, which at 2-8 seeds cover far less
# than they say: 67-90% for a "95%" two-sample interval on normal data). Every function works along
# the last axis, so that the calibration simulations run the audit's own code on many studies at once.


@dataclass(frozen=True)
class TEstimate:
    """A statistic with its standard error and Student-t degrees of freedom (arrays or floats)."""

    estimate: np.ndarray
    se: np.ndarray
    df: np.ndarray

    def interval(self, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """The two-sided (1 − α) interval estimate ± t_{1−α/2, df} · se."""
        from scipy.stats import t

        half = t.ppf(1 - (1 - confidence) / 2, self.df) * self.se
        return self.estimate - half, self.estimate + half

    def p_below(self, value: float | np.ndarray) -> np.ndarray:
        """One-sided p-value of H0: statistic ≥ value (small: the statistic lies below `value`)."""
        from scipy.stats import t

        return _t_tail(t.cdf, self, value)

    def p_above(self, value: float | np.ndarray) -> np.ndarray:
        """One-sided p-value of H0: statistic ≤ value (small: the statistic lies above `value`)."""
        from scipy.stats import t

        return _t_tail(t.sf, self, value)


def _t_tail(tail, est: TEstimate, value: float | np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.asarray(est.estimate, dtype=float) - value) / est.se
    z = np.where(np.asarray(est.se) > 0, z, np.sign(np.asarray(est.estimate, dtype=float) - value) * np.inf)
    return np.asarray(tail(z, est.df), dtype=float)


def one_sample_t(x: np.ndarray) -> TEstimate:
    """The mean of x (last axis: seeds) with its standard error s/√n, n − 1 degrees of freedom."""
    x = np.asarray(x, dtype=float)
    n = x.shape[-1]
    return TEstimate(x.mean(-1), x.std(-1, ddof=1) / np.sqrt(n), np.full(x.shape[:-1], n - 1.0))


def welch_t(x: np.ndarray, y: np.ndarray) -> TEstimate:
    """mean(x) − mean(y) of two independent samples, Welch's standard error and Welch–Satterthwaite
    degrees of freedom (no equal-variance assumption)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    vx, vy = x.var(-1, ddof=1) / x.shape[-1], y.var(-1, ddof=1) / y.shape[-1]
    return TEstimate(x.mean(-1) - y.mean(-1), np.sqrt(vx + vy),
                     _satterthwaite([vx, vy], [x.shape[-1] - 1, y.shape[-1] - 1]))


def paired_t(x: np.ndarray, y: np.ndarray) -> TEstimate:
    """mean(x − y) over matched seeds (x[i] and y[i] share seed i): the one-sample t of the differences."""
    return one_sample_t(np.asarray(x, dtype=float) - np.asarray(y, dtype=float))


def stratified_t(parts: list[TEstimate]) -> TEstimate:
    """The mean over tasks of per-task estimates (each from its own seeds): standard error
    √(Σ se_k²)/T, Welch–Satterthwaite degrees of freedom. The calibrated counterpart of the
    stratified bootstrap for an average over environments."""
    variances = [np.asarray(p.se, dtype=float) ** 2 for p in parts]
    total = np.sum(variances, axis=0)
    k = len(parts)
    return TEstimate(np.mean([p.estimate for p in parts], axis=0), np.sqrt(total) / k,
                     _satterthwaite(variances, [p.df for p in parts]))


def _satterthwaite(variances: list[np.ndarray], dfs: list) -> np.ndarray:
    total = np.sum(variances, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = [np.asarray(v) ** 2 / np.asarray(d, dtype=float) for v, d in zip(variances, dfs, strict=True)]
        denom = np.sum(terms, axis=0)
        df = total**2 / denom
    return np.where(denom > 0, df, np.min(np.asarray(dfs, dtype=float), axis=0))


def holm(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down procedure: which of the m hypotheses with p-values `p` are rejected at
    family-wise error `alpha`."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p)
    rejected = np.zeros(len(p), dtype=bool)
    for rank, i in enumerate(order):
        if p[i] > alpha / (len(p) - rank):
            break
        rejected[i] = True
    return rejected
