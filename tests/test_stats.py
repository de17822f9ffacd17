"""Stratified bootstrap CIs and probability of improvement against hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from iapo.stats import mean, mean_band, probability_of_improvement, stratified_bootstrap


def test_probability_of_improvement_hand_worked():
    x, y = np.array([3.0, 5.0]), np.array([1.0, 4.0, 5.0])
    # pairs: 3>1, 3<4, 3<5, 5>1, 5>4, 5=5 → (3 + 0.5) / 6
    assert probability_of_improvement(x, y) == pytest.approx(3.5 / 6)
    assert probability_of_improvement(y, x) == pytest.approx(1 - 3.5 / 6)
    # two tasks are averaged: task 1 always better (1), task 2 always worse (0)
    xs, ys = np.array([[2.0, 0.0], [3.0, 1.0]]), np.array([[1.0, 5.0], [0.0, 6.0]])
    assert probability_of_improvement(xs, ys) == pytest.approx(0.5)


def test_bootstrap_ci_coverage_on_a_known_distribution():
    """95% CIs of the mean of N(μ, 1) samples of size 20 cover μ about 95% of the time."""
    rng, mu, hits, trials = np.random.default_rng(1), 3.0, 0, 300
    for t in range(trials):
        sample = rng.normal(mu, 1.0, size=20)
        ci = stratified_bootstrap(mean, sample, n_boot=400, seed=t)
        hits += ci.low <= mu <= ci.high
    coverage = hits / trials
    assert 0.89 <= coverage <= 0.99, coverage  # percentile bootstrap undercovers a little at n = 20


def test_stratified_bootstrap_keeps_tasks_apart():
    """Resampling is within task columns: a task with no spread contributes no spread."""
    scores = np.column_stack([np.full(10, 5.0), np.linspace(0, 1, 10)])
    ci = stratified_bootstrap(lambda s: float(s[:, 0].mean()), scores, n_boot=200)
    assert ci.low == ci.high == 5.0
    ci2 = stratified_bootstrap(lambda s: float(s[:, 1].mean()), scores, n_boot=200)
    assert ci2.low < 0.5 < ci2.high and ci2.excludes(2.0)


def test_two_group_interval_for_probability_of_improvement():
    rng = np.random.default_rng(0)
    better, worse = rng.normal(1.0, 0.3, (10, 3)), rng.normal(0.0, 0.3, (10, 3))
    ci = stratified_bootstrap(probability_of_improvement, better, worse, n_boot=300)
    assert ci.estimate > 0.9 and ci.excludes(0.5)
    same = stratified_bootstrap(probability_of_improvement, worse, rng.normal(0.0, 0.3, (10, 3)), n_boot=300)
    assert not same.excludes(0.5)


def test_mean_band():
    band = mean_band(np.array([1.0, 2.0, 3.0, 4.0]), n_boot=500)
    assert band.estimate == 2.5 and 1.0 <= band.low < 2.5 < band.high <= 4.0
