"""silver.interactions stored once: night by night, in one backfill and after a re-run, the same rows and snapshots."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd

from shoplake import columns as C
from shoplake.datagen.synthetic import ShopParams, generate_shop
from shoplake.features.history import read_as_of
from shoplake.features.run import build_features
from shoplake.ingest.bronze import read_bronze
from shoplake.ingest.landing import EVENTS, ORDERS
from shoplake.ingest.run import date_range, ingest
from shoplake.lake import Lake
from shoplake.recommend.features import INTERACTION_HISTORY, compute_interactions
from shoplake.recommend.pipeline import FEATURES
from shoplake.recommend.schemas import INTERACTION_IDENTITY, INTERACTIONS, USER_ITEM_MATRIX

# Cancellations that land days after their orders, so that later nights retract earlier purchases.
SHOP = ShopParams(days=7, users=30, items=20, seed=5, sessions_per_user_day=0.5, cancel_rate=0.15)
# Not every day is built: a night follows the last change, whenever that was.
NIGHTS = [SHOP.start + dt.timedelta(days=n) for n in (3, 4, 7)]


def rows(frame: pd.DataFrame) -> list[tuple]:
    return sorted(frame.round(9).astype(str).itertuples(index=False, name=None))


def stored(lake) -> list[tuple]:
    return rows(lake.to_arrow(INTERACTIONS).to_pandas()[INTERACTIONS.column_names])


def test_night_by_night_equals_one_backfill_and_every_snapshot_is_the_point_in_time_one(make_cfg, test_engine, spark, tmp_path):
    nightly = make_cfg(f"lake.engine={test_engine}")
    backfill = make_cfg(f"lake.engine={test_engine}", f"lake.root={tmp_path}/backfill")
    generate_shop(nightly.landing.root, SHOP)
    by_night, at_once = Lake(nightly, spark), Lake(backfill, spark)
    ingest(nightly, by_night, date_range(SHOP.start, NIGHTS[-1] - dt.timedelta(days=1)), [ORDERS.name, EVENTS.name])
    shutil.copytree(Path(nightly.lake.root) / "bronze", Path(backfill.lake.root) / "bronze")

    for night in NIGHTS:
        build_features(nightly, by_night, [night], nodes=[FEATURES])
    build_features(backfill, at_once, NIGHTS, nodes=[FEATURES])
    assert stored(by_night) == stored(at_once)

    history = by_night.to_arrow(INTERACTIONS).to_pandas()
    assert not history.duplicated(list(INTERACTION_IDENTITY)).any()
    # Later nights retracted purchases of earlier ones (cancellations known late) without deleting them.
    assert history[C.KNOWN_UNTIL].notna().any()
    assert set(history[C.KNOWN_FROM]) | set(history[C.KNOWN_UNTIL].dropna()) <= set(NIGHTS)

    # Each night's snapshot is what the per-date definition gives on the bronze rows landed before it.
    lookback = nightly.features.lookback_days
    events, orders = read_bronze(by_night, nightly, EVENTS.name), read_bronze(by_night, nightly, ORDERS.name)
    for night in NIGHTS:
        expected = compute_interactions(events.where(events[C.RUN_DATE] < night), orders.where(orders[C.RUN_DATE] < night), night, lookback)
        want = expected.select(*INTERACTION_IDENTITY).toPandas()
        want[C.EVENT_TS] = want[C.EVENT_TS].dt.tz_localize("UTC")  # the session's time zone is UTC
        want = rows(want)
        got = rows(read_as_of(by_night, INTERACTION_HISTORY, night, lookback, list(INTERACTION_IDENTITY)).to_pandas())
        assert got == want, night
        # The gold table read from the history is the same whichever way the history was built.
        matrix = rows(by_night.to_arrow(USER_ITEM_MATRIX, run_date=night).to_pandas())
        assert matrix and matrix == rows(at_once.to_arrow(USER_ITEM_MATRIX, run_date=night).to_pandas()), night

    # Re-running a middle night rewinds to it and builds the later change dates again: the same rows.
    build_features(nightly, by_night, [NIGHTS[1]], nodes=[FEATURES])
    assert stored(by_night) == stored(at_once)
