"""What would decide an open claim: simulated studies run through the audit's own test.

For a group the audit could not decide this module answers the reader's questions from its observed
per-seed values:

* **where it is heading**: the verdict the observed statistic would get with enough seeds
  (supported, contradicted, or neither: an effect inside the practical threshold of a greater / less
  test, which more seeds only show to be *too small to matter*);
* **a scenario table**: for a few seed counts per arm, the probability of each verdict, simulated with
  the audit's own interval and decision rule (`iapo.decide`), paired where the design is paired;
* **the seeds per arm** that reach the heading verdict with probability `power` (80%), or that no
  count up to MAX_SEEDS does. A group whose heading is a verdict but needs more seeds than it has is
  *too noisy* at this scale, which is a different thing from too small to matter.

Each simulated study draws n seeds per arm from the arm's own centred residuals (rescaled by
√(m/(m−1)) so that their spread is the unbiased sample spread) around the observed means; a paired
group is simulated from its per-seed differences. For normal data and a two-sample test this
approaches the closed form n = (z₀.₉₇₅ + z_power)² (σ_a² + σ_b²) / δ² (`normal_seeds_needed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

from iapo.decide import CONTRADICTED, SUPPORTED, Rule, group_estimate
from iapo.stats import stratified_t

MAX_SEEDS = 1000
SCENARIO_SEEDS = (5, 10, 20, 50)
Heading = Literal["supported", "contradicted", "neither"]


@dataclass(frozen=True)
class Power:
    """What would decide one group."""

    heading: Heading
    n_seeds: int
    scenarios: tuple[tuple[int, float, float], ...]  # (seeds per arm, P(supported), P(contradicted))
    seeds_needed: int | None  # seeds per arm reaching the heading verdict with the target power
    too_small: bool  # the effect is inside the practical threshold: no seed count makes it matter

    def describe(self) -> str:
        if self.too_small:
            return ("too small to matter: the observed effect lies within the practical threshold, so more "
                    "seeds would show it negligible, not decide the claim")
        if self.heading == "neither":
            return "the observed statistic sits on the test's boundary: no seed count is expected to decide"
        if self.seeds_needed is None:
            need = f"more than {MAX_SEEDS} seeds per arm"
        else:
            need = f"≈ {self.seeds_needed} seeds per arm"
        more = self.seeds_needed is None or self.seeds_needed > self.n_seeds
        noisy = "too noisy at this scale; " if more else ""
        return f"heading to {self.heading}; {noisy}{need} would decide it with 80% probability"

    def scenario_text(self) -> str:
        return ", ".join(f"{n}: {ps:.0%} / {pc:.0%}" for n, ps, pc in self.scenarios)


def normal_seeds_needed(delta: float, sd_a: float, sd_b: float = 0.0, confidence: float = 0.95,
                        power: float = 0.8) -> float:
    """Closed-form seeds per arm for a two-sample (or, with sd_b = 0, one-sample) normal test."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2) + NormalDist().inv_cdf(power)
    return float(z**2 * (sd_a**2 + sd_b**2) / delta**2)


def _residuals(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return (x - x.mean()) * np.sqrt(len(x) / (len(x) - 1))


Part = tuple[Sequence[np.ndarray], float]  # one environment's arms and the unit they are divided by


class _Simulator:
    """Simulated studies of n seeds per arm drawn from the arms' residuals around the observed means;
    with several parts (an aggregate claim), the statistic is the mean over parts of each part's
    estimate in its own units (`stratified_t`), as the audit computes it."""

    def __init__(self, rule: Rule, parts: Sequence[Part], n_sim: int, seed: int) -> None:
        self.rule, self.n_sim, self.seed = rule, n_sim, seed
        self.parts = [([float(np.mean(a)) for a in arms], [_residuals(a) for a in arms], unit)
                      for arms, unit in parts]

    def verdicts(self, n: int) -> np.ndarray:
        rng = np.random.default_rng(self.seed)  # common random numbers: smooth in n
        estimates = []
        for means, res, unit in self.parts:
            draws = [(m + r[rng.integers(0, len(r), size=(self.n_sim, n))]) / unit
                     for m, r in zip(means, res, strict=True)]
            estimates.append(group_estimate(draws[0], draws[1] if len(draws) > 1 else None))
        return self.rule.decide(estimates[0] if len(estimates) == 1 else stratified_t(estimates))

    def rates(self, n: int) -> tuple[float, float]:
        v = self.verdicts(n)
        return float(np.mean(v == SUPPORTED)), float(np.mean(v == CONTRADICTED))

    def seeds_needed(self, target: int, power: float) -> int | None:
        """Smallest n ≤ MAX_SEEDS with P(verdict == target) ≥ power (doubling, then bisection), else None."""
        def ok(n: int) -> bool:
            return float(np.mean(self.verdicts(n) == target)) >= power

        lo, hi = 2, 3
        while not ok(hi):
            if hi >= MAX_SEEDS:
                return None
            lo, hi = hi, min(2 * hi, MAX_SEEDS)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if ok(mid) else (mid, hi)
        return hi


def heading(rule: Rule, estimate: float) -> tuple[Heading, bool]:
    """The verdict the observed statistic points to, and whether it is inside the practical threshold."""
    practical = rule.kind in ("greater", "less", "positive") and rule.min_effect > 0
    if practical and abs(estimate) < rule.min_effect:
        return "neither", True
    if rule.good_low < estimate < rule.good_high:
        return "supported", False
    if estimate < rule.contradict_low or estimate > rule.contradict_high:
        return "contradicted", False
    return "neither", False


def power_analysis(rule: Rule, arms: Sequence[np.ndarray], power: float = 0.8, n_sim: int = 2000,
                   seed: int = 0) -> Power | None:
    """Power of one group: `arms` = (a,) per-seed values (one arm, or a paired design's differences) or
    (a, b) independent arms; `rule` the group's decision rule (its margins in the statistic's units).
    None when an arm has fewer than two seeds (no spread to simulate from)."""
    return aggregate_power(rule, [(arms, 1.0)], power, n_sim, seed)


def aggregate_power(rule: Rule, parts: Sequence[Part], power: float = 0.8, n_sim: int = 2000,
                    seed: int = 0) -> Power | None:
    """Power of a claim decided on the mean over environments of per-environment statistics, each
    divided by its unit (`parts`: (arms, unit) per environment); `rule` in those units."""
    parts = [([np.asarray(a, dtype=float) for a in arms], float(unit)) for arms, unit in parts]
    if not parts or min(len(a) for arms, _ in parts for a in arms) < 2:
        return None
    estimate = float(np.mean([(arms[0].mean() - (arms[1].mean() if len(arms) > 1 else 0.0)) / unit
                              for arms, unit in parts]))
    head, too_small = heading(rule, estimate)
    sim = _Simulator(rule, parts, n_sim, seed)
    n_now = min(len(a) for arms, _ in parts for a in arms)
    scenarios = tuple((n, *sim.rates(n)) for n in sorted({n_now, *SCENARIO_SEEDS}))
    needed = None
    if head != "neither":
        needed = sim.seeds_needed(SUPPORTED if head == "supported" else CONTRADICTED, power)
    return Power(head, n_now, scenarios, needed, too_small)
