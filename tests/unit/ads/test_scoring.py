"""The ranking of a viewer's ads on a hand-made state: expected value, shaded by the run date's plan where there is one."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from shoplake import columns as C
from shoplake.ads import schemas as S
from shoplake.ads.bundle import Scores
from shoplake.ads.policy import shaded_value
from shoplake.ads.score import score_viewers
from shoplake.ads.scoring import AdPlan, AdState

D = dt.date(2024, 3, 11)
SCORED_AT = dt.datetime(2024, 3, 11, 2, tzinfo=dt.timezone.utc)
#: (item, campaign, price, cpc, p_ctr, p_ctcvr): i1 is worth 1.0 - 0.2 = 0.8, i2 0.7 - 0.05 = 0.65, i3 0.3 - 0.1 = 0.2.
ADS = (("i1", "c1", 100.0, 1.0, 0.2, 0.01), ("i2", "c2", 100.0, 1.0, 0.05, 0.007), ("i3", "c3", 30.0, 0.5, 0.2, 0.01))
PROBABILITIES = {item: (ctr, ctcvr) for item, _, _, _, ctr, ctcvr in ADS}


class FixedBundle:
    """A bundle whose calibrated scores depend on the ad's item alone (:data:`ADS`)."""

    model = SimpleNamespace(kind="fixed")

    def score(self, data) -> Scores:
        ctr, ctcvr = (np.array([PROBABILITIES[i][k] for i in data.ids]) for k in (0, 1))
        return Scores(ctr, ctcvr / ctr, ctcvr)


def state(plan: AdPlan | None = None) -> AdState:
    """Every ad of :data:`ADS` in one placement, for the unknown viewer and u1."""
    rows = [
        {
            C.PLACEMENT: "search_top", C.ITEM_ID: item, C.CAMPAIGN_ID: campaign, C.CATEGORY: "kitchen", C.PRICE_BAND: 2,
            **{name: 0.0 for name in S.AD_SIDE_FEATURES}, C.PRICE: price, S.CPC: cpc, C.RUN_DATE: D,
        }
        for item, campaign, price, cpc, _, _ in ADS
    ]  # fmt: skip
    viewers = [
        {C.USER_ID: user, S.USER_AD_IMPRESSIONS: 0.0, S.USER_CTR: 0.03, S.USER_EVENTS: 0.0, S.CATEGORIES: [], S.CATEGORY_EVENTS: [],
         C.RUN_DATE: D}
        for user in (None, "u1")
    ]  # fmt: skip
    return AdState(
        pa.Table.from_pylist(rows, schema=S.AD_STATE.arrow_schema()), pa.Table.from_pylist(viewers, schema=S.AD_VIEWERS.arrow_schema()),
        {}, D, plan,
    )  # fmt: skip


def scored(plan: AdPlan | None) -> dict[str, dict]:
    """The unknown viewer's ``serving.ad_scores`` rows by item."""
    ads = state(plan)
    table = score_viewers(FixedBundle(), ads, [ads.unknown], "1", D, SCORED_AT)
    assert table.schema == S.AD_SCORES.arrow_schema()
    return {r[C.ITEM_ID]: r for r in table.to_pylist()}


def test_without_a_plan_the_ads_are_ranked_by_expected_value():
    rows = scored(None)
    assert [rows[i][S.RANK] for i in ("i1", "i2", "i3")] == [1, 2, 3]
    for item, _, price, cpc, ctr, ctcvr in ADS:
        row = rows[item]
        assert row[S.EXPECTED_VALUE] == pytest.approx(ctcvr * price - ctr * cpc)
        assert row[S.RANKING_VALUE] == row[S.EXPECTED_VALUE]
        assert row[S.BUDGET_MULTIPLIER] is None and row[S.PLAN_RUN_DATE] is None


def test_a_campaign_whose_multiplier_lowers_its_value_drops_below_another_ad():
    # c1's budget binds: i1's cost counts twice, 1.0 - 2 x 0.2 = 0.6, below i2's 0.65; c2's multiplier 0 leaves i2 as it was.
    rows = scored(AdPlan(D, {"c1": 1.0, "c2": 0.0, "c3": 0.0}))
    assert [rows[i][S.RANK] for i in ("i2", "i1", "i3")] == [1, 2, 3]
    assert rows["i1"][S.RANKING_VALUE] == pytest.approx(0.6) and rows["i1"][S.EXPECTED_VALUE] == pytest.approx(0.8)
    assert rows["i1"][S.RANKING_VALUE] == pytest.approx(shaded_value(1.0, 0.2, 1.0))
    assert rows["i2"][S.RANKING_VALUE] == rows["i2"][S.EXPECTED_VALUE] == pytest.approx(0.65)
    assert (rows["i1"][S.BUDGET_MULTIPLIER], rows["i2"][S.BUDGET_MULTIPLIER]) == (1.0, 0.0)
    assert {r[S.PLAN_RUN_DATE] for r in rows.values()} == {D}
    # A multiplier too small to close the gap keeps the order: 1.0 - 1.5 x 0.2 = 0.7 > 0.65.
    assert scored(AdPlan(D, {"c1": 0.5}))["i1"][S.RANK] == 1


def test_an_ad_whose_campaign_the_plan_lacks_is_ranked_by_expected_value():
    rows = scored(AdPlan(D, {"c1": 1.0}))
    for item in ("i2", "i3"):
        assert rows[item][S.RANKING_VALUE] == rows[item][S.EXPECTED_VALUE] and rows[item][S.BUDGET_MULTIPLIER] is None
        assert rows[item][S.PLAN_RUN_DATE] == D


def test_the_state_scores_as_the_batch_rows_for_every_viewer():
    plan = AdPlan(D, {"c1": 1.0, "c3": 0.25})
    ads = state(plan)
    rows = {(r[C.USER_ID], r[C.ITEM_ID]): r for r in score_viewers(FixedBundle(), ads, [0, 1], "1", D, SCORED_AT).to_pylist()}
    placement = ads.placements["search_top"]
    for user in (None, "u1"):
        scores, value, ranking = ads.score(FixedBundle(), ads.viewer(user), "search_top")
        for r, item in enumerate(placement.items.tolist()):
            assert (rows[(user, item)][S.EXPECTED_VALUE], rows[(user, item)][S.RANKING_VALUE]) == (value[r], ranking[r])
    assert np.isnan(placement.multiplier[placement.index["i2"][0]]) and placement.multiplier[placement.index["i3"][0]] == 0.25


def test_a_plan_is_read_per_campaign_and_must_be_of_the_state_s_run_date():
    rows = pa.Table.from_pylist(
        [{C.CAMPAIGN_ID: "c1", S.BUDGET_MULTIPLIER: 0.5}, {C.CAMPAIGN_ID: "c1", S.BUDGET_MULTIPLIER: 0.5},
         {C.CAMPAIGN_ID: "c2", S.BUDGET_MULTIPLIER: 0.0}]
    )  # fmt: skip
    assert AdPlan.from_rows(rows, D) == AdPlan(D, {"c1": 0.5, "c2": 0.0})
    with pytest.raises(ValueError, match="2024-03-10"):
        state(AdPlan(D - dt.timedelta(days=1), {"c1": 1.0}))
