"""Every ad for every viewer and placement, as the models read it: the market a per-viewer plan chooses in.

From logged impressions (:class:`~shoplake.ads.data.AdData` with viewers) up to a
cut-off, :func:`latest_state` keeps what the next impression would see: each ad's side
of the features (its item, campaign, placement and placement x item rates, the item's
clickstream events and price) and each viewer's side (ad impressions, click-through,
clickstream events, and the category affinity per category), each from the newest
logged impression that carried it. An affinity a viewer never showed for a category is
that of no events in it, ``1 / (events + 10)``; a placement x item never shown has the
prior click-through; the unknown viewer (``""``) has the priors and no events.

:func:`viewer_market` builds the :class:`~shoplake.ads.policy.ViewerMarket` of a traffic
window: every (viewer, placement) of the window with its slots a day, every ad of the
window, the bundle's calibrated expectations of each pair averaged over the
placement's positions as the window spread them (at the window's most common hour),
each campaign's cost per click and daily budget (what it spent a day in the window),
and the logged policy as the log states it, which the plan explores with and stays
near (:func:`logged_policy`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from shoplake import columns as C
from shoplake.ads import schemas as S
from shoplake.ads.bundle import Scores
from shoplake.ads.data import CATEGORICAL, NUMERIC, AdData
from shoplake.ads.features import AFFINITY_PSEUDO_EVENTS
from shoplake.ads.policy import ViewerMarket

UNKNOWN_VIEWER = ""
_VIEWER = [NUMERIC.index(n) for n in (S.USER_AD_IMPRESSIONS, S.USER_CTR, S.USER_EVENTS)]
_AFFINITY = NUMERIC.index(S.USER_CATEGORY_AFFINITY)
_PLACEMENT = [NUMERIC.index(n) for n in (S.PLACEMENT_CTR, S.PLACEMENT_CVR)]
_PLACEMENT_ITEM = NUMERIC.index(S.PLACEMENT_ITEM_CTR)
_AD = [NUMERIC.index(n) for n in (S.ITEM_IMPRESSIONS, S.ITEM_CTR, S.ITEM_CVR, S.CAMPAIGN_CTR, S.CAMPAIGN_CVR, S.ITEM_VIEWS, C.PRICE)]
_AD_FIELDS = (C.ITEM_ID, C.CAMPAIGN_ID, C.CATEGORY, C.PRICE_BAND)


@dataclass
class State:
    """What an impression after the cut-off would see (module docstring).

    Attributes:
        ads: ``(campaign, item)`` of every ad, sorted.
        ad_num: Per ad, the numeric features (only the ad's side filled).
        ad_cats: Per ad, its categorical fields (item, campaign, category, price band).
        ad_text: Per ad, the text embedding.
        placement_num: Per placement, its rates.
        placement_item_ctr: Per (placement, item), its click-through.
        viewer_num: Per viewer, the viewer's features.
        affinity: Per (viewer, category), the affinity.
        ctr_prior: The prior click-through (the unknown viewer's and an unseen placement x item's).
        propensity: Per (viewer, campaign, item), the newest logged propensity of showing that ad to that viewer (known viewers).
    """

    ads: list[tuple[str, str]]
    ad_num: np.ndarray
    ad_cats: dict[str, np.ndarray]
    ad_text: np.ndarray
    placement_num: dict[str, np.ndarray]
    placement_item_ctr: dict[tuple[str, str], float]
    viewer_num: dict[str, np.ndarray]
    affinity: dict[tuple[str, str], float]
    ctr_prior: float
    propensity: dict[tuple[str, str, str], float] = field(default_factory=dict)

    def viewer(self, viewer: str) -> np.ndarray:
        """The viewer's features (the unknown viewer's for one the state does not know)."""
        return self.viewer_num.get(viewer, np.array([0.0, self.ctr_prior, 0.0]))

    def category_affinity(self, viewer: str, category: str) -> float:
        known = self.affinity.get((viewer, category))
        return known if known is not None else 1.0 / (self.viewer(viewer)[2] + AFFINITY_PSEUDO_EVENTS)


def _last(keys: list) -> dict:
    """Each key's last row index."""
    return {k: i for i, k in enumerate(keys)}


