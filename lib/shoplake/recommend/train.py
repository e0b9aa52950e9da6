"""The recommendation run: every model judged side by side, the measured champion registered.

:func:`run_recommendation` for a run date D reads D's features snapshot once
(:func:`shoplake.recommend.holdout.load_events`) and follows the platform's
evaluation protocol (:mod:`shoplake.evaluation`) with the held-out splits of
``recommender.protocol`` (:mod:`shoplake.recommend.protocols`: ``time_cutoff``,
``rolling`` or ``leave_last_out``): one or more validation splits, one test split.

1. cuts the splits from the snapshot: each has the history the models learn from
   and, per user, the purchases to find;
2. fits each model of ``recommender.models`` on the history of each split
   (popularity, trending, co-occurrence, item-kNN and EASE in this process; matrix
   factorization and the text-aware sequence model on Ray Train) and ranks the whole
   catalogue for every user with held-out items, the training items excluded when
   ``recommender.exclude_seen``. The trained models' settings in
   ``sequence_model.search`` and ``recommender.mf_search`` are searched first on the
   validation splits (:mod:`shoplake.recommend.tuning`: Ray Tune with ASHA, the best
   epoch becoming the epochs); a model with candidate settings (the trending days, the
   neighbours, the ridge penalty, the sequence model's new-item boost and trending
   blend) is tried with each on the validation splits; the best on validation is the
   one the test split and the refit use;
3. computes NDCG, recall, hit rate, MRR and coverage per model for all held-out
   items and for the cold-item slice (held-out items without a training
   interaction), with a bootstrap interval over users for NDCG@10; several
   validation splits are pooled over their (user, window) pairs;
4. picks the champion, the best validation NDCG@10, baselines included; on test it
   compares the champion with the best other model of validation (the paired
   difference of NDCG@10 per user, with its interval);
5. fits the champion again on everything before D (``recommender.refit``), packs it
   as a :class:`~shoplake.recommend.bundle.RecommenderBundle`, logs it to MLflow with
   the metrics and the Delta versions of its inputs, and points the serving alias at it;
6. writes the metrics of every split to ``ops.model_metrics`` (D's partition
   replaced in one commit); each row's slice names the protocol and the split
   (``<protocol>/<split>/<items>``) and its cutoff the split's first held-out day.

Without a validation split with a user to judge (a lake too young for two windows)
the configured ``recommender.main_model`` is served and the run says so.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shoplake import columns as C
from shoplake.config import Config
from shoplake.evaluation import TEST, VALIDATION, Interval, best_other, bootstrap_mean, paired_difference, pick_champion
from shoplake.recommend.bundle import (
    EASE_KEEP,
    CooccurrenceScorer,
    EaseScorer,
    ItemKnnScorer,
    MFScorer,
    PopularityScorer,
    RecommenderBundle,
    Scorer,
    TrendingScorer,
)
from shoplake.recommend.holdout import TrainingData, history, load_events
from shoplake.recommend.metrics import CHAMPION_METRIC, evaluate, ndcg_per_user, rank_items
from shoplake.recommend.mf_train import mf_task
from shoplake.recommend.models.baselines import EaseModel, ItemCooccurrenceModel, PopularityModel, counts_as_of, trending_counts
from shoplake.recommend.protocols import HoldoutSplit, holdout_splits
from shoplake.recommend.schemas import (
    ALL_ITEMS,
    COLD_ITEMS,
    INTERACTION_TYPES,
    TASK_RECOMMENDATION,
    VALIDATION_POOLED,
    metrics_slice,
)
from shoplake.recommend.tuning import chosen_settings, search_settings, search_space
from shoplake.train.loop import FitResult, fit
from shoplake.train.model_metrics import MODEL_METRICS, write_model_metrics
from shoplake.train.tune import SearchResult

log = logging.getLogger(__name__)

#: Cut-offs of the metrics.
KS = (10, 20)
#: Users ranked per chunk (bounds the dense score matrix).
SCORE_CHUNK = 512
ALL, COLD = ALL_ITEMS, COLD_ITEMS


@dataclass
class FittedModel:
    """A model fitted on one history."""

    kind: str
    scorer: Scorer
    fit: FitResult | None = None  # Ray Train run, for the models trained there
    seconds: float = 0.0
    params: dict = field(default_factory=dict)


@dataclass
class SliceMetrics:
    """Metrics of one model on one slice of the held-out data."""

    metrics: dict[str, float]
    n_users: int
    per_user: np.ndarray | None = None  # CHAMPION_METRIC of each evaluated user, in user order


@dataclass
class SplitMetrics:
    """Every model's metrics on one held-out split (or on the pooled validation splits)."""

    split: str  # validation, test or validation_pooled
    cutoff: dt.date
    end: dt.date
    metrics: dict[str, dict[str, SliceMetrics]] = field(default_factory=dict)  # model -> slice -> metrics


