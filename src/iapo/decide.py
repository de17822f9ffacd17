"""The audit's decision rules: one per test kind, written once, vectorized over simulated studies.

A claim's statistic θ (a mean over seeds, a difference of two such means, or the mean over seeds of
paired differences) is estimated with a Student-t interval (`iapo.stats`). Each test kind names the
region G where the claim holds and a practical threshold δ ≥ 0 (`min_effect`, for greater / less /
positive only):

  kind        claim holds on G     supported if                    contradicted if
  greater     θ > 0                low > 0 and estimate ≥ δ        high < −δ
  less        θ < 0                high < 0 and estimate ≤ −δ      low > δ
  positive    θ > 0 (one arm)      as greater                      as greater
  at_least    θ > threshold        low > threshold                 high < threshold
  not_worse   θ > −margin          low > −margin                   high < −margin
  not_better  θ < margin           high < margin                   low > margin
  similar     |θ| < margin         −margin < low, high < margin    high < −margin or low > margin
  within      low_b < θ < high_b   low_b < low, high < high_b      high < low_b or low > high_b

With 95% intervals each one-sided decision errs at most 2.5% of the time when θ sits on its boundary
(the calibration tests in tests/test_calibration.py check this, and the intervals' coverage, by
simulation at 2-8 seeds with normal and heavy-tailed seed effects). Where neither holds and the whole
interval lies within ±δ of 0 for greater / less, the difference is *negligible*: open, with that reason.

`contradiction_p` is the one-sided p-value of the contradiction; the audit corrects it with Holm's
procedure across the groups of a claim, since one contradicted group contradicts the claim.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iapo.stats import TEstimate, one_sample_t, paired_t, welch_t

CONFIDENCE = 0.95
ALPHA_ONE_SIDED = (1 - CONFIDENCE) / 2  # 2.5% per direction
TWO_ARM = ("greater", "less", "not_worse", "not_better", "similar")
ONE_ARM = ("positive", "at_least", "within")
KINDS = (*TWO_ARM, *ONE_ARM)
SUPPORTED, OPEN, CONTRADICTED = 1, 0, -1


@dataclass(frozen=True)
class Rule:
    """G = (good_low, good_high) and the practical threshold δ, in the statistic's own units."""

    kind: str
    good_low: float = -np.inf
    good_high: float = np.inf
    min_effect: float = 0.0

    @classmethod
    def of(cls, kind: str, margin: float = 0.0, min_effect: float = 0.0, threshold: float = 0.0,
           low: float | None = None, high: float | None = None) -> Rule:
        """The rule of a test kind; `margin` and `min_effect` already in the statistic's units."""
        bounds = {"greater": (0.0, np.inf), "positive": (0.0, np.inf), "less": (-np.inf, 0.0),
                  "at_least": (threshold, np.inf), "not_worse": (-margin, np.inf),
                  "not_better": (-np.inf, margin), "similar": (-margin, margin),
                  "within": (low if low is not None else -np.inf, high if high is not None else np.inf)}
        if kind not in bounds:
            raise ValueError(f"unknown test kind {kind!r}; known: {', '.join(KINDS)}")
        delta = min_effect if kind in ("greater", "less", "positive") else 0.0
        return cls(kind, *bounds[kind], delta)

    @property
    def contradict_low(self) -> float:
        """Contradicted if the interval lies below this (−inf: never from below)."""
        return self.good_low - self.min_effect

    @property
    def contradict_high(self) -> float:
        """Contradicted if the interval lies above this (+inf: never from above)."""
        return self.good_high + self.min_effect

    def boundaries(self) -> list[float]:
        """Every value at which a verdict changes: where the calibration puts the true θ."""
        values = {self.good_low, self.good_high, self.contradict_low, self.contradict_high}
        return sorted(v for v in values if np.isfinite(v))

    def decide(self, est: TEstimate, confidence: float = CONFIDENCE) -> np.ndarray:
        """SUPPORTED / OPEN / CONTRADICTED for each estimate (no multiplicity correction)."""
        low, high = est.interval(confidence)
        theta = np.asarray(est.estimate, dtype=float)
        supported = (low > self.good_low) & (high < self.good_high)
        if self.kind in ("greater", "positive"):
            supported &= theta >= self.min_effect
        elif self.kind == "less":
            supported &= theta <= -self.min_effect
        contradicted = (high < self.contradict_low) | (low > self.contradict_high)
        return np.where(supported, SUPPORTED, np.where(contradicted, CONTRADICTED, OPEN))

    def contradiction_p(self, est: TEstimate) -> np.ndarray:
        """One-sided p-value that θ lies in the contradicting region (1 where it cannot)."""
        p = np.ones(np.shape(est.estimate))
        if np.isfinite(self.contradict_low):
            p = np.minimum(p, est.p_below(self.contradict_low))
        if np.isfinite(self.contradict_high):
            p = np.minimum(p, est.p_above(self.contradict_high))
        return p

    def negligible(self, est: TEstimate, confidence: float = CONFIDENCE) -> np.ndarray:
        """greater / less / positive: the whole interval lies within ±δ (δ > 0)."""
        if self.kind not in ("greater", "less", "positive") or self.min_effect <= 0:
            return np.zeros(np.shape(est.estimate), dtype=bool)
        low, high = est.interval(confidence)
        return (low > -self.min_effect) & (high < self.min_effect)

    def false_verdicts(self, theta: float) -> tuple[bool, bool]:
        """Whether "supported" and "contradicted" would be false when the true statistic is `theta`
        (a verdict on a boundary is false: the claim neither holds strictly nor fails beyond δ)."""
        holds = self.good_low < theta < self.good_high
        fails = theta < self.contradict_low or theta > self.contradict_high
        return not holds, not fails


def group_estimate(x: np.ndarray, y: np.ndarray | None = None, paired: bool = False) -> TEstimate:
    """The statistic of one group from its per-seed values (last axis: seeds): mean(x) for one-arm
    tests, mean(x) − mean(y) (Welch) for two independent arms, mean(x − y) over seeds matched by
    position for paired designs."""
    if y is None:
        return one_sample_t(x)
    return paired_t(x, y) if paired else welch_t(x, y)
