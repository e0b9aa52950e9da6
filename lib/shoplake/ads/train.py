"""The ads run: time-split matured impressions, train and compare the models, calibrate, register the champion.

For a run date D the run reads D's partition of ``gold.ad_features`` and keeps the
matured impressions (a final conversion label), with the text encoder's embedding of
each ad item's text from ``gold.ad_items``. Ordered by time they are split on day
boundaries into training (oldest), validation and test (newest, ``ads.test_share``).

Every model of ``ads.models`` is fitted on training and scored on validation and test.
Its pCTR is calibrated against the validation clicks and its pCTR x pCVR against the
validation conversions (``ads.calibration``); pCVR is their ratio. On validation the
figures are cross-fitted (each half of the days calibrated by the other half) so the
champion, the best validation conversion log-loss, is not chosen for memorising its
own calibration. Test is scored once with calibrators fitted on all of validation.

Metrics (ROC-AUC, log-loss, normalized entropy, expected calibration error) for click
(pCTR against clicks) and conversion (pCTCVR against clicks that converted, over every
impression), overall and per placement, go to ``ops.model_metrics`` (task ``ads``),
with the bootstrap interval of the test conversion log-loss; the champion is saved as
an :class:`~shoplake.ads.bundle.AdsBundle` and registered.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoplake import columns as C
from shoplake.ads import metrics as M
from shoplake.ads import schemas as S
from shoplake.ads.bundle import AdsBundle, Scores, calibrated
from shoplake.ads.data import AdData, Encoding, from_rows
from shoplake.ads.models import DEEP_CTR, GBT, HISTORIC_CTR, LOGISTIC, GBTModel, HistoricCTRModel, LogisticModel, train_deep_ctr
from shoplake.config import Config
from shoplake.evaluation import TEST, TRAIN, VALIDATION, Interval, bootstrap_mean, paired_difference
from shoplake.train.model_metrics import MODEL_METRICS, write_model_metrics

log = logging.getLogger(__name__)

CLICK, CONVERSION = "click", "conversion"
#: The slice of a placement's rows of a split: ``test/search_top``.
PLACEMENT_SLICE = "{split}/{placement}"


class MissingAdFeaturesError(LookupError):
    """``gold.ad_features`` has no partition for the run date."""


class TooFewImpressionsError(ValueError):
    """The matured impressions cannot train, calibrate and test a model."""


def load_matured(lake, run_date: dt.date | None = None) -> tuple[pa.Table, pa.Table, dt.date, dict[str, int]]:
    """Matured rows of ``gold.ad_features`` (oldest first) and the ``gold.ad_items`` rows of ``run_date`` (default the latest).

    Raises:
        MissingAdFeaturesError: No partition for the run date.
    """
    dates = lake.run_dates(S.AD_FEATURES)
    if not dates:
        raise MissingAdFeaturesError(f"{S.AD_FEATURES.full_name} does not exist or is empty in {lake.root}: build the features first")
    run_date = run_date or max(dates)
    if run_date not in dates:
        raise MissingAdFeaturesError(f"{S.AD_FEATURES.full_name} has no run date {run_date} in {lake.root}")
    rows = lake.to_arrow(S.AD_FEATURES, run_date=run_date)
    # Filtered here rather than in the read: a dataset filter on the boolean column can prune files by their statistics.
    rows = rows.filter(pc.fill_null(rows[C.MATURED], False))
    rows = rows.sort_by([(S.IMPRESSION_TS, "ascending"), (C.IMPRESSION_ID, "ascending")])
    items = lake.to_arrow(S.AD_ITEMS, run_date=run_date)
    versions = {
        f"{S.AD_FEATURES.full_name}@{run_date}": lake.version(S.AD_FEATURES),
        f"{S.AD_ITEMS.full_name}@{run_date}": lake.version(S.AD_ITEMS),
    }
    return rows, items, run_date, versions


def encode_items(cfg: Config, items: pa.Table) -> dict[str, np.ndarray]:
    """The text encoder's embedding of every ad item's text (``text_encoder``); zeros for an item without text."""
    from shoplake.text.encoder import encode_texts

    ids = [str(i) for i in items[C.ITEM_ID].to_pylist()]
    vectors = encode_texts(items[S.AD_TEXT].to_pylist(), cfg.text_encoder)
    return dict(zip(ids, vectors.astype(np.float32)))


def time_split(data: AdData, validation_share: float, test_share: float) -> tuple[AdData, AdData, AdData]:
    """Training, validation and test of time-ordered impressions, on day boundaries.

    Test is the newest whole days holding at least ``test_share`` of the rows,
    validation the whole days before them holding at least ``validation_share``.

    Raises:
        TooFewImpressionsError: A split would be empty or lack a click or a conversion.
    """
    n, days = len(data), data.day

    def start_of(end: int, share: float) -> int:
        first = max(end - max(int(round(n * share)), 1), 0)
        return int(np.searchsorted(days[:end], days[first], side="left"))

    test_start = start_of(n, test_share)
    valid_start = start_of(test_start, validation_share)
    splits = (data.take(slice(0, valid_start)), data.take(slice(valid_start, test_start)), data.take(slice(test_start, n)))
    for name, split in zip((TRAIN, VALIDATION, TEST), splits):
        if not len(split) or split.click.sum() == 0 or split.converted.sum() == 0:
            raise TooFewImpressionsError(
                f"the {name} split has {len(split)} matured impressions, {int(split.click.sum())} clicks and "
                f"{int(split.converted.sum())} conversions ({n} matured impressions in all): the shop needs more ad history"
            )
    return splits


@dataclass
class ModelEvaluation:
    """One model's calibrated validation (cross-fitted) and test scores, metrics and calibrators."""

    model: str
    fitted: object
    valid: Scores
    test: Scores
    metrics: dict[str, dict[str, float]]
    ctr_calibrator: M.Calibrator
    ctcvr_calibrator: M.Calibrator
    seconds: float = 0.0


