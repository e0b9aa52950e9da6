"""The per-viewer ad plan: which ad each slot shows, per viewer and placement, within every campaign's daily budget.

A *context* is a viewer in a placement (the unknown viewer is one context per
placement too), with the slots a day it is expected to fill (its traffic in the log).
For every context ``x`` and ad ``a`` (a campaign's item) the model gives calibrated
expectations of one impression: the value ``v = pCTCVR x price`` (a conversion is
worth the item's price) and the cost ``k = pCTR x cpc`` (the campaign's cost per
click). :func:`allocate_policy` chooses the policy ``pi(a | x)`` that maximises the
expected value minus cost of a day,

    ``max sum_x n_x sum_a pi(a|x) (v_xa - k_xa)``  such that
    ``sum_a pi(a|x) = 1`` per context and ``sum_x n_x sum_{a of c} pi(a|x) k_xa <= B_c`` per campaign,

a linear programme solved exactly (HiGHS through SciPy). Its dual prices of the
budgets are the campaigns' *budget multipliers* ``lambda_c``: without a binding budget
a slot shows the ad of the largest ``v - k``; with them, of the largest
``v - (1 + lambda_c) k`` (:func:`shaded_value`), the rule that carries the plan to a
viewer it was not made for. At a vertex of the programme only a few contexts (at most one per binding
budget) split their slots between ads (without a ``max_ratio``, below).

**Exploration.** So that every ad the log shows keeps a positive probability, a share
``epsilon`` of every slot follows the logged policy as the log states it (``explore``:
per viewer, the propensities the log gave its ads,
:func:`shoplake.ads.candidates.logged_policy`): ``pi = epsilon x explore + (1 -
epsilon) x y``, with ``y`` the optimised part. The budgets hold for the whole ``pi``,
exploration included.

**Staying near the log.** A near-deterministic ``y`` gives the few logged impressions
of its choices large importance weights (``pi / mu``) and the rest none, so its
off-policy estimate is noisy. With a ``max_ratio`` ``kappa`` the optimised part may give
an ad at most ``kappa`` times the logged policy's probability, ``y_xa <= kappa x
explore_xa`` (bounds of the same linear programme), so every weight stays near or below
``epsilon + (1 - epsilon) kappa`` (exactly, where ``explore`` is the logged propensity)
and a slot moves the log's own shares towards its best ads rather than to one ad;
``kappa = 1`` is the logged policy itself, no ``kappa`` the unbounded plan. A slot then
fills with its ads in the order of ``v - (1 + lambda_c) k``, each up to its bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoplake.ads.plan import PlanRow


class InfeasiblePlanError(ValueError):
    """No policy fills every slot within the budgets (exploration alone may overspend a campaign)."""


@dataclass(frozen=True)
class ViewerMarket:
    """Contexts, ads and the model's expectations of every (context, ad) impression.

    Attributes:
        viewers: Per context, the viewer ("" for the unknown viewer).
        placements: Per context, the placement.
        traffic: Per context, slots a day (``n_x``).
        campaigns: Per ad, its campaign.
        items: Per ad, its item.
        p_ctr: Calibrated click probability, ``(contexts, ads)``.
        p_ctcvr: Calibrated probability of a click that converts, ``(contexts, ads)``.
        price: Per ad, the value of a conversion.
        cpc: Per ad, its campaign's cost per click.
        explore: The logged policy as the log states it, ``(contexts, ads)``, rows summing to 1: what the plan explores with.
        budgets: Daily budget per campaign.
    """

    viewers: np.ndarray
    placements: np.ndarray
    traffic: np.ndarray
    campaigns: np.ndarray
    items: np.ndarray
    p_ctr: np.ndarray
    p_ctcvr: np.ndarray
    price: np.ndarray
    cpc: np.ndarray
    explore: np.ndarray
    budgets: dict[str, float]

    @property
    def value(self) -> np.ndarray:
        """Expected conversion value of an impression, ``(contexts, ads)``."""
        return self.p_ctcvr * self.price[None, :]

    @property
    def cost(self) -> np.ndarray:
        """Expected spend of an impression, ``(contexts, ads)``."""
        return self.p_ctr * self.cpc[None, :]

    def campaign_list(self) -> list[str]:
        return sorted(set(self.campaigns.tolist()))


@dataclass(frozen=True)
class Policy:
    """A plan as a stochastic policy over a :class:`ViewerMarket`.

    Attributes:
        probabilities: ``pi(a | x)``, ``(contexts, ads)``, rows summing to 1.
        multipliers: Per campaign, the budget multiplier ``lambda_c`` (0 where the budget does not bind).
        epsilon: The share of every slot that explores.
        max_ratio: The most the optimised part gives an ad, as a multiple of the logged policy's probability (None: no bound).
    """

    probabilities: np.ndarray
    multipliers: dict[str, float]
    epsilon: float
    max_ratio: float | None = None


def shaded_value(value: np.ndarray, cost: np.ndarray, multiplier: np.ndarray | float) -> np.ndarray:
    """What an impression is worth to a plan whose budget multiplier of the ad's campaign is ``multiplier``: ``v - (1 + lambda_c) k``.

    The multipliers enter the allocation here: the gain of ``y_xa`` in
    :func:`allocate_policy`'s programme, less its budget row priced at ``lambda_c``, is
    ``(1 - epsilon) n_x`` times this value, so the optimised part of a slot goes to the ads
    of the largest one. A multiplier of 0 (a budget that does not bind) leaves the
    expected value minus cost, ``v - k``.

    Args:
        value: Expected conversion value of the impressions (``v``).
        cost: Their expected spend (``k``).
        multiplier: Per impression (or one for all), its campaign's budget multiplier.
    """
    return value - (1.0 + multiplier) * cost


def allocate_policy(market: ViewerMarket, epsilon: float = 0.05, max_ratio: float | None = None) -> Policy:
    """The policy of the largest expected value minus cost within the budgets (module docstring).

    Args:
        market: The contexts, ads, expectations and budgets.
        epsilon: The share of every slot that follows ``market.explore``.
        max_ratio: The most the optimised part may give an ad of a slot, as a multiple of ``market.explore`` (None: no bound).

    Raises:
        ValueError: ``epsilon`` outside [0, 1), ``max_ratio`` below 1, or a negative budget.
        InfeasiblePlanError: No policy keeps every budget (names the campaigns whose exploration alone overspends).
    """
    from scipy import sparse
    from scipy.optimize import linprog

    if not 0 <= epsilon < 1:
        raise ValueError(f"epsilon must lie in [0, 1), got {epsilon}")
    if max_ratio is not None and max_ratio < 1:
        raise ValueError(f"max_ratio must be at least 1 (the logged policy's probabilities of a slot sum to 1), got {max_ratio}")
    if any(b < 0 for b in market.budgets.values()):
        raise ValueError("budgets must not be negative")
    n_ctx, n_ads = market.p_ctr.shape
    campaigns = market.campaign_list()
    if not n_ctx or not n_ads:
        return Policy(np.zeros((n_ctx, n_ads)), dict.fromkeys(campaigns, 0.0), epsilon, max_ratio)
    traffic_cost = market.traffic[:, None] * market.cost
    explore_spend = {c: float((epsilon * market.explore * traffic_cost)[:, market.campaigns == c].sum()) for c in campaigns}
    room = {c: market.budgets.get(c, 0.0) - explore_spend[c] for c in campaigns}
    over = [c for c in campaigns if room[c] < -1e-9]
    if over:
        raise InfeasiblePlanError(f"exploration alone ({epsilon:.0%} of the slots) overspends the budget of {', '.join(over)}")
    gain = (1 - epsilon) * market.traffic[:, None] * (market.value - market.cost)
    # Variables y[x, a] in row-major order; one equality per context, one budget row per campaign.
    rows = np.repeat(np.arange(n_ctx), n_ads)
    a_eq = sparse.csr_matrix((np.ones(n_ctx * n_ads), (rows, np.arange(n_ctx * n_ads))), shape=(n_ctx, n_ctx * n_ads))
    camp_index = {c: j for j, c in enumerate(campaigns)}
    ad_camp = np.array([camp_index[c] for c in market.campaigns])
    a_ub = sparse.csr_matrix(
        ((1 - epsilon) * traffic_cost.ravel(), (np.tile(ad_camp, n_ctx), np.arange(n_ctx * n_ads))), shape=(len(campaigns), n_ctx * n_ads)
    )
    b_ub = np.array([max(room[c], 0.0) for c in campaigns])
    upper = np.ones(n_ctx * n_ads) if max_ratio is None else np.minimum(max_ratio * market.explore, 1.0).ravel()
    bounds = np.column_stack([np.zeros(n_ctx * n_ads), upper])
    res = linprog(-gain.ravel(), A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=np.ones(n_ctx), bounds=bounds, method="highs")
    if res.status != 0:
        raise InfeasiblePlanError(f"no policy fills every slot within the budgets: {res.message}")
    y = np.clip(res.x.reshape(n_ctx, n_ads), 0.0, 1.0)
    y /= y.sum(axis=1, keepdims=True)
    probabilities = epsilon * market.explore + (1 - epsilon) * y
    # The duals are the objective's change per unit of budget: a binding budget is worth lambda_c of net value per unit.
    multipliers = {c: float(max(-res.ineqlin.marginals[j], 0.0)) for j, c in enumerate(campaigns)}
    return Policy(probabilities, multipliers, epsilon, max_ratio)


def plan_cells(market: ViewerMarket, probabilities: np.ndarray) -> list[PlanRow]:
    """Per campaign and placement, the impressions, clicks, conversions, spend and value a day that ``probabilities`` expects."""
    shown = market.traffic[:, None] * probabilities
    out = []
    for placement in sorted(set(market.placements.tolist())):
        mine = market.placements == placement
        for campaign in market.campaign_list():
            ads = market.campaigns == campaign
            block = shown[np.ix_(mine, ads)]
            out.append(PlanRow(
                campaign, placement, float(block.sum()), float((block * market.p_ctr[np.ix_(mine, ads)]).sum()),
                float((block * market.p_ctcvr[np.ix_(mine, ads)]).sum()), float((block * market.cost[np.ix_(mine, ads)]).sum()),
                float((block * market.value[np.ix_(mine, ads)]).sum()),
            ))  # fmt: skip
    return out


def campaign_spend(market: ViewerMarket, probabilities: np.ndarray) -> dict[str, float]:
    """Expected spend a day per campaign under ``probabilities``."""
    spend = market.traffic[:, None] * probabilities * market.cost
    return {c: float(spend[:, market.campaigns == c].sum()) for c in market.campaign_list()}
