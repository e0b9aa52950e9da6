"""Sponsored-product ads: the shop's logging policy, impressions with their propensity, clicks and conversions.

The logging policy picks the ad (a campaign's item) for every slot: half the time it
targets a category the viewer browses (drawn by the viewer's taste, then an ad of that
category evenly), half the time it picks any ad evenly. Every impression logs the
probability with which that ad was chosen (its propensity), so a new policy can be
judged from the log alone.

Planted structure (the ground truth states every parameter and each impression's true
probabilities, :meth:`AdsMixin.ad_truth`):

* click-through: ``base[placement] * position ** -ad_position_decay *
  affinity_ctr_multiplier ** match * text[item]``, where ``match`` says the ad's
  category is one of the viewer's favourites and ``text`` is a multiplier carried by
  the product noun of the ad's title (so the ad's words matter);
* conversion after a click: odds ``ad_conversion_rate / (1 - ad_conversion_rate) *
  cvr_affinity_multiplier ** match * (price / category median) ** -cvr_price_elasticity``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from shoplake import columns as C
from shoplake.datagen.shop.common import (
    _AD_CLICK,
    _AD_SLOTS,
    _AD_TYPE_NAMES,
    _BASE_CTR,
    _CONVERSION,
    _HOUR_WEIGHTS,
    _IMPRESSION,
    _MAX_AD_P,
    _MEDIAN_PRICE,
    _PLACEMENT_P,
    _S_ADS,
    _SECONDS_PER_DAY,
    PLACEMENTS,
    _ids,
    _pick_cdf,
    _rng,
    _strings,
    _ts,
)
from shoplake.datagen.shop.vocab import _VOCAB

# Key of the ads' set-up stream, apart from the per-day streams (keyed by the day number).
_AD_SETUP_KEY = 1_000_003


def click_probability(base: np.ndarray, position: np.ndarray, match: np.ndarray, text: np.ndarray, params) -> np.ndarray:
    """True click-through of impressions (see the module docstring)."""
    ctr = base * position.astype(float) ** -params.ad_position_decay * np.where(match, params.affinity_ctr_multiplier, 1.0) * text
    return np.minimum(ctr, _MAX_AD_P)


def conversion_probability(price_ratio: np.ndarray, match: np.ndarray, params) -> np.ndarray:
    """True conversion probability after a click (see the module docstring)."""
    base = params.ad_conversion_rate
    odds = base / max(1.0 - base, 1e-9) * np.where(match, params.cvr_affinity_multiplier, 1.0)
    odds = odds * price_ratio**-params.cvr_price_elasticity
    return np.minimum(odds / (1.0 + odds), _MAX_AD_P)


class AdsMixin:
    """Sponsored-product ads. A part of :class:`shoplake.datagen.synthetic._Shop`."""

    def _build_ads(self) -> None:
        """The text multiplier of every product noun and each item's price ratio, fixed up front."""
        p, rng = self.p, _rng(self.p.seed, _S_ADS, _AD_SETUP_KEY)
        sigma = p.ad_text_sigma
        self.noun_ctr = {}
        for c in self.cats:
            nouns = sorted(_VOCAB[c]["nouns"])
            z = rng.standard_normal(len(nouns))
            self.noun_ctr[c] = {noun: float(np.exp(sigma * zk - sigma**2 / 2)) for noun, zk in zip(nouns, z)}
        self.ad_text = np.array([self.noun_ctr[self.cats[self.cat[i]]][self.noun[i]] for i in range(p.items)])
        medians = np.array([_MEDIAN_PRICE[c] for c in self.cats])
        self.ad_price_ratio = self.base_price / medians[self.cat]
        self.ad_truth_rows: list[tuple[pa.Array, np.ndarray, np.ndarray]] = []

    def _ad_propensity(self, user: np.ndarray, pair: np.ndarray) -> np.ndarray:
        """Probability with which the logging policy picks ad ``pair`` for a slot shown to ``user``."""
        n_pairs = len(self.ad_item)
        sizes = np.array([len(a) for a in self.ad_by_cat], dtype=float)
        empty_taste = self.taste[user][:, sizes == 0].sum(axis=1)
        c = self.cat[self.ad_item[pair]]
        targeted = self.taste[user, c] / np.maximum(sizes[c], 1.0) + empty_taste / n_pairs
        return 0.5 / n_pairs + 0.5 * targeted

    def _ads(self, d: int, day_s: int, n_sessions: int) -> pa.Table:
        p, rng = self.p, _rng(self.p.seed, _S_ADS, d)
        n = int(rng.poisson(p.ad_impressions_per_session * n_sessions)) if len(self.ad_item) else 0
        user = np.minimum(np.searchsorted(self.act_cdf, rng.random(n) * self.act_cdf[-1], side="right"), p.users - 1)
        # Half the impressions are targeted at a category the viewer browses, half are run-of-site.
        targeted = rng.random(n) < 0.5
        tcat = _pick_cdf(np.cumsum(self.taste[user], axis=1), rng.random(n))
        pair = rng.integers(0, len(self.ad_item), n) if n else np.array([], np.int64)
        u = rng.random(n)
        for c in range(self.n_cat):
            rows = np.flatnonzero(targeted & (tcat == c))
            if len(rows) and len(self.ad_by_cat[c]):
                pair[rows] = self.ad_by_cat[c][(u[rows] * len(self.ad_by_cat[c])).astype(np.int64)]
        propensity = self._ad_propensity(user, pair)
        item, camp = self.ad_item[pair], self.ad_camp[pair]
        placement = rng.choice(len(PLACEMENTS), size=n, p=_PLACEMENT_P)
        slots = np.array([_AD_SLOTS[pl] for pl in PLACEMENTS])[placement]
        position = 1 + (rng.random(n) * slots).astype(np.int64)
        match = self.fav_mask[user, self.cat[item]]
        base = np.array([_BASE_CTR[pl] for pl in PLACEMENTS])[placement]
        ctr = click_probability(base, position, match, self.ad_text[item], p)
        cvr = conversion_probability(self.ad_price_ratio[item], match, p)
        clicked = rng.random(n) < ctr
        converted = clicked & (rng.random(n) < cvr)
        hour = rng.choice(len(_HOUR_WEIGHTS), size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
        its = day_s + hour * 3600 + rng.integers(0, 3600, n)
        cts = np.minimum(its + rng.integers(1, 30, n), day_s + _SECONDS_PER_DAY - 1)
        vts = np.minimum(cts + rng.integers(60, 1800, n), day_s + _SECONDS_PER_DAY - 1)
        known = rng.random(n) < 0.9
        imp_num = self._next("impression", n)
        imp_ids = _ids("im", imp_num, 10)
        self.ad_truth_rows.append((imp_ids, ctr, cvr))

        rows_imp = np.concatenate([np.arange(n), np.flatnonzero(clicked), np.flatnonzero(converted)])
        kind = np.concatenate([np.full(n, _IMPRESSION), np.full(int(clicked.sum()), _AD_CLICK), np.full(int(converted.sum()), _CONVERSION)])
        ts = np.concatenate([its, cts[clicked], vts[converted]])
        cost = np.where(kind == _AD_CLICK, self.camp_cpc[camp[rows_imp]], 0.0)
        order = np.lexsort((kind, rows_imp, ts))
        r = rows_imp[order]
        users = np.where(known[r], user[r], len(self.user_ids) - 1)
        return pa.table(
            {
                C.AD_EVENT_ID: _ids("ad", self._next("ad", len(r)), 10),
                C.IMPRESSION_ID: _ids("im", imp_num[r], 10),
                C.EVENT_TYPE: _strings(_AD_TYPE_NAMES[kind[order]]),
                C.USER_ID: _strings(self.user_ids[users]),
                C.ITEM_ID: _strings(self.item_ids[item[r]]),
                C.CAMPAIGN_ID: _strings(self.camp_ids[camp[r]]),
                C.PLACEMENT: _strings(np.array(PLACEMENTS, dtype=object)[placement[r]]),
                C.POSITION: pa.array(position[r], pa.int32()),
                C.PROPENSITY: pa.array(propensity[r], pa.float64()),
                C.COST: pa.array(cost[order], pa.float64()),
                C.EVENT_TS: _ts(ts[order]),
            }
        )

    def ad_truth(self) -> dict:
        """What the ads planted: the parameters of both probabilities, per item, and every impression's true ones."""
        p = self.p
        impressions = {}
        for ids, ctr, cvr in self.ad_truth_rows:
            for imp, a, b in zip(ids.to_pylist(), ctr.tolist(), cvr.tolist()):
                impressions[imp] = [round(a, 6), round(b, 6)]
        return {
            "ctr_by_placement": dict(_BASE_CTR),
            "slots_by_placement": dict(_AD_SLOTS),
            "position_decay": p.ad_position_decay,
            "affinity_ctr_multiplier": p.affinity_ctr_multiplier,
            "affinity": "the advertised item's category is one of the viewer's favourite_categories",
            "conversion_rate": p.ad_conversion_rate,
            "cvr_affinity_multiplier": p.cvr_affinity_multiplier,
            "cvr_price_elasticity": p.cvr_price_elasticity,
            "max_probability": _MAX_AD_P,
            "text_ctr_multiplier_by_noun": self.noun_ctr,
            "items": {
                self.item_ids[i]: {
                    "text_ctr_multiplier": round(float(self.ad_text[i]), 6),
                    "price_ratio": round(float(self.ad_price_ratio[i]), 6),
                }
                for i in np.unique(self.ad_item).tolist()
            },
            "policy": "half targeted (a category by the viewer's taste, then an ad of it evenly), half any ad evenly",
            "impressions": impressions,
            "campaigns": [
                {
                    "campaign_id": c["campaign_id"],
                    "category": c["category"],
                    "cpc": c["cpc"],
                    "items": [self.item_ids[i] for i in c["items"]],
                }
                for c in self.campaigns
            ],
        }


def true_ad_probabilities(truth: dict, users, items, placements, positions) -> tuple[np.ndarray, np.ndarray]:
    """The planted click and conversion-after-click probabilities of showing ad items to viewers, from a ground truth.

    Any (viewer, ad item, placement, position), shown or not: what a new policy's true
    value is computed from.

    Args:
        truth: The whole ``_ground_truth.json`` of a shop.
        users: Viewer ids (registered customers of the truth).
        items: Ad item ids (items of some campaign).
        placements: Placements.
        positions: Slots, from 1.

    Returns:
        ``(click probability, conversion probability after a click)``, one each per row.
    """
    from types import SimpleNamespace

    ads, params = truth["ads"], SimpleNamespace(**truth["params"])
    favourites = {u: set(v["favourite_categories"]) for u, v in truth["users"].items()}
    match = np.array([truth["items"][i]["category"] in favourites[u] for u, i in zip(users, items)], dtype=bool)
    base = np.array([ads["ctr_by_placement"][p] for p in placements], dtype=float)
    text = np.array([ads["items"][i]["text_ctr_multiplier"] for i in items], dtype=float)
    ratio = np.array([ads["items"][i]["price_ratio"] for i in items], dtype=float)
    return click_probability(base, np.asarray(positions), match, text, params), conversion_probability(ratio, match, params)
