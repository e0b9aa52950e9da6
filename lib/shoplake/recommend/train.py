"""The recommendation run: every model judged side by side, the measured champion registered.

:func:`run_recommendation` for a run date D follows the platform's evaluation
protocol (:mod:`shoplake.evaluation`) with two time-ordered held-out windows of
``recommender.holdout_days`` each: test ``[C, D)`` with ``C = D - holdout_days``, and
validation ``[V, C)`` with ``V = C - holdout_days``.

1. reads both holdouts (:func:`shoplake.recommend.holdout.load_split` of C and of D);
2. fits each model of ``recommender.models`` on the snapshot before each window
   (popularity and co-occurrence in this process; matrix factorization and the
   text-aware sequence model on Ray Train) and ranks the whole catalogue for every
   user with held-out items, the training items excluded when ``recommender.exclude_seen``;
3. computes NDCG, recall, hit rate, MRR and coverage per model for all held-out
   items and for the cold-item slice (held-out items without a training
   interaction), with a bootstrap interval over users for NDCG@10;
4. picks the champion, the best validation NDCG@10, baselines included; on test it
   compares the champion with the best other model of validation (the paired
   difference of NDCG@10 per user, with its interval);
5. fits the champion again on D's snapshot (``recommender.refit``), packs it as a
   :class:`~shoplake.recommend.bundle.RecommenderBundle`, logs it to MLflow with the
   metrics and the Delta versions of its inputs, and points the serving alias at it;
6. writes the metrics of both windows to ``ops.model_metrics`` (D's partition
   replaced in one commit; each window's rows carry its cutoff).

Without a validation snapshot (a lake too young for two windows) the configured
``recommender.main_model`` is served and the run says so.
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
from shoplake.recommend.holdout import HoldoutSplit, TrainingData, load_split, load_training_data
from shoplake.recommend.metrics import CHAMPION_METRIC, evaluate, ndcg_per_user, rank_items
from shoplake.recommend.mf_train import mf_task
from shoplake.recommend.models.baselines import EaseModel, ItemCooccurrenceModel, PopularityModel, trending_counts
from shoplake.recommend.schemas import TASK_RECOMMENDATION
from shoplake.train.loop import FitResult, fit
from shoplake.train.model_metrics import MODEL_METRICS, write_model_metrics

log = logging.getLogger(__name__)

#: Cut-offs of the metrics.
KS = (10, 20)
#: Users ranked per chunk (bounds the dense score matrix).
SCORE_CHUNK = 512
ALL, COLD = "all", "cold_items"


@dataclass
class FittedModel:
    """A model fitted on one snapshot."""

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
class RecommendationResult:
    """What :func:`run_recommendation` produced."""

    run_date: dt.date
    cutoff: dt.date
    metrics: dict[str, dict[str, SliceMetrics]]  # test window: model -> slice -> metrics
    main_model: str
    bundle_path: str
    model_version: str | None
    mlflow_run_id: str | None
    metrics_version: int | None
    seconds: dict[str, float]
    histories: dict[str, list[dict]]  # Ray-trained model -> loss per epoch
    champion: str = ""
    validation_cutoff: dt.date | None = None
    validation: dict[str, dict[str, SliceMetrics]] = field(default_factory=dict)
    versus: tuple[str, Interval] | None = None  # best other model on validation, champion - it on test
    tuned: dict[str, object] = field(default_factory=dict)  # model -> the setting validation chose

    def ndcg(self, model: str, slice_: str = ALL, split: str = TEST) -> float:
        return (self.validation if split == VALIDATION else self.metrics)[model][slice_].metrics[CHAMPION_METRIC]

    def by_cutoff(self) -> dict[dt.date, dict[str, dict[str, SliceMetrics]]]:
        """The metrics of each held-out window by its cutoff, validation first."""
        windows = {} if self.validation_cutoff is None else {self.validation_cutoff: self.validation}
        return {**windows, self.cutoff: self.metrics}

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


#: The setting the validation window tunes, per model: its name and the config field listing the candidates.
TUNED = {"trending": ("days", "trending_days"), "item_knn": ("neighbors", "knn_neighbors"), "ease": ("l2", "ease_l2")}


def settings(cfg: Config, kind: str) -> list:
    """The candidate settings of a tuned model (:data:`TUNED`); ``[None]`` for the others."""
    return list(getattr(cfg.recommender, TUNED[kind][1])) if kind in TUNED else [None]


def skip_reason(cfg: Config, kind: str, data: TrainingData) -> str | None:
    """Why ``kind`` cannot be fitted on ``data`` (EASE on a catalogue over its cap), or None."""
    cap = cfg.recommender.ease_max_items
    if kind == "ease" and data.n_items > cap:
        return f"ease skipped: {data.n_items:,} items exceed recommender.ease_max_items {cap:,} (its matrix is dense)"
    return None


def _midnight_seconds(day: dt.date) -> float:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc).timestamp()


def fit_model(kind: str, data: TrainingData, cfg: Config, name: str, *, text_embeddings: Callable | None = None,
              epochs: int | None = None, fail_at_epoch: int | None = None, setting=None) -> FittedModel:  # fmt: skip
    """Fit one model family on a snapshot.

    Args:
        kind: ``popularity``, ``trending``, ``cooccurrence``, ``item_knn``, ``ease``, ``mf`` or ``sasrec``.
        setting: The tuned setting of ``trending`` (days), ``item_knn`` (neighbours)
            or ``ease`` (ridge penalty); None: the first candidate of the config.
        data: The snapshot.
        cfg: ``training`` (matrix factorization), ``sequence_model``, ``text_encoder``,
            ``ray`` (workers).
        name: Run name of a Ray Train run (its folder under ``<runs_dir>/ray_results``).
        text_embeddings: Texts -> embeddings (default: the configured encoder, uncached).
        epochs: Overrides the model's configured epochs.
        fail_at_epoch: Tests only, see :func:`shoplake.train.loop.fit`.
    """
    started = time.monotonic()
    if kind == "popularity":
        model = PopularityModel().fit(data.pair_users, data.pair_items, data.pair_weights, data.n_users, data.n_items)
        fitted = FittedModel(kind, PopularityScorer(model.popularity))
    elif kind == "cooccurrence":
        model = ItemCooccurrenceModel().fit(data.pair_users, data.pair_items, data.pair_weights, data.n_users, data.n_items)
        fitted = FittedModel(kind, CooccurrenceScorer(model.similarity))
    elif kind in TUNED:
        setting = settings(cfg, kind)[0] if setting is None else setting
        pairs = (data.pair_users, data.pair_items, data.pair_weights, data.n_users, data.n_items)
        if kind == "trending":
            items = np.concatenate(data.sequences) if data.sequences else np.zeros(0, np.int64)
            times = np.concatenate(data.times) if data.times else np.zeros(0)
            scorer = TrendingScorer(trending_counts(items, times, _midnight_seconds(data.as_of), int(setting), data.n_items))
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
    log.info("fitted %s on the %s snapshot in %.1f s", kind, data.as_of, fitted.seconds)
    return fitted


def evaluate_scorer(scorer: Scorer, split: HoldoutSplit, ks: Sequence[int] = KS, evaluation=None) -> dict[str, SliceMetrics]:
    """Full-catalogue ranking metrics of a fitted model on the held-out data.

    Every user with held-out items is scored over the whole catalogue from their
    training history; their training items are excluded when ``split.exclude_seen``.

    Args:
        evaluation: ``cfg.evaluation``: also report ``ndcg@10_low`` and ``ndcg@10_high``,
            the bootstrap interval over users.

    Returns:
        ``{"all": ..., "cold_items": ...}``; the cold slice keeps, per user, only the
        held-out items without training interactions (users left with none are skipped).
    """
    train = split.train
    users = split.eval_users()
    seen = train.seen() if split.exclude_seen else None
    topk = np.empty((len(users), max(ks)), dtype=np.int64)
    for start in range(0, len(users), SCORE_CHUNK):
        chunk = users[start : start + SCORE_CHUNK]
        scores = np.asarray(scorer.score(chunk, [train.sequences[u] for u in chunk]), dtype=np.float64)
        topk[start : start + len(chunk)] = rank_items(scores, None if seen is None else seen[chunk], max(ks))
    relevant = [split.relevant[u] for u in users]
    cold = set(np.flatnonzero(split.cold_items).tolist())
    relevant_cold = [rel & cold for rel in relevant]
    out = {}
    for slice_, rel in ((ALL, relevant), (COLD, relevant_cold)):
        per_user = ndcg_per_user(topk, rel, 10)
        metrics = evaluate(topk, rel, train.n_items, ks)
        if evaluation is not None:
            ci = bootstrap_mean(per_user, draws=evaluation.bootstrap_draws, level=evaluation.confidence, seed=evaluation.seed)
            metrics[f"{CHAMPION_METRIC}_low"], metrics[f"{CHAMPION_METRIC}_high"] = ci.low, ci.high
        out[slice_] = SliceMetrics(metrics, int(per_user.size), per_user)
    return out


def build_bundle(fitted: FittedModel, data: TrainingData, metadata: dict) -> RecommenderBundle:
    """Pack a model fitted on ``data`` with the snapshot's histories and catalogue."""
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


