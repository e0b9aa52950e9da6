"""The catalogue: items, titles and descriptions from the vocabularies, prices, promotions, launches."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from shoplake import columns as C
from shoplake.datagen.shop.common import _CHEAP_PRICES, _MEDIAN_PRICE, _S_CATALOG, _rng, _round2, _shop_price, _strings, _ts
from shoplake.datagen.shop.vocab import _VOCAB


class CatalogueMixin:
    """The catalogue: items, titles and descriptions from the vocabularies, prices, promotions, launches. A part of :class:`shoplake.datagen.synthetic._Shop`."""

    # ----------------------------------------------------------------- set-up

    def _build_catalog(self) -> None:
        p, rng, n, nc = self.p, _rng(self.p.seed, _S_CATALOG), self.p.items, self.n_cat
        # The first item of every category is on sale from day 0, so no category is ever empty.
        cat_p = rng.dirichlet(np.full(nc, 6.0))
        cat = np.concatenate([np.arange(nc), rng.choice(nc, size=n - nc, p=cat_p)]).astype(np.int64)
        medians = np.array([_MEDIAN_PRICE[c] for c in self.cats])
        price = _shop_price(medians[cat] * rng.lognormal(0.0, 0.5, n) + 1.0)
        launch = np.zeros(n, dtype=np.int64)
        rest = np.arange(nc, n)
        n_new = int(round(p.new_item_rate * n)) if p.days > 1 else 0
        new = rng.choice(rest, size=min(n_new, len(rest)), replace=False) if n_new else np.array([], np.int64)
        launch[new] = rng.integers(1, max(p.days, 2), size=len(new))
        day0_rest = rest[launch[rest] == 0]
        n_cheap = min(max(2, int(round(p.cheap_item_rate * n))), len(day0_rest)) if p.cheap_item_rate > 0 else 0
        cheap = np.sort(rng.choice(day0_rest, size=n_cheap, replace=False)) if n_cheap else np.array([], np.int64)
        price[cheap] = rng.choice(_CHEAP_PRICES, size=len(cheap))
        tier = np.zeros(n, dtype=np.int64)
        for c in range(nc):
            members = np.flatnonzero(cat == c)
            ranks = np.empty(len(members), dtype=np.int64)
            ranks[np.argsort(price[members], kind="stable")] = np.arange(len(members))
            tier[members] = (3 * ranks) // len(members)
        self.cat, self.base_price, self.launch, self.tier = cat, price, launch, tier
        self.cheap = np.zeros(n, dtype=bool)
        self.cheap[cheap] = True
        self.pop = rng.lognormal(0.0, 0.8, n)
        self.lead = rng.integers(2, 11, n)
        self.unit_cost = _round2(price * rng.uniform(0.35, 0.65, n))

        brands, nouns, titles, descs = [], [], [], []
        for i in range(n):
            v = _VOCAB[self.cats[cat[i]]]
            b = v["brands"][rng.integers(len(v["brands"]))]
            noun = v["nouns"][rng.integers(len(v["nouns"]))]
            adj = v["adjs"][rng.integers(len(v["adjs"]))]
            title = f"{b} {adj.capitalize()} {noun}"
            if rng.random() < 0.6:
                title += f", {v['variants'][rng.integers(len(v['variants']))]}"
            f1, f2 = rng.choice(len(v["features"]), size=2, replace=False)
            desc = (
                f"{adj.capitalize()} {noun} made of {v['materials'][rng.integers(len(v['materials']))]}. "
                f"{v['features'][f1].capitalize()} and {v['features'][f2]}. "
                f"Ideal for {v['uses'][rng.integers(len(v['uses']))]}."
            )
            brands.append(b)
            nouns.append(noun)
            titles.append(title)
            descs.append(desc)
        self.brand, self.noun, self.title, self.desc = brands, nouns, titles, descs
        width = max(5, len(str(n)))
        self.item_ids = np.array([f"i{k:0{width}d}" for k in range(1, n + 1)] + [None], dtype=object)
        self.group_members = [np.flatnonzero((cat == g // 3) & (tier == g % 3)) for g in range(3 * nc)]
        self.cat_members = [np.flatnonzero(cat == c) for c in range(nc)]
        self.expensive = tier == 2

    def _products_today(self, d: int, day_s: int) -> pa.Table:
        changed = set()
        for i, factor in self.price_changes.get(d, []):
            old = float(self.list_price[i])
            new = float(_shop_price(np.array([old * factor]))[0])
            if new != old:
                self.list_price[i] = new
                self.price_change_log.append(
                    {"item_id": self.item_ids[i], "date": self.dates[d].isoformat(), "old_price": old, "new_price": new}
                )
                changed.add(i)
        disc = self.promo_disc[d]
        self.price_today = _round2(self.list_price * (1.0 - disc))
        self.launched = self.launch <= d
        if d == 0:
            rows = np.flatnonzero(self.launched)
        else:
            moved = (disc != self.promo_disc[d - 1]) | (self.launch == d)
            rows = np.union1d(np.flatnonzero(moved & self.launched), np.array(sorted(changed), dtype=np.int64))
        rows = rows.astype(np.int64)
        return pa.table(
            {
                C.ITEM_ID: _strings(self.item_ids[rows]),
                C.TITLE: _strings([self.title[i] for i in rows]),
                C.DESCRIPTION: _strings([self.desc[i] for i in rows]),
                C.CATEGORY: _strings([self.cats[self.cat[i]] for i in rows]),
                C.BRAND: _strings([self.brand[i] for i in rows]),
                C.PRICE: pa.array(self.price_today[rows], pa.float64()),
                C.ON_PROMOTION: pa.array(disc[rows] > 0, pa.bool_()),
                C.UPDATED_AT: _ts(np.full(len(rows), day_s)),
            }
        )

    def _pick_items(self, cat: np.ndarray, tier: np.ndarray, u: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Items for rows of (category, price tier), by ``weight`` within the group."""
        out = np.empty(len(cat), dtype=np.int64)
        key = cat * 3 + tier
        order = np.argsort(key, kind="stable")
        bounds = np.searchsorted(key[order], np.arange(3 * self.n_cat + 1))
        for g in range(3 * self.n_cat):
            lo, hi = bounds[g], bounds[g + 1]
            if lo == hi:
                continue
            rows = order[lo:hi]
            members = self.group_members[g]
            if weight[members].sum() <= 0:
                # Small catalogues can leave a price tier empty for a while; fall back to the category.
                members = self.cat_members[g // 3]
            cs = np.cumsum(weight[members])
            out[rows] = members[np.minimum(np.searchsorted(cs, u[rows] * cs[-1], side="right"), len(cs) - 1)]
        return out
