"""What the recommenders are trained and judged on, read from the lake's feature tables.

:func:`load_training_data` gathers one features snapshot (the ``run_date``
partitions of ``silver.interactions`` and ``gold.user_item_matrix``) into integer
arrays every model family uses: weighted user-item pairs for popularity,
co-occurrence and matrix factorization, and each user's time-ordered item sequence
for the sequence model. The catalogue comes from ``gold.item_features``.

:func:`load_split` is the time-based holdout of a run date D: the models see the
snapshot of the cutoff ``C = D - recommender.holdout_days`` (everything before C's
midnight), and are judged on what the same users did in ``[C, D)``, read from D's
snapshot. The catalogue ranked is D's: every item known by D, so items first sold
after C are in it without a single training interaction (the cold-item slice). Only
their catalogue facts (text, category) are known to the models, never their
interactions after C.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

from shoplake import columns as C
from shoplake.config import Config
from shoplake.recommend.models.mf import IdMap
from shoplake.recommend.schemas import INTERACTIONS, ITEM_FEATURES, PURCHASE, USER_ITEM_MATRIX

log = logging.getLogger(__name__)


class MissingFeaturesError(ValueError):
    """A snapshot the run needs is not in the lake."""


@dataclass
class TrainingData:
    """One features snapshot as integer arrays.

    Attributes:
        as_of: The snapshot's run date: interactions before its midnight.
        user_ids: Users with interactions in the snapshot (sorted ids).
        item_ids: The catalogue: items of ``gold.item_features`` of ``catalogue_date``
            and every item interacted with (sorted ids).
        pair_users: User index of each weighted pair of ``gold.user_item_matrix``.
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

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def seen(self) -> sparse.csr_matrix:
        """Users x items, 1 where the user interacted with the item in the snapshot."""
        data = np.ones(len(self.pair_users), dtype=np.float32)
        m = sparse.csr_matrix((data, (self.pair_users, self.pair_items)), shape=(self.n_users, self.n_items))
        m.data[:] = 1.0
        return m

    def popularity(self) -> np.ndarray:
        """Summed pair weight per item (0 for items without interactions)."""
        return np.bincount(self.pair_items, weights=self.pair_weights, minlength=self.n_items)


@dataclass
class HoldoutSplit:
    """Training snapshot and held-out truth of one run date.

    Attributes:
        run_date: The run date D.
        cutoff: ``D - holdout_days``; ``train`` is its snapshot.
        train: What the models learn from.
        relevant: Per user index of ``train``, the held-out item indices: interactions
            of ``recommender.relevant_types`` in ``[cutoff, D)``, without the items
            the user had in training when ``exclude_seen``.
        exclude_seen: Whether training items are excluded from rankings (and truth).
        cold_items: Bool per item: no interaction in the training snapshot.
    """

    run_date: dt.date
    cutoff: dt.date
    train: TrainingData
    relevant: list[set[int]]
    exclude_seen: bool
    cold_items: np.ndarray

    def eval_users(self) -> np.ndarray:
        """Indices of the users with held-out items, the ones every metric averages over."""
        return np.array([u for u, rel in enumerate(self.relevant) if rel], dtype=np.int64)


def _snapshot(lake, spec, run_date: dt.date, columns: list[str]) -> tuple[pa.Table, int]:
    version = lake.version(spec)
    if version is None:
        raise MissingFeaturesError(f"table {spec.full_name} does not exist in {lake.root}; run the features step first")
    table = lake.to_arrow(spec, version, columns=columns, run_date=run_date)
    if table.num_rows == 0:
        raise MissingFeaturesError(
            f"table {spec.full_name} v{version} has no rows for run_date {run_date}; "
            f"run the features step for {run_date} (shoplake features --run-date {run_date})"
        )
    return table, version


