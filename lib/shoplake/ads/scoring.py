"""Scores of a viewer for every ad of a placement, from the state at D's midnight: one definition for batch and serving.

:class:`AdState` holds ``gold.ad_state`` and ``gold.ad_viewers`` of one run date in
numpy, one :class:`PlacementAds` per placement (its ads in the table's order, their
side of the features). :meth:`AdState.data` fills in a viewer's side (the unknown
viewer's for a viewer the state does not know, which is what ``gold.ad_features``
gives such a viewer) and gives the rows as the models read them (:class:`AdData`): an
impression at position 1, at the hour of D's midnight (0) unless another hour is asked.
:meth:`AdState.score` scores one viewer in one placement, all its ads in one call of
the bundle, so the nightly scores and the endpoint compute exactly the same thing.

The value of an impression (:func:`expected_value`) is what it is expected to bring
minus what it is expected to cost: ``p_ctcvr x price - p_ctr x cpc``, with the item's
price (0 when the catalogue has none) and the campaign's cost per click. Ads are ranked
by their *ranking value* (:func:`ranking_value`): the expected value as the run date's
plan (``serving.ad_plan``, :class:`AdPlan`) weighs it, the cost raised by the budget
multiplier of the ad's campaign exactly as the plan's allocation does
(:func:`shoplake.ads.policy.shaded_value`); without a plan for the run date, or for an
ad whose campaign the plan has no row for, it is the expected value.

Reasons (:meth:`AdState.reasons`) are occlusions, cheap and exact about what they
measure: for each numeric feature, how much the ad's expected value falls when that
feature alone takes its reference value (the unknown viewer's for the viewer's
features, the mean over the placement's ads for the ad's), the other inputs and the
ad's own price and cost per click unchanged. The features that raised it most are
given; categorical inputs (item, campaign, category, ...) are not taken apart.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from shoplake import columns as C
from shoplake.ads import schemas as S
from shoplake.ads.bundle import Scores
from shoplake.ads.data import NUMERIC, AdData
from shoplake.ads.policy import shaded_value
from shoplake.ads.state import category_affinity

#: The slot every stored score is for.
POSITION = 1
#: The hour of day of the stored scores: D's midnight, the instant the state describes.
HOUR = 0
#: Models that read the ad's text embedding (a new ad's text is encoded for them).
TEXT_MODELS = frozenset({"deep_ctr"})
_VIEWER_COLUMNS = [NUMERIC.index(n) for n in (S.USER_AD_IMPRESSIONS, S.USER_CTR, S.USER_EVENTS)]
_AFFINITY = NUMERIC.index(S.USER_CATEGORY_AFFINITY)
_AD_COLUMNS = [NUMERIC.index(n) for n in S.AD_SIDE_FEATURES]


@functools.cache
def _threads(kind: str):
    """The OpenMP runtimes loaded once a model of ``kind`` is (XGBoost's and torch's)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def score_rows(bundle, data: AdData) -> Scores:
    """``bundle.score(data)`` with one OpenMP thread.

    A few hundred rows are scored fastest on one thread. XGBoost otherwise builds its
    input matrix with every OpenMP thread, and beside torch's OpenMP runtime a ranking
    of 150 ads then took 88 ms at the median instead of 4.9 ms (a busy 2-core machine).
    """
    with _threads(bundle.model.kind).limit(limits=1, user_api="openmp"):
        return bundle.score(data)


def expected_value(scores: Scores, price: np.ndarray, cpc: np.ndarray) -> np.ndarray:
    """``p_ctcvr x price - p_ctr x cpc`` per impression."""
    return scores.p_ctcvr * price - scores.p_ctr * cpc


def ranking_value(scores: Scores, price: np.ndarray, cpc: np.ndarray, multiplier: np.ndarray) -> np.ndarray:
    """The value ads are ranked by: ``p_ctcvr x price - (1 + multiplier) x p_ctr x cpc``, as the plan weighs an ad.

    The plan's own rule (:func:`shoplake.ads.policy.shaded_value`). ``multiplier`` is the
    budget multiplier of each ad's campaign in the plan, NaN where the plan has none:
    such an ad is ranked by its expected value.
    """
    return shaded_value(scores.p_ctcvr * price, scores.p_ctr * cpc, np.nan_to_num(multiplier, nan=0.0))