@dataclass
class RecommendationResult:
    """What :func:`run_recommendation` produced."""

    run_date: dt.date
    cutoff: dt.date
    metrics: dict[str, dict[str, SliceMetrics]]  # test split: model -> slice -> metrics
    main_model: str
    bundle_path: str
    model_version: str | None
    mlflow_run_id: str | None
    metrics_version: int | None
    seconds: dict[str, float]
    histories: dict[str, list[dict]]  # Ray-trained model -> loss per epoch
    champion: str = ""
    validation_cutoff: dt.date | None = None  # the earliest validation split's
    validation: dict[str, dict[str, SliceMetrics]] = field(default_factory=dict)  # pooled over the validation splits
    versus: tuple[str, Interval] | None = None  # best other model on validation, champion - it on test
    tuned: dict[str, object] = field(default_factory=dict)  # model, or "<model> <setting>" -> the value validation chose
    protocol: str = ""
    splits: list[SplitMetrics] = field(default_factory=list)  # every split in time order, the pooled validation last
    searches: dict[str, SearchResult] = field(default_factory=dict)  # model -> its search on validation

    def ndcg(self, model: str, slice_: str = ALL, split: str = TEST) -> float:
        return (self.validation if split == VALIDATION else self.metrics)[model][slice_].metrics[CHAMPION_METRIC]

    def versus_line(self) -> str | None:
        """The champion against the best other model on test, with the interval of the difference."""
        if self.versus is None:
            return None
        other, diff = self.versus
        return (f"test {CHAMPION_METRIC}: {self.champion} {self.ndcg(self.champion):.4f} vs {other} {self.ndcg(other):.4f}, "
                f"difference {diff} (95 % interval): {diff.verdict()}")  # fmt: skip


class _TextEmbeddings:
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
#: The sequence model's score-time settings (:func:`~shoplake.recommend.models.sasrec.adjust_scores`): the
#: boost of new items and the trending blend. Chosen on validation like a setting, but applied to the
#: fitted model's scores, so trying one costs no fit.
COLD_BOOST, BLEND, BLEND_DAYS = "cold_boost", "blend", "blend_days"


def settings(cfg: Config, kind: str) -> list:
    """The candidate settings of a tuned model (:data:`TUNED`); ``[None]`` for the others."""
    return list(getattr(cfg.recommender, TUNED[kind][1])) if kind in TUNED else [None]


def score_settings(cfg: Config, kind: str) -> list[dict]:
    """The candidate score-time settings of a model; ``[{}]`` for all but ``sasrec``.

    For ``sasrec``: every boost of new items (``sequence_model.cold_boost``) with every
    trending blend (``sequence_model.trending_blend``), a blend with every trending
    window (``recommender.trending_days``).
    """
    if kind != "sasrec":
        return [{}]
    sm = cfg.sequence_model
    blends = [{BLEND: 0.0}] if 0.0 in sm.trending_blend else []
    blends += [{BLEND: w, BLEND_DAYS: d} for w in dict.fromkeys(sm.trending_blend) if w > 0 for d in cfg.recommender.trending_days]
    return [{COLD_BOOST: b, **blend} for b in dict.fromkeys(sm.cold_boost) for blend in blends]


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
            scorer = EaseScorer(EaseModel(float(setting), cfg.recommender.ease_max_items).fit(*pairs).strongest(EASE_KEEP))
        fitted = FittedModel(kind, scorer, params={TUNED[kind][0]: setting})
    elif kind == "mf":
        task = mf_task(cfg, data.pair_users, data.pair_items, data.pair_weights, data.user_ids, data.item_ids)
        run = fit(cfg, task, name, epochs, fail_at_epoch=fail_at_epoch)
        params = cfg.training.model_dump(include={"embedding_dim", "negatives", "lr", "batch_size", "weight_decay"})
        fitted = FittedModel(kind, MFScorer.from_state(run.load_state()["model"]), run, params=params)
    elif kind == "sasrec":
        from shoplake.recommend.models.sasrec import SasrecScorer
        from shoplake.recommend.sequence import train_sequence_model

        text_emb = (text_embeddings or _TextEmbeddings(cfg))(data.texts)
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
    scorer = fitted.scorer.with_settings(prior, **setting)
    return FittedModel(fitted.kind, scorer, fitted.fit, fitted.seconds, {**fitted.params, **setting})


