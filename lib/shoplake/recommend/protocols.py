"""The evaluation protocols of the recommendation run: which purchases judge the models, and what the models learn from.

``recommender.protocol`` chooses one. Each turns the run date D's snapshot
(:func:`shoplake.recommend.holdout.load_events`) into held-out splits: one or more
validation splits, which choose the champion and the tuned settings, and one test
split, which only reports. A split is a :class:`HoldoutSplit`: the history the
models learn from and, for each user of it, the items to find.

* ``time_cutoff``: two windows of ``recommender.holdout_days`` before D. Test is
  ``[C, D)`` with ``C = D - holdout_days``, learnt from everything before C;
  validation is ``[V, C)`` with ``V = C - holdout_days``, learnt from everything
  before V. Only users with a purchase in a window are judged in it, so on data
  where users come in bursts few of them are.
* ``rolling``: ``recommender.rolling_cutoffs`` such windows, their cutoffs
  ``recommender.rolling_spacing_days`` apart (at least ``holdout_days``, so that no
  window reaches into the next), the latest ending at D. The latest is test, the
  earlier ones validation; the validation figures pool the (user, window) pairs of
  all of them. ``time_cutoff`` is ``rolling`` with two adjacent windows.
* ``leave_last_out``: every user is judged on their own last purchase. A user's
  purchase *days* are the days on which they bought something (with
  ``recommender.exclude_seen``: something they had not interacted with before that
  day); the items bought on the last of them are the user's test target, those of
  the day before it the validation target. Items of one order share a timestamp and
  have no order among themselves, so the unit held out is the day, not one line of
  it. The split's ``cutoff`` is the earliest target day of its users.

What each protocol guarantees:

* Per user, for every protocol: nothing the user did at or after the midnight that
  starts their first held-out day is in what the models learn from, nor in the
  history a model ranks from, nor among the items excluded as seen.
* ``time_cutoff`` and ``rolling``: a global time bound. Nothing anyone did at or
  after the window's start is learnt from.
* ``leave_last_out`` cuts each user's history at their own target day, and every
  model but two is fitted once on the union of those histories. Like every
  leave-one-out evaluation in the literature (SASRec, BERT4Rec), such a model may
  therefore learn from other users' interactions after a given user's target day:
  the global-timeline leak of Ji et al., "A Critical Study on Data Leakage in
  Recommender System Offline Evaluation" (ACM TOIS, 2023). Where that is cheap it
  is avoided: ``popularity`` and ``trending`` are counted as of each user's own
  target day from all interactions before it (:class:`shoplake.recommend.fitting.AsOfCounts`), and so is the
  sequence model's trending prior. Co-occurrence, item-kNN, EASE, matrix
  factorization and the sequence network itself keep the leak; read their
  leave-last-out figures as the literature's, and the time-cutoff protocols for
  figures free of it.
* The catalogue a user is ranked over holds only the items known before the
  midnight that starts the user's first held-out day (first product row or first
  interaction; ``gold.item_features.first_seen_ts``). A shop that lists an item
  only when it first sells (Online Retail) would otherwise tell the models which
  new items sell in the window. Items listed after the history's bound but before
  that day stay: a model served then would have had them, with their text and
  without their interactions. Held-out purchases of items listed later count as
  misses for every model.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np

from shoplake.config import Config
from shoplake.evaluation import TEST, VALIDATION
from shoplake.recommend.holdout import (
    EventLog,
    MissingFeaturesError,
    TrainingData,
    day_start,
    history,
    midnight_seconds,
    seconds_to_date,
)
from shoplake.recommend.schemas import LEAVE_LAST_OUT, ROLLING, TIME_CUTOFF

log = logging.getLogger(__name__)

PROTOCOLS = (TIME_CUTOFF, ROLLING, LEAVE_LAST_OUT)
_DAY_BITS = 20  # day numbers since the epoch stay below 2 ** 20 until the year 4840


@dataclass
class HoldoutSplit:
    """One held-out split: what the models learn from and what each user is judged on.

    Attributes:
        run_date: The run date D whose snapshot the split was cut from.
        cutoff: Time windows: the window's first day; leave-last-out: the earliest target day of its users.
        end: The day after the held-out days (exclusive).
        train: What the models learn from.
        relevant: Per user index of ``train``, the held-out item indices (empty:
            the user is not judged in this split).
        exclude_seen: Whether a user's training items are excluded from rankings (and truth).
        cold_items: Bool per item: no interaction in ``train``.
        protocol: The protocol that made the split.
        split: ``validation`` or ``test``.
        available_from: Per user index of ``train``, a time in seconds: items known
            only from then on are not ranked for the user. None: every item is ranked.
    """

    run_date: dt.date
    cutoff: dt.date
    train: TrainingData
    relevant: list[set[int]]
    exclude_seen: bool
    cold_items: np.ndarray
    protocol: str = TIME_CUTOFF
    split: str = TEST
    end: dt.date | None = None
    available_from: np.ndarray | None = None

    def eval_users(self) -> np.ndarray:
        """Indices of the users with held-out items, the ones every metric averages over."""
        return np.array([u for u, rel in enumerate(self.relevant) if rel], dtype=np.int64)

    def unavailable(self, users: np.ndarray) -> np.ndarray | None:
        """Bool ``(len(users), n_items)``: items not yet known to each user's catalogue; None when all are."""
        if self.available_from is None or self.train.log is None:
            return None
        return self.train.log.listed[None, :] >= self.available_from[np.asarray(users)][:, None]

    def relevant_cold(self) -> list[set[int]]:
        """Per user, the held-out items that are cold (no training interaction) and were in the user's catalogue."""
        cold = set(np.flatnonzero(self.cold_items).tolist())
        out = []
        for u, rel in enumerate(self.relevant):
            items = rel & cold
            if items and self.available_from is not None and self.train.log is not None:
                items = {i for i in items if self.train.log.listed[i] < self.available_from[u]}
            out.append(items)
        return out

    def describe(self) -> str:
        return f"{self.protocol} {self.split} {self.cutoff}..{self.end}"