@dataclass(frozen=True)
class AdPlan:
    """The budget multipliers of one run date's ``serving.ad_plan``, which the ranking follows.

    Attributes:
        run_date: The plan's run date.
        multipliers: Per campaign, its budget multiplier (the plan gives a campaign one in every placement).
    """

    run_date: dt.date
    multipliers: dict[str, float]

    @classmethod
    def from_rows(cls, rows: pa.Table, run_date: dt.date) -> AdPlan:
        """The plan of ``serving.ad_plan`` rows of ``run_date`` (a campaign's largest multiplier where its rows differ)."""
        multipliers: dict[str, float] = {}
        for campaign, multiplier in zip(rows[C.CAMPAIGN_ID].to_pylist(), rows[S.BUDGET_MULTIPLIER].to_pylist()):
            multipliers[campaign] = max(multipliers.get(campaign, multiplier), multiplier)
        return cls(run_date, multipliers)


def ranks(values: np.ndarray) -> np.ndarray:
    """Rank of each value, 1 for the largest; ties keep the order of the rows."""
    order = np.argsort(-values, kind="stable")
    out = np.empty(len(values), dtype=np.int32)
    out[order] = np.arange(1, len(values) + 1, dtype=np.int32)
    return out


def ad_text(bundle, items: pa.Table, encode: Callable[[list[str | None]], np.ndarray] | None) -> dict[str, np.ndarray]:
    """The bundle's ad text embeddings, with those of ``gold.ad_items`` rows it lacks when its model reads text.

    A new ad (an item trained before it was advertised) is encoded from its text by
    ``encode`` (the text encoder), all new ads in one call in item order, so every
    caller gets the same vectors; for a model that reads no text nothing is encoded.
    """
    known = dict(bundle.item_text)
    if bundle.model.kind not in TEXT_MODELS or encode is None:
        return known
    rows = sorted((i, t) for i, t in zip(items[C.ITEM_ID].to_pylist(), items[S.AD_TEXT].to_pylist()) if i not in known)
    if rows:
        vectors = np.asarray(encode([t for _, t in rows]), dtype=np.float32)
        known.update({i: v for (i, _), v in zip(rows, vectors)})
    return known


@dataclass
class PlacementAds:
    """The ads of one placement, in state order, with their side of the features.

    Attributes:
        name: The placement.
        items: Item id per ad.
        campaigns: Campaign id per ad.
        num: The numeric features, ``(n, len(NUMERIC))``, the viewer's columns zero.
        cats: The categorical fields at position 1 and hour 0.
        text: The ad's text embedding per ad.
        category: Per ad, the index of its category in :attr:`AdState.categories` (-1: none).
        price: The item's price (0 when unknown).
        cpc: The campaign's cost per click.
        reference: Per numeric feature, its reference for the reasons.
        multiplier: The budget multiplier of the ad's campaign in the plan (NaN: none).
        index: Item id to its rows (one per campaign advertising it).
    """

    name: str
    items: np.ndarray
    campaigns: np.ndarray
    num: np.ndarray
    cats: dict[str, np.ndarray]
    text: np.ndarray
    category: np.ndarray
    price: np.ndarray
    cpc: np.ndarray
    reference: np.ndarray
    multiplier: np.ndarray
    index: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for row, item in enumerate(self.items.tolist()):
            self.index.setdefault(item, []).append(row)

    def __len__(self) -> int:
        return len(self.items)


def _strings(column) -> np.ndarray:
    return np.array([("" if v is None else str(v)) for v in column.to_pylist()], dtype=object)


