"""The off-policy estimators on a hand-made log, and on a simulated one whose true value is known."""

from __future__ import annotations

import numpy as np
import pytest

from shoplake.ads import ope


def test_estimators_on_a_hand_made_log():
    # Three impressions: rewards, the logging policy's and the new policy's probability of the logged ad.
    r = [1.0, 0.0, 1.0]
    mu = [0.5, 0.25, 0.2]
    pi = [1.0, 0.5, 0.0]
    q = [0.6, 0.2, 0.5]  # the reward model's prediction for the logged ad
    v = [0.7, 0.3, 0.4]  # the new policy's expected reward in each context
    assert ope.importance_weights(mu, pi) == pytest.approx([2.0, 2.0, 0.0])
    assert ope.ips(r, mu, pi) == pytest.approx((2 * 1 + 2 * 0 + 0 * 1) / 3)
    assert ope.snips(r, mu, pi) == pytest.approx(2 / 4)
    dr = ((0.7 + 2 * (1 - 0.6)) + (0.3 + 2 * (0 - 0.2)) + (0.4 + 0)) / 3
    assert ope.doubly_robust(r, mu, pi, q, v) == pytest.approx(dr)
    est = ope.estimate(r, mu, pi, q, v, draws=200)
    assert est.ips.value == pytest.approx(2 / 3) and est.dr.value == pytest.approx(dr) and est.snips.value == pytest.approx(0.5)
    assert est.logged.value == pytest.approx(2 / 3) and est.max_weight == 2.0 and est.effective_n == pytest.approx(2.0)
    assert est.ips.low <= est.ips.value <= est.ips.high
    # The margins over the logged policy, per impression and paired: w r - r, v + w (r - q) - r, SNIPS minus the logged mean.
    assert est.ips_margin.value == pytest.approx(0.0) and est.snips_margin.value == pytest.approx(0.5 - 2 / 3)
    assert est.dr_margin.value == pytest.approx(dr - 2 / 3)


def test_bad_propensities_are_refused():
    with pytest.raises(ValueError, match="logged propensities"):
        ope.ips([1.0], [0.0], [1.0])
    with pytest.raises(ValueError, match="target propensities"):
        ope.ips([1.0], [0.5], [1.5])
    with pytest.raises(ValueError, match="differ in shape"):
        ope.ips([1.0, 0.0], [0.5], [1.0])


def test_estimates_recover_the_true_value_of_a_better_policy():
    # Four ads with known click-through per context; the logging policy picks evenly, the new one greedily.
    rng = np.random.default_rng(0)
    n, k = 40_000, 4
    ctr = rng.uniform(0.01, 0.2, size=(50, k))
    context = rng.integers(0, 50, n)
    shown = rng.integers(0, k, n)
    reward = (rng.random(n) < ctr[context, shown]).astype(float)
    mu = np.full(n, 1 / k)
    best = ctr.argmax(axis=1)
    pi = (shown == best[context]).astype(float)
    true_value = ctr[np.arange(50), best][context].mean()
    # A reward model that is off by a constant: DR corrects it through the logged rewards.
    q = ctr[context, shown] + 0.02
    v = ctr[context, best[context]] + 0.02
    est = ope.estimate(reward, mu, pi, q, v, draws=300)
    for interval in (est.ips, est.snips, est.dr):
        assert interval.low <= true_value <= interval.high
    assert est.dr.high - est.dr.low < est.ips.high - est.ips.low
    assert est.logged.high < est.ips.low  # the greedy policy is better, and the estimates show it
    true_margin = true_value - ctr.mean(axis=1)[context].mean()
    for margin in (est.ips_margin, est.snips_margin, est.dr_margin):
        assert margin.low <= true_margin <= margin.high and margin.verdict() == "win"


def test_the_logged_policy_has_no_margin_over_itself_and_pairing_cancels_the_shared_noise():
    rng = np.random.default_rng(1)
    n = 5_000
    mu = rng.uniform(0.05, 0.5, n)
    reward = (rng.random(n) < 0.1) * rng.uniform(1, 50, n)
    same = ope.estimate(reward, mu, mu, np.zeros(n), np.zeros(n), draws=200)
    assert (same.ips_margin.value, same.ips_margin.low, same.ips_margin.high) == (0.0, 0.0, 0.0)
    assert same.ips_margin.verdict() == "within noise" and same.snips_margin.value == pytest.approx(0.0)
    # A policy close to the logged one: the paired interval is far narrower than the two value intervals side by side.
    near = np.clip(mu * rng.uniform(0.9, 1.1, n), 0, 1)
    est = ope.estimate(reward, mu, near, np.zeros(n), np.zeros(n), draws=200)
    assert est.ips_margin.high - est.ips_margin.low < 0.2 * (est.ips.high - est.ips.low)
