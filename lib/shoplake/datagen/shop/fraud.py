"""Fraud patterns (stolen-card bursts, account takeovers, card testing) and the chargebacks that label them."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from shoplake import columns as C
from shoplake.datagen.shop.common import (
    _COUNTRIES,
    _S_FRAUD,
    _SECONDS_PER_DAY,
    _WORLD,
    FRAUD_PATTERNS,
    REASON_FRAUD,
    REASON_NOT_RECEIVED,
    _rng,
    _strings,
    _ts,
)


class FraudMixin:
    """Fraud patterns (stolen-card bursts, account takeovers, card testing) and the chargebacks that label them. A part of :class:`shoplake.datagen.synthetic._Shop`."""

    def _fraud(self, d: int, day_s: int, remaining: np.ndarray, n_legit: int) -> dict:
        """Fraudulent orders of the day; they buy from whatever stock legitimate customers left."""
        p, rng = self.p, _rng(self.p.seed, _S_FRAUD, d)
        out = {"orders": [], "lines": []}
        if p.fraud_rate <= 0:
            return out
        target = n_legit * p.fraud_rate / (1.0 - p.fraud_rate)
        sizes = {"stolen_card_burst": (0.35, 4.5), "account_takeover": (0.25, 1.5), "card_testing": (0.4, 16.0)}
        for pat in FRAUD_PATTERNS:
            share, size = sizes[pat]
            k = int(rng.poisson(target * share / size)) + int(self.forced_fraud_day[pat] == d)
            for _ in range(k):
                getattr(self, f"_fraud_{pat}")(rng, day_s, remaining, out)
                self.fraud_incidents[-1]["date"] = self.dates[d].isoformat()
        return out

    def _take_stock(self, rng, pool: np.ndarray, remaining: np.ndarray, n_lines: int, max_qty: int):
        avail = pool & (remaining > 0) & self.launched
        items = np.flatnonzero(avail)
        if len(items) == 0:
            return []
        chosen = rng.choice(items, size=min(n_lines, len(items)), replace=False)
        lines = []
        for i in np.sort(chosen):
            q = int(min(remaining[i], rng.integers(1, max_qty + 1)))
            remaining[i] -= q
            lines.append((int(i), q))
        return lines

    def _add_fraud_order(self, out, pattern, user, ts, lines, card, device, ip, billing, shipping, incident) -> None:
        out["orders"].append(
            {
                "pattern": pattern,
                "user": user,
                "ts": ts,
                "card": card,
                "device": device,
                "ip": ip,
                "billing": billing,
                "shipping": shipping,
                "incident": incident,
            }
        )
        for i, q in lines:
            out["lines"].append((len(out["orders"]) - 1, i, q))

    def _other_country(self, rng, country: str) -> str:
        options = [c for c in _WORLD if c != country]
        return options[rng.integers(len(options))]

    def _fraud_stolen_card_burst(self, rng, day_s, remaining, out) -> None:
        user, uid = self._new_account()
        card, device, ip = self._new_card(), self._new_device(), self._new_ip(rng)
        billing = _COUNTRIES[rng.integers(len(_COUNTRIES))]
        shipping = self._other_country(rng, billing)
        start = day_s + int(rng.integers(120, _SECONDS_PER_DAY - 3600))
        incident = {
            "pattern": "stolen_card_burst",
            "user_id": uid,
            "card_ids": [card],
            "device_id": device,
            "ip_address": ip,
            "payment_ids": [],
        }
        for t in np.sort(rng.integers(0, 3300, int(rng.integers(3, 7)))):
            lines = self._take_stock(rng, self.expensive, remaining, int(rng.integers(1, 3)), 2)
            if lines:
                self._add_fraud_order(out, "stolen_card_burst", user, start + int(t), lines, card, device, ip, billing, shipping, incident)
        self.fraud_incidents.append(incident)

    def _fraud_account_takeover(self, rng, day_s, remaining, out) -> None:
        user = int(np.minimum(np.searchsorted(self.act_cdf, rng.random() * self.act_cdf[-1], side="right"), self.p.users - 1))
        device, ip = self._new_device(), self._new_ip(rng)
        billing = _COUNTRIES[self.country[user]]
        shipping = self._other_country(rng, billing)
        card = self.card[user]
        start = day_s + int(rng.integers(120, _SECONDS_PER_DAY - 3600))
        incident = {
            "pattern": "account_takeover",
            "user_id": self.user_ids[user],
            "card_ids": [card],
            "device_id": device,
            "ip_address": ip,
            "payment_ids": [],
        }
        for t in np.sort(rng.integers(0, 3300, int(rng.integers(1, 3)))):
            lines = self._take_stock(rng, self.expensive, remaining, int(rng.integers(1, 4)), 2)
            if lines:
                self._add_fraud_order(out, "account_takeover", user, start + int(t), lines, card, device, ip, billing, shipping, incident)
        self.fraud_incidents.append(incident)

    def _fraud_card_testing(self, rng, day_s, remaining, out) -> None:
        user, uid = self._new_account()
        device, ip = self._new_device(), self._new_ip(rng)
        shipping = _WORLD[rng.integers(len(_WORLD))]
        start = day_s + int(rng.integers(120, _SECONDS_PER_DAY - 900))
        incident = {"pattern": "card_testing", "user_id": uid, "card_ids": [], "device_id": device, "ip_address": ip, "payment_ids": []}
        for t in np.sort(rng.integers(0, 600, int(rng.integers(8, 26)))):
            lines = self._take_stock(rng, self.cheap, remaining, 1, 1)
            if not lines:
                break
            card = self._new_card()
            incident["card_ids"].append(card)
            billing = _COUNTRIES[rng.integers(len(_COUNTRIES))]
            self._add_fraud_order(out, "card_testing", user, start + int(t), lines, card, device, ip, billing, shipping, incident)
        self.fraud_incidents.append(incident)

    def _schedule_chargebacks(self, d, rng, pay_ids, amount, pay_ts, n_legit, patterns) -> None:
        p = self.p
        n = len(pay_ids)
        u = rng.random(n)
        hit = np.concatenate([u[:n_legit] < p.friendly_fraud_rate, u[n_legit:] < p.fraud_chargeback_rate])
        idx = np.flatnonzero(hit)
        lo, hi = p.chargeback_delay_days
        delay = rng.integers(lo, hi + 1, len(idx))
        secs = rng.integers(0, _SECONDS_PER_DAY, len(idx))
        # Ids are handed out in payment-time order so reruns with other knobs keep them stable per day.
        idx_order = np.argsort(pay_ts[idx], kind="stable")
        cb_nums = self._next("chargeback", len(idx))
        for j, k in enumerate(idx[idx_order]):
            pos = idx_order[j]
            arrival = d + int(delay[pos])
            fraud = k >= n_legit
            cb = {
                "chargeback_id": f"cb{cb_nums[j]:08d}",
                "payment_id": pay_ids[k],
                "reason_code": REASON_FRAUD if fraud else REASON_NOT_RECEIVED,
                "amount": float(amount[k]),
                "ts": self.day0_s + arrival * _SECONDS_PER_DAY + int(secs[pos]),
                "payment_date": self.dates[d].isoformat(),
                "arrival_date": (self.p.start + dt.timedelta(days=arrival)).isoformat(),
                "written": arrival < p.days,
                "pattern": patterns[k - n_legit] if fraud else "friendly_fraud",
            }
            self.chargeback_log.append(cb)
            if not fraud:
                self.friendly_ids.append(pay_ids[k])
            if cb["written"]:
                self.pending_chargebacks.setdefault(arrival, []).append(cb)

    def _chargebacks_today(self, d: int) -> pa.Table:
        cbs = sorted(self.pending_chargebacks.pop(d, []), key=lambda r: (r["ts"], r["chargeback_id"]))
        return pa.table(
            {
                C.CHARGEBACK_ID: _strings([r["chargeback_id"] for r in cbs]),
                C.PAYMENT_ID: _strings([r["payment_id"] for r in cbs]),
                C.REASON_CODE: _strings([r["reason_code"] for r in cbs]),
                C.AMOUNT: pa.array([r["amount"] for r in cbs], pa.float64()),
                C.CHARGEBACK_TS: _ts(np.array([r["ts"] for r in cbs], dtype=np.int64)),
            }
        )
