import math

import numpy as np
import pytest

from shoplake.evaluation import (
    Interval,
    best_other,
    bootstrap_mean,
    bootstrap_statistic,
    margins_to_best,
    paired_difference,
    pick_champion,
    pick_simplest_within_noise,
    ratio_of_sums,
)


def test_bootstrap_interval_of_a_mean_matches_the_normal_approximation():
    values = np.random.default_rng(0).normal(2.0, 1.0, 400)
    got = bootstrap_mean(values, draws=2000)
    half = 1.96 * values.std(ddof=1) / math.sqrt(values.size)
    assert got.value == pytest.approx(values.mean())
    assert got.low == pytest.approx(values.mean() - half, abs=0.2 * half)
    assert got.high == pytest.approx(values.mean() + half, abs=0.2 * half)


def test_weights_and_nan_values():
    got = bootstrap_mean([1.0, 3.0, math.nan, 10.0], weights=[1.0, 3.0, 5.0, 0.0])
    assert got.value == pytest.approx((1.0 + 9.0) / 4.0)
    assert 1.0 <= got.low <= got.value <= got.high <= 3.0
    assert bootstrap_mean([5.0]) == Interval(5.0, 5.0, 5.0)
    assert math.isnan(bootstrap_mean([math.nan]).value)
    with pytest.raises(ValueError, match="weights"):
        bootstrap_mean([1.0, 2.0], weights=[1.0])


def test_paired_difference_says_win_loss_or_noise():
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, 300)
    better = base + 0.05 + rng.normal(0, 0.02, 300)
    noisy = base + rng.normal(0, 0.2, 300)
    assert paired_difference(better, base).verdict() == "win"
    assert paired_difference(base, better).verdict() == "loss"
    assert paired_difference(noisy, base).verdict() == "within noise"
    # An error metric: lower is better.
    assert paired_difference(base, better).verdict(higher_is_better=False) == "win"
    with pytest.raises(ValueError, match="shape"):
        paired_difference([1.0, 2.0], [1.0])


def test_ratio_of_sums_resamples_both_models_together():
    rng = np.random.default_rng(2)
    b = rng.uniform(1, 2, 200)
    a = 0.8 * b * rng.uniform(0.95, 1.05, 200)
    w = rng.uniform(0, 3, 200)
    got = ratio_of_sums(a, b, w)
    assert got.value == pytest.approx((w * a).sum() / (w * b).sum())
    assert got.low < got.value < got.high < 1.0
    assert got.high - got.low < 0.02  # paired: the shared noise of b cancels
    assert got.verdict(higher_is_better=False, null=1.0) == "win"  # a errs less than b
    assert Interval(0.9, 0.8, 1.1).verdict(higher_is_better=False, null=1.0) == "within noise"


def test_pick_champion():
    assert pick_champion({"a": 0.1, "b": math.nan, "c": 0.3, "d": 0.3}) == "c"
    assert pick_champion({"a": 0.1, "b": 0.05}, higher_is_better=False) == "b"
    assert pick_champion({"a": math.nan}) is None
    assert best_other({"a": 0.1, "b": 0.3, "c": 0.2}, "b") == "c"


def test_the_simplest_candidate_within_noise_of_the_best_is_chosen():
    rng = np.random.default_rng(1)
    best = rng.uniform(0, 1, 300)
    per_unit = {
        "simple": best - 0.3,  # clearly worse on every unit
        "middle": best - rng.normal(0.0, 0.05, 300) - 0.002,  # a hair below the best, paired noise
        "complex": best,
    }
    scores = {name: float(values.mean()) for name, values in per_unit.items()}
    margins = margins_to_best(per_unit, scores)
    assert margins["complex"] == Interval(0.0, 0.0, 0.0)
    assert margins["simple"].verdict() == "loss" and margins["middle"].verdict() == "within noise"
    assert pick_simplest_within_noise(margins, ["simple", "middle", "complex"]) == "middle"
    assert pick_simplest_within_noise(margins, ["complex", "middle"]) == "complex"
    # The same gap, but the middle one loses on every unit: no longer within noise.
    margins = margins_to_best({**per_unit, "middle": best - 0.002}, scores)
    assert margins["middle"].verdict() == "loss"
    assert pick_simplest_within_noise(margins, ["simple", "middle", "complex"]) == "complex"
    assert pick_simplest_within_noise(margins, ["unknown"]) is None
    assert margins_to_best(per_unit, {"simple": math.nan}) == {}


def test_bootstrap_of_a_statistic_that_is_not_a_mean():
    rng = np.random.default_rng(2)
    y = (rng.uniform(size=500) < 0.2).astype(int)
    good, bad = y + rng.normal(0, 0.5, 500), rng.normal(0, 1, 500)
    from sklearn.metrics import average_precision_score

    got = bootstrap_statistic(average_precision_score, y, good, draws=300)
    assert got.value == pytest.approx(average_precision_score(y, good))
    assert got.low < got.value < got.high
    diff = bootstrap_statistic(lambda y, a, b: average_precision_score(y, a) - average_precision_score(y, b), y, good, bad, draws=300)
    assert diff.verdict() == "win"
    # Resamples where the statistic is undefined are left out; a single unit is its own interval.
    rare = np.zeros(200, int)
    rare[0] = 1
    ap = bootstrap_statistic(lambda y, s: average_precision_score(y, s) if y.any() else math.nan, rare, -np.arange(200.0), draws=200)
    assert ap.value == 1.0 and ap.low == ap.high == 1.0
    assert bootstrap_statistic(np.mean, [3.0]) == Interval(3.0, 3.0, 3.0)
    assert math.isnan(bootstrap_statistic(np.mean, []).value)
