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
4. picks the champion by ``recommender.champion_rule`` (the simplest model whose paired
   difference with the best validation NDCG@10 is not a loss, or the best), baselines
   included; on test it
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shoplake import columns as C
from shoplake.config import Config
from shoplake.config.recommend import RECOMMENDERS_SIMPLEST_FIRST
from shoplake.evaluation import (
    TEST,
    VALIDATION,
    Interval,
    best_other,
    margins_to_best,
    paired_difference,
    pick_champion,
    pick_simplest_within_noise,
)
from shoplake.recommend.bundle import RecommenderBundle
from shoplake.recommend.evaluate import ALL, KS, SliceMetrics, pool, rank_split, split_metrics, validation_score
from shoplake.recommend.fitting import (
    BLEND,
    BLEND_DAYS,
    COLD_BOOST,
    EASE_BLEND,
    EASE_L2,
    TUNED,
    CachedTextEmbeddings,
    FittedModel,
    fit_model,
    score_settings,
    score_transforms,
    settings,
    skip_reason,
    tuned_settings,
    with_score_setting,
)
from shoplake.recommend.holdout import TrainingData, history, load_events
from shoplake.recommend.metrics import CHAMPION_METRIC, MARGIN_METRIC
from shoplake.recommend.protocols import holdout_splits
from shoplake.recommend.schemas import TASK_RECOMMENDATION, VALIDATION_POOLED, metrics_slice
from shoplake.recommend.tuning import chosen_settings, search_settings, search_space
from shoplake.train.model_metrics import MODEL_METRICS, write_model_metrics
from shoplake.train.tune import SearchResult

log = logging.getLogger(__name__)


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
    margins: dict[str, Interval] = field(default_factory=dict)  # model -> its paired difference with the best on validation

    def ndcg(self, model: str, slice_: str = ALL, split: str = TEST) -> float:
        return (self.validation if split == VALIDATION else self.metrics)[model][slice_].metrics[CHAMPION_METRIC]

    def versus_line(self) -> str | None:
        """The champion against the best other model on test, with the interval of the difference."""
        if self.versus is None:
            return None
        other, diff = self.versus
        return (f"test {CHAMPION_METRIC}: {self.champion} {self.ndcg(self.champion):.4f} vs {other} {self.ndcg(other):.4f}, "
                f"difference {diff} (95 % interval): {diff.verdict()}")  # fmt: skip


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

    Each row's slice is ``<protocol>/<split>/<items>`` and its cutoff the split's first held-out day; the
    validation that chose the champion (pooled when there are several windows) also holds each model's
    margin to the best (``MARGIN_METRIC`` with its interval).
    """
    import pyarrow as pa

    def row(split: SplitMetrics, model: str, slice_: str, metric: str, value: float) -> dict:
        return {C.RUN_DATE: result.run_date, C.TASK: TASK_RECOMMENDATION, C.CUTOFF_DATE: split.cutoff, C.MODEL_NAME: model,
                C.MLFLOW_RUN_ID: result.mlflow_run_id, C.SLICE: metrics_slice(result.protocol, split.split, slice_),
                C.METRIC: metric, C.VALUE: None if np.isnan(value) else float(value),
                C.N_EVALUATED: split.metrics[model][slice_].n_users, C.EVALUATED_AT: evaluated_at}  # fmt: skip

    rows = [
        row(split, model, slice_, metric, value)
        for split in result.splits
        for model, slices in split.metrics.items()
        for slice_, sm in slices.items()
        for metric, value in sm.metrics.items()
    ]
    for split in [split for split in result.splits if split.split in (VALIDATION, VALIDATION_POOLED)][-1:]:
        for model, margin in result.margins.items():
            rows += [row(split, model, ALL, MARGIN_METRIC, margin.value), row(split, model, ALL, f"{MARGIN_METRIC}_low", margin.low),
                     row(split, model, ALL, f"{MARGIN_METRIC}_high", margin.high)]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=MODEL_METRICS.arrow_schema())


def _setting_label(kind: str, fit_setting, score_setting: dict) -> str:
    parts = [] if fit_setting is None else [f"{TUNED[kind][0]} {fit_setting}"]
    if score_setting.get(COLD_BOOST):
        parts.append(f"new items +{score_setting[COLD_BOOST]}")
    if score_setting.get(BLEND):
        parts.append(f"trending blend {score_setting[BLEND]} ({score_setting[BLEND_DAYS]} days)")
    if score_setting.get(EASE_BLEND):
        parts.append(f"EASE blend {score_setting[EASE_BLEND]} (l2 {score_setting[EASE_L2]:g})")
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
    events = load_events(lake, run_date, cfg)
    validations, test = holdout_splits(cfg, events)
    if not validations:
        log.warning("no validation window before %s with a user to judge; the champion cannot be measured, serving "
                    "recommender.main_model %s", test.cutoff, rc.main_model)  # fmt: skip
    texts = CachedTextEmbeddings(cfg)
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
        ease_l2 = None if skip_reason(cfg, "ease", test.train) else float(tuned.get("ease", cfg.recommender.ease_l2[0]))
        fit_candidates, score_candidates = settings(cfg, kind), score_settings(cfg, kind, ease_l2)
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

    champion, versus, margins = _champion(cfg, evaluated)
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
        margins=margins,
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


def _champion(cfg: Config, evaluated: dict[str, dict[str, dict[str, SliceMetrics]]]
              ) -> tuple[str, tuple[str, Interval] | None, dict[str, Interval]]:  # fmt: skip
    """The champion of validation (``recommender.champion_rule``), its paired difference on test with the best
    other model of validation, and every model's paired difference with the best on validation (empty for ``best``)."""
    rc, ev = cfg.recommender, cfg.evaluation
    scores = {kind: slices[ALL].metrics[CHAMPION_METRIC] for kind, slices in evaluated[VALIDATION].items()}
    margins: dict[str, Interval] = {}
    if rc.champion_rule == "simplest_within_noise":
        per_user = {kind: slices[ALL].per_user for kind, slices in evaluated[VALIDATION].items() if slices[ALL].per_user is not None}
        margins = margins_to_best(per_user, scores, draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed)
        champion = pick_simplest_within_noise(margins, RECOMMENDERS_SIMPLEST_FIRST)
    else:
        champion = pick_champion(scores)
    if champion is None:
        return rc.main_model, None, margins
    other = best_other(scores, champion)
    if other is None or champion not in evaluated[TEST] or other not in evaluated[TEST]:
        return champion, None, margins
    a, b = evaluated[TEST][champion][ALL].per_user, evaluated[TEST][other][ALL].per_user
    return champion, (other, paired_difference(a, b, draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed)), margins
