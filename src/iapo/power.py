"""What would decide an open claim: detectable effects and seeds needed, simulated from the data.

The audit decides a claim when the 95% interval of its statistic (a mean over seeds, or a difference
of two such means) leaves out every boundary of its test (0 for greater / less / positive, −margin for
not_worse, ±margin for similar, the threshold or the range for one-arm tests). For a claim it could not
decide this module answers two questions by simulation from the observed per-seed values:

* the smallest distance between the true statistic and the nearest boundary that this scale's seed
  counts would detect with probability `power` (the minimum detectable effect, MDE), and
* the seeds per arm that would decide the claim with that probability if the true statistic is the
  observed one.

Each simulated study draws n seeds per arm from the arm's own centred residuals (rescaled by
√(m/(m−1)) so that their spread is the unbiased sample spread), shifts them to the assumed means, and
applies the decision rule with a normal-approximation interval (mean ± z·standard error), which is what
the audit's percentile bootstrap approaches as the seed count grows. For normal data this reproduces the
closed-form two-sample calculation n = (z₀.₉₇₅ + z_power)² (σ_a² + σ_b²) / δ² (`normal_seeds_needed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

MAX_SEEDS = 1000
NEGLIGIBLE = 0.01  # an effect below 1% of the statistic's scale does not matter whatever the seeds


@dataclass(frozen=True)
class Power:
    """What would decide one group of a claim (`None` fields: could not be estimated)."""

    effect: float  # observed distance of the statistic from the nearest boundary
    mde: float  # smallest distance this scale's seeds detect with probability `power`
    seeds_needed: int | None  # seeds per arm deciding it at the observed effect; None: > MAX_SEEDS
    negligible: bool  # the effect is below NEGLIGIBLE × scale: no seed count makes it matter
    n_seeds: int

    def describe(self) -> str:
        if self.negligible:
            return (f"effect {self.effect:.3g} is below {NEGLIGIBLE:.0%} of the statistic's scale: too "
                    "small to matter whatever the seeds")
        need = (f"> {MAX_SEEDS} seeds per arm (too small to matter at any practical seed count)"
                if self.seeds_needed is None else f"≈ {self.seeds_needed} seeds per arm")
        return (f"detectable at {self.n_seeds} seeds: effects ≥ {self.mde:.3g}; observed {self.effect:.3g} "
                f"needs {need}")


def normal_seeds_needed(delta: float, sd_a: float, sd_b: float = 0.0, confidence: float = 0.95,
                        power: float = 0.8) -> float:
    """Closed-form seeds per arm for a two-sample (or, with sd_b = 0, one-sample) normal test."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2) + NormalDist().inv_cdf(power)
    return float(z**2 * (sd_a**2 + sd_b**2) / delta**2)


def _residuals(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return (x - x.mean()) * np.sqrt(len(x) / (len(x) - 1))


class _Simulator:
    """Simulated studies of n seeds per arm drawn from the arms' residuals around chosen means."""

    def __init__(self, arms: Sequence[np.ndarray], confidence: float, power: float, n_sim: int,
                 seed: int) -> None:
        self.res = [_residuals(a) for a in arms]
        self.z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
        self.power, self.n_sim, self.seed = power, n_sim, seed

    def power_at(self, statistic: float, boundaries: Sequence[float], n: int) -> float:
        """P(the interval leaves out every boundary) when the true statistic is `statistic`."""
        rng = np.random.default_rng(self.seed)  # common random numbers: smooth in n and statistic
        est, var = np.full(self.n_sim, statistic), np.zeros(self.n_sim)
        for k, r in enumerate(self.res):
            draw = r[rng.integers(0, len(r), size=(self.n_sim, n))]
            est = est + (draw.mean(1) if k == 0 else -draw.mean(1))
            var = var + draw.var(1, ddof=1) / n
        half = self.z * np.sqrt(var)
        decided = np.ones(self.n_sim, dtype=bool)
        for b in boundaries:
            decided &= np.abs(est - b) > half
        return float(decided.mean())

    def seeds_needed(self, statistic: float, boundaries: Sequence[float]) -> int | None:
        """Smallest n ≤ MAX_SEEDS with power ≥ target (doubling, then bisection), else None."""
        lo, hi = 1, 2
        while self.power_at(statistic, boundaries, hi) < self.power:
            if hi >= MAX_SEEDS:
                return None
            lo, hi = hi, min(2 * hi, MAX_SEEDS)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if self.power_at(statistic, boundaries, mid) >= self.power else (mid, hi)
        return hi

    def mde(self, boundary: float, direction: float, others: Sequence[float], n: int) -> float:
        """Smallest distance d from `boundary` (towards `direction`) detected with the target power."""
        spread = np.sqrt(sum(r.var() for r in self.res) / n) or 1.0
        lo, hi = 0.0, spread
        while self.power_at(boundary + direction * hi, [boundary, *others], n) < self.power:
            lo, hi = hi, 2 * hi
            if hi > 1e6 * spread:
                return float("inf")
        while hi - lo > 0.005 * hi:  # 0.5% precision
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if self.power_at(boundary + direction * mid, [boundary, *others], n) \
                >= self.power else (mid, hi)
        return hi


def power_analysis(arms: Sequence[np.ndarray], boundaries: Sequence[float], scale: float | None,
                   confidence: float = 0.95, power: float = 0.8, n_sim: int = 2000,
                   seed: int = 0) -> Power | None:
    """Power of one group: `arms` = (a,) or (a, b) per-seed values, the statistic is mean(a) [− mean(b)].

    `boundaries`: the values the interval must leave out; `scale`: the statistic's natural size (e.g.
    |mean(b)|) for the negligibility rule (None: no natural size, never negligible). Returns None when
    an arm has fewer than two seeds.
    """
    arms = [np.asarray(a, dtype=float) for a in arms]
    if min(len(a) for a in arms) < 2:
        return None
    statistic = arms[0].mean() - (arms[1].mean() if len(arms) > 1 else 0.0)
    nearest = min(boundaries, key=lambda b: abs(statistic - b))
    effect = abs(statistic - nearest)
    sim = _Simulator(arms, confidence, power, n_sim, seed)
    n = min(len(a) for a in arms)
    others = [b for b in boundaries if b != nearest]
    direction = 1.0 if statistic >= nearest else -1.0
    mde = sim.mde(nearest, direction, others, n)
    negligible = scale is not None and effect < NEGLIGIBLE * (abs(scale) or 1.0)
    needed = None if negligible else sim.seeds_needed(statistic, boundaries)
    return Power(float(effect), float(mde), needed, bool(negligible), n)