class AdState:
    """``gold.ad_state`` and ``gold.ad_viewers`` of one run date, ready to score.

    Args:
        state: The run date's ``gold.ad_state`` rows.
        viewers: The run date's ``gold.ad_viewers`` rows (the unknown viewer's among them).
        item_text: Item id to its text embedding (:func:`ad_text`); an item without one reads zeros.
        run_date: The run date.
        plan: The run date's plan, whose multipliers the ranking follows (None: none, ads ranked by expected value).

    Raises:
        ValueError: ``viewers`` has no unknown-viewer row, or ``plan`` is of another run date.
    """

    def __init__(self, state: pa.Table, viewers: pa.Table, item_text: dict[str, np.ndarray], run_date: dt.date, plan: AdPlan | None = None):
        if plan is not None and plan.run_date != run_date:
            raise ValueError(f"the plan of {plan.run_date} cannot rank the ads of the state of {run_date}")
        self.run_date = run_date
        self.plan = plan
        multipliers = plan.multipliers if plan is not None else {}
        state = state.sort_by([(C.PLACEMENT, "ascending"), (C.ITEM_ID, "ascending"), (C.CAMPAIGN_ID, "ascending")])
        dim = len(next(iter(item_text.values()))) if item_text else 1
        zero = np.zeros(dim, dtype=np.float32)
        self.categories = sorted({c for c in state[C.CATEGORY].to_pylist() if c is not None})
        code = {c: k for k, c in enumerate(self.categories)}
        self.placements: dict[str, PlacementAds] = {}
        placement_col = np.array(state[C.PLACEMENT].to_pylist(), dtype=object)
        for name in dict.fromkeys(placement_col.tolist()):
            rows = state.filter(pa.array(placement_col == name))
            n = rows.num_rows
            num = np.zeros((n, len(NUMERIC)))
            for j in _AD_COLUMNS:
                num[:, j] = rows[NUMERIC[j]].to_numpy(zero_copy_only=False).astype(np.float64)
            cats = {
                C.PLACEMENT: np.full(n, name, dtype=object),
                C.POSITION: np.full(n, str(POSITION), dtype=object),
                S.HOUR: np.full(n, str(HOUR), dtype=object),
                C.ITEM_ID: _strings(rows[C.ITEM_ID]),
                C.CAMPAIGN_ID: _strings(rows[C.CAMPAIGN_ID]),
                C.CATEGORY: _strings(rows[C.CATEGORY]),
                C.PRICE_BAND: _strings(rows[C.PRICE_BAND]),
            }
            reference = num.mean(axis=0) if n else np.zeros(len(NUMERIC))
            self.placements[name] = PlacementAds(
                name, cats[C.ITEM_ID], cats[C.CAMPAIGN_ID], num, cats,
                np.stack([item_text.get(i, zero) for i in cats[C.ITEM_ID]]).astype(np.float32) if n else np.zeros((0, dim), np.float32),
                np.array([code.get(c, -1) if c is not None else -1 for c in rows[C.CATEGORY].to_pylist()], dtype=np.int64),
                num[:, NUMERIC.index(C.PRICE)].copy(), rows[S.CPC].to_numpy(zero_copy_only=False).astype(np.float64), reference,
                np.array([multipliers.get(c, np.nan) for c in cats[C.CAMPAIGN_ID]], dtype=np.float64),
            )  # fmt: skip
        users = viewers[C.USER_ID].to_pylist()
        if None not in users:
            raise ValueError(f"{S.AD_VIEWERS.full_name} of {run_date} has no unknown-viewer row (user_id null)")
        self.unknown = users.index(None)
        self.viewer_index = {u: k for k, u in enumerate(users) if u is not None}
        self.viewer_ids = users
        self.viewer_num = np.column_stack(
            [viewers[n].to_numpy(zero_copy_only=False).astype(np.float64) for n in (S.USER_AD_IMPRESSIONS, S.USER_CTR, S.USER_EVENTS)]
        )
        self._viewer_categories = [
            (np.array([code.get(c, len(self.categories)) for c in cs], dtype=np.int64), np.asarray(ns, dtype=np.float64))
            for cs, ns in zip(viewers[S.CATEGORIES].to_pylist(), viewers[S.CATEGORY_EVENTS].to_pylist())
        ]

    @property
    def ads(self) -> set[str]:
        """Every item of the state."""
        return {i for p in self.placements.values() for i in p.items.tolist()}

    def viewer(self, user_id: str | None) -> int:
        """The state's row of ``user_id``: the unknown viewer's for None or a viewer it does not know."""
        return self.unknown if user_id is None else self.viewer_index.get(user_id, self.unknown)

    def data(self, viewer: int, placement: str, hour: int = HOUR) -> AdData:
        """Every ad of ``placement`` as an impression to viewer row ``viewer`` at position 1 and ``hour``.

        Raises:
            KeyError: An unknown placement.
        """
        ads = self.placements[placement]
        n = len(ads)
        num = ads.num.copy()
        num[:, _VIEWER_COLUMNS] = self.viewer_num[viewer]
        # Events per category of the state, one more slot (always 0) for "no category" and categories no ad has.
        per_category = np.zeros(len(self.categories) + 1)
        codes, counts = self._viewer_categories[viewer]
        np.add.at(per_category, codes, counts)
        per_category[-1] = 0.0
        num[:, _AFFINITY] = category_affinity(per_category[ads.category], self.viewer_num[viewer, 2])
        cats = ads.cats if hour == HOUR else {**ads.cats, S.HOUR: np.full(n, str(hour), dtype=object)}
        zeros = np.zeros(n)
        return AdData(cats, num, ads.text, zeros, zeros, ads.cats[C.PLACEMENT], np.full(n, self.run_date, dtype=object), ads.items)

    def score(self, bundle, viewer: int, placement: str, hour: int = HOUR) -> tuple[Scores, np.ndarray, np.ndarray]:
        """The calibrated scores, the expected value and the ranking value of every ad of ``placement`` for viewer row ``viewer``."""
        ads = self.placements[placement]
        scores = score_rows(bundle, self.data(viewer, placement, hour))
        return scores, expected_value(scores, ads.price, ads.cpc), ranking_value(scores, ads.price, ads.cpc, ads.multiplier)

    def reasons(
        self, bundle, viewer: int, placement: str, rows: Sequence[int], values: np.ndarray, hour: int = HOUR, top: int = 3
    ) -> list[list[tuple[str, float]]]:
        """Per ad row of ``rows``: up to ``top`` numeric features that raised its expected value most, with by how much.

        Args:
            bundle: The bundle that gave ``values``.
            viewer: Viewer row.
            placement: The placement.
            rows: Ad rows of the placement to explain.
            values: Their expected values (as :meth:`score` gave them).
            hour: Hour of the impression.
            top: Features per ad at most.
        """
        if not len(rows):
            return []
        ads = self.placements[placement]
        data = self.data(viewer, placement, hour)
        reference = ads.reference.copy()
        reference[_VIEWER_COLUMNS] = self.viewer_num[self.unknown]
        reference[_AFFINITY] = category_affinity(0.0, self.viewer_num[self.unknown, 2])
        features = len(NUMERIC)
        take = np.repeat(np.asarray(rows, dtype=np.int64), features)
        occluded = AdData(
            {k: v[take] for k, v in data.cats.items()}, data.num[take].copy(), data.text[take], data.click[take], data.conversion[take],
            data.placement[take], data.day[take], data.ids[take],
        )  # fmt: skip
        cols = np.tile(np.arange(features), len(rows))
        occluded.num[np.arange(len(take)), cols] = reference[cols]
        scores = score_rows(bundle, occluded)
        lowered = expected_value(scores, ads.price[take], ads.cpc[take]).reshape(len(rows), features)
        out = []
        for r, value in enumerate(np.asarray(values, dtype=np.float64)):
            gain = value - lowered[r]
            order = [j for j in np.argsort(-gain, kind="stable")[:top] if gain[j] > 0]
            out.append([(NUMERIC[j], float(gain[j])) for j in order])
        return out
