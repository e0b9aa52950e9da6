"""Support tickets whose text depends on their intent."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from shoplake import columns as C
from shoplake.datagen.shop.common import (
    _INTENT_P,
    _ORDER_INTENTS,
    _S_SUPPORT,
    _SECONDS_PER_DAY,
    CHANNELS,
    INTENTS,
    _ids,
    _rng,
    _strings,
    _ts,
)
from shoplake.datagen.shop.vocab import _RESOLUTIONS, _TICKET_CLOSERS, _TICKET_OPENERS, _TICKET_TEMPLATES


class SupportMixin:
    """Support tickets whose text depends on their intent. A part of :class:`shoplake.datagen.synthetic._Shop`."""

    def _tickets(self, d: int, day_s: int, refs: dict) -> pa.Table:
        p, rng = self.p, _rng(self.p.seed, _S_SUPPORT, d)
        self.recent_orders.append(refs)
        pool_ids = np.concatenate([r["order_id"] for r in self.recent_orders])
        pool_user = np.concatenate([r["user"] for r in self.recent_orders])
        pool_item = np.concatenate([r["item"] for r in self.recent_orders])
        pool_amount = np.concatenate([r["amount"] for r in self.recent_orders])
        n = int(rng.poisson(p.tickets_per_order * len(refs["order_id"])))
        rows = []
        launched = np.flatnonzero(self.launched)
        for _ in range(n):
            intent = INTENTS[rng.choice(len(INTENTS), p=_INTENT_P)]
            order_id, amount = None, None
            if intent in _ORDER_INTENTS and len(pool_ids) and rng.random() < 0.9:
                k = int(rng.integers(len(pool_ids)))
                order_id, user, item, amount = pool_ids[k], int(pool_user[k]), int(pool_item[k]), pool_amount[k]
            else:
                user = int(np.minimum(np.searchsorted(self.act_cdf, rng.random() * self.act_cdf[-1], side="right"), p.users - 1))
                item = int(launched[rng.integers(len(launched))])
            templates = _TICKET_TEMPLATES[intent]
            body = templates[rng.integers(len(templates))].format(
                order=f"order {order_id}" if order_id else "my last order",
                item=self.noun[item],
                days=int(rng.integers(2, 15)),
                amount=f"{amount:.2f} {p.currency}" if amount is not None else "twice",
            )
            opener = _TICKET_OPENERS[rng.integers(len(_TICKET_OPENERS))]
            if opener:
                body = body[0].lower() + body[1:]
            text = opener + body + _TICKET_CLOSERS[rng.integers(len(_TICKET_CLOSERS))]
            labelled = rng.random() < p.intent_label_rate
            resolution = _RESOLUTIONS[intent][rng.integers(len(_RESOLUTIONS[intent]))] if labelled else None
            rows.append(
                (
                    self.user_ids[user],
                    order_id,
                    CHANNELS[rng.choice(3, p=[0.45, 0.4, 0.15])],
                    text,
                    intent if labelled else None,
                    resolution,
                    day_s + int(rng.integers(0, _SECONDS_PER_DAY)),
                )
            )
        rows.sort(key=lambda r: r[6])
        nums = self._next("ticket", len(rows))
        cols = list(zip(*rows)) if rows else [[]] * 7
        return pa.table(
            {
                C.TICKET_ID: _ids("t", nums, 8),
                C.USER_ID: _strings(cols[0]),
                C.ORDER_ID: _strings(cols[1]),
                C.CHANNEL: _strings(cols[2]),
                C.TEXT: _strings(cols[3]),
                C.INTENT: _strings(cols[4]),
                C.RESOLUTION: _strings(cols[5]),
                C.CREATED_TS: _ts(np.array(cols[6], dtype=np.int64)),
            }
        )
