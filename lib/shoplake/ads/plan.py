"""The ad plan: how many impressions each campaign buys in each placement tomorrow, within its daily budget.

Campaigns are derived from the log (:mod:`shoplake.ads.features`): a campaign's ads are
the items its impressions advertised, its cost per click what its clicks were charged,
and its daily budget what it spent a day on average under the shop's current policy,
so the plan spends the same money, placed where the model expects it to return most.

Per campaign and placement, a :class:`Cell` holds the calibrated expectations of an
impression (pCTR, pCTCVR), the value of a conversion (the item's price) and how many
impressions a day the placement offered the campaign in the log. :func:`allocate` fills
each campaign's budget greedily: placements in the order of expected value per unit of
spend, only those whose expected value exceeds their cost, each up to
``max_scale`` times its logged daily impressions. For one budget and linear
returns per placement (a fractional knapsack) the greedy order is optimal.

The plan as a policy (:func:`plan_policy`): in a placement, an ad is shown with the
share of that placement's planned impressions its campaign bought, spread over the
campaign's ads as the log spread them. :mod:`shoplake.ads.ope` judges it against the
logged policy from the logged propensities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shoplake import columns as C
from shoplake.ads.bundle import Scores
from shoplake.ads.data import NUMERIC, AdData


@dataclass(frozen=True)
class Cell:
    """One campaign in one placement, as the held-out impressions and the model see it.

    Attributes:
        campaign: Campaign id.
        placement: Placement.
        daily_impressions: Impressions a day the log gave the campaign there.
        p_ctr: Mean calibrated click probability of its impressions there.
        p_ctcvr: Mean calibrated probability of a click that converts.
        cpc: Cost of a click.
        conversion_value: Value of a conversion (the advertised item's price, averaged).
    """

    campaign: str
    placement: str
    daily_impressions: float
    p_ctr: float
    p_ctcvr: float
    cpc: float
    conversion_value: float

    @property
    def cost(self) -> float:
        """Expected spend of one impression."""
        return self.p_ctr * self.cpc

    @property
    def value(self) -> float:
        """Expected conversion value of one impression."""
        return self.p_ctcvr * self.conversion_value


@dataclass(frozen=True)
class PlanRow:
    """The plan of one campaign in one placement: impressions to buy and what they are expected to bring."""

    campaign: str
    placement: str
    impressions: float
    clicks: float
    conversions: float
    spend: float
    value: float

    @property
    def roas(self) -> float:
        """Return on ad spend: expected conversion value over spend (0 without spend)."""
        return self.value / self.spend if self.spend > 0 else 0.0


def allocate(cells: Sequence[Cell], budgets: dict[str, float], max_scale: float = 2.0) -> list[PlanRow]:
    """Each campaign's impressions per placement maximising expected value minus spend within its daily budget.

    Args:
        cells: Every (campaign, placement) with its expectations.
        budgets: Daily budget per campaign (a campaign without one buys nothing).
        max_scale: A placement sells a campaign at most this many times its logged daily impressions.

    Returns:
        One row per cell bought, campaigns in the order of ``cells``.

    Raises:
        ValueError: A negative budget or a scale not above 0.
    """
    if max_scale <= 0:
        raise ValueError(f"max_scale must be above 0, got {max_scale}")
    if any(b < 0 for b in budgets.values()):
        raise ValueError("budgets must not be negative")
    by_campaign: dict[str, list[Cell]] = {}
    for cell in cells:
        by_campaign.setdefault(cell.campaign, []).append(cell)
    rows = []
    for campaign, mine in by_campaign.items():
        left = float(budgets.get(campaign, 0.0))
        worth = [c for c in mine if c.value > c.cost and c.daily_impressions > 0]
        for cell in sorted(worth, key=lambda c: (-(c.value / c.cost) if c.cost > 0 else float("-inf"), c.placement)):
            capacity = max_scale * cell.daily_impressions
            n = capacity if cell.cost == 0 else min(capacity, left / cell.cost)
            if n <= 0:
                continue
            left -= n * cell.cost
            rows.append(PlanRow(campaign, cell.placement, n, n * cell.p_ctr, n * cell.p_ctcvr, n * cell.cost, n * cell.value))
    return rows


def plan_policy(plan: Sequence[PlanRow], ad_share: dict[tuple[str, str], float]) -> dict[tuple[str, str, str], float]:
    """The plan as a slot policy: ``{(placement, campaign, ad): probability}`` of showing the campaign's ad in a slot of the placement.

    Args:
        plan: The allocation.
        ad_share: ``{(campaign, ad): share}`` of the campaign's impressions each of its ads got in the log (sums to 1 per campaign).
    """
    per_placement: dict[str, float] = {}
    for row in plan:
        per_placement[row.placement] = per_placement.get(row.placement, 0.0) + row.impressions
    policy: dict[tuple[str, str, str], float] = {}
    for row in plan:
        campaign_share = row.impressions / per_placement[row.placement]
        for (campaign, ad), share in ad_share.items():
            if campaign == row.campaign:
                policy[(row.placement, campaign, ad)] = campaign_share * share
    return policy


@dataclass(frozen=True)
class Market:
    """What the log and the model say of the campaigns: the cells, each campaign's daily budget, and its ads' shares."""

    cells: list[Cell]
    budgets: dict[str, float]
    ad_share: dict[tuple[str, str], float]
    cpc: dict[str, float]


def market_of(data: AdData, scores: Scores) -> Market:
    """The :class:`Market` of some logged impressions (with their cost) and the model's calibrated scores of them.

    A campaign's cost per click is the mean its clicks were charged (the mean over all
    campaigns for one without a click), its daily budget what it spent a day on average
    over the impressions' days, an ad's share its part of the campaign's impressions.

    Raises:
        ValueError: The impressions carry no cost.
    """
    if data.cost is None:
        raise ValueError("the impressions carry no cost: read them with shoplake.ads.data.from_rows")
    campaign, item, placement = data.cats[C.CAMPAIGN_ID], data.cats[C.ITEM_ID], data.placement
    price = data.num[:, NUMERIC.index(C.PRICE)]
    days = max(len(set(data.day.tolist())), 1)
    clicked = data.click == 1
    overall = float(data.cost[clicked].mean()) if clicked.any() else 0.0
    cpc, budgets, ad_share, cells = {}, {}, {}, []
    for c in sorted(set(campaign.tolist())):
        mine = campaign == c
        cpc[c] = float(data.cost[mine & clicked].mean()) if (mine & clicked).any() else overall
        budgets[c] = float(data.cost[mine].sum()) / days
        for ad in sorted(set(item[mine].tolist())):
            ad_share[(c, ad)] = float((mine & (item == ad)).sum() / mine.sum())
        for p in sorted(set(placement[mine].tolist())):
            rows = mine & (placement == p)
            ctcvr = scores.p_ctcvr[rows]
            value = float((ctcvr * price[rows]).sum() / ctcvr.sum()) if ctcvr.sum() > 0 else float(price[rows].mean())
            cells.append(Cell(c, p, float(rows.sum()) / days, float(scores.p_ctr[rows].mean()), float(ctcvr.mean()), cpc[c], value))
    return Market(cells, budgets, ad_share, cpc)
