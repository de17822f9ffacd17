"""What would decide a claim: the power analysis, run through the audit's own test, against closed forms
and against independently simulated studies."""

from __future__ import annotations

import numpy as np
import pytest

from iapo.decide import SUPPORTED, Rule, group_estimate
from iapo.power import MAX_SEEDS, aggregate_power, heading, normal_seeds_needed, power_analysis

TOLERANCE = 0.15  # simulated seeds within 15% (+ the t correction's few seeds) of the closed form


def exact(x: np.ndarray, mean: float, sd: float) -> np.ndarray:
    """x shifted and scaled to exactly this sample mean and (unbiased) standard deviation."""
    return mean + sd * (x - x.mean()) / x.std(ddof=1)


def normal_arms(delta: float, sd_a: float, sd_b: float, n: int = 1000, seed: int = 0):
    """Two normal samples whose difference of means is exactly δ and whose spreads are σ_a, σ_b."""
    rng = np.random.default_rng(seed)
    return exact(rng.normal(size=n), delta, sd_a), exact(rng.normal(size=n), 0.0, sd_b)


@pytest.mark.parametrize(("delta", "sd_a", "sd_b"), [(0.5, 1.0, 1.0), (0.3, 1.0, 2.0), (1.0, 1.0, 0.5)])
def test_seeds_needed_recovers_the_closed_form(delta: float, sd_a: float, sd_b: float) -> None:
    """Arms of known effect and spread, a `greater` test: the seeds the simulation asks for match the
    two-sample normal formula n = (z₀.₉₇₅ + z₀.₈)² (σ_a² + σ_b²) / δ² within 15% (+2 seeds for the t
    quantiles the audit's interval uses instead of z)."""
    a, b = normal_arms(delta, sd_a, sd_b)
    p = power_analysis(Rule.of("greater"), [a, b])
    known = normal_seeds_needed(delta, sd_a, sd_b)
    assert p is not None and p.heading == "supported" and p.seeds_needed is not None and not p.too_small
    assert abs(p.seeds_needed - known) <= TOLERANCE * known + 2


def test_scenarios_agree_with_independent_studies() -> None:
    """P(supported) at n seeds from the power module equals the rate in studies drawn here from the
    normal distribution the arms came from (within Monte-Carlo error)."""
    a, b = normal_arms(0.8, 1.0, 1.0)
    p = power_analysis(Rule.of("greater"), [a, b], n_sim=4000)
    rng, rule = np.random.default_rng(11), Rule.of("greater")
    for n, p_sup, _ in p.scenarios:
        x, y = rng.normal(0.8, 1.0, (20000, n)), rng.normal(0.0, 1.0, (20000, n))
        direct = np.mean(rule.decide(group_estimate(x, y)) == SUPPORTED)
        assert p_sup == pytest.approx(direct, abs=0.035), n


def test_heading_and_too_small_to_matter() -> None:
    greater = Rule.of("greater", min_effect=0.5)
    assert heading(greater, 1.0) == ("supported", False)
    assert heading(greater, -1.0) == ("contradicted", False)
    assert heading(greater, 0.2) == ("neither", True) and heading(greater, -0.2) == ("neither", True)
    similar = Rule.of("similar", margin=1.0)
    assert heading(similar, 0.5)[0] == "supported" and heading(similar, 1.5)[0] == "contradicted"
    x = exact(np.random.default_rng(2).normal(size=50), 0.1, 1.0)
    p = power_analysis(greater, [x])
    assert p.too_small and p.seeds_needed is None and "too small to matter" in p.describe()


def test_too_noisy_is_not_too_small() -> None:
    """An effect of 0.4 σ decided by ~50 seeds: heading to supported, 'too noisy' at 3 seeds, never
    'too small to matter'; a contradicting effect heads to contradicted."""
    x = exact(np.random.default_rng(3).normal(size=3), 0.4, 1.0)
    p = power_analysis(Rule.of("positive"), [x])
    assert p.heading == "supported" and p.seeds_needed is not None and p.seeds_needed > 3
    assert "too noisy" in p.describe() and "too small" not in p.describe()
    q = power_analysis(Rule.of("positive"), [-x])
    assert q.heading == "contradicted" and q.seeds_needed == p.seeds_needed


def test_paired_design_needs_fewer_seeds() -> None:
    """Arms sharing a large seed effect: the paired differences (one arm) need far fewer seeds than the
    same values analysed as independent arms."""
    rng = np.random.default_rng(4)
    shared = 5.0 * rng.normal(size=8)
    a, b = 1.0 + shared + rng.normal(size=8), shared + rng.normal(size=8)
    paired = power_analysis(Rule.of("greater"), [a - b])
    unpaired = power_analysis(Rule.of("greater"), [a, b])
    assert paired.seeds_needed is not None
    assert unpaired.seeds_needed is None or unpaired.seeds_needed > 3 * paired.seeds_needed


def test_undecidable_and_too_few_seeds() -> None:
    a, b = normal_arms(0.01, 1.0, 1.0)
    p = power_analysis(Rule.of("greater"), [a, b])
    assert p.seeds_needed is None and f"more than {MAX_SEEDS}" in p.describe()
    assert power_analysis(Rule.of("greater"), [np.array([1.0]), b]) is None


def test_aggregate_power_over_environments() -> None:
    """Two environments on different scales, each in its own unit: the aggregate of a clear effect needs
    fewer seeds than either environment's half-size effect alone."""
    rng = np.random.default_rng(5)
    env1 = [exact(rng.normal(size=6), 100.0, 100.0), exact(rng.normal(size=6), 0.0, 100.0)]
    env2 = [exact(rng.normal(size=6), 1.0, 1.0), exact(rng.normal(size=6), 0.0, 1.0)]
    agg = aggregate_power(Rule.of("greater"), [(env1, 100.0), (env2, 1.0)])
    one = aggregate_power(Rule.of("greater"), [(env1, 100.0)])
    assert agg.heading == one.heading == "supported"
    assert agg.seeds_needed < one.seeds_needed


def test_closed_form_uses_the_normal_quantiles() -> None:
    assert normal_seeds_needed(1.0, 1.0) == pytest.approx((1.959964 + 0.841621) ** 2, rel=1e-5)
