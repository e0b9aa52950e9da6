"""The recommendation run: every model judged side by side, the main one registered.

:func:`run_recommendation` for a run date D:

1. reads the time-based holdout of D (:func:`shoplake.recommend.holdout.load_split`);
2. fits each model of ``recommender.models`` on the cutoff snapshot (popularity and
   co-occurrence in this process; matrix factorization and the text-aware sequence
   model on Ray Train) and ranks the whole catalogue for every user with held-out
   items, the training items excluded when ``recommender.exclude_seen``;
3. computes NDCG, recall, hit rate, MRR and coverage per model for all held-out
   items and for the cold-item slice (held-out items without a training
   interaction);
4. fits ``recommender.main_model`` again on D's snapshot (``recommender.refit``), packs
   it as a :class:`~shoplake.recommend.bundle.RecommenderBundle`, logs it to MLflow
   with the metrics and the Delta versions of its inputs, and points the serving
   alias at it;
5. writes the metrics to ``ops.model_metrics`` (D's partition replaced in one commit).
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
from shoplake.recommend.bundle import CooccurrenceScorer, MFScorer, PopularityScorer, RecommenderBundle, Scorer
from shoplake.recommend.holdout import HoldoutSplit, TrainingData, load_split, load_training_data
from shoplake.recommend.metrics import evaluate, rank_items
from shoplake.recommend.mf_train import mf_task
from shoplake.recommend.models.baselines import ItemCooccurrenceModel, PopularityModel
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


@dataclass
class RecommendationResult:
    """What :func:`run_recommendation` produced."""

    run_date: dt.date
    cutoff: dt.date
    metrics: dict[str, dict[str, SliceMetrics]]  # model -> slice -> metrics
    main_model: str
    bundle_path: str
    model_version: str | None
    mlflow_run_id: str | None
    metrics_version: int | None
    seconds: dict[str, float]
    histories: dict[str, list[dict]]  # Ray-trained model -> loss per epoch

    def ndcg(self, model: str, slice_: str = ALL) -> float:
        return self.metrics[model][slice_].metrics["ndcg@10"]


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


def fit_model(kind: str, data: TrainingData, cfg: Config, name: str, *, text_embeddings: Callable | None = None,
              epochs: int | None = None, fail_at_epoch: int | None = None) -> FittedModel:  # fmt: skip
    """Fit one model family on a snapshot.

    Args:
        kind: ``popularity``, ``cooccurrence``, ``mf`` or ``sasrec``.
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
        raise ValueError(f"unknown model {kind!r}; expected popularity, cooccurrence, mf or sasrec")
    fitted.seconds = time.monotonic() - started
    log.info("fitted %s on the %s snapshot in %.1f s", kind, data.as_of, fitted.seconds)
    return fitted


def evaluate_scorer(scorer: Scorer, split: HoldoutSplit, ks: Sequence[int] = KS) -> dict[str, SliceMetrics]:
    """Full-catalogue ranking metrics of a fitted model on the held-out data.

    Every user with held-out items is scored over the whole catalogue from their
    training history; their training items are excluded when ``split.exclude_seen``.

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
        out[slice_] = SliceMetrics(evaluate(topk, rel, train.n_items, ks), sum(1 for r in rel if r))
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


def metrics_rows(result_metrics: dict[str, dict[str, SliceMetrics]], run_date: dt.date, cutoff: dt.date,
                 mlflow_run_id: str | None, evaluated_at: dt.datetime):  # fmt: skip
    """The ``ops.model_metrics`` rows of a run, as an Arrow table of the spec's schema."""
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
    """Evaluate every configured model on the holdout of ``run_date`` and register the main one.

    Args:
        cfg: ``recommender`` (models, main model, holdout, refit, registry), and the
            settings of each model.
        lake: The lake with the feature snapshots of ``run_date`` and its cutoff.
        run_date: The run date; default the latest snapshot of ``gold.user_item_matrix``.
        name: Prefix of the run's folders (default ``rec_<run_date>_<UTC time>``).
        register: Log the main model to MLflow and point the serving alias at it.
        on_step: Called with a short description as each step starts (progress display).

    Returns:
        Metrics per model and slice, the bundle and the registered version.

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
    step(f"reading the holdout of {run_date}")
    split = load_split(cfg, lake, run_date)
    texts = _TextEmbeddings(cfg)
    metrics: dict[str, dict[str, SliceMetrics]] = {}
    seconds: dict[str, float] = {}
    histories: dict[str, list[dict]] = {}
    fitted_on_split: dict[str, FittedModel] = {}
    for kind in rc.models:
        step(f"{kind}: training on the {split.cutoff} snapshot")
        fitted = fit_model(kind, split.train, cfg, f"{name}_{kind}_holdout", text_embeddings=texts)
        step(f"{kind}: ranking the catalogue for {len(split.eval_users())} users")
        metrics[kind] = evaluate_scorer(fitted.scorer, split)
        seconds[kind] = fitted.seconds
        if fitted.fit is not None:
            histories[kind] = fitted.fit.history
        fitted_on_split[kind] = fitted
        log.info("%s: %s", kind, {k: round(v, 4) for k, v in metrics[kind][ALL].metrics.items()})

    if rc.refit or rc.main_model not in fitted_on_split:
        step(f"{rc.main_model}: training on the {run_date} snapshot for serving")
        data = load_training_data(lake, run_date)
        main = fit_model(rc.main_model, data, cfg, f"{name}_{rc.main_model}", text_embeddings=texts)
        seconds[f"{rc.main_model} (refit)"] = main.seconds
    else:
        data, main = split.train, fitted_on_split[rc.main_model]
    versions = {**split.train.versions, **{f"{k}@{data.as_of}": v for k, v in data.versions.items()}}
    metadata = {
        "model_name": rc.main_model,
        "run_date": run_date.isoformat(),
        "trained_on": data.as_of.isoformat(),
        "cutoff": split.cutoff.isoformat(),
        "table_versions": versions,
        "params": main.params,
    }
    bundle_path = Path(cfg.runs_dir, "recommender", name, "bundle")
    build_bundle(main, data, metadata).save(bundle_path)
    log.info("bundle of %s written to %s", rc.main_model, bundle_path)

    model_version = run_id = None
    if register:
        from shoplake.registry import log_model

        step(f"registering {rc.main_model} in MLflow")
        flat = {f"{model}.{slice_}.{metric}": value for model, slices in metrics.items()
                for slice_, sm in slices.items() for metric, value in sm.metrics.items() if not np.isnan(value)}  # fmt: skip
        params = {"main_model": rc.main_model, "holdout_days": rc.holdout_days, "exclude_seen": rc.exclude_seen,
                  "refit": rc.refit, **{f"{rc.main_model}.{k}": v for k, v in main.params.items()}}  # fmt: skip
        info = log_model(cfg, bundle_path, model_name=rc.main_model, params=params, metrics=flat,
                         table_versions=versions, run_date=run_date, set_serving=True, run_name=name)  # fmt: skip
        model_version, run_id = info.version, info.run_id

    step("writing ops.model_metrics")
    table = metrics_rows(metrics, run_date, split.cutoff, run_id, dt.datetime.now(dt.timezone.utc))
    written = write_model_metrics(cfg, lake, table, TASK_RECOMMENDATION, run_date)
    return RecommendationResult(
        run_date=run_date,
        cutoff=split.cutoff,
        metrics=metrics,
        main_model=rc.main_model,
        bundle_path=str(bundle_path),
        model_version=model_version,
        mlflow_run_id=run_id,
        metrics_version=written.version,
        seconds=seconds,
        histories=histories,
    )