def split_metrics(split: str, data: AdData, scores: Scores, bins: int) -> dict[str, dict[str, float]]:
    """``{slice: {metric: value}}``: click and conversion metrics of ``split``, overall and per placement."""
    out = {}
    for slice_name, rows in [(split, slice(None))] + [
        (PLACEMENT_SLICE.format(split=split, placement=p), data.placement == p) for p in sorted(set(data.placement.tolist()))
    ]:
        figures = {}
        for target, y, p in ((CLICK, data.click[rows], scores.p_ctr[rows]), (CONVERSION, data.converted[rows], scores.p_ctcvr[rows])):
            figures.update({f"{target}_{k}": v for k, v in M.evaluate(y, p, bins).items()})
        figures["impressions"] = float(len(data.click[rows]))
        out[slice_name] = figures
    return out


def evaluate_model(cfg: Config, name: str, fitted, valid: AdData, test: AdData) -> ModelEvaluation:
    """Calibrate ``fitted`` on validation and measure it on both held-out splits."""
    kind, bins = cfg.ads.calibration, cfg.ads.calibration_bins
    v_ctr, v_cvr = fitted.predict(valid)
    t_ctr, t_cvr = fitted.predict(test)
    ctr_cal = M.fit_calibrator(valid.click, v_ctr, kind)
    ctcvr_cal = M.fit_calibrator(valid.converted, v_ctr * v_cvr, kind)
    halves = np.array([d.toordinal() % 2 for d in valid.day.tolist()])
    folded_ctr = M.cross_fitted(valid.click, v_ctr, kind, halves)
    folded_ctcvr = np.minimum(M.cross_fitted(valid.converted, v_ctr * v_cvr, kind, halves), folded_ctr)
    valid_scores = Scores(folded_ctr, np.minimum(folded_ctcvr / np.maximum(folded_ctr, 1e-9), 1.0), folded_ctcvr)
    test_scores = calibrated(t_ctr, t_cvr, ctr_cal, ctcvr_cal)
    metrics = {**split_metrics(VALIDATION, valid, valid_scores, bins), **split_metrics(TEST, test, test_scores, bins)}
    return ModelEvaluation(name, fitted, valid_scores, test_scores, metrics, ctr_cal, ctcvr_cal)


@dataclass
class AdsResult:
    """What an ads run produced."""

    run_date: dt.date
    evaluations: dict[str, ModelEvaluation]
    champion: str
    bundle_path: str
    model_version: str | None
    mlflow_run_id: str | None
    metrics_version: int
    splits: dict[str, tuple[int, int, int, dt.date]] = field(default_factory=dict)
    #: Per model, the test conversion log-loss with its bootstrap interval.
    test_log_loss: dict[str, Interval] = field(default_factory=dict)
    #: The best other model of validation and the champion's test conversion log-loss minus its, with the interval.
    versus: tuple[str, Interval] | None = None
    deep_losses: list[float] = field(default_factory=list)
    #: Per searched model, its search on validation (:mod:`shoplake.ads.tuning`).
    searches: dict = field(default_factory=dict)

    def metric(self, model: str, name: str, split: str = TEST) -> float:
        return self.evaluations[model].metrics[split][name]