def latest_state(data: AdData, ctr_prior: float) -> State:
    """The :class:`State` after the newest of ``data``'s impressions (time-ordered, with viewers).

    Raises:
        ValueError: ``data`` carries no viewers.
    """
    if data.users is None:
        raise ValueError("the impressions carry no viewers: read them with shoplake.ads.data.from_rows")
    cats, users, placement = data.cats, data.users, data.placement
    ad_rows = _last(list(zip(cats[C.CAMPAIGN_ID].tolist(), cats[C.ITEM_ID].tolist())))
    ads = sorted(ad_rows)
    idx = np.array([ad_rows[a] for a in ads], dtype=np.int64)
    ad_num = np.zeros((len(ads), len(NUMERIC)))
    ad_num[:, _AD] = data.num[idx][:, _AD]
    placement_num = {p: data.num[i, _PLACEMENT] for p, i in _last(placement.tolist()).items()}
    pi = {k: float(data.num[i, _PLACEMENT_ITEM]) for k, i in _last(list(zip(placement.tolist(), cats[C.ITEM_ID].tolist()))).items()}
    known = users != UNKNOWN_VIEWER
    viewer_num = {u: data.num[i, _VIEWER] for u, i in _last(users.tolist()).items() if u != UNKNOWN_VIEWER}
    rows = np.flatnonzero(known)
    affinity = {
        k: float(data.num[rows[i], _AFFINITY]) for k, i in _last(list(zip(users[rows].tolist(), cats[C.CATEGORY][rows].tolist()))).items()
    }
    propensity = {}
    if data.propensity is not None:
        shown = zip(users[rows].tolist(), cats[C.CAMPAIGN_ID][rows].tolist(), cats[C.ITEM_ID][rows].tolist())
        propensity = {k: float(data.propensity[rows[i]]) for k, i in _last(list(shown)).items()}
    return State(ads, ad_num, {f: cats[f][idx] for f in _AD_FIELDS}, data.text[idx], placement_num, pi, viewer_num, affinity, ctr_prior,
                 propensity)  # fmt: skip


def candidate_rows(state: State, viewer: str, placement: str, position: int, hour: int) -> AdData:
    """Every ad of ``state`` shown to ``viewer`` in ``placement`` at ``position`` and ``hour``, as the models read it."""
    n = len(state.ads)
    num = state.ad_num.copy()
    num[:, _VIEWER] = state.viewer(viewer)
    num[:, _AFFINITY] = [state.category_affinity(viewer, c) for c in state.ad_cats[C.CATEGORY]]
    num[:, _PLACEMENT] = state.placement_num.get(placement, np.array([state.ctr_prior, 0.0]))
    num[:, _PLACEMENT_ITEM] = [state.placement_item_ctr.get((placement, i), state.ctr_prior) for i in state.ad_cats[C.ITEM_ID]]
    cats = {f: np.full(n, v, dtype=object) for f, v in ((C.PLACEMENT, placement), (C.POSITION, str(position)), (S.HOUR, str(hour)))}
    cats.update({f: state.ad_cats[f] for f in _AD_FIELDS})
    cats = {f: cats[f] for f in CATEGORICAL}
    zeros = np.zeros(n)
    return AdData(cats, num, state.ad_text, zeros, zeros, cats[C.PLACEMENT], np.full(n, None, dtype=object), np.full(n, "", dtype=object),
                  users=np.full(n, viewer, dtype=object))  # fmt: skip


def viewer_market(window: AdData, state: State, score: Callable[[AdData], Scores], budgets_from: AdData | None = None) -> ViewerMarket:
    """The :class:`ViewerMarket` of a traffic window (module docstring), scored by ``score`` (a bundle's calibrated scores).

    Args:
        window: The impressions whose traffic, position spread, cost per click and budgets the plan takes (with viewers and cost).
        state: What the next impression would see (:func:`latest_state`).
        score: Calibrated scores of impressions.
        budgets_from: Impressions whose spend a day sets the budgets (default ``window``).

    Raises:
        ValueError: The window carries no viewers or costs, or is empty.
    """
    if window.users is None or window.cost is None or not len(window):
        raise ValueError("the traffic window must hold impressions with viewers and costs")
    days = max(len(set(window.day.tolist())), 1)
    contexts = sorted(set(zip(window.users.tolist(), window.placement.tolist())), key=lambda k: (k[1], k[0]))
    ctx_index = {k: j for j, k in enumerate(contexts)}
    traffic = np.zeros(len(contexts))
    np.add.at(traffic, [ctx_index[k] for k in zip(window.users.tolist(), window.placement.tolist())], 1.0 / days)
    hour_values, hour_counts = np.unique(window.cats[S.HOUR].astype(str), return_counts=True)
    hour = int(hour_values[np.argmax(hour_counts)])
    positions = {}
    for p in sorted(set(window.placement.tolist())):
        values, counts = np.unique(window.cats[C.POSITION][window.placement == p].astype(int), return_counts=True)
        positions[p] = (values, counts / counts.sum())
    n_ads = len(state.ads)
    # Every context at every position of its placement, scored in one call, then averaged over the positions.
    parts, weight_rows, owner = [], [], []
    for j, (viewer, placement) in enumerate(contexts):
        values, weights = positions[placement]
        for k, w in zip(values.tolist(), weights.tolist()):
            parts.append(candidate_rows(state, viewer, placement, int(k), hour))
            weight_rows.append(w)
            owner.append(j)
    scores = score(_concat(parts))
    shape = (len(parts), n_ads)
    weighted = np.asarray(weight_rows)[:, None]
    p_ctr, p_ctcvr = np.zeros((len(contexts), n_ads)), np.zeros((len(contexts), n_ads))
    np.add.at(p_ctr, owner, scores.p_ctr.reshape(shape) * weighted)
    np.add.at(p_ctcvr, owner, scores.p_ctcvr.reshape(shape) * weighted)
    campaigns = np.array([c for c, _ in state.ads], dtype=object)
    spend_log = window if budgets_from is None else budgets_from
    cpc, budgets = costs_and_budgets(spend_log)
    overall = float(np.mean(list(cpc.values()))) if cpc else 0.0
    ad_index = {a: i for i, a in enumerate(state.ads)}
    explore = np.zeros((len(contexts), n_ads))
    for p in positions:
        mine = window.placement == p
        share = np.zeros(n_ads)
        for a in zip(window.cats[C.CAMPAIGN_ID][mine].tolist(), window.cats[C.ITEM_ID][mine].tolist()):
            if a in ad_index:
                share[ad_index[a]] += 1.0
        share /= max(share.sum(), 1.0)
        for j, (viewer, placement) in enumerate(contexts):
            if placement == p:
                explore[j] = logged_policy(state, viewer, share)
    price = state.ad_num[:, NUMERIC.index(C.PRICE)]
    return ViewerMarket(
        np.array([v for v, _ in contexts], dtype=object), np.array([p for _, p in contexts], dtype=object), traffic, campaigns,
        np.array([i for _, i in state.ads], dtype=object), p_ctr, p_ctcvr, price, np.array([cpc.get(c, overall) for c in campaigns]),
        explore, {c: budgets.get(c, 0.0) for c in sorted(set(campaigns.tolist()))},
    )  # fmt: skip