def rolling_cutoffs(cfg: Config, run_date: dt.date) -> list[dt.date]:
    """The cutoffs of the time-window protocols, oldest first; the last is the test window's.

    ``time_cutoff``: ``D - 2 * holdout_days`` and ``D - holdout_days``; ``rolling``:
    ``recommender.rolling_cutoffs`` of them, ``rolling_spacing_days`` apart.
    """
    rc = cfg.recommender
    days, n, spacing = rc.holdout_days, 2, rc.holdout_days
    if rc.protocol == ROLLING:
        n, spacing = rc.rolling_cutoffs, rc.rolling_spacing_days or rc.holdout_days
    test = run_date - dt.timedelta(days=days)
    return [test - dt.timedelta(days=spacing * k) for k in reversed(range(n))]


def _train_index(train: TrainingData, log_users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each log user's index in ``train``, and whether the user is in it at all."""
    if not train.n_users:
        return np.zeros(len(log_users), np.int64), np.zeros(len(log_users), bool)
    local = np.minimum(np.searchsorted(train.log_users, log_users), train.n_users - 1)
    return local, train.log_users[local] == log_users


def _seen_pairs(train: TrainingData) -> set[tuple[int, int]]:
    return set(zip(train.pair_users.tolist(), train.pair_items.tolist()))


def window_split(events: EventLog, cfg: Config, cutoff: dt.date, end: dt.date, *, split: str = TEST,
                 protocol: str = TIME_CUTOFF) -> HoldoutSplit:  # fmt: skip
    """The held-out window ``[cutoff, end)``: learnt from everything before ``cutoff``.

    Every user of the history is judged on the ``recommender.relevant_types``
    interactions of the window (without the items they had before, with
    ``exclude_seen``); the catalogue of each user holds the items known before the
    day of their first such interaction.
    """
    rc = cfg.recommender
    start, stop = midnight_seconds(cutoff), midnight_seconds(end)
    train = history(events, cfg, start)
    held = events.of_types(rc.relevant_types) & (events.times >= start) & (events.times < stop)
    local, known = _train_index(train, events.users[held])
    users, items, times = local[known], events.items[held][known], events.times[held][known]
    seen = _seen_pairs(train) if rc.exclude_seen else set()
    relevant: list[set[int]] = [set() for _ in range(train.n_users)]
    first = np.full(train.n_users, np.inf)
    for u, i, t in zip(users.tolist(), items.tolist(), times.tolist()):
        if (u, i) in seen:
            continue
        relevant[u].add(i)
        first[u] = min(first[u], t)
    available = np.where(np.isfinite(first), day_start(np.where(np.isfinite(first), first, 0.0)), np.inf)
    return HoldoutSplit(run_date=events.run_date, cutoff=cutoff, end=end, train=train, relevant=relevant,
                        exclude_seen=rc.exclude_seen, cold_items=~train.interacted(), protocol=protocol, split=split,
                        available_from=available)  # fmt: skip


def target_days(events: EventLog, cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leave-last-out targets: per user of ``events``, the last purchase day and the one before.

    A purchase day is a day with an interaction of ``recommender.relevant_types``
    (with ``exclude_seen``: of an item the user had not interacted with before that day).

    Returns:
        ``(test_day, validation_day, qualifies)``: the midnight starting each user's
        last and second-last purchase day in seconds (``nan`` without one), and per
        interaction whether it is a purchase that makes its day a purchase day.
    """
    rc = cfg.recommender
    n_items = events.n_items
    key = events.users * n_items + events.items
    # The log is in time order within each user, so a pair's first row is its earliest.
    pairs, first_row = np.unique(key, return_index=True)
    first_time = events.times[first_row][np.searchsorted(pairs, key)]
    day = day_start(events.times)
    qualifies = events.of_types(rc.relevant_types)
    if rc.exclude_seen:
        qualifies &= first_time >= day
    n_users = len(events.user_ids)
    user_days = np.unique((events.users[qualifies] << _DAY_BITS) + (day[qualifies] // 86_400).astype(np.int64))
    owners, day_numbers = user_days >> _DAY_BITS, (user_days & ((1 << _DAY_BITS) - 1)).astype(np.float64) * 86_400
    last = np.flatnonzero(np.r_[owners[1:] != owners[:-1], True]) if len(owners) else np.zeros(0, np.int64)
    test_day = np.full(n_users, np.nan)
    test_day[owners[last]] = day_numbers[last]
    before = last[(last > 0)]
    before = before[owners[before - 1] == owners[before]]
    validation_day = np.full(n_users, np.nan)
    validation_day[owners[before]] = day_numbers[before - 1]
    return test_day, validation_day, qualifies


def _target_split(events: EventLog, cfg: Config, target_day: np.ndarray, bound_day: np.ndarray, qualifies: np.ndarray,
                  split: str) -> HoldoutSplit:  # fmt: skip
    """A leave-last-out split: each user's history cut at ``bound_day``, judged on the purchases of ``target_day``."""
    rc = cfg.recommender
    user_bounds = np.where(np.isnan(bound_day), np.inf, bound_day)
    train = history(events, cfg, events.end, user_bounds)
    on_target = qualifies & (day_start(events.times) == target_day[events.users])
    local, in_train = _train_index(train, events.users)
    take = on_target & in_train
    seen = _seen_pairs(train) if rc.exclude_seen else set()
    relevant: list[set[int]] = [set() for _ in range(train.n_users)]
    for u, i in zip(local[take].tolist(), events.items[take].tolist()):
        if (u, i) not in seen:
            relevant[u].add(i)
    available = np.where(np.isnan(target_day[train.log_users]), np.inf, target_day[train.log_users])
    judged = [u for u, rel in enumerate(relevant) if rel]
    earliest = min((available[u] for u in judged), default=events.end)
    return HoldoutSplit(run_date=events.run_date, cutoff=seconds_to_date(earliest), end=events.run_date, train=train,
                        relevant=relevant, exclude_seen=rc.exclude_seen, cold_items=~train.interacted(),
                        protocol=LEAVE_LAST_OUT, split=split, available_from=available)  # fmt: skip


def leave_last_out_splits(events: EventLog, cfg: Config) -> tuple[HoldoutSplit, HoldoutSplit]:
    """The validation and test splits of leave-last-out (see the module docstring).

    In the validation split a user without a validation target but with a test
    target is cut at the test day too: no test target is ever learnt from there.
    """
    test_day, validation_day, qualifies = target_days(events, cfg)
    validation = _target_split(events, cfg, validation_day, np.where(np.isnan(validation_day), test_day, validation_day),
                               qualifies, VALIDATION)  # fmt: skip
    test = _target_split(events, cfg, test_day, test_day, qualifies, TEST)
    return validation, test


def _summary(split: HoldoutSplit) -> str:
    relevant = split.relevant
    cold = split.relevant_cold()
    return (f"{split.describe()}: {len(split.eval_users())} users with held-out items "
            f"({sum(len(r) for r in relevant)} held-out pairs, {sum(len(r) for r in cold)} on cold items)")  # fmt: skip


def holdout_splits(cfg: Config, events: EventLog) -> tuple[list[HoldoutSplit], HoldoutSplit]:
    """The validation splits (oldest first; those without a judged user dropped) and the test split of the configured protocol.

    Raises:
        MissingFeaturesError: The test split has no user to judge.
    """
    rc = cfg.recommender
    if rc.protocol == LEAVE_LAST_OUT:
        validation, test = leave_last_out_splits(events, cfg)
        validations = [validation]
    else:
        cutoffs = rolling_cutoffs(cfg, events.run_date)
        ends = [c + dt.timedelta(days=rc.holdout_days) for c in cutoffs]
        validations = [window_split(events, cfg, c, e, split=VALIDATION, protocol=rc.protocol) for c, e in zip(cutoffs[:-1], ends[:-1])]
        test = window_split(events, cfg, cutoffs[-1], ends[-1], split=TEST, protocol=rc.protocol)
    if not len(test.eval_users()):
        what = ("no user has a purchase day with a history before it" if rc.protocol == LEAVE_LAST_OUT else
                f"no user of the history before {test.cutoff} has {'/'.join(rc.relevant_types)} interactions in "
                f"[{test.cutoff}, {test.end}); more data, or a longer recommender.holdout_days")  # fmt: skip
        raise MissingFeaturesError(f"nothing to evaluate in the {events.run_date} snapshot: {what}")
    kept = []
    for split in validations:
        if len(split.eval_users()):
            kept.append(split)
            log.info("%s", _summary(split))
        else:
            log.warning("%s: no user to judge; the window is left out", split.describe())
    log.info("%s", _summary(test))
    return kept, test