def metrics_rows(result: AdsResult, mlflow_run_id: str | None, evaluated_at: dt.datetime) -> pa.Table:
    """The ``ops.model_metrics`` rows of an ads run: every model, split, placement slice and metric."""
    rows = []
    for model, ev in result.evaluations.items():
        for slice_name, figures in ev.metrics.items():
            split = slice_name.split("/", 1)[0]
            _, _, _, first_day = result.splits[split]
            extra = {}
            if slice_name == TEST and model in result.test_log_loss:
                interval = result.test_log_loss[model]
                extra = {f"{CONVERSION}_{M.LOG_LOSS}_low": interval.low, f"{CONVERSION}_{M.LOG_LOSS}_high": interval.high}
            n = int(figures["impressions"])
            for metric, value in {**figures, **extra}.items():
                if metric == "impressions":
                    continue
                rows.append({
                    C.RUN_DATE: result.run_date, C.TASK: S.TASK_ADS, C.CUTOFF_DATE: first_day, C.MODEL_NAME: model,
                    C.MLFLOW_RUN_ID: mlflow_run_id, C.SLICE: slice_name, C.METRIC: metric,
                    C.VALUE: float(value) if math.isfinite(value) else None, C.N_EVALUATED: n, C.EVALUATED_AT: evaluated_at,
                })  # fmt: skip
    return pa.Table.from_pylist(rows, schema=MODEL_METRICS.arrow_schema())


def champion_of(evaluations: dict[str, ModelEvaluation]) -> str:
    """The model with the best (lowest) validation conversion log-loss; ties go to the first listed."""
    key = f"{CONVERSION}_{M.LOG_LOSS}"
    return min(evaluations, key=lambda m: np.nan_to_num(evaluations[m].metrics[VALIDATION][key], nan=math.inf))


def fit_models(
    cfg: Config, models: Sequence[str], train: AdData, valid: AdData, name: str, step: Callable[[str], None]
) -> tuple[dict, list[float], dict]:
    """Every model of ``models`` fitted on ``train``: ``({model: fitted}, deep model epoch losses, {model: search})``.

    The trees' and the deep model's settings are first searched on ``valid``
    (:mod:`shoplake.ads.tuning`, where ``ads.gbt_search`` / ``ads.deep_search`` name any).
    """
    from shoplake.ads.tuning import search_settings

    encoding = Encoding.fit(train)
    fitted, losses, searches = {}, [], {}
    for model in models:
        searched, found = search_settings(cfg, model, train, valid, encoding, f"{name}_{model}_search")
        if found is not None:
            step(f"{model}: {found.summary()}")
            searches[model] = found
        ads = searched.ads
        step(f"{model}: training")
        if model == HISTORIC_CTR:
            fitted[model] = HistoricCTRModel()
        elif model == LOGISTIC:
            fitted[model] = LogisticModel.fit(train, encoding, ads.hash_buckets, ads.logistic_c, cfg.training.seed)
        elif model == GBT:
            fitted[model] = GBTModel.fit(train, encoding, ads.gbt_rounds, ads.gbt_max_depth, ads.gbt_eta, cfg.training.seed)
        elif model == DEEP_CTR:
            fitted[model], losses = train_deep_ctr(searched, train, encoding, f"{name}_{DEEP_CTR}")
        else:
            raise ValueError(f"unknown ad model {model!r}")
    return fitted, losses, searches


