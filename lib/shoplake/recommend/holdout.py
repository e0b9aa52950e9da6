"""What the recommenders learn from, cut "as of a time" from one features snapshot.

:func:`load_events` reads the run date D's snapshot once (D's view of
``silver.interactions`` and D's partition of ``gold.item_features``) into integer
arrays, an :class:`EventLog`. Every history a model learns from is cut from it by
event time: :func:`history` keeps the interactions before a time bound, and
optionally before a bound of each user's own, and turns them into the
:class:`TrainingData` every model family uses: weighted user-item pairs for
popularity, co-occurrence, EASE and matrix factorization, each user's time-ordered
item sequence for the sequence model. The pair weights follow the features step's
formula (``features.event_weights[type] * 0.5 ** (age_days / features.half_life_days)``,
the age measured from the bound), so the history as of D's midnight is exactly
D's ``gold.user_item_matrix``.

Cutting by event time, rather than reading a snapshot the features step built on
each cutoff day, lets one snapshot serve any number of cutoffs and a bound per user
(leave-last-out). The history as of a time t differs from the snapshot of t's day in
three ways, all small: it starts at ``D - features.lookback_days`` rather than
``t - lookback_days``; a fact that landed after t with an event time before t is in
it; and a purchase cancelled between t and D is already netted out.

The catalogue is D's: every item of ``gold.item_features`` and every item
interacted with. :attr:`EventLog.listed` says since when each item is known (its
first product row or interaction), so a protocol can hide the items a user could
not have been shown yet (:mod:`shoplake.recommend.protocols`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

from shoplake import columns as C
from shoplake.config import Config
from shoplake.features.history import read_as_of
from shoplake.features.pit import run_midnight
from shoplake.recommend.features import INTERACTION_HISTORY
from shoplake.recommend.models.mf import IdMap
from shoplake.recommend.schemas import INTERACTION_TYPES, INTERACTIONS, ITEM_FEATURES, PURCHASE

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400.0


class MissingFeaturesError(ValueError):
    """A snapshot the run needs is not in the lake."""


def midnight_seconds(day: dt.date) -> float:
    """The start of ``day`` (UTC) in seconds since the epoch."""
    return run_midnight(day).timestamp()


def day_start(seconds: np.ndarray | float) -> np.ndarray:
    """The midnight (UTC) that starts the day of each time, in seconds since the epoch."""
    return np.floor(np.asarray(seconds, dtype=np.float64) / SECONDS_PER_DAY) * SECONDS_PER_DAY


def seconds_to_date(seconds: float) -> dt.date:
    """The UTC date of a time in seconds since the epoch."""
    return dt.datetime.fromtimestamp(float(seconds), tz=dt.timezone.utc).date()


def first_midnight_date(seconds: float) -> dt.date:
    """The date whose midnight (UTC) is the first at or after a time."""
    return seconds_to_date(float(np.ceil(seconds / SECONDS_PER_DAY)) * SECONDS_PER_DAY)


@dataclass
class EventLog:
    """One features snapshot's interactions and catalogue as integer arrays.

    The interaction arrays are parallel and sorted by user, time and item, so any
    subset keeps every user's interactions in time order.

    Attributes:
        run_date: The snapshot's run date D: interactions before its midnight.
        user_ids: Every user with an interaction (sorted ids).
        item_ids: The catalogue: the items of ``gold.item_features`` and every item
            interacted with (sorted ids).
        users: User index of each interaction.
        items: Item index of each interaction.
        types: Index into :data:`~shoplake.recommend.schemas.INTERACTION_TYPES` of each interaction.
        times: When it happened, seconds since the epoch.
        listed: Per item, since when it is known (``first_seen_ts``: its first product
            row or interaction), seconds since the epoch.
        titles: Title per item index (None when unknown).
        categories: Category per item index.
        texts: Text-encoder input per item index ("" when the item has no text).
        versions: Delta version of each table read, by full name.
    """

    run_date: dt.date
    user_ids: IdMap
    item_ids: IdMap
    users: np.ndarray
    items: np.ndarray
    types: np.ndarray
    times: np.ndarray
    listed: np.ndarray
    titles: list[str | None]
    categories: list[str | None]
    texts: list[str]
    versions: dict[str, int] = field(default_factory=dict)

    @property
    def end(self) -> float:
        """D's midnight in seconds: every interaction is before it."""
        return midnight_seconds(self.run_date)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def of_types(self, types: Sequence[str]) -> np.ndarray:
        """Bool per interaction: its type is one of ``types``."""
        codes = [INTERACTION_TYPES.index(t) for t in types if t in INTERACTION_TYPES]
        return np.isin(self.types, codes)


