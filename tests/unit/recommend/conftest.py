"""A hand-made features snapshot as an EventLog, without Spark or a lake."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from shoplake.recommend.holdout import EventLog
from shoplake.recommend.models.mf import IdMap
from shoplake.recommend.schemas import INTERACTION_TYPES


@pytest.fixture
def make_events():
    """``make(rows, run_date, catalogue=(), listed={})``: an EventLog of ``(user, item, type, seconds)`` rows.

    ``catalogue`` adds items without interactions; ``listed`` sets an item's first-seen time
    (default: its first interaction, or the epoch for a catalogue item).
    """

    def make(rows, run_date: dt.date, catalogue=(), listed=None) -> EventLog:
        listed = listed or {}
        user_ids = IdMap.fit(u for u, _, _, _ in rows)
        item_ids = IdMap.fit([i for _, i, _, _ in rows] + list(catalogue))
        users = user_ids.lookup(u for u, _, _, _ in rows)
        items = item_ids.lookup(i for _, i, _, _ in rows)
        types = np.array([INTERACTION_TYPES.index(t) for _, _, t, _ in rows], dtype=np.int8)
        times = np.array([t for _, _, _, t in rows], dtype=np.float64)
        order = np.lexsort((items, times, users))
        first = np.full(len(item_ids), np.inf)
        np.minimum.at(first, items, times)
        first = np.where(np.isinf(first), 0.0, first)
        for item, seconds in listed.items():
            first[item_ids.lookup([item])[0]] = seconds
        n = len(item_ids)
        return EventLog(
            run_date=run_date, user_ids=user_ids, item_ids=item_ids, users=users[order], items=items[order], types=types[order],
            times=times[order], listed=first, titles=[None] * n, categories=[None] * n, texts=[""] * n,
        )  # fmt: skip

    return make