def run_ads(
    cfg: Config,
    lake,
    run_date: dt.date | None = None,
    *,
    name: str | None = None,
    register: bool = True,
    on_step: Callable[[str], None] | None = None,
    text_embeddings: Callable[[pa.Table], dict[str, np.ndarray]] | None = None,
) -> AdsResult:
    """Train, compare, calibrate and register the ad models on ``run_date``'s matured impressions.

    Args:
        cfg: ``ads`` (split shares, models, calibration, registry name), ``text_encoder``, ``ray``, ``training``, ``evaluation``.
        lake: The lake with ``gold.ad_features`` and ``gold.ad_items`` of ``run_date``.
        run_date: Default the latest partition.
        name: Prefix of the run's folders (default ``ads_<run_date>_<UTC time>``).
        register: Log the champion to MLflow and point the serving alias at it.
        on_step: Called with a short description as each step starts.
        text_embeddings: ``gold.ad_items`` rows to ``{item: embedding}`` (default the configured text encoder).

    Raises:
        MissingAdFeaturesError: No features for the run date.
        TooFewImpressionsError: Too few matured impressions, clicks or conversions to train, calibrate and test.
    """
    ads, ev_cfg = cfg.ads, cfg.evaluation
    step = on_step or (lambda text: log.info("%s", text))
    step(f"reading {S.AD_FEATURES.full_name}")
    rows, items, run_date, versions = load_matured(lake, run_date)
    step(f"encoding the text of {items.num_rows} ad items")
    item_text = (text_embeddings or (lambda t: encode_items(cfg, t)))(items)
    dim = len(next(iter(item_text.values()))) if item_text else 1
    data = from_rows(rows, item_text, dim)
    train, valid, test = time_split(data, ads.validation_share, ads.test_share)
    splits = {
        n: (len(s), int(s.click.sum()), int(s.converted.sum()), s.day.min()) for n, s in ((TRAIN, train), (VALIDATION, valid), (TEST, test))
    }
    log.info("ads for %s: %s", run_date, ", ".join(f"{n} {k:,} impressions from {d} ({c} clicks, {v} conversions)"
                                                    for n, (k, c, v, d) in splits.items()))  # fmt: skip
    name = name or f"ads_{run_date.isoformat()}_{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}"
    fitted, losses, searches = fit_models(cfg, ads.models, train, valid, name, step)
    evaluations = {}
    for model, f in fitted.items():
        step(f"{model}: calibrating and scoring")
        evaluations[model] = evaluate_model(cfg, model, f, valid, test)
        log.info("%s: %s", model, {k: round(v, 4) for k, v in evaluations[model].metrics[TEST].items()})
    champion = champion_of(evaluations)
    y = test.converted
    row_losses = {m: M.row_log_loss(y, e.test.p_ctcvr) for m, e in evaluations.items()}
    boot = {"draws": ev_cfg.bootstrap_draws, "level": ev_cfg.confidence, "seed": ev_cfg.seed}
    test_log_loss = {m: bootstrap_mean(losses_m, **boot) for m, losses_m in row_losses.items()}
    key = f"{CONVERSION}_{M.LOG_LOSS}"
    others = {m: e.metrics[VALIDATION][key] for m, e in evaluations.items() if m != champion}
    versus = None
    if others:
        other = min(others, key=lambda m: np.nan_to_num(others[m], nan=math.inf))
        versus = (other, paired_difference(row_losses[champion], row_losses[other], **boot))

    best = evaluations[champion]
    step(f"champion {champion}: saving the bundle")
    flat = {f"{m}.{s}.{k}": v for m, e in evaluations.items() for s, f in e.metrics.items() if "/" not in s for k, v in f.items()}
    flat = {k: float(v) for k, v in flat.items() if math.isfinite(v)}
    searched = {}
    if champion in searches:
        found = searches[champion]
        searched = {**found.best.settings, "best_iteration": found.best.best_iteration, "validation_score": found.best.best_score}
    bundle = AdsBundle(best.fitted, best.ctr_calibrator, best.ctcvr_calibrator, item_text,
                       {"model_name": champion, "run_date": run_date.isoformat(), "table_versions": versions, "metrics": flat,
                        "searched": searched})  # fmt: skip
    bundle_path = bundle.save(Path(cfg.runs_dir, "ads", name, "bundle"))
    model_version = run_id = None
    if register:
        from shoplake.registry import log_model

        step(f"registering {champion} in MLflow")
        params = {"champion": champion, **ads.model_dump(exclude={"models"}), "models": ",".join(ads.models), "searched": searched}
        info = log_model(cfg, bundle_path, model_name=champion, params=params, metrics=flat, table_versions=versions,
                         run_date=run_date, set_serving=True, run_name=name, registered_model=ads.registered_model)  # fmt: skip
        model_version, run_id = info.version, info.run_id
    result = AdsResult(run_date, evaluations, champion, str(bundle_path), model_version, run_id, -1, splits, test_log_loss, versus, losses,
                       searches)  # fmt: skip
    step("writing ops.model_metrics")
    result.metrics_version = write_model_metrics(cfg, lake, metrics_rows(result, run_id, dt.datetime.now(dt.timezone.utc)), S.TASK_ADS,
                                                 run_date).version  # fmt: skip
    return result