def score_transforms(data: TrainingData, cfg: Config, settings_: Sequence[dict], scorer: Scorer) -> list[Callable | None]:
    """Scores -> scores of each score-time setting on a split's users (None: the model's own scores)."""
    from shoplake.recommend.models.sasrec import adjust_scores

    # Counted once per window, as of each user's own bound where the split has them (leave-last-out).
    priors = {d: count_scorer("trending", data, cfg, int(d)) for d in {s[BLEND_DAYS] for s in settings_ if s.get(BLEND)}}
    unknown = scorer.unknown() if any(s.get(COLD_BOOST) for s in settings_) else None

    def transform(setting: dict) -> Callable | None:
        if not setting.get(BLEND) and not setting.get(COLD_BOOST):
            return None
        prior = priors[setting[BLEND_DAYS]] if setting.get(BLEND) else None
        boost, blend = float(setting.get(COLD_BOOST, 0.0)), float(setting.get(BLEND, 0.0))
        return lambda scores, users: adjust_scores(scores, unknown, boost, None if prior is None else prior.score(users, None), blend)

    return [transform(s) for s in settings_]


def rank_split(scorer: Scorer, split: HoldoutSplit, k: int, transforms: Sequence[Callable | None] = (None,)) -> list[np.ndarray]:
    """Top-k item indices of every judged user of a split, once per score transform.

    The model scores each user from their history once; each transform (None: none)
    turns those scores into the ranked ones. Items not yet in a user's catalogue and,
    with ``split.exclude_seen``, the user's training items are never ranked.
    """
    train = split.train
    users = split.eval_users()
    seen = train.seen() if split.exclude_seen else None
    tops = [np.empty((len(users), k), dtype=np.int64) for _ in transforms]
    for start in range(0, len(users), SCORE_CHUNK):
        chunk = users[start : start + SCORE_CHUNK]
        base = np.asarray(scorer.score(chunk, [train.sequences[u] for u in chunk]), dtype=np.float64)
        hidden = split.unavailable(chunk)
        for transform, top in zip(transforms, tops):
            scores = base if transform is None else transform(base, chunk)
            if hidden is not None:
                scores = np.where(hidden, -np.inf, scores)
            top[start : start + len(chunk)] = rank_items(scores, None if seen is None else seen[chunk], k)
    return tops


def split_metrics(topk: np.ndarray, split: HoldoutSplit, ks: Sequence[int] = KS, evaluation=None) -> dict[str, SliceMetrics]:
    """Metrics of a split's rankings (:func:`rank_split`) for all held-out items and the cold-item slice.

    Args:
        evaluation: ``cfg.evaluation``: also report ``ndcg@10_low`` and ``ndcg@10_high``,
            the bootstrap interval over users.
    """
    users = split.eval_users()
    relevant = [split.relevant[u] for u in users]
    cold = split.relevant_cold()
    relevant_cold = [cold[u] for u in users]
    out = {}
    for slice_, rel in ((ALL, relevant), (COLD, relevant_cold)):
        per_user = ndcg_per_user(topk, rel, 10)
        metrics = evaluate(topk, rel, split.train.n_items, ks)
        if evaluation is not None:
            ci = bootstrap_mean(per_user, draws=evaluation.bootstrap_draws, level=evaluation.confidence, seed=evaluation.seed)
            metrics[f"{CHAMPION_METRIC}_low"], metrics[f"{CHAMPION_METRIC}_high"] = ci.low, ci.high
        out[slice_] = SliceMetrics(metrics, int(per_user.size), per_user)
    return out


