"""The ad plan on hand-made cells: the budget holds, the best placements are bought first, the plan as a policy."""

from __future__ import annotations

import pytest

from shoplake.ads.plan import Cell, allocate, plan_policy

CELLS = [
    # c1: search_top returns 0.004 * 50 / (0.05 * 0.5) = 8x, email 0.001 * 50 / (0.02 * 0.5) = 5x, home_banner loses money.
    Cell("c1", "search_top", 100, p_ctr=0.05, p_ctcvr=0.004, cpc=0.5, conversion_value=50.0),
    Cell("c1", "email", 300, p_ctr=0.02, p_ctcvr=0.001, cpc=0.5, conversion_value=50.0),
    Cell("c1", "home_banner", 500, p_ctr=0.02, p_ctcvr=0.0001, cpc=0.5, conversion_value=50.0),
    Cell("c2", "search_top", 50, p_ctr=0.04, p_ctcvr=0.004, cpc=1.0, conversion_value=20.0),
]


def test_each_campaign_buys_its_best_placements_first_and_never_spends_more_than_its_budget():
    plan = allocate(CELLS, {"c1": 6.0, "c2": 100.0}, max_scale=2.0)
    rows = {(r.campaign, r.placement): r for r in plan}
    # c1: search_top up to 2 x 100 impressions at 0.025 each = 5.0, then email with the 1.0 left: 100 impressions at 0.01.
    assert rows["c1", "search_top"].impressions == pytest.approx(200) and rows["c1", "search_top"].spend == pytest.approx(5.0)
    assert rows["c1", "email"].impressions == pytest.approx(100) and rows["c1", "email"].spend == pytest.approx(1.0)
    assert ("c1", "home_banner") not in rows
    # c2's budget is more than its capacity: it buys 2 x 50 impressions and spends 4.0.
    assert rows["c2", "search_top"].impressions == pytest.approx(100) and rows["c2", "search_top"].spend == pytest.approx(4.0)
    for campaign, budget in {"c1": 6.0, "c2": 100.0}.items():
        assert sum(r.spend for r in plan if r.campaign == campaign) <= budget + 1e-9
    top = rows["c1", "search_top"]
    assert top.clicks == pytest.approx(10) and top.conversions == pytest.approx(0.8) and top.roas == pytest.approx(8.0)


def test_no_budget_buys_nothing_and_bad_settings_are_refused():
    assert allocate(CELLS, {"c1": 0.0}) == []
    with pytest.raises(ValueError, match="max_scale"):
        allocate(CELLS, {"c1": 1.0}, max_scale=0)
    with pytest.raises(ValueError, match="negative"):
        allocate(CELLS, {"c1": -1.0})


def test_the_plan_as_a_slot_policy_splits_each_placement_by_the_impressions_bought():
    plan = allocate(CELLS, {"c1": 6.0, "c2": 100.0})
    policy = plan_policy(plan, {("c1", "i1"): 0.75, ("c1", "i2"): 0.25, ("c2", "i3"): 1.0})
    # search_top: c1 bought 200 impressions, c2 100.
    assert policy["search_top", "c1", "i1"] == pytest.approx(2 / 3 * 0.75) and policy["search_top", "c2", "i3"] == pytest.approx(1 / 3)
    assert policy["email", "c1", "i1"] == pytest.approx(0.75) and ("home_banner", "c1", "i1") not in policy
    for placement in ("search_top", "email"):
        assert sum(p for (pl, _, _), p in policy.items() if pl == placement) == pytest.approx(1.0)


def test_the_market_of_logged_impressions_gives_cost_per_click_budgets_shares_and_cells():
    import datetime as dt

    import numpy as np

    from shoplake import columns as C
    from shoplake.ads.bundle import Scores
    from shoplake.ads.data import CATEGORICAL, NUMERIC, AdData
    from shoplake.ads.plan import market_of

    n = 6
    cats = {name: np.array(["x"] * n, dtype=object) for name in CATEGORICAL}
    cats[C.CAMPAIGN_ID] = np.array(["c1", "c1", "c1", "c2", "c2", "c2"], dtype=object)
    cats[C.ITEM_ID] = np.array(["i1", "i1", "i2", "i3", "i3", "i3"], dtype=object)
    placement = np.array(["email", "email", "search_top", "email", "email", "email"], dtype=object)
    cats[C.PLACEMENT] = placement
    num = np.zeros((n, len(NUMERIC)))
    num[:, NUMERIC.index(C.PRICE)] = [10.0, 30.0, 20.0, 5.0, 5.0, 5.0]
    click = np.array([1, 1, 0, 0, 0, 0], float)
    days = np.array([dt.date(2024, 1, 1), dt.date(2024, 1, 2)] * 3, dtype=object)
    data = AdData(cats, num, np.zeros((n, 2), np.float32), click, np.zeros(n), placement.copy(), days, np.arange(n).astype(str),
                  np.array([0.4, 0.6, 0.0, 0.0, 0.0, 0.0]))  # fmt: skip
    p_ctcvr = np.array([0.01, 0.03, 0.02, 0.01, 0.01, 0.01])
    market = market_of(data, Scores(np.full(n, 0.1), p_ctcvr / 0.1, p_ctcvr))
    assert market.cpc == {"c1": pytest.approx(0.5), "c2": pytest.approx(0.5)}  # c2 has no click: the mean over all
    assert market.budgets == {"c1": pytest.approx(0.5), "c2": 0.0}
    assert market.ad_share == {("c1", "i1"): pytest.approx(2 / 3), ("c1", "i2"): pytest.approx(1 / 3), ("c2", "i3"): 1.0}
    cells = {(c.campaign, c.placement): c for c in market.cells}
    email = cells["c1", "email"]
    assert email.daily_impressions == 1.0 and email.p_ctcvr == pytest.approx(0.02)
    assert email.conversion_value == pytest.approx((0.01 * 10 + 0.03 * 30) / 0.04)