@dataclass
class TrainingData:
    """A history as integer arrays: what one fit of a model learns from.

    Attributes:
        as_of: The date of the history's time bound (interactions before its midnight).
        user_ids: Users with interactions in the history (sorted ids).
        item_ids: The catalogue (the snapshot's, cold items included).
        pair_users: User index of each weighted pair.
        pair_items: Item index of each pair.
        pair_weights: Implicit-feedback weight of each pair.
        sequences: Per user index, the item indices of the user's interactions,
            oldest first; a repeat of the item just before is dropped.
        bought: Parallel to ``sequences``: whether that interaction was a purchase.
        times: Parallel to ``sequences``: when it happened, seconds since the epoch.
        titles: Title per item index (None when unknown).
        categories: Category per item index.
        texts: Text-encoder input per item index ("" when the item has no text).
        versions: Delta version of each table read, by full name.
        bound: The time bound, seconds since the epoch: every interaction is before it.
        user_bounds: Per user index, the user's own bound when the history was cut
            per user (leave-last-out); None when ``bound`` holds for everyone.
        log: The snapshot the history was cut from (what a model evaluated as of
            each user's own time counts from); None for a history built otherwise.
        log_users: Per user index, the user's index in ``log``.
    """

    as_of: dt.date
    user_ids: IdMap
    item_ids: IdMap
    pair_users: np.ndarray
    pair_items: np.ndarray
    pair_weights: np.ndarray
    sequences: list[np.ndarray]
    bought: list[np.ndarray]
    times: list[np.ndarray]
    titles: list[str | None]
    categories: list[str | None]
    texts: list[str]
    versions: dict[str, int] = field(default_factory=dict)
    bound: float | None = None
    user_bounds: np.ndarray | None = None
    log: EventLog | None = field(default=None, repr=False)
    log_users: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.bound is None:
            self.bound = midnight_seconds(self.as_of)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def seen(self) -> sparse.csr_matrix:
        """Users x items, 1 where the user interacted with the item in the history."""
        data = np.ones(len(self.pair_users), dtype=np.float32)
        m = sparse.csr_matrix((data, (self.pair_users, self.pair_items)), shape=(self.n_users, self.n_items))
        m.data[:] = 1.0
        return m

    def popularity(self) -> np.ndarray:
        """Summed pair weight per item (0 for items without interactions)."""
        return np.bincount(self.pair_items, weights=self.pair_weights, minlength=self.n_items)

    def interacted(self) -> np.ndarray:
        """Bool per item: someone interacted with it in the history."""
        return np.bincount(self.pair_items, minlength=self.n_items) > 0


def _version(lake, spec) -> int:
    version = lake.version(spec)
    if version is None:
        raise MissingFeaturesError(f"table {spec.full_name} does not exist in {lake.root}; run the features step first")
    return version


def _missing(spec, version: int, run_date: dt.date) -> MissingFeaturesError:
    return MissingFeaturesError(
        f"table {spec.full_name} v{version} has no rows for run_date {run_date}; "
        f"run the features step for {run_date} (shoplake features --run-date {run_date})"
    )


def _read(lake, spec, run_date: dt.date, columns: list[str]) -> tuple[pa.Table, int]:
    version = _version(lake, spec)
    table = lake.to_arrow(spec, version, columns=columns, run_date=run_date)
    if table.num_rows == 0:
        raise _missing(spec, version, run_date)
    return table, version


def _seconds(column) -> np.ndarray:
    return pc.cast(pc.cast(column, pa.timestamp("us", "UTC")), pa.int64()).to_numpy(zero_copy_only=False) / 1e6


def load_events(lake, run_date: dt.date, cfg: Config) -> EventLog:
    """The run date's snapshot as an :class:`EventLog`.

    Raises:
        MissingFeaturesError: A table or its ``run_date`` partition is missing.
    """
    events_v = _version(lake, INTERACTIONS)
    columns = [C.USER_ID, C.ITEM_ID, C.EVENT_TYPE, C.EVENT_TS]
    events = read_as_of(lake, INTERACTION_HISTORY, run_date, cfg.features.lookback_days, columns, events_v)
    if events.num_rows == 0:
        raise _missing(INTERACTIONS, events_v, run_date)
    catalogue, items_v = _read(lake, ITEM_FEATURES, run_date, [C.ITEM_ID, C.TITLE, C.CATEGORY, C.TEXT, C.FIRST_SEEN_TS])

    user_ids = IdMap.fit(events[C.USER_ID].to_pylist())
    item_ids = IdMap.fit(catalogue[C.ITEM_ID].to_pylist() + events[C.ITEM_ID].to_pylist())
    users = user_ids.lookup(events[C.USER_ID].to_pylist())
    items = item_ids.lookup(events[C.ITEM_ID].to_pylist())
    type_of = {t: n for n, t in enumerate(INTERACTION_TYPES)}
    types = np.array([type_of.get(t, -1) for t in events[C.EVENT_TYPE].to_pylist()], dtype=np.int8)
    times = _seconds(events[C.EVENT_TS])
    order = np.lexsort((items, times, users))
    users, items, types, times = users[order], items[order], types[order], times[order]

    n = len(item_ids)
    titles: list[str | None] = [None] * n
    categories: list[str | None] = [None] * n
    texts = [""] * n
    listed = np.full(n, np.inf)
    pos = item_ids.lookup(catalogue[C.ITEM_ID].to_pylist())
    first_seen = _seconds(catalogue[C.FIRST_SEEN_TS])
    for i, title, category, text, seen in zip(pos, catalogue[C.TITLE].to_pylist(), catalogue[C.CATEGORY].to_pylist(),
                                              catalogue[C.TEXT].to_pylist(), first_seen):  # fmt: skip
        titles[i], categories[i], texts[i] = title, category, text or ""
        listed[i] = seen if np.isfinite(seen) else np.inf
    # An item interacted with is known since its first interaction at the latest.
    np.minimum.at(listed, items, times)
    out = EventLog(
        run_date=run_date, user_ids=user_ids, item_ids=item_ids, users=users, items=items, types=types, times=times,
        listed=listed, titles=titles, categories=categories, texts=texts,
        versions={INTERACTIONS.full_name: events_v, ITEM_FEATURES.full_name: items_v},
    )  # fmt: skip
    log.info("snapshot %s: %d users, %d catalogue items, %d interactions", run_date, len(user_ids), n, len(users))
    return out