def evaluate_scorer(scorer: Scorer, split: HoldoutSplit, ks: Sequence[int] = KS, evaluation=None) -> dict[str, SliceMetrics]:
    """Full-catalogue ranking metrics of a fitted model on a split.

    Every user with held-out items is scored over the whole catalogue (as the user
    could have been shown it) from their training history; their training items are
    excluded when ``split.exclude_seen``.

    Returns:
        ``{"all": ..., "cold_items": ...}``; the cold slice keeps, per user, only the
        held-out items without training interactions (users left with none are skipped).
    """
    return split_metrics(rank_split(scorer, split, max(ks))[0], split, ks, evaluation)


def pool(results: Sequence[dict[str, SliceMetrics]], evaluation=None) -> dict[str, SliceMetrics]:
    """One model's metrics on several splits as one: every (user, split) pair counts once.

    A metric is the mean of the splits' values weighted by their users (for the
    per-user means, the mean over all pairs); the interval is the bootstrap over the pairs.
    """
    if len(results) == 1:
        return results[0]
    out = {}
    for slice_ in results[0]:
        parts = [r[slice_] for r in results]
        sizes = np.array([p.n_users for p in parts], dtype=np.float64)
        metrics = {}
        for name in parts[0].metrics:
            values = np.array([p.metrics.get(name, np.nan) for p in parts], dtype=np.float64)
            keep = (sizes > 0) & ~np.isnan(values)
            metrics[name] = float((values[keep] * sizes[keep]).sum() / sizes[keep].sum()) if keep.any() else float("nan")
        per_user = np.concatenate([p.per_user for p in parts if p.per_user is not None])
        if evaluation is not None:
            ci = bootstrap_mean(per_user, draws=evaluation.bootstrap_draws, level=evaluation.confidence, seed=evaluation.seed)
            metrics[f"{CHAMPION_METRIC}_low"], metrics[f"{CHAMPION_METRIC}_high"] = ci.low, ci.high
        out[slice_] = SliceMetrics(metrics, int(sizes.sum()), per_user)
    return out


def validation_score(scorers: Sequence[Scorer], splits: Sequence[HoldoutSplit]) -> float:
    """NDCG@10 of one scorer per split, pooled over the splits' (user, split) pairs: the figure the champion is chosen on."""
    parts = [split_metrics(rank_split(scorer, split, max(KS))[0], split, KS) for scorer, split in zip(scorers, splits)]
    return float(np.nan_to_num(pool(parts)[ALL].metrics[CHAMPION_METRIC], nan=0.0))


def build_bundle(fitted: FittedModel, data: TrainingData, metadata: dict) -> RecommenderBundle:
    """Pack a model fitted on ``data`` with the history's users and catalogue."""
    return RecommenderBundle.from_histories(
        fitted.scorer,
        data.user_ids,
        data.item_ids,
        data.sequences,
        data.bought,
        popularity=data.popularity(),
        titles=data.titles,
        categories=data.categories,
        metadata=metadata,
    )


def metrics_rows(result: RecommendationResult, evaluated_at: dt.datetime):
    """The ``ops.model_metrics`` rows of a run's splits, as an Arrow table of the spec's schema.

    Each row's slice is ``<protocol>/<split>/<items>`` and its cutoff the split's first held-out day.
    """
    import pyarrow as pa

    rows = [
        {
            C.RUN_DATE: result.run_date,
            C.TASK: TASK_RECOMMENDATION,
            C.CUTOFF_DATE: split.cutoff,
            C.MODEL_NAME: model,
            C.MLFLOW_RUN_ID: result.mlflow_run_id,
            C.SLICE: metrics_slice(result.protocol, split.split, slice_),
            C.METRIC: metric,
            C.VALUE: None if np.isnan(value) else float(value),
            C.N_EVALUATED: sm.n_users,
            C.EVALUATED_AT: evaluated_at,
        }  # fmt: skip
        for split in result.splits
        for model, slices in split.metrics.items()
        for slice_, sm in slices.items()
        for metric, value in sm.metrics.items()
    ]
    return pa.Table.from_pylist(rows, schema=MODEL_METRICS.arrow_schema())


