"""Stock: expected demand, opening stock, replenishment and the end-of-day snapshot."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from shoplake import columns as C
from shoplake.datagen.shop.common import _MEAN_EXTRA_VIEWS, _P_BUY, _P_CART, _P_CLICK, _P_MULTI_UNIT, _S_PLAN, _TIER_P, _rng, _strings


class InventoryMixin:
    """Stock: expected demand, opening stock, replenishment and the end-of-day snapshot. A part of :class:`shoplake.datagen.synthetic._Shop`."""

    def _expected_daily_units(self) -> np.ndarray:
        """Expected units sold per item and day at average demand, to size stock and reorders."""
        p = self.p
        w = self.activity / self.activity.sum()
        share = (self.taste * w[:, None]).T @ _TIER_P[self.level]  # categories x tiers
        group_pop = np.zeros(3 * self.n_cat)
        np.add.at(group_pop, self.cat * 3 + self.tier, self.pop)
        p_view = share[self.cat, self.tier] * self.pop / group_pop[self.cat * 3 + self.tier]
        views_per_day = p.sessions_per_user_day * p.users * (1.0 + _MEAN_EXTRA_VIEWS)
        return views_per_day * p_view * _P_CLICK * _P_CART * _P_BUY * (1.0 + 1.5 * _P_MULTI_UNIT)

    def _init_inventory(self) -> None:
        p, n = self.p, self.p.items
        rng = _rng(p.seed, _S_PLAN, 1)
        self.ewma = self._expected_daily_units()
        self.init_stock = np.ceil(self.ewma * rng.uniform(14, 35, n)).astype(np.int64) + 20
        self.on_hand = np.zeros(n, dtype=np.int64)
        self.on_order = np.zeros(n, dtype=np.int64)
        self.arrivals = np.zeros((n, p.days + 40), dtype=np.int64)
        self.blocked_until = np.full(n, -1, dtype=np.int64)
        self.list_price = self.base_price.copy()
        self.dis_by_day: dict[int, list[dict]] = {}
        for dis in self.disruptions:
            self.dis_by_day.setdefault(dis["start"], []).append(dis)
        self.stockout_days: dict[int, list[int]] = {}

    def _open_stock(self, d: int) -> np.ndarray:
        arriving_new = self.launch == d
        self.on_hand[arriving_new] += self.init_stock[arriving_new]
        for dis in self.dis_by_day.get(d, []):
            i, e = dis["item"], dis["end"]
            # A damaged batch is written off and the supplier holds deliveries until the window ends.
            self.on_hand[i] = 0
            held = int(self.arrivals[i, d : e + 1].sum())
            self.arrivals[i, d : e + 1] = 0
            self.arrivals[i, e + 1] += held
            if held == 0:
                qty = self._order_qty(np.array([i]))[0]
                self.arrivals[i, e + 1] += qty
                self.on_order[i] += qty
            self.blocked_until[i] = e
        received = self.arrivals[:, d]
        self.on_hand += received
        self.on_order -= received
        opening = np.where(self.launched, self.on_hand, 0)
        for i in np.flatnonzero(self.launched & (opening == 0)):
            self.stockout_days.setdefault(int(i), []).append(d)
        return opening

    def _order_qty(self, items: np.ndarray) -> np.ndarray:
        return np.maximum(np.ceil(self.ewma[items] * 21), 10).astype(np.int64)

    def _close_stock(self, d: int, opening: np.ndarray, sess: dict, fraud: dict) -> pa.Table:
        p = self.p
        fl = np.array(fraud["lines"], dtype=np.int64).reshape(-1, 3)
        items = np.concatenate([sess["lines"].item, fl[:, 1]]).astype(np.int64)
        units = np.concatenate([sess["lines"].qty, fl[:, 2]]).astype(np.int64)
        sold = np.zeros(p.items, dtype=np.int64)
        np.add.at(sold, items, units)
        self.on_hand = opening - sold
        launched = self.launched
        # Demand, not sales, drives the forecast, or a stock-out would teach it that nobody wants the item.
        self.ewma = np.where(launched, 0.9 * self.ewma + 0.1 * self.attempted, self.ewma)
        rop = np.maximum(np.ceil(self.ewma * (self.lead + 4)), 2)
        reorder = np.flatnonzero(launched & (self.blocked_until < d) & (self.on_hand + self.on_order <= rop))
        qty = self._order_qty(reorder)
        self.arrivals[reorder, d + self.lead[reorder]] += qty
        self.on_order[reorder] += qty
        rows = np.flatnonzero(launched)
        return pa.table(
            {
                C.SNAPSHOT_DATE: pa.array([self.dates[d]] * len(rows), pa.date32()),
                C.ITEM_ID: _strings(self.item_ids[rows]),
                C.ON_HAND: pa.array(self.on_hand[rows], pa.int32()),
                C.ON_ORDER: pa.array(self.on_order[rows], pa.int32()),
                C.LEAD_TIME_DAYS: pa.array(self.lead[rows], pa.int32()),
                C.UNIT_COST: pa.array(self.unit_cost[rows], pa.float64()),
            }
        )