def history(events: EventLog, cfg: Config, bound: float, user_bounds: np.ndarray | None = None) -> TrainingData:
    """The interactions before ``bound`` (and each user's own bound) as :class:`TrainingData`.

    Args:
        events: The snapshot to cut from.
        cfg: ``features.event_weights`` and ``features.half_life_days`` (the pair weights).
        bound: Time bound in seconds: only interactions before it are kept.
        user_bounds: Per user of ``events.user_ids``, a further bound of the user's
            own (``inf``: none); a pair's weight then ages from the user's bound.

    Returns:
        The history; users without an interaction left are not in it.
    """
    feats = cfg.features
    keep = events.times < bound
    if user_bounds is not None:
        keep &= events.times < user_bounds[events.users]
    users, items, types, times = events.users[keep], events.items[keep], events.types[keep], events.times[keep]
    present = np.unique(users)
    user_ids = IdMap([events.user_ids.ids[u] for u in present])
    local = np.searchsorted(present, users)
    n_items = events.n_items

    # The features step's weight of each interaction, aged from the (user's) bound.
    reference = np.full(len(present), bound) if user_bounds is None else np.minimum(user_bounds[present], bound)
    type_weight = np.array([float(feats.event_weights.get(t, 0.0)) for t in INTERACTION_TYPES] + [0.0])
    age_days = (reference[local] - times) / SECONDS_PER_DAY
    weights = type_weight[types] * np.exp2(-age_days / feats.half_life_days)
    keys, inverse = np.unique(local * n_items + items, return_inverse=True)
    pair_weights = np.bincount(inverse, weights=weights, minlength=len(keys)).astype(np.float32)

    # Sequences: a repeat of the previous item of the same user (view, click, cart,
    # purchase of one product) is one step; it counts as bought if any of them was.
    new_step = np.ones(len(items), dtype=bool)
    new_step[1:] = (local[1:] != local[:-1]) | (items[1:] != items[:-1])
    step_id = np.cumsum(new_step) - 1
    step_bought = np.zeros(int(new_step.sum()), dtype=bool)
    np.logical_or.at(step_bought, step_id, types == INTERACTION_TYPES.index(PURCHASE))
    step_users, step_items, step_times = local[new_step], items[new_step], times[new_step]
    bounds_ = np.searchsorted(step_users, np.arange(len(present) + 1))
    rows = [slice(bounds_[u], bounds_[u + 1]) for u in range(len(present))]

    data = TrainingData(
        as_of=first_midnight_date(bound),
        user_ids=user_ids,
        item_ids=events.item_ids,
        pair_users=(keys // n_items).astype(np.int64),
        pair_items=(keys % n_items).astype(np.int64),
        pair_weights=pair_weights,
        sequences=[step_items[r] for r in rows],
        bought=[step_bought[r] for r in rows],
        times=[step_times[r] for r in rows],
        titles=events.titles,
        categories=events.categories,
        texts=events.texts,
        versions=dict(events.versions),
        bound=float(bound),
        user_bounds=None if user_bounds is None else reference,
        log=events,
        log_users=present,
    )
    log.info("history before %s%s: %d users, %d pairs, %d sequence steps", first_midnight_date(bound),
             "" if user_bounds is None else " (and each user's own bound)", data.n_users, len(keys), len(step_items))  # fmt: skip
    return data


def load_training_data(lake, as_of: dt.date, cfg: Config) -> TrainingData:
    """Everything the snapshot of ``as_of`` holds, as :class:`TrainingData` (what a model for serving learns from).

    Raises:
        MissingFeaturesError: A table or one of the partitions is missing.
    """
    events = load_events(lake, as_of, cfg)
    return history(events, cfg, events.end)
