"""Sponsored-product ads: impressions, clicks and conversions by placement and taste."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from shoplake import columns as C
from shoplake.datagen.shop.common import (
    _AD_CLICK,
    _AD_TYPE_NAMES,
    _BASE_CTR,
    _CONVERSION,
    _HOUR_WEIGHTS,
    _IMPRESSION,
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


class AdsMixin:
    """Sponsored-product ads: impressions, clicks and conversions by placement and taste. A part of :class:`shoplake.datagen.synthetic._Shop`."""

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
        item, camp = self.ad_item[pair], self.ad_camp[pair]
        placement = rng.choice(len(PLACEMENTS), size=n, p=_PLACEMENT_P)
        match = self.fav_mask[user, self.cat[item]]
        base = np.array([_BASE_CTR[pl] for pl in PLACEMENTS])[placement]
        ctr = np.minimum(base * np.where(match, p.affinity_ctr_multiplier, 1.0), 1.0)
        clicked = rng.random(n) < ctr
        converted = clicked & (rng.random(n) < p.ad_conversion_rate)
        hour = rng.choice(len(_HOUR_WEIGHTS), size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
        its = day_s + hour * 3600 + rng.integers(0, 3600, n)
        cts = np.minimum(its + rng.integers(1, 30, n), day_s + _SECONDS_PER_DAY - 1)
        vts = np.minimum(cts + rng.integers(60, 1800, n), day_s + _SECONDS_PER_DAY - 1)
        known = rng.random(n) < 0.9
        imp_num = self._next("impression", n)

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
                C.COST: pa.array(cost[order], pa.float64()),
                C.EVENT_TS: _ts(ts[order]),
            }
        )
