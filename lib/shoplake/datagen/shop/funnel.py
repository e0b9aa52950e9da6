"""The funnel: sessions, searches, views, clicks, carts, orders and payments, cancellations and returns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoplake import columns as C
from shoplake.datagen.shop.common import (
    _CANCELLED,
    _CART,
    _CLICK,
    _COUNTRIES,
    _EVENT_TYPE_NAMES,
    _HOUR_WEIGHTS,
    _MAX_VIEWS,
    _MEAN_EXTRA_VIEWS,
    _P_BUY,
    _P_CART,
    _P_CLICK,
    _P_DEAL,
    _P_DRIFT,
    _P_MULTI_UNIT,
    _P_SEARCH,
    _PLACED,
    _PROMO_CART_LIFT,
    _PURCHASE,
    _RETURNED,
    _S_PAYMENTS,
    _S_SESSIONS,
    _SEARCH,
    _SECONDS_PER_DAY,
    _TIER_P,
    _VIEW,
    _ids,
    _Lines,
    _pick_cdf,
    _rng,
    _round2,
    _segment_starts,
    _strings,
    _ts,
)
from shoplake.datagen.shop.vocab import _QUERY_TEMPLATES, _VOCAB
from shoplake.ingest import landing as L


class FunnelMixin:
    """The funnel: sessions, searches, views, clicks, carts, orders and payments, cancellations and returns. A part of :class:`shoplake.datagen.synthetic._Shop`."""

    def _sessions(self, d: int, day_s: int, opening: np.ndarray) -> dict:
        p, rng = self.p, _rng(self.p.seed, _S_SESSIONS, d)
        n_s = int(rng.poisson(p.sessions_per_user_day * p.users * self.day_mult[d]))
        su = np.minimum(np.searchsorted(self.act_cdf, rng.random(n_s) * self.act_cdf[-1], side="right"), p.users - 1)
        cum = np.cumsum(self.taste[su] * self.cat_season[d][None, :], axis=1)
        scat = _pick_cdf(cum, rng.random(n_s))
        hour = rng.choice(len(_HOUR_WEIGHTS), size=n_s, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
        sstart = hour * 3600 + rng.integers(0, 3600, n_s)
        has_search = rng.random(n_s) < _P_SEARCH
        n_views = 1 + np.minimum(rng.poisson(_MEAN_EXTRA_VIEWS, n_s), _MAX_VIEWS - 1)

        vs = np.repeat(np.arange(n_s), n_views)
        nv = len(vs)
        vcat = scat[vs].copy()
        drift = np.flatnonzero(rng.random(nv) < _P_DRIFT)
        vcat[drift] = _pick_cdf(cum[vs[drift]], rng.random(len(drift)))
        tier_cum = np.cumsum(_TIER_P[self.level[su[vs]]], axis=1)
        vtier = _pick_cdf(tier_cum, rng.random(nv))
        on_promo = self.promo_disc[d] > 0
        weight = np.where(self.launched, self.pop * np.where(on_promo, p.promo_boost, 1.0), 0.0)
        vitem = self._pick_items(vcat, vtier, rng.random(nv), weight)
        deal_items = np.flatnonzero(on_promo & self.launched)
        deal = np.flatnonzero(rng.random(nv) < _P_DEAL) if len(deal_items) else np.array([], np.int64)
        if len(deal):
            # A promoted item alone in its price tier gains nothing from its weight there; the deals page lifts it.
            cs_deal = np.cumsum(self.pop[deal_items])
            pick = np.searchsorted(cs_deal, rng.random(len(deal)) * cs_deal[-1], side="right")
            vitem[deal] = deal_items[np.minimum(pick, len(deal_items) - 1)]

        gaps = rng.integers(20, 200, nv)
        cs = np.cumsum(gaps)
        first = _segment_starts(n_views)
        offset = cs - (cs[first] - gaps[first])[vs]
        vts = day_s + sstart[vs] + offset
        clicked = rng.random(nv) < _P_CLICK
        cts = vts + rng.integers(2, 15, nv)
        p_cart = _P_CART * np.where(on_promo[vitem], _PROMO_CART_LIFT, 1.0)
        carted = clicked & (rng.random(nv) < p_cart)
        ats = cts + rng.integers(5, 40, nv)
        wants = carted & (rng.random(nv) < _P_BUY)
        qty_all = 1 + (rng.random(nv) < _P_MULTI_UNIT) * rng.integers(1, 3, nv)
        last = offset[first + n_views - 1]
        checkout = day_s + sstart + last + 60 + rng.integers(30, 300, n_s)

        # One order line per item and session, bought at checkout while stock lasts.
        cand = np.flatnonzero(wants)
        _, keep_first = np.unique(vs[cand] * p.items + vitem[cand], return_index=True)
        cand = np.sort(cand[keep_first])
        c_item, c_qty, c_ts = vitem[cand], qty_all[cand], checkout[vs[cand]]
        by_item = np.lexsort((cand, c_ts, c_item))
        q_sorted = c_qty[by_item]
        cum_q = np.cumsum(q_sorted)
        item_sorted = c_item[by_item]
        grp_first = np.r_[True, item_sorted[1:] != item_sorted[:-1]]
        base = np.maximum.accumulate(np.where(grp_first, cum_q - q_sorted, 0))
        fits = np.empty(len(cand), dtype=bool)
        fits[by_item] = (cum_q - base) <= opening[item_sorted]
        self.attempted = np.bincount(c_item, weights=c_qty, minlength=p.items)
        bought = cand[fits]

        order_sessions, order_of_line = np.unique(vs[bought], return_inverse=True)
        lines = _Lines(
            order=order_of_line.astype(np.int64),
            item=vitem[bought],
            qty=qty_all[bought],
            price=self.price_today[vitem[bought]],
            ts=checkout[vs[bought]],
        )

        n_search = int(has_search.sum())
        search_sessions = np.flatnonzero(has_search)
        qcat = scat[search_sessions]
        queries = self._queries(rng, qcat)

        return {
            "session_user": su,
            "session_num": self._next("session", n_s),
            "view_session": vs,
            "view_item": vitem,
            "view_ts": vts,
            "clicked": clicked,
            "click_ts": cts,
            "carted": carted,
            "cart_ts": ats,
            "search_session": search_sessions,
            "search_ts": day_s + sstart[search_sessions],
            "queries": queries,
            "n_search": n_search,
            "lines": lines,
            "order_user": su[order_sessions],
            "order_session": order_sessions,
            "order_ts": checkout[order_sessions],
        }

    def _queries(self, rng: np.random.Generator, cats: np.ndarray) -> list[str]:
        """Search texts made of the words of each search's category."""
        n = len(cats)
        template = rng.integers(len(_QUERY_TEMPLATES), size=n)
        # One uniform per slot, scaled to each category's word list, keeps the draws vectorized.
        slots = (("noun", "nouns"), ("adj", "adjs"), ("brand", "brands"), ("variant", "variants"), ("use", "uses"))
        u = rng.random((n, len(slots)))
        out = []
        for k in range(n):
            v = _VOCAB[self.cats[cats[k]]]
            words = {key: v[name][int(u[k, j] * len(v[name]))] for j, (key, name) in enumerate(slots)}
            out.append(_QUERY_TEMPLATES[template[k]].format(**words).lower())
        return out

    def _orders_and_payments(self, d: int, day_s: int, sess: dict, fraud: dict):
        p, rng = self.p, _rng(self.p.seed, _S_PAYMENTS, d)
        legit_lines: _Lines = sess["lines"]
        n_legit = len(sess["order_user"])
        fo = fraud["orders"]
        n_orders = n_legit + len(fo)
        # Fraudulent lines are appended after the legitimate ones; order index n_legit + k is fraud order k.
        fl = np.array(fraud["lines"], dtype=np.int64).reshape(-1, 3)
        f_ts = np.array([o["ts"] for o in fo], dtype=np.int64)
        line_order = np.concatenate([legit_lines.order, n_legit + fl[:, 0]])
        line_item = np.concatenate([legit_lines.item, fl[:, 1]])
        line_qty = np.concatenate([legit_lines.qty, fl[:, 2]])
        line_price = np.concatenate([legit_lines.price, self.price_today[fl[:, 1]]])
        o_user = np.concatenate([sess["order_user"], np.array([o["user"] for o in fo], dtype=np.int64)])
        o_ts = np.concatenate([sess["order_ts"], f_ts])

        # Order ids follow time so that a later order never has a smaller number.
        rank = np.empty(n_orders, dtype=np.int64)
        rank[np.lexsort((np.arange(n_orders), o_ts))] = np.arange(n_orders)
        order_ids = np.empty(n_orders, dtype=object)
        nums = self._next("order", n_orders)
        order_ids[:] = _ids("o", nums, 8).to_numpy(zero_copy_only=False)[rank] if n_orders else []
        line_sort = np.lexsort((line_item, rank[line_order]))
        line_order, line_item = line_order[line_sort], line_item[line_sort]
        line_qty, line_price = line_qty[line_sort], line_price[line_sort]
        starts = np.r_[0, np.flatnonzero(np.diff(line_order)) + 1] if len(line_order) else np.array([], np.int64)
        counts = np.diff(np.r_[starts, len(line_order)])
        line_no = np.arange(len(line_order)) - np.repeat(starts, counts) + 1

        # Shipping country per order: the customer's own, a few gifts abroad, and the fraudster's choice.
        legit_billing = np.array(_COUNTRIES, dtype=object)[self.country[sess["order_user"]]]
        legit_shipping = legit_billing.copy()
        gifts = np.flatnonzero(rng.random(n_legit) < 0.02)
        for k in gifts:
            legit_shipping[k] = self._other_country(rng, legit_shipping[k])
        billing = np.concatenate([legit_billing, np.array([o["billing"] for o in fo], dtype=object)])
        shipping = np.concatenate([legit_shipping, np.array([o["shipping"] for o in fo], dtype=object)])

        orders = pa.table(
            {
                C.ORDER_ID: _strings(order_ids[line_order]),
                C.LINE_NUMBER: pa.array(line_no, pa.int32()),
                C.USER_ID: _strings(self.user_ids[o_user[line_order]]),
                C.ITEM_ID: _strings(self.item_ids[line_item]),
                C.QUANTITY: pa.array(line_qty, pa.int32()),
                C.UNIT_PRICE: pa.array(line_price, pa.float64()),
                C.ORDER_TS: _ts(o_ts[line_order]),
                C.STATUS: _strings(np.full(len(line_order), _PLACED, dtype=object)),
                C.COUNTRY: _strings(shipping[line_order]),
            }
        )
        self._schedule_order_changes(d, rng, orders, line_order < n_legit)

        amount = _round2(np.bincount(line_order, weights=line_qty * line_price, minlength=n_orders))
        pay_ts = o_ts + rng.integers(5, 60, n_orders)
        card = np.empty(n_orders, dtype=object)
        device = np.empty(n_orders, dtype=object)
        ip = np.empty(n_orders, dtype=object)
        method = np.empty(n_orders, dtype=object)
        lu = sess["order_user"]
        new_card = rng.random(n_legit) < 0.005
        new_dev = rng.random(n_legit) < p.new_device_rate
        new_ip = rng.random(n_legit) < 0.05
        # Legitimate customers sometimes get a new card or phone and keep using it afterwards.
        for k in np.flatnonzero(new_card | new_dev | new_ip):
            u = lu[k]
            if new_card[k]:
                self.card[u] = self._new_card()
            if new_dev[k]:
                self.device[u] = self._new_device()
                self.ip[u] = self._new_ip(rng)
            elif new_ip[k]:
                ip[k] = self._new_ip(rng)
        card[:n_legit] = self.card[lu]
        device[:n_legit] = self.device[lu]
        keep_ip = ~(new_ip & ~new_dev)
        ip[:n_legit][keep_ip] = self.ip[lu][keep_ip]
        method[:n_legit] = np.array(L.PAYMENT_METHODS, dtype=object)[self.method[lu]]
        for k, o in enumerate(fo):
            card[n_legit + k], device[n_legit + k], ip[n_legit + k] = o["card"], o["device"], o["ip"]
            method[n_legit + k] = L.PAYMENT_METHODS[0]
        pay_nums = self._next("payment", n_orders)
        pay_ids = np.empty(n_orders, dtype=object)
        pay_ids[:] = _ids("p", pay_nums, 8).to_numpy(zero_copy_only=False)[rank] if n_orders else []
        for k, o in enumerate(fo):
            pid = pay_ids[n_legit + k]
            self.fraud_ids[o["pattern"]].append(pid)
            o["incident"]["payment_ids"].append(pid)

        by_time = np.argsort(rank)
        payments = pa.table(
            {
                C.PAYMENT_ID: _strings(pay_ids[by_time]),
                C.ORDER_ID: _strings(order_ids[by_time]),
                C.USER_ID: _strings(self.user_ids[o_user[by_time]]),
                C.AMOUNT: pa.array(amount[by_time], pa.float64()),
                C.CURRENCY: _strings(np.full(n_orders, p.currency, dtype=object)),
                C.PAYMENT_METHOD: _strings(method[by_time]),
                C.CARD_ID: _strings(card[by_time]),
                C.DEVICE_ID: _strings(device[by_time]),
                C.IP_ADDRESS: _strings(ip[by_time]),
                C.BILLING_COUNTRY: _strings(billing[by_time]),
                C.SHIPPING_COUNTRY: _strings(shipping[by_time]),
                C.PAYMENT_TS: _ts(pay_ts[by_time]),
            }
        )
        self._schedule_chargebacks(d, rng, pay_ids, amount, pay_ts, n_legit, [o["pattern"] for o in fo])

        # Fraudsters browse a little before buying, so every purchase has its funnel.
        f_line_mask = line_order >= n_legit
        f_items = line_item[f_line_mask]
        f_orders = line_order[f_line_mask]
        f_sessions = self._next("session", len(fo))
        f_ts_lines = o_ts[f_orders]
        extra = {
            "user": np.concatenate([o_user[f_orders]] * 3),
            "session": np.concatenate([f_sessions[f_orders - n_legit]] * 3) if len(fo) else np.array([], np.int64),
            "type": np.repeat(np.array([_VIEW, _CART, _PURCHASE]), len(f_items)),
            "item": np.concatenate([f_items] * 3),
            "ts": np.concatenate([f_ts_lines - 90, f_ts_lines - 45, f_ts_lines]),
        }
        first_item = np.zeros(n_orders, dtype=np.int64)
        first_item[line_order[starts]] = line_item[starts]
        refs = {"order_id": order_ids[:n_legit], "user": lu, "item": first_item[:n_legit], "amount": amount[:n_legit]}
        return orders, payments, extra, refs

    def _schedule_order_changes(self, d: int, rng, orders: pa.Table, legit: np.ndarray) -> None:
        p = self.p
        u = rng.random(orders.num_rows)
        cancel = legit & (u < p.cancel_rate)
        ret = legit & ~cancel & (u < p.cancel_rate + p.return_rate)
        for mask, status, lo, hi in ((cancel, _CANCELLED, 1, 4), (ret, _RETURNED, 5, 21)):
            idx = np.flatnonzero(mask)
            if len(idx) == 0:
                continue
            later = d + rng.integers(lo, hi, len(idx))
            secs = self.day0_s + later * _SECONDS_PER_DAY + rng.integers(0, _SECONDS_PER_DAY, len(idx))
            rows = orders.take(pa.array(idx))
            for day in np.unique(later):
                if day >= p.days:
                    continue
                sel = np.flatnonzero(later == day)
                part = rows.take(pa.array(sel))
                part = part.set_column(part.schema.get_field_index(C.ORDER_TS), C.ORDER_TS, _ts(secs[sel]))
                part = part.set_column(part.schema.get_field_index(C.STATUS), C.STATUS, _strings(np.full(len(sel), status, dtype=object)))
                self.pending_orders.setdefault(int(day), []).append(part)
                self.counts["cancelled_lines" if status == _CANCELLED else "returned_lines"] += len(sel)

    def _events_table(self, sess: dict, extra: dict) -> pa.Table:
        vs, n_views = sess["view_session"], len(sess["view_session"])
        su, snum = sess["session_user"], sess["session_num"]
        clicked, carted = sess["clicked"], sess["carted"]
        lines: _Lines = sess["lines"]
        bought_sessions = sess["order_session"][lines.order]
        n_search = sess["n_search"]
        user = np.concatenate([su[sess["search_session"]], su[vs], su[vs[clicked]], su[vs[carted]], su[bought_sessions], extra["user"]])
        session = np.concatenate(
            [snum[sess["search_session"]], snum[vs], snum[vs[clicked]], snum[vs[carted]], snum[bought_sessions], extra["session"]]
        )
        etype = np.concatenate(
            [
                np.full(n_search, _SEARCH),
                np.full(n_views, _VIEW),
                np.full(int(clicked.sum()), _CLICK),
                np.full(int(carted.sum()), _CART),
                np.full(len(lines.item), _PURCHASE),
                extra["type"],
            ]
        )
        item = np.concatenate(
            [np.full(n_search, -1), sess["view_item"], sess["view_item"][clicked], sess["view_item"][carted], lines.item, extra["item"]]
        ).astype(np.int64)
        ts = np.concatenate(
            [sess["search_ts"], sess["view_ts"], sess["click_ts"][clicked], sess["cart_ts"][carted], lines.ts, extra["ts"]]
        ).astype(np.int64)
        query = np.empty(len(ts), dtype=object)
        query[:n_search] = sess["queries"]
        order = np.lexsort((np.arange(len(ts)), ts))
        n = len(ts)
        return pa.table(
            {
                C.EVENT_ID: _ids("e", self._next("event", n), 10),
                C.USER_ID: _strings(self.user_ids[user[order]]),
                C.SESSION_ID: _ids("s", session[order], 9),
                C.EVENT_TYPE: _strings(_EVENT_TYPE_NAMES[etype[order]]),
                C.ITEM_ID: _strings(self.item_ids[item[order]]),
                C.QUERY: _strings(query[order]),
                C.EVENT_TS: _ts(ts[order]),
            }
        )

    def _with_order_changes(self, d: int, orders: pa.Table) -> pa.Table:
        """The day's placed lines plus cancellations and returns of earlier orders, in time order."""
        parts = [orders] + self.pending_orders.pop(d, [])
        if len(parts) == 1:
            return orders
        merged = pa.concat_tables(parts)
        order = pc.sort_indices(
            merged, sort_keys=[(C.ORDER_TS, "ascending"), (C.ORDER_ID, "ascending"), (C.LINE_NUMBER, "ascending"), (C.STATUS, "ascending")]
        )
        return merged.take(order)