def _sequences(table: pa.Table, user_ids: IdMap, item_ids: IdMap) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per-user item sequences from interaction rows, oldest first, immediate repeats dropped.

    Equal timestamps (the lines of one order) keep the order of the item ids, so the
    same data always gives the same sequences.

    Returns:
        Per user: item indices, whether each step was bought, and each step's time
        (seconds since the epoch, of its first interaction).
    """
    users = user_ids.lookup(table[C.USER_ID].to_pylist())
    items = item_ids.lookup(table[C.ITEM_ID].to_pylist())
    ts = pc.cast(pc.cast(table[C.EVENT_TS], pa.timestamp("us", "UTC")), pa.int64()).to_numpy() / 1e6
    purchase = np.asarray(pc.equal(table[C.EVENT_TYPE], PURCHASE).to_numpy(zero_copy_only=False), dtype=bool)
    keep = (users >= 0) & (items >= 0)
    users, items, ts, purchase = users[keep], items[keep], ts[keep], purchase[keep]
    order = np.lexsort((items, ts, users))
    users, items, ts, purchase = users[order], items[order], ts[order], purchase[order]
    # A repeat of the previous item of the same user (view, click, cart, purchase of one
    # product) is one step of the sequence; it counts as bought if any of them was.
    new_step = np.ones(len(items), dtype=bool)
    new_step[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
    step_id = np.cumsum(new_step) - 1
    step_bought = np.zeros(int(new_step.sum()), dtype=bool)
    np.logical_or.at(step_bought, step_id, purchase)
    users, items, ts = users[new_step], items[new_step], ts[new_step]
    bounds = np.searchsorted(users, np.arange(len(user_ids) + 1))
    rows = [slice(bounds[u], bounds[u + 1]) for u in range(len(user_ids))]
    return [items[r] for r in rows], [step_bought[r] for r in rows], [ts[r] for r in rows]


def load_training_data(lake, as_of: dt.date, catalogue_date: dt.date | None = None) -> TrainingData:
    """One features snapshot as integer arrays.

    Args:
        lake: The lake holding the feature tables.
        as_of: Run date of the snapshot to learn from.
        catalogue_date: Run date of ``gold.item_features`` that defines the catalogue
            (default ``as_of``).

    Raises:
        MissingFeaturesError: A table or one of the partitions is missing.
    """
    catalogue_date = catalogue_date or as_of
    matrix, matrix_v = _snapshot(lake, USER_ITEM_MATRIX, as_of, [C.USER_ID, C.ITEM_ID, C.WEIGHT])
    events, events_v = _snapshot(lake, INTERACTIONS, as_of, [C.USER_ID, C.ITEM_ID, C.EVENT_TYPE, C.EVENT_TS])
    items, items_v = _snapshot(lake, ITEM_FEATURES, catalogue_date, [C.ITEM_ID, C.TITLE, C.CATEGORY, C.TEXT])

    user_ids = IdMap.fit(matrix[C.USER_ID].to_pylist())
    item_ids = IdMap.fit(items[C.ITEM_ID].to_pylist() + matrix[C.ITEM_ID].to_pylist())
    pos = item_ids.lookup(items[C.ITEM_ID].to_pylist())
    titles: list[str | None] = [None] * len(item_ids)
    categories: list[str | None] = [None] * len(item_ids)
    texts = [""] * len(item_ids)
    for i, title, category, text in zip(pos, items[C.TITLE].to_pylist(), items[C.CATEGORY].to_pylist(), items[C.TEXT].to_pylist()):
        titles[i], categories[i], texts[i] = title, category, text or ""
    sequences, bought, times = _sequences(events, user_ids, item_ids)
    data = TrainingData(
        as_of=as_of,
        user_ids=user_ids,
        item_ids=item_ids,
        pair_users=user_ids.lookup(matrix[C.USER_ID].to_pylist()),
        pair_items=item_ids.lookup(matrix[C.ITEM_ID].to_pylist()),
        pair_weights=matrix[C.WEIGHT].to_numpy().astype(np.float32),
        sequences=sequences,
        bought=bought,
        times=times,
        titles=titles,
        categories=categories,
        texts=texts,
        versions={USER_ITEM_MATRIX.full_name: matrix_v, INTERACTIONS.full_name: events_v, ITEM_FEATURES.full_name: items_v},
    )
    log.info(
        "snapshot %s: %d users, %d catalogue items, %d pairs, %d sequence steps",
        as_of, data.n_users, data.n_items, len(data.pair_users), sum(len(s) for s in sequences),
    )  # fmt: skip
    return data


def load_split(cfg: Config, lake, run_date: dt.date) -> HoldoutSplit:
    """The time-based holdout of ``run_date`` (see the module docstring).

    Args:
        cfg: ``recommender.holdout_days``, ``exclude_seen`` and ``relevant_types``.
        lake: The lake with the snapshots of ``run_date`` and its cutoff.
        run_date: The run date D.

    Raises:
        MissingFeaturesError: A snapshot is missing, or no user has held-out items.
    """
    rc = cfg.recommender
    cutoff = run_date - dt.timedelta(days=rc.holdout_days)
    train = load_training_data(lake, cutoff, catalogue_date=run_date)
    later, later_v = _snapshot(lake, INTERACTIONS, run_date, [C.USER_ID, C.ITEM_ID, C.EVENT_TYPE, C.EVENT_TS])
    train.versions[f"{INTERACTIONS.full_name}@{run_date}"] = later_v
    cutoff_ts = pa.scalar(dt.datetime.combine(cutoff, dt.time(), tzinfo=dt.timezone.utc), later.schema.field(C.EVENT_TS).type)
    held = later.filter(pc.and_(pc.greater_equal(later[C.EVENT_TS], cutoff_ts), pc.is_in(later[C.EVENT_TYPE], pa.array(rc.relevant_types))))
    users = train.user_ids.lookup(held[C.USER_ID].to_pylist())
    items = train.item_ids.lookup(held[C.ITEM_ID].to_pylist())
    seen = set(zip(train.pair_users.tolist(), train.pair_items.tolist()))
    relevant: list[set[int]] = [set() for _ in range(train.n_users)]
    for u, i in zip(users, items):
        if u < 0 or i < 0:  # a user new since the cutoff has nothing to rank from
            continue
        if rc.exclude_seen and (u, i) in seen:
            continue
        relevant[u].add(int(i))
    cold = np.bincount(train.pair_items, minlength=train.n_items) == 0
    split = HoldoutSplit(run_date=run_date, cutoff=cutoff, train=train, relevant=relevant, exclude_seen=rc.exclude_seen, cold_items=cold)
    n_eval = len(split.eval_users())
    if n_eval == 0:
        raise MissingFeaturesError(
            f"no user of the {cutoff} snapshot has {'/'.join(rc.relevant_types)} interactions in [{cutoff}, {run_date}); "
            "nothing to evaluate (more data, or a longer recommender.holdout_days)"
        )
    log.info(
        "holdout %s..%s: %d users with held-out items (%d held-out pairs, %d on cold items)",
        cutoff, run_date, n_eval, sum(len(r) for r in relevant), sum(int(cold[list(r)].sum()) for r in relevant if r),
    )  # fmt: skip
    return split
