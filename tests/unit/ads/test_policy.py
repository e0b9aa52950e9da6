"""The per-viewer plan on hand-made markets: budgets hold, each slot's policy sums to 1 with the support OPE needs."""

from __future__ import annotations

import numpy as np
import pytest

from shoplake.ads.policy import InfeasiblePlanError, ViewerMarket, allocate_policy, campaign_spend, plan_cells, shaded_value


def market(budgets: dict[str, float], explore: np.ndarray | None = None) -> ViewerMarket:
    # Two viewers in one placement, three ads: a1 and a2 of campaign c1, a3 of c2.
    # Viewer u1 is worth most with a1 (value 0.5 - cost 0.1), u2 with a3 (0.4 - 0.1); a2 is the cheap filler.
    p_ctr = np.array([[0.1, 0.01, 0.05], [0.05, 0.01, 0.1]])
    p_ctcvr = np.array([[0.01, 0.0005, 0.002], [0.002, 0.0005, 0.008]])
    explore = np.full((2, 3), 1 / 3) if explore is None else explore
    return ViewerMarket(
        np.array(["u1", "u2"], dtype=object), np.array(["search_top"] * 2, dtype=object), np.array([100.0, 100.0]),
        np.array(["c1", "c1", "c2"], dtype=object), np.array(["a1", "a2", "a3"], dtype=object), p_ctr, p_ctcvr,
        np.array([50.0, 50.0, 50.0]), np.array([1.0, 1.0, 1.0]), explore, budgets,
    )  # fmt: skip


def test_without_binding_budgets_every_viewer_gets_its_best_ad():
    m = market({"c1": 1e6, "c2": 1e6})
    policy = allocate_policy(m, epsilon=0.0)
    assert policy.probabilities == pytest.approx(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    assert policy.multipliers == {"c1": 0.0, "c2": 0.0}


def test_a_binding_budget_holds_and_gets_a_positive_multiplier():
    # u1 on a1 all day costs 100 x 0.1 = 10; c1 may spend 4, so part of u1's slots go to c2's ad or c1's cheap one.
    m = market({"c1": 4.0, "c2": 1e6})
    policy = allocate_policy(m, epsilon=0.1)
    spend = campaign_spend(m, policy.probabilities)
    assert spend["c1"] <= 4.0 + 1e-6 and spend["c1"] == pytest.approx(4.0, rel=1e-4)
    assert policy.multipliers["c1"] > 0 and policy.multipliers["c2"] == 0.0
    assert policy.probabilities.sum(axis=1) == pytest.approx(np.ones(2))
    # Exploration: every ad the logged policy shows keeps at least epsilon times its share.
    assert (policy.probabilities >= 0.1 * m.explore - 1e-12).all()


def test_the_optimised_part_of_a_slot_goes_to_its_ads_of_the_largest_shaded_value():
    # c1's budget binds: u1's best ad by v - k (a1) is then worth less than c2's a3 by v - (1 + lambda_c1) k for part of the day.
    m = market({"c1": 4.0, "c2": 1e6})
    policy = allocate_policy(m, epsilon=0.1)
    lam = np.array([policy.multipliers[c] for c in m.campaigns])
    shaded = shaded_value(m.value, m.cost, lam[None, :])
    optimised = (policy.probabilities - 0.1 * m.explore) / 0.9
    for x in range(len(m.traffic)):
        chosen = optimised[x] > 1e-9
        assert chosen.any() and shaded[x, chosen] == pytest.approx(np.full(chosen.sum(), shaded[x].max()), abs=1e-9)
    # Without a multiplier it is the expected value minus cost.
    assert shaded_value(m.value, m.cost, 0.0) == pytest.approx(m.value - m.cost)
    assert policy.multipliers["c1"] > 0 and shaded[0, 0] < (m.value - m.cost)[0, 0]


def test_an_ad_the_log_never_shows_gets_nothing_from_exploration():
    explore = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    policy = allocate_policy(market({"c1": 1e6, "c2": 1e6}, explore), epsilon=0.2)
    assert policy.probabilities[0, 2] == 0.0 and policy.probabilities[0, 1] == pytest.approx(0.1)


def test_plan_cells_aggregate_the_policy_per_campaign_and_placement():
    m = market({"c1": 1e6, "c2": 1e6})
    policy = allocate_policy(m, epsilon=0.0)
    cells = {(c.campaign, c.placement): c for c in plan_cells(m, policy.probabilities)}
    c1, c2 = cells["c1", "search_top"], cells["c2", "search_top"]
    assert c1.impressions == pytest.approx(100) and c1.clicks == pytest.approx(10) and c1.conversions == pytest.approx(1)
    assert c1.spend == pytest.approx(10) and c1.value == pytest.approx(50) and c1.roas == pytest.approx(5)
    assert c2.impressions == pytest.approx(100) and c2.value == pytest.approx(40)
    assert sum(c.impressions for c in cells.values()) == pytest.approx(m.traffic.sum())


def test_exploration_that_alone_overspends_is_refused():
    with pytest.raises(InfeasiblePlanError, match="c1"):
        allocate_policy(market({"c1": 0.5, "c2": 1e6}), epsilon=0.5)
    with pytest.raises(ValueError, match="epsilon"):
        allocate_policy(market({"c1": 1.0, "c2": 1.0}), epsilon=1.0)


def test_a_max_ratio_spreads_each_slot_within_the_budgets():
    # Exploration shares 0.5, 0.25, 0.25: with kappa 1.6 the optimised part gives an ad at most 0.8, 0.4 and 0.4 of a slot.
    explore = np.array([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]])
    m = market({"c1": 6.0, "c2": 1e6}, explore)
    policy = allocate_policy(m, epsilon=0.1, max_ratio=1.6)
    assert policy.max_ratio == 1.6 and policy.probabilities.sum(axis=1) == pytest.approx(np.ones(2))
    assert (policy.probabilities <= (0.1 + 0.9 * 1.6) * explore + 1e-9).all()
    spend = campaign_spend(m, policy.probabilities)
    assert spend["c1"] <= 6.0 + 1e-6 and policy.multipliers["c1"] > 0
    # Without the bound u2 would show a3 in every optimised slot; with it a3 takes at most 0.4 of them.
    assert policy.probabilities[1, 2] == pytest.approx(0.1 * 0.25 + 0.9 * 0.4)
    # kappa 1 is the exploration shares themselves; below 1 no slot could be filled.
    assert allocate_policy(market({"c1": 1e6, "c2": 1e6}, explore), 0.0, 1.0).probabilities == pytest.approx(explore)
    with pytest.raises(ValueError, match="max_ratio"):
        allocate_policy(m, epsilon=0.1, max_ratio=0.5)


def test_a_max_ratio_that_forces_an_overspend_is_refused():
    # kappa 1 is the exploration shares: c1's ads in two thirds of every slot cost 5.67 a day, over its budget of 1.
    with pytest.raises(InfeasiblePlanError):
        allocate_policy(market({"c1": 1.0, "c2": 1e6}), epsilon=0.0, max_ratio=1.0)
