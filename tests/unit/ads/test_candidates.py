"""The market of a per-viewer plan from logged impressions: the latest state, every ad for every viewer, traffic and budgets."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from shoplake import columns as C
from shoplake.ads import schemas as S
from shoplake.ads.bundle import Scores
from shoplake.ads.candidates import UNKNOWN_VIEWER, latest_state, logged_policy, logged_probabilities, viewer_market
from shoplake.ads.data import CATEGORICAL, NUMERIC, AdData

AFF = NUMERIC.index(S.USER_CATEGORY_AFFINITY)


def log() -> AdData:
    """Six impressions over two days: viewers u1, u2 and an unknown one; ads (c1, i1: shoes) and (c2, i2: books)."""
    users = np.array(["u1", "u1", "u2", "", "u1", "u2"], dtype=object)
    items = np.array(["i1", "i2", "i1", "i2", "i1", "i2"], dtype=object)
    n = len(users)
    cats = {name: np.array(["0"] * n, dtype=object) for name in CATEGORICAL}
    cats[C.ITEM_ID] = items
    cats[C.CAMPAIGN_ID] = np.where(items == "i1", "c1", "c2").astype(object)
    cats[C.CATEGORY] = np.where(items == "i1", "shoes", "books").astype(object)
    cats[C.PLACEMENT] = np.array(["search_top"] * 5 + ["email"], dtype=object)
    cats[C.POSITION] = np.array(["1", "2", "1", "1", "2", "1"], dtype=object)
    num = np.zeros((n, len(NUMERIC)))
    num[:, AFF] = [0.5, 0.05, 0.1, 0.1, 0.6, 0.3]  # u1 loves shoes (its newest shoes row says 0.6)
    num[:, NUMERIC.index(C.PRICE)] = np.where(items == "i1", 40.0, 10.0)
    click = np.array([1.0, 0, 0, 1, 0, 0])
    day = np.array([dt.date(2024, 1, 1)] * 3 + [dt.date(2024, 1, 2)] * 3, dtype=object)
    return AdData(cats, num, np.zeros((n, 2), np.float32), click, np.zeros(n), cats[C.PLACEMENT].copy(), day,
                  np.arange(n).astype(str).astype(object), np.where(click == 1, np.where(items == "i1", 0.5, 0.2), 0.0), users,
                  np.full(n, 0.5))  # fmt: skip


def affinity_score(data: AdData) -> Scores:
    """Click-through grows with the viewer's affinity to the ad's category; one click in ten converts."""
    p_ctr = 0.01 + 0.1 * data.num[:, AFF]
    return Scores(p_ctr, np.full(len(data), 0.1), p_ctr * 0.1)


def test_the_state_keeps_each_viewers_newest_affinity_and_the_unknown_viewer_has_the_priors():
    state = latest_state(log(), ctr_prior=0.03)
    assert state.ads == [("c1", "i1"), ("c2", "i2")]
    assert state.category_affinity("u1", "shoes") == pytest.approx(0.6) and state.category_affinity("u2", "books") == pytest.approx(0.3)
    # Never seen: no events in the category (and the unknown viewer has no events at all).
    assert state.category_affinity("u2", "shoes") == pytest.approx(1 / 10)
    assert state.viewer(UNKNOWN_VIEWER).tolist() == [0.0, 0.03, 0.0]


def test_the_market_scores_every_ad_for_every_viewer_and_sets_traffic_costs_and_budgets():
    data = log()
    market = viewer_market(data, latest_state(data, 0.03), affinity_score)
    contexts = list(zip(market.viewers.tolist(), market.placements.tolist()))
    assert contexts == [("u2", "email"), ("", "search_top"), ("u1", "search_top"), ("u2", "search_top")]
    # Slots a day over the window's two days.
    assert market.traffic.tolist() == [0.5, 0.5, 1.5, 0.5]
    u1 = contexts.index(("u1", "search_top"))
    assert market.p_ctr[u1].tolist() == pytest.approx([0.01 + 0.06, 0.01 + 0.1 * 0.05])
    assert market.cpc.tolist() == [0.5, 0.2] and market.budgets == {"c1": 0.25, "c2": 0.1}
    # Exploration follows the logged policy: the viewer's logged propensities (u1 was shown both ads with 0.5) of the ads the
    # placement shows (email never showed i1); the unknown viewer the placement's ad shares (search_top showed i1 three times in five).
    assert market.explore[u1].tolist() == pytest.approx([0.5, 0.5]) and market.explore[0].tolist() == [0.0, 1.0]
    assert market.explore[contexts.index(("", "search_top"))].tolist() == pytest.approx([0.6, 0.4])
    # A logged slot finds its context (a viewer the market does not know: the unknown viewer's) and its ad.
    probabilities = np.arange(8, dtype=float).reshape(4, 2) / 10
    stranger = data.take(np.array([0, 3]))
    stranger.users = np.array(["u9", "u1"], dtype=object)
    pi, ctx = logged_probabilities(market, probabilities, stranger)
    assert ctx.tolist() == [1, u1] and pi.tolist() == pytest.approx([0.2, 0.5])


def test_the_logged_policy_is_read_back_from_the_viewers_propensities_and_the_placements_shares_fill_the_rest():
    state = latest_state(log(), ctr_prior=0.03)
    state.ads.append(("c3", "i3"))
    state.propensity.update({("u1", "c1", "i1"): 0.2, ("u1", "c2", "i2"): 0.1})
    share = np.array([0.5, 0.25, 0.25])
    # u1's logged propensities stand; the 0.7 they leave goes to i3, the one ad the log never showed u1.
    assert logged_policy(state, "u1", share).tolist() == pytest.approx([0.2, 0.1, 0.7])
    # u2 was shown i1 with 0.5 (and i2 in another placement with 0.5): the row sums to 1 and i3 gets nothing left.
    assert logged_policy(state, "u2", share).tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert logged_policy(state, UNKNOWN_VIEWER, share).tolist() == pytest.approx(share.tolist())
    # Propensities that sum beyond 1 (a policy that changed) are scaled down to a distribution.
    state.propensity[("u1", "c2", "i2")] = 0.9
    assert logged_policy(state, "u1", share).tolist() == pytest.approx([0.2 / 1.1, 0.9 / 1.1, 0.0])
