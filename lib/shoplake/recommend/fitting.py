"""Fitting one recommendation model family on a history, with the settings validation may choose between.

:func:`fit_model` fits popularity, trending, co-occurrence, item-kNN and EASE in this
process and matrix factorization and the text-aware sequence model on Ray Train.
:func:`settings` lists a tuned model's candidate fit settings (:data:`TUNED`) and
:func:`score_settings` the sequence model's score-time ones (new-item boost, trending
blend, EASE blend), which :func:`score_transforms` applies to scores already computed and
:func:`with_score_setting` builds into the served model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shoplake.config import Config
from shoplake.recommend.holdout import TrainingData
from shoplake.recommend.mf_train import mf_task
from shoplake.recommend.models.baselines import EaseModel, ItemCooccurrenceModel, PopularityModel, counts_as_of, trending_counts
from shoplake.recommend.models.scorers import (
    EASE_KEEP,
    CooccurrenceScorer,
    EaseScorer,
    ItemKnnScorer,
    MFScorer,
    PopularityScorer,
    Scorer,
    TrendingScorer,
)
from shoplake.recommend.schemas import INTERACTION_TYPES
from shoplake.train.loop import FitResult, fit

log = logging.getLogger(__name__)


@dataclass
class FittedModel:
    """A model fitted on one history."""

    kind: str
    scorer: Scorer
    fit: FitResult | None = None  # Ray Train run, for the models trained there
    seconds: float = 0.0
    params: dict = field(default_factory=dict)


class CachedTextEmbeddings:
    """Text embeddings of a catalogue, computed once per run (both fits share the catalogue)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self._cache: dict[tuple[str, ...], np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        key = tuple(texts)
        if key not in self._cache:
            from shoplake.text.encoder import encode_texts

            started = time.monotonic()
            self._cache[key] = encode_texts(list(texts), self.cfg.text_encoder)
            log.info("encoded %d item texts in %.1f s", len(texts), time.monotonic() - started)
        return self._cache[key]


#: The setting the validation splits tune, per model: its name and the config field listing the candidates.
TUNED = {"trending": ("days", "trending_days"), "item_knn": ("neighbors", "knn_neighbors"), "ease": ("l2", "ease_l2")}
#: The sequence model's score-time settings (:func:`~shoplake.recommend.models.adjust.adjust_scores`): the
#: boost of new items, the trending blend and the EASE blend (with EASE's ridge penalty). Chosen on validation
#: like a setting, but applied to the fitted model's scores, so trying one costs no network fit.
COLD_BOOST, BLEND, BLEND_DAYS, EASE_BLEND, EASE_L2 = "cold_boost", "blend", "blend_days", "ease_blend", "ease_l2"


def settings(cfg: Config, kind: str) -> list:
    """The candidate settings of a tuned model (:data:`TUNED`); ``[None]`` for the others."""
    return list(getattr(cfg.recommender, TUNED[kind][1])) if kind in TUNED else [None]


def score_settings(cfg: Config, kind: str, ease_l2: float | None = None) -> list[dict]:
    """The candidate score-time settings of a model; ``[{}]`` for all but ``sasrec``.

    For ``sasrec``: every boost of new items (``sequence_model.cold_boost``) with every
    trending blend (``sequence_model.trending_blend``), a blend with every trending
    window (``recommender.trending_days``), and every EASE blend
    (``sequence_model.ease_blend``) with EASE fitted at ``ease_l2``.

    Args:
        ease_l2: The ridge penalty of the EASE mixed in (the one validation chose for
            EASE itself); None: no EASE blend (EASE cannot be fitted on this catalogue).
    """
    if kind != "sasrec":
        return [{}]
    sm = cfg.sequence_model
    blends = [{BLEND: 0.0}] if 0.0 in sm.trending_blend else []
    blends += [{BLEND: w, BLEND_DAYS: d} for w in dict.fromkeys(sm.trending_blend) if w > 0 for d in cfg.recommender.trending_days]
    eases = [{}] if 0.0 in sm.ease_blend or ease_l2 is None else []
    eases += [{EASE_BLEND: w, EASE_L2: float(ease_l2)} for w in dict.fromkeys(sm.ease_blend) if w > 0 and ease_l2 is not None]
    return [{COLD_BOOST: b, **blend, **ease} for b in dict.fromkeys(sm.cold_boost) for blend in blends for ease in eases]


def tuned_settings(tuned: dict[str, object], kind: str) -> dict[str, object]:
    """The settings validation chose for ``kind``, by setting name, from a run's ``tuned``."""
    out = {TUNED[kind][0]: tuned[kind]} if kind in TUNED and kind in tuned else {}
    out.update({key.removeprefix(f"{kind} "): value for key, value in tuned.items() if key.startswith(f"{kind} ")})
    return out


def skip_reason(cfg: Config, kind: str, data: TrainingData) -> str | None:
    """Why ``kind`` cannot be fitted on ``data`` (EASE on a catalogue over its cap), or None."""
    cap = cfg.recommender.ease_max_items
    if kind == "ease" and data.n_items > cap:
        return f"ease skipped: {data.n_items:,} items exceed recommender.ease_max_items {cap:,} (its matrix is dense)"
    return None


class AsOfCounts:
    """A count baseline (popularity, trending) counted as of each user's own bound: evaluation only.

    Leave-last-out cuts each user's history at their own target day; counted at one
    time for everyone, what sells would come from after many users' targets. Each
    row here counts every interaction before one bound (see
    :mod:`shoplake.recommend.protocols`).

    Args:
        kind: The baseline it stands for.
        rows: Counts per distinct bound, ``(n_bounds, n_items)``.
        row_of_user: Per user index, the row of the user's bound.
    """

    def __init__(self, kind: str, rows: np.ndarray, row_of_user: np.ndarray):
        self.kind, self.rows, self.row_of_user = kind, np.asarray(rows, np.float32), np.asarray(row_of_user, np.int64)

    def score(self, users: np.ndarray, histories: list[np.ndarray] | None) -> np.ndarray:
        return self.rows[self.row_of_user[np.asarray(users, np.int64)]]

    def item_vectors(self) -> np.ndarray | None:
        return None

    def save(self, folder: Path) -> None:
        raise TypeError("counts as of each user's bound are for evaluation only; the refit for serving counts at the run date")


def count_scorer(kind: str, data: TrainingData, cfg: Config, days: int | None = None) -> Scorer:
    """Popularity or trending (``days``) of a history: as of its bound, or as of each user's own bound when it has them."""
    if data.user_bounds is not None and data.log is not None:
        events = data.log
        bounds, row_of_user = np.unique(data.user_bounds, return_inverse=True)
        if kind == "trending":
            rows = counts_as_of(events.items, events.times, bounds, data.n_items, days=days)
        else:
            type_weight = np.array([float(cfg.features.event_weights.get(t, 0.0)) for t in INTERACTION_TYPES] + [0.0])
            rows = counts_as_of(events.items, events.times, bounds, data.n_items, weights=type_weight[events.types],
                                half_life_days=cfg.features.half_life_days)  # fmt: skip
        return AsOfCounts(kind, rows, row_of_user)
    if kind == "trending":
        if data.log is not None:
            # Every interaction before the bound, as the counts as of a user's own bound take them.
            before = data.log.times < data.bound
            items, times = data.log.items[before], data.log.times[before]
        else:
            items = np.concatenate(data.sequences) if data.sequences else np.zeros(0, np.int64)
            times = np.concatenate(data.times) if data.times else np.zeros(0)
        return TrendingScorer(trending_counts(items, times, data.bound, int(days), data.n_items))
    model = PopularityModel().fit(data.pair_users, data.pair_items, data.pair_weights, data.n_users, data.n_items)
    return PopularityScorer(model.popularity)


def ease_scorer(data: TrainingData, cfg: Config, l2: float) -> EaseScorer:
    """EASE fitted on a history with ridge penalty ``l2``, each item's strongest weights kept (:data:`EASE_KEEP`)."""
    pairs = (data.pair_users, data.pair_items, data.pair_weights, data.n_users, data.n_items)
    return EaseScorer(EaseModel(l2, cfg.recommender.ease_max_items).fit(*pairs).strongest(EASE_KEEP))


def fit_model(kind: str, data: TrainingData, cfg: Config, name: str, *, text_embeddings: Callable | None = None,
              epochs: int | None = None, fail_at_epoch: int | None = None, setting=None) -> FittedModel:  # fmt: skip
    """Fit one model family on a history.

    Args:
        kind: ``popularity``, ``trending``, ``cooccurrence``, ``item_knn``, ``ease``, ``mf`` or ``sasrec``.
        data: The history.
        cfg: ``training`` (matrix factorization), ``sequence_model``, ``text_encoder``,
            ``ray`` (workers), ``features`` (the weights of popularity as of a user's bound).
        name: Run name of a Ray Train run (its folder under ``<runs_dir>/ray_results``).
        text_embeddings: Texts -> embeddings (default: the configured encoder, uncached).
        epochs: Overrides the model's configured epochs.
        fail_at_epoch: Tests only, see :func:`shoplake.train.loop.fit`.
        setting: The tuned setting of ``trending`` (days), ``item_knn`` (neighbours)
            or ``ease`` (ridge penalty); None: the first candidate of the config.
    """
    started = time.monotonic()
    if kind == "popularity":
        fitted = FittedModel(kind, count_scorer(kind, data, cfg))
    elif kind == "cooccurrence":
        model = ItemCooccurrenceModel().fit(data.pair_users, data.pair_items, data.pair_weights, data.n_users, data.n_items)
        fitted = FittedModel(kind, CooccurrenceScorer(model.similarity))
    elif kind in TUNED:
        setting = settings(cfg, kind)[0] if setting is None else setting
        pairs = (data.pair_users, data.pair_items, data.pair_weights, data.n_users, data.n_items)
        if kind == "trending":
            scorer = count_scorer(kind, data, cfg, int(setting))
        elif kind == "item_knn":
            scorer = ItemKnnScorer(ItemCooccurrenceModel(neighbors=int(setting)).fit(*pairs).similarity)
        else:
            scorer = ease_scorer(data, cfg, float(setting))
        fitted = FittedModel(kind, scorer, params={TUNED[kind][0]: setting})
    elif kind == "mf":
        task = mf_task(cfg, data.pair_users, data.pair_items, data.pair_weights, data.user_ids, data.item_ids)
        run = fit(cfg, task, name, epochs, fail_at_epoch=fail_at_epoch)
        params = cfg.training.model_dump(include={"embedding_dim", "negatives", "lr", "batch_size", "weight_decay"})
        fitted = FittedModel(kind, MFScorer.from_state(run.load_state()["model"]), run, params=params)
    elif kind == "sasrec":
        from shoplake.recommend.models.sasrec import SasrecScorer
        from shoplake.recommend.sequence import train_sequence_model

        text_emb = (text_embeddings or CachedTextEmbeddings(cfg))(data.texts)
        run, model_config = train_sequence_model(
            cfg, data.sequences, text_emb, name, epochs=epochs, timestamps=data.times, fail_at_epoch=fail_at_epoch
        )
        scorer = SasrecScorer(model_config, run.load_state()["model"], text_emb)
        fitted = FittedModel(kind, scorer, run, params=dict(model_config))
    else:
        raise ValueError(f"unknown model {kind!r}; expected popularity, trending, cooccurrence, item_knn, ease, mf or sasrec")
    fitted.seconds = time.monotonic() - started
    log.info("fitted %s on the history before %s in %.1f s", kind, data.as_of, fitted.seconds)
    return fitted


def with_score_setting(fitted: FittedModel, data: TrainingData, cfg: Config, setting: dict) -> FittedModel:
    """The fitted model with a score-time setting (:func:`score_settings`) built in and recorded, as it is served."""
    if not setting:
        return fitted
    prior = count_scorer("trending", data, cfg, int(setting[BLEND_DAYS])).popularity if setting.get(BLEND) else None
    partner = ease_scorer(data, cfg, float(setting[EASE_L2])) if setting.get(EASE_BLEND) else None
    scorer = fitted.scorer.with_settings(prior, partner, **setting)
    return FittedModel(fitted.kind, scorer, fitted.fit, fitted.seconds, {**fitted.params, **setting})


def score_transforms(data: TrainingData, cfg: Config, settings_: Sequence[dict], scorer: Scorer) -> list[Callable | None]:
    """Scores -> scores of each score-time setting on a split's users (None: the model's own scores)."""
    from shoplake.recommend.models.adjust import adjust_scores

    # Counted once per window, as of each user's own bound where the split has them (leave-last-out).
    priors = {d: count_scorer("trending", data, cfg, int(d)) for d in {s[BLEND_DAYS] for s in settings_ if s.get(BLEND)}}
    partners = {l2: ease_scorer(data, cfg, float(l2)) for l2 in {s[EASE_L2] for s in settings_ if s.get(EASE_BLEND)}}
    unknown = scorer.unknown() if any(s.get(COLD_BOOST) for s in settings_) else None
    # rank_split hands every transform the same chunk of users in turn: EASE scores it once per penalty.
    last_chunk: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def partner_rows(l2: float, users: np.ndarray) -> np.ndarray:
        seen = last_chunk.get(l2)
        if seen is None or not np.array_equal(seen[0], users):
            seen = last_chunk[l2] = (users.copy(), partners[l2].score(users, [data.sequences[u] for u in users]))
        return seen[1]

    def transform(setting: dict) -> Callable | None:
        if not setting.get(BLEND) and not setting.get(COLD_BOOST) and not setting.get(EASE_BLEND):
            return None
        prior = priors[setting[BLEND_DAYS]] if setting.get(BLEND) else None
        boost, blend, ease = (float(setting.get(key, 0.0)) for key in (COLD_BOOST, BLEND, EASE_BLEND))

        def adjusted(scores: np.ndarray, users: np.ndarray) -> np.ndarray:
            prior_rows = None if prior is None else prior.score(users, None)
            partner = partner_rows(setting[EASE_L2], users) if ease else None
            return adjust_scores(scores, unknown, boost, prior_rows, blend, partner, ease)

        return adjusted

    return [transform(s) for s in settings_]