def logged_policy(state: State, viewer: str, placement_share: np.ndarray) -> np.ndarray:
    """The logged policy's probability of each ad of ``state`` for ``viewer``, as the log states it.

    An ad logged for the viewer has the newest propensity the log gave it (in any
    placement); what those leave of 1 is spread over the viewer's other ads in
    proportion to ``placement_share`` (each ad's share of the placement's impressions),
    which is the whole answer for the unknown viewer and for a log without propensities.
    An ad the placement does not show (no share) gets nothing; the row is scaled to sum to 1.
    """
    row = np.zeros(len(state.ads))
    if viewer != UNKNOWN_VIEWER:
        row = np.array([state.propensity.get((viewer, c, i), 0.0) for c, i in state.ads]) * (placement_share > 0)
    unseen = np.where(row > 0, 0.0, placement_share)
    if unseen.sum() > 0:
        row = row + max(1.0 - row.sum(), 0.0) * unseen / unseen.sum()
    return row / row.sum() if row.sum() > 0 else placement_share


def costs_and_budgets(data: AdData) -> tuple[dict[str, float], dict[str, float]]:
    """Per campaign: the mean its clicks were charged, and what it spent a day over the impressions' days."""
    days = max(len(set(data.day.tolist())), 1)
    campaign, clicked = data.cats[C.CAMPAIGN_ID], data.click == 1
    cpc, budgets = {}, {}
    for c in sorted(set(campaign.tolist())):
        mine = campaign == c
        if (mine & clicked).any():
            cpc[c] = float(data.cost[mine & clicked].mean())
        budgets[c] = float(data.cost[mine].sum()) / days
    return cpc, budgets


def _concat(parts: list[AdData]) -> AdData:
    first = parts[0]
    return AdData(
        {k: np.concatenate([p.cats[k] for p in parts]) for k in first.cats}, np.vstack([p.num for p in parts]),
        np.vstack([p.text for p in parts]), np.concatenate([p.click for p in parts]), np.concatenate([p.conversion for p in parts]),
        np.concatenate([p.placement for p in parts]), np.concatenate([p.day for p in parts]), np.concatenate([p.ids for p in parts]),
    )  # fmt: skip


def logged_probabilities(market: ViewerMarket, probabilities: np.ndarray, data: AdData) -> tuple[np.ndarray, np.ndarray]:
    """For logged impressions: the policy's probability of the logged ad, and each row's context.

    A viewer the market does not hold gets the unknown viewer's context in the placement
    (or, without one, no context: probability 0, context -1); an ad it does not hold, 0.
    """
    ctx_index = {(v, p): j for j, (v, p) in enumerate(zip(market.viewers.tolist(), market.placements.tolist()))}
    ad_index = {a: i for i, a in enumerate(zip(market.campaigns.tolist(), market.items.tolist()))}
    ctx = np.array(
        [ctx_index.get((u, p), ctx_index.get((UNKNOWN_VIEWER, p), -1)) for u, p in zip(data.users.tolist(), data.placement.tolist())]
    )
    ad = np.array([ad_index.get(a, -1) for a in zip(data.cats[C.CAMPAIGN_ID].tolist(), data.cats[C.ITEM_ID].tolist())])
    ok = (ctx >= 0) & (ad >= 0)
    pi = np.zeros(len(data))
    pi[ok] = probabilities[ctx[ok], ad[ok]]
    return pi, ctx