def _setting_label(kind: str, fit_setting, score_setting: dict) -> str:
    parts = [] if fit_setting is None else [f"{TUNED[kind][0]} {fit_setting}"]
    if score_setting.get(COLD_BOOST):
        parts.append(f"new items +{score_setting[COLD_BOOST]}")
    if score_setting.get(BLEND):
        parts.append(f"trending blend {score_setting[BLEND]} ({score_setting[BLEND_DAYS]} days)")
    return f"{kind} ({', '.join(parts)})" if parts else kind


def run_recommendation(
    cfg: Config,
    lake,
    run_date: dt.date | None = None,
    *,
    name: str | None = None,
    register: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> RecommendationResult:
    """Evaluate every configured model on the held-out splits of ``run_date`` and register the champion.

    Args:
        cfg: ``recommender`` (protocol, models, main model, holdout, refit, registry),
            ``evaluation`` (intervals), and the settings of each model.
        lake: The lake with the features snapshot of ``run_date``.
        run_date: The run date; default the latest snapshot of ``gold.user_item_matrix``.
        name: Prefix of the run's folders (default ``rec_<run_date>_<UTC time>``).
        register: Log the champion to MLflow and point the serving alias at it.
        on_step: Called with a short description as each step starts (progress display).

    Returns:
        Metrics per split, model and slice, the champion, the bundle and the registered version.

    Raises:
        shoplake.recommend.holdout.MissingFeaturesError: The snapshot is missing, or its test split judges no one.
    """
    from shoplake.recommend.schemas import USER_ITEM_MATRIX

    step = on_step or (lambda text: log.info("%s", text))
    rc = cfg.recommender
    if run_date is None:
        dates = lake.run_dates(USER_ITEM_MATRIX)
        if not dates:
            raise ValueError(f"no {USER_ITEM_MATRIX.full_name} snapshot in {lake.root}; run the features step first")
        run_date = dates[-1]
    name = name or f"rec_{run_date.isoformat()}_{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}"
    step(f"reading the {run_date} snapshot ({rc.protocol} protocol)")
    unused = history_outside_lookback(cfg, lake, run_date)
    if unused:
        log.warning("%s", unused)
    events = load_events(lake, run_date)
    validations, test = holdout_splits(cfg, events)
    if not validations:
        log.warning("no validation window before %s with a user to judge; the champion cannot be measured, serving "
                    "recommender.main_model %s", test.cutoff, rc.main_model)  # fmt: skip
    texts = _TextEmbeddings(cfg)
    evaluated: dict[str, dict[str, dict[str, SliceMetrics]]] = {VALIDATION: {}, TEST: {}}
    per_split: list[dict[str, dict[str, SliceMetrics]]] = [{} for _ in validations]
    seconds: dict[str, float] = {}
    histories: dict[str, list[dict]] = {}
    fitted_on_test: dict[str, FittedModel] = {}
    tuned: dict[str, object] = {}
    chosen_score: dict[str, dict] = {}
    model_cfg: dict[str, Config] = {}
    searches: dict[str, SearchResult] = {}
    skipped = {kind: why for kind in rc.models if (why := skip_reason(cfg, kind, test.train))}
    for why in skipped.values():
        log.warning("%s", why)
    for kind in (k for k in rc.models if k not in skipped):
        if validations and search_space(cfg, kind):
            step(f"{kind}: searching its settings on validation")
        kind_cfg, searched = search_settings(cfg, kind, validations, f"{name}_{kind}_search", validation_score, text_embeddings=texts)
        model_cfg[kind] = kind_cfg
        if searched is not None:
            searches[kind] = searched
            seconds[f"{kind} (search)"] = searched.seconds
            step(f"{kind}: {searched.summary()}")
            tuned.update({f"{kind} {key}": value for key, value in chosen_settings(kind_cfg, kind, searched).items()})
        fit_candidates, score_candidates = settings(cfg, kind), score_settings(cfg, kind)
        best_fit, best_score = fit_candidates[0], score_candidates[0]
        if validations:
            # Every candidate on every validation split, pooled; the first of the best wins.
            results: dict[tuple[int, int], list[dict[str, SliceMetrics]]] = {}
            for f, fit_setting in enumerate(fit_candidates):
                for n, split in enumerate(validations):
                    shown = _setting_label(kind, fit_setting, {})
                    step(f"{shown}: training on the history before {split.cutoff} (validation)")
                    suffix = f"validation{n}" + ("" if len(fit_candidates) == 1 else f"_{f}")
                    fitted = fit_model(kind, split.train, kind_cfg, f"{name}_{kind}_{suffix}", text_embeddings=texts,
                                       setting=fit_setting)  # fmt: skip
                    seconds[f"{kind} (validation {split.cutoff})"] = fitted.seconds
                    step(f"{shown}: ranking the catalogue for {len(split.eval_users())} users (validation)")
                    transforms = score_transforms(split.train, cfg, score_candidates, fitted.scorer)
                    for c, topk in enumerate(rank_split(fitted.scorer, split, max(KS), transforms)):
                        results.setdefault((f, c), []).append(split_metrics(topk, split, KS, cfg.evaluation))
            pooled = {key: pool(parts, cfg.evaluation) for key, parts in results.items()}
            scores = {key: np.nan_to_num(m[ALL].metrics[CHAMPION_METRIC], nan=-1.0) for key, m in pooled.items()}
            f, c = max(scores, key=lambda key: (scores[key], -key[0], -key[1]))
            best_fit, best_score = fit_candidates[f], score_candidates[c]
            evaluated[VALIDATION][kind] = pooled[(f, c)]
            for n, part in enumerate(results[(f, c)]):
                per_split[n][kind] = part
            if len(scores) > 1:
                log.info("%s chosen on validation", _setting_label(kind, best_fit, best_score))
        if best_fit is not None:
            tuned[kind] = best_fit
        tuned.update({f"{kind} {name}": value for name, value in best_score.items() if len(score_candidates) > 1})
        chosen_score[kind] = best_score
        shown = _setting_label(kind, best_fit, best_score)
        step(f"{shown}: training on the history before {test.cutoff} (test)")
        fitted = fit_model(kind, test.train, kind_cfg, f"{name}_{kind}_holdout", text_embeddings=texts, setting=best_fit)
        seconds[kind] = fitted.seconds
        step(f"{shown}: ranking the catalogue for {len(test.eval_users())} users (test)")
        topk = rank_split(fitted.scorer, test, max(KS), score_transforms(test.train, cfg, [best_score], fitted.scorer))[0]
        evaluated[TEST][kind] = split_metrics(topk, test, KS, cfg.evaluation)
        if fitted.fit is not None:
            histories[kind] = fitted.fit.history
        fitted_on_test[kind] = fitted
        for label in (VALIDATION, TEST):
            if kind in evaluated[label]:
                log.info("%s %s: %s", label, kind, {k: round(v, 4) for k, v in evaluated[label][kind][ALL].metrics.items()})
    metrics = evaluated[TEST]

    champion, versus = _champion(cfg, evaluated)
    if rc.refit or champion not in fitted_on_test:
        step(f"{champion}: training on the {run_date} snapshot for serving")
        data = history(events, cfg, events.end)
        main = fit_model(champion, data, model_cfg.get(champion, cfg), f"{name}_{champion}", text_embeddings=texts,
                         setting=tuned.get(champion))  # fmt: skip
        seconds[f"{champion} (refit)"] = main.seconds
    else:
        data, main = test.train, fitted_on_test[champion]
    main = with_score_setting(main, data, cfg, chosen_score.get(champion, {}))
    versions = dict(events.versions)
    splits = [SplitMetrics(VALIDATION, s.cutoff, s.end, m) for s, m in zip(validations, per_split)]
    splits.append(SplitMetrics(TEST, test.cutoff, test.end, metrics))
    if len(validations) > 1:
        splits.append(SplitMetrics(VALIDATION_POOLED, validations[0].cutoff, validations[-1].end, evaluated[VALIDATION]))
    metadata = {
        "model_name": champion,
        "run_date": run_date.isoformat(),
        "trained_on": data.as_of.isoformat(),
        "protocol": rc.protocol,
        "cutoff": test.cutoff.isoformat(),
        "validation_cutoffs": [s.cutoff.isoformat() for s in validations],
        "table_versions": versions,
        "params": main.params,
        "tuned": tuned_settings(tuned, champion),
    }
    bundle_path = Path(cfg.runs_dir, "recommender", name, "bundle")
    build_bundle(main, data, metadata).save(bundle_path)
    log.info("bundle of %s written to %s", champion, bundle_path)

    model_version = run_id = None
    if register:
        from shoplake.registry import log_model

        step(f"registering {champion} in MLflow")
        flat = {f"{label}.{model}.{slice_}.{metric}": value for label, by_model in evaluated.items()
                for model, slices in by_model.items() for slice_, sm in slices.items()
                for metric, value in sm.metrics.items() if not np.isnan(value)}  # fmt: skip
        if versus is not None:
            flat.update({f"test.{champion}_minus_{versus[0]}.{CHAMPION_METRIC}": versus[1].value,
                         f"test.{champion}_minus_{versus[0]}.{CHAMPION_METRIC}_low": versus[1].low,
                         f"test.{champion}_minus_{versus[0]}.{CHAMPION_METRIC}_high": versus[1].high})  # fmt: skip
        params = {"champion": champion, "main_model": rc.main_model, "protocol": rc.protocol, "holdout_days": rc.holdout_days,
                  "exclude_seen": rc.exclude_seen, "refit": rc.refit,
                  **{f"{champion}.{k}": v for k, v in {**main.params, **tuned_settings(tuned, champion)}.items()}}  # fmt: skip
        info = log_model(cfg, bundle_path, model_name=champion, params=params,
                         metrics={k: v for k, v in flat.items() if not np.isnan(v)},
                         table_versions=versions, run_date=run_date, set_serving=True, run_name=name)  # fmt: skip
        model_version, run_id = info.version, info.run_id

    result = RecommendationResult(
        run_date=run_date,
        cutoff=test.cutoff,
        metrics=metrics,
        main_model=rc.main_model,
        bundle_path=str(bundle_path),
        model_version=model_version,
        mlflow_run_id=run_id,
        metrics_version=None,
        seconds=seconds,
        histories=histories,
        champion=champion,
        validation_cutoff=validations[0].cutoff if validations else None,
        validation=evaluated[VALIDATION],
        versus=versus,
        tuned=tuned,
        protocol=rc.protocol,
        splits=splits,
        searches=searches,
    )
    step("writing ops.model_metrics")
    table = metrics_rows(result, dt.datetime.now(dt.timezone.utc))
    result.metrics_version = write_model_metrics(cfg, lake, table, TASK_RECOMMENDATION, run_date).version
    line = result.versus_line()
    if line:
        log.info("%s", line)
    return result


def history_outside_lookback(cfg: Config, lake, run_date: dt.date) -> str | None:
    """What the interactions leave out: landing days of orders and events older than ``features.lookback_days``.

    Read from the bronze tables' Delta logs (no data is scanned); None when nothing is left out.
    """
    from shoplake.ingest.bronze import BRONZE

    days = cfg.features.lookback_days
    earliest = run_date - dt.timedelta(days=days)
    older = sorted({d for source in ("orders", "events") if lake.exists(BRONZE[source])
                    for d in lake.run_dates(BRONZE[source]) if d < earliest})  # fmt: skip
    if not older:
        return None
    return (f"{len(older):,} landing days of orders and events ({older[0]}..{older[-1]}) are older than "
            f"features.lookback_days ({days}) before {run_date} and are not used; raise it to learn from them")  # fmt: skip


def _champion(cfg: Config, evaluated: dict[str, dict[str, dict[str, SliceMetrics]]]) -> tuple[str, tuple[str, Interval] | None]:
    """The best model on validation and, on test, its paired difference with the best other one of validation."""
    rc, ev = cfg.recommender, cfg.evaluation
    scores = {kind: slices[ALL].metrics[CHAMPION_METRIC] for kind, slices in evaluated[VALIDATION].items()}
    champion = pick_champion(scores)
    if champion is None:
        return rc.main_model, None
    other = best_other(scores, champion)
    if other is None or champion not in evaluated[TEST] or other not in evaluated[TEST]:
        return champion, None
    a, b = evaluated[TEST][champion][ALL].per_user, evaluated[TEST][other][ALL].per_user
    return champion, (other, paired_difference(a, b, draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed))