def metrics_rows(by_cutoff: dict[dt.date, dict[str, dict[str, SliceMetrics]]], run_date: dt.date,
                 mlflow_run_id: str | None, evaluated_at: dt.datetime):  # fmt: skip
    """The ``ops.model_metrics`` rows of a run's held-out windows (by cutoff), as an Arrow table of the spec's schema."""
    import pyarrow as pa

    rows = [
        {
            C.RUN_DATE: run_date,
            C.TASK: TASK_RECOMMENDATION,
            C.CUTOFF_DATE: cutoff,
            C.MODEL_NAME: model,
            C.MLFLOW_RUN_ID: mlflow_run_id,
            C.SLICE: slice_,
            C.METRIC: metric,
            C.VALUE: None if np.isnan(value) else float(value),
            C.N_EVALUATED: sm.n_users,
            C.EVALUATED_AT: evaluated_at,
        }  # fmt: skip
        for cutoff, result_metrics in by_cutoff.items()
        for model, slices in result_metrics.items()
        for slice_, sm in slices.items()
        for metric, value in sm.metrics.items()
    ]
    return pa.Table.from_pylist(rows, schema=MODEL_METRICS.arrow_schema())


def run_recommendation(
    cfg: Config,
    lake,
    run_date: dt.date | None = None,
    *,
    name: str | None = None,
    register: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> RecommendationResult:
    """Evaluate every configured model on both held-out windows of ``run_date`` and register the champion.

    Args:
        cfg: ``recommender`` (models, main model, holdout, refit, registry),
            ``evaluation`` (intervals), and the settings of each model.
        lake: The lake with the feature snapshots of ``run_date`` and its two cutoffs.
        run_date: The run date; default the latest snapshot of ``gold.user_item_matrix``.
        name: Prefix of the run's folders (default ``rec_<run_date>_<UTC time>``).
        register: Log the champion to MLflow and point the serving alias at it.
        on_step: Called with a short description as each step starts (progress display).

    Returns:
        Metrics per window, model and slice, the champion, the bundle and the registered version.

    Raises:
        shoplake.recommend.holdout.MissingFeaturesError: A snapshot is missing.
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
    step(f"reading the holdouts of {run_date}")
    unused = history_outside_lookback(cfg, lake, run_date)
    if unused:
        log.warning("%s", unused)
    split = load_split(cfg, lake, run_date)
    val_split = _validation_split(cfg, lake, split)
    texts = _TextEmbeddings(cfg)
    windows = {VALIDATION: val_split, TEST: split}
    evaluated: dict[str, dict[str, dict[str, SliceMetrics]]] = {VALIDATION: {}, TEST: {}}
    seconds: dict[str, float] = {}
    histories: dict[str, list[dict]] = {}
    fitted_on_split: dict[str, FittedModel] = {}
    tuned: dict[str, object] = {}
    skipped = {kind: why for kind in rc.models if (why := skip_reason(cfg, kind, split.train))}
    for why in skipped.values():
        log.warning("%s", why)
    for label, window in windows.items():
        if window is None:
            continue
        suffix = "holdout" if label == TEST else label
        for kind in (k for k in rc.models if k not in skipped):
            # The validation window tries every candidate setting; the test window and the refit use its pick.
            candidates = settings(cfg, kind) if label == VALIDATION else [tuned.get(kind)]
            best = None
            for setting in candidates:
                shown = f"{kind}" if setting is None else f"{kind} ({TUNED[kind][0]} {setting})"
                step(f"{shown}: training on the {window.cutoff} snapshot ({label})")
                fitted = fit_model(kind, window.train, cfg, f"{name}_{kind}_{suffix}", text_embeddings=texts, setting=setting)
                step(f"{shown}: ranking the catalogue for {len(window.eval_users())} users ({label})")
                scored = evaluate_scorer(fitted.scorer, window, evaluation=cfg.evaluation)
                score = np.nan_to_num(scored[ALL].metrics[CHAMPION_METRIC], nan=-1.0)
                if best is None or score > best[0]:
                    best = (score, setting, fitted, scored)
            _, setting, fitted, evaluated[label][kind] = best
            if label == VALIDATION and setting is not None:
                tuned[kind] = setting
                if len(candidates) > 1:
                    log.info("%s: %s %s chosen on validation", kind, TUNED[kind][0], setting)
            seconds[kind if label == TEST else f"{kind} ({label})"] = fitted.seconds
            if label == TEST:
                if fitted.fit is not None:
                    histories[kind] = fitted.fit.history
                fitted_on_split[kind] = fitted
            log.info("%s %s: %s", label, kind, {k: round(v, 4) for k, v in evaluated[label][kind][ALL].metrics.items()})
    metrics = evaluated[TEST]

    champion, versus = _champion(cfg, evaluated)
    if rc.refit or champion not in fitted_on_split:
        step(f"{champion}: training on the {run_date} snapshot for serving")
        data = load_training_data(lake, run_date)
        main = fit_model(champion, data, cfg, f"{name}_{champion}", text_embeddings=texts, setting=tuned.get(champion))
        seconds[f"{champion} (refit)"] = main.seconds
    else:
        data, main = split.train, fitted_on_split[champion]
    versions = {**split.train.versions, **{f"{k}@{data.as_of}": v for k, v in data.versions.items()}}
    if val_split is not None:
        versions.update({f"{k} (validation)": v for k, v in val_split.train.versions.items()})
    metadata = {
        "model_name": champion,
        "run_date": run_date.isoformat(),
        "trained_on": data.as_of.isoformat(),
        "cutoff": split.cutoff.isoformat(),
        "validation_cutoff": None if val_split is None else val_split.cutoff.isoformat(),
        "table_versions": versions,
        "params": main.params,
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
        params = {"champion": champion, "main_model": rc.main_model, "holdout_days": rc.holdout_days,
                  "exclude_seen": rc.exclude_seen, "refit": rc.refit,
                  **{f"{champion}.{k}": v for k, v in main.params.items()}}  # fmt: skip
        info = log_model(cfg, bundle_path, model_name=champion, params=params,
                         metrics={k: v for k, v in flat.items() if not np.isnan(v)},
                         table_versions=versions, run_date=run_date, set_serving=True, run_name=name)  # fmt: skip
        model_version, run_id = info.version, info.run_id

    result = RecommendationResult(
        run_date=run_date,
        cutoff=split.cutoff,
        metrics=metrics,
        main_model=rc.main_model,
        bundle_path=str(bundle_path),
        model_version=model_version,
        mlflow_run_id=run_id,
        metrics_version=None,
        seconds=seconds,
        histories=histories,
        champion=champion,
        validation_cutoff=None if val_split is None else val_split.cutoff,
        validation=evaluated[VALIDATION],
        versus=versus,
        tuned=tuned,
    )
    step("writing ops.model_metrics")
    table = metrics_rows(result.by_cutoff(), run_date, run_id, dt.datetime.now(dt.timezone.utc))
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


def _validation_split(cfg: Config, lake, test: HoldoutSplit) -> HoldoutSplit | None:
    """The validation window before the test window, or None when the lake has no snapshot for it."""
    from shoplake.recommend.holdout import MissingFeaturesError

    try:
        return load_split(cfg, lake, test.cutoff)
    except MissingFeaturesError as err:
        log.warning("no validation window before %s (%s); the champion cannot be measured, serving recommender.main_model "
                    "%s", test.cutoff, err, cfg.recommender.main_model)  # fmt: skip
        return None


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
