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


def plan_policy(plan: Sequence[PlanRow], ad_share: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    """The plan as a slot policy: ``{(placement, ad): probability}`` of showing the ad in a slot of the placement.

    Args:
        plan: The allocation.
        ad_share: ``{(campaign, ad): share}`` of the campaign's impressions each of its ads got in the log (sums to 1 per campaign).
    """
    per_placement: dict[str, float] = {}
    for row in plan:
        per_placement[row.placement] = per_placement.get(row.placement, 0.0) + row.impressions
    policy: dict[tuple[str, str], float] = {}
    for row in plan:
        campaign_share = row.impressions / per_placement[row.placement]
        for (campaign, ad), share in ad_share.items():
            if campaign == row.campaign:
                policy[(row.placement, ad)] = policy.get((row.placement, ad), 0.0) + campaign_share * share
    return policy
