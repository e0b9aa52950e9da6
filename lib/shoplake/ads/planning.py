"""The nightly ad plan: ``serving.ad_plan`` for the run date and its off-policy check in ``ops.model_metrics``.

For run date D, with the registered ads bundle (the serving alias):

1. **Settings chosen on validation.** The matured impressions of ``gold.ad_features``
   are split by time as the training run splits them
   (:func:`shoplake.ads.train.time_split`). For every combination of ``ads.plan_search``
   (the exploration share and how far an ad's share of a slot may exceed the logged
   policy's), a plan is made as of
   the first validation day (the state after the training days, their newest
   ``ads.plan_days`` as its traffic and budgets) and judged on the validation
   impressions; the settings of the highest lower bound of the doubly robust margin
   over the logged policy are kept (:func:`choose_settings`). Test takes no part.
2. **Judged.** With those settings a plan is made as of the first test day (the state
   after the validation days, their newest ``ads.plan_days``) and judged on the test
   impressions by :func:`shoplake.ads.ope.estimate`: IPS, self-normalised IPS and doubly
   robust estimates of its value minus cost per slot, and of its margin over the logged
   policy as paired differences, with bootstrap intervals, beside the logged policy's
   observed value. They go to ``ops.model_metrics`` (task ``ads``, model ``plan``, slice
   ``test``, and the chosen settings' figures on slice ``validation``), replacing only
   the plan's rows of D.
3. **Planned for D.** The same settings with every impression before D (matured or
   not): the state after the newest, the traffic and budgets of the newest
   ``ads.plan_days``. Per campaign and placement its expected impressions, clicks,
   conversions, spend, value and ROAS a day, with the campaign's budget and budget
   multiplier, go to ``serving.ad_plan`` (D's partition replaced).

The reward of an impression is its conversion value (the item's price when its click
converted) minus what its click cost.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoplake import columns as C
from shoplake.ads import schemas as S
from shoplake.ads.candidates import latest_state, logged_probabilities, viewer_market
from shoplake.ads.data import NUMERIC, AdData, from_rows
from shoplake.ads.ope import Estimates, estimate
from shoplake.ads.policy import InfeasiblePlanError, Policy, ViewerMarket, allocate_policy, campaign_spend, plan_cells
from shoplake.config import Config
from shoplake.evaluation import TEST, VALIDATION

log = logging.getLogger(__name__)

PLAN_MODEL = "plan"
_PRICE = NUMERIC.index(C.PRICE)


def reward(data: AdData) -> np.ndarray:
    """Per logged impression: conversion value minus the click's cost."""
    return data.click * data.conversion * data.num[:, _PRICE] - data.click * data.cost


def newest_days(data: AdData, days: int) -> AdData:
    """The impressions of the newest ``days`` days of ``data``."""
    all_days = sorted(set(data.day.tolist()))
    return data.take(data.day >= all_days[-min(days, len(all_days))]) if all_days else data


def plan_market(cfg: Config, history: AdData, score) -> ViewerMarket:
    """The market a plan after ``history`` (time-ordered impressions with viewers and costs) chooses in, scored by ``score``."""
    return viewer_market(newest_days(history, cfg.ads.plan_days), latest_state(history, cfg.ads.ctr_prior), score)


def plan_policy(cfg: Config, market: ViewerMarket) -> Policy:
    """The per-viewer plan of ``market`` with the settings of ``cfg.ads`` (its exploration share and most share of an ad)."""
    return allocate_policy(market, cfg.ads.plan_exploration, cfg.ads.plan_max_ratio)


def make_plan(cfg: Config, history: AdData, score) -> tuple[ViewerMarket, Policy]:
    """The per-viewer plan after ``history`` (time-ordered impressions with viewers and costs), scored by ``score``."""
    market = plan_market(cfg, history, score)
    return market, plan_policy(cfg, market)


@dataclass
class Judgement:
    """A plan judged on logged impressions.

    Attributes:
        estimates: IPS, SNIPS and DR of its value minus cost per slot, and the logged policy's observed one.
        target: Per judged impression, the plan's probability of the logged ad.
        context: Per judged impression, its context in the market (-1: none).
        model_value: Per judged impression, the reward model's expected value of the plan's choice (``v``).
        model_logged: Per judged impression, the reward model's expected value of the logged ad (``q``).
        policy: The plan judged.
    """

    estimates: Estimates
    target: np.ndarray
    context: np.ndarray
    model_value: np.ndarray
    model_logged: np.ndarray
    policy: Policy


def judge(cfg: Config, market: ViewerMarket, policy: Policy, test: AdData) -> Judgement:
    """Off-policy estimates of ``policy`` on the logged impressions ``test`` (with viewers, propensities and costs)."""
    target, context = logged_probabilities(market, policy.probabilities, test)
    net = market.value - market.cost
    ad_index = {a: i for i, a in enumerate(zip(market.campaigns.tolist(), market.items.tolist()))}
    ad = np.array([ad_index.get(a, -1) for a in zip(test.cats[C.CAMPAIGN_ID].tolist(), test.cats[C.ITEM_ID].tolist())])
    ok = (context >= 0) & (ad >= 0)
    q = np.zeros(len(test))
    q[ok] = net[context[ok], ad[ok]]
    v = np.zeros(len(test))
    v[context >= 0] = (policy.probabilities * net).sum(axis=1)[context[context >= 0]]
    ev = cfg.evaluation
    est = estimate(reward(test), test.propensity, target, q, v, draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed)
    return Judgement(est, target, context, v, q, policy)


def plan_settings(cfg: Config) -> list[dict]:
    """Every combination of ``ads.plan_search`` (``[{}]``: none searched, the fields as set)."""
    space = cfg.ads.plan_search
    return [dict(zip(space, values)) for values in itertools.product(*space.values())]


@dataclass
class Choice:
    """The plan settings tried on validation and the ones chosen.

    Attributes:
        cfg: The configuration with the chosen settings in place.
        settings: The chosen settings (fields of ``ads``).
        tried: Every combination tried, with its judgement on validation (None: no plan with it keeps the budgets).
        market: The market every combination planned in.
    """

    cfg: Config
    settings: dict
    tried: list[tuple[dict, Judgement | None]]
    market: ViewerMarket

    @property
    def judgement(self) -> Judgement | None:
        """The chosen settings' judgement on validation (None when none was tried)."""
        return next((j for s, j in self.tried if s == self.settings), None)


def choose_settings(cfg: Config, history: AdData, valid: AdData, score) -> Choice:
    """The plan settings of ``ads.plan_search`` whose plan after ``history`` shows the surest margin on ``valid``.

    Each combination's plan (one market: the state after ``history``, its newest
    ``ads.plan_days`` as traffic and budgets) is judged on the logged impressions
    ``valid``, which follow ``history``; the one with the highest lower bound of the
    doubly robust margin over the logged policy is chosen, ties to the first listed.
    When no combination keeps the budgets, the fields as set are kept.
    """
    from shoplake.train.tune import with_settings

    market = plan_market(cfg, history, score)
    tried: list[tuple[dict, Judgement | None]] = []
    for settings in plan_settings(cfg):
        try:
            policy = plan_policy(with_settings(cfg, "ads", settings), market)
        except InfeasiblePlanError as exc:
            log.info("plan settings %s: %s", settings, exc)
            tried.append((settings, None))
            continue
        judgement = judge(cfg, market, policy, valid)
        log.info("plan settings %s: doubly robust margin on validation %s", settings, judgement.estimates.dr_margin)
        tried.append((settings, judgement))
    feasible = [(s, j) for s, j in tried if j is not None and np.isfinite(j.estimates.dr_margin.low)]
    if not feasible:
        return Choice(cfg, {}, tried, market)
    best = max(feasible, key=lambda sj: sj[1].estimates.dr_margin.low)[0]
    return Choice(with_settings(cfg, "ads", best), best, tried, market)


def plan_table(market: ViewerMarket, policy: Policy, run_date: dt.date, model_name: str, model_version: str | None,
               planned_at: dt.datetime) -> pa.Table:  # fmt: skip
    """The ``serving.ad_plan`` rows of a plan: one per campaign and placement."""
    rows = [
        {
            C.CAMPAIGN_ID: cell.campaign, C.PLACEMENT: cell.placement, S.PLAN_IMPRESSIONS: cell.impressions, S.PLAN_CLICKS: cell.clicks,
            S.PLAN_CONVERSIONS: cell.conversions, S.PLAN_SPEND: cell.spend, S.PLAN_VALUE: cell.value, S.PLAN_ROAS: cell.roas,
            S.DAILY_BUDGET: market.budgets.get(cell.campaign, 0.0), S.BUDGET_MULTIPLIER: policy.multipliers.get(cell.campaign, 0.0),
            S.EXPLORATION: policy.epsilon, S.MAX_RATIO: policy.max_ratio, C.MODEL_NAME: model_name, C.MODEL_VERSION: model_version,
            S.PLANNED_AT: planned_at, C.RUN_DATE: run_date,
        }
        for cell in plan_cells(market, policy.probabilities)
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=S.AD_PLAN.arrow_schema())


def judgement_rows(judgement: Judgement, run_date: dt.date, first_day: dt.date, evaluated_at: dt.datetime, split: str = TEST) -> pa.Table:
    """The ``ops.model_metrics`` rows of a judged plan (model ``plan``, slice ``split``).

    Per estimator its value (``value_ips``, ``value_ips_low``, ``value_ips_high``, ...) and
    its margin over the logged policy (``margin_ips``, ...), the logged policy's observed
    value, the effective number of impressions, the largest weight and the plan's
    settings (``exploration``, ``max_ratio``: null without a bound); ``first_day`` is the
    first day judged.
    """
    from shoplake.train.model_metrics import MODEL_METRICS

    est, policy = judgement.estimates, judgement.policy
    figures = {"effective_n": est.effective_n, "max_weight": est.max_weight}
    intervals = {"value_logged": est.logged, "value_ips": est.ips, "value_snips": est.snips, "value_dr": est.dr,
                 "margin_ips": est.ips_margin, "margin_snips": est.snips_margin, "margin_dr": est.dr_margin}  # fmt: skip
    for name, interval in intervals.items():
        figures.update({name: interval.value, f"{name}_low": interval.low, f"{name}_high": interval.high})
    figures.update({"exploration": policy.epsilon, "max_ratio": policy.max_ratio if policy.max_ratio is not None else np.nan})
    n = len(judgement.target)
    rows = [
        {
            C.RUN_DATE: run_date,
            C.TASK: S.TASK_ADS,
            C.CUTOFF_DATE: first_day,
            C.MODEL_NAME: PLAN_MODEL,
            C.MLFLOW_RUN_ID: None,
            C.SLICE: split,
            C.METRIC: metric,
            C.VALUE: float(value) if np.isfinite(value) else None,
            C.N_EVALUATED: n,
            C.EVALUATED_AT: evaluated_at,
        }  # fmt: skip
        for metric, value in figures.items()
    ]
    return pa.Table.from_pylist(rows, schema=MODEL_METRICS.arrow_schema())


@dataclass
class PlanResult:
    """What a nightly plan produced (``choice`` and ``judgement`` None when there were too few matured impressions to split)."""

    run_date: dt.date
    model_version: str | None
    model_name: str
    market: ViewerMarket
    policy: Policy
    choice: Choice | None
    judgement: Judgement | None
    plan_version: int
    metrics_version: int | None

    def spend(self) -> dict[str, float]:
        return campaign_spend(self.market, self.policy.probabilities)


def plan_ads(cfg: Config, lake, run_date: dt.date | None = None, *, version: str | int | None = None) -> PlanResult:
    """Plan run date D's ads into ``serving.ad_plan`` with settings chosen on validation, judged on the test days (module docstring).

    Raises:
        shoplake.registry.NoServingModel: No ads model registered.
        shoplake.ads.train.MissingAdFeaturesError: No features for the run date.
        shoplake.ads.policy.InfeasiblePlanError: No plan keeps the budgets.
    """
    import ray

    from shoplake.ads.bundle import AdsBundle
    from shoplake.ads.train import TooFewImpressionsError, encode_items, load_matured, time_split
    from shoplake.ray_runtime import init_ray
    from shoplake.registry import load_bundle
    from shoplake.train.model_metrics import read_model_metrics, write_model_metrics

    ads = cfg.ads
    bundle, info = load_bundle(cfg, AdsBundle.load, version, registered_model=ads.registered_model)
    dates = lake.run_dates(S.AD_FEATURES)
    run_date = run_date or (max(dates) if dates else None)
    _, items, run_date, _ = load_matured(lake, run_date)
    rows = lake.to_arrow(S.AD_FEATURES, run_date=run_date).sort_by([(S.IMPRESSION_TS, "ascending"), (C.IMPRESSION_ID, "ascending")])
    item_text = dict(bundle.item_text)
    unknown = items.filter(pc.invert(pc.is_in(items[C.ITEM_ID], pa.array(list(item_text), pa.string()))))
    if unknown.num_rows:
        item_text.update(encode_items(cfg, unknown))
    dim = len(next(iter(item_text.values()))) if item_text else 1
    data = from_rows(rows, item_text, dim)
    model_name = str(bundle.metadata.get("model_name", bundle.model.kind))
    planned_at = dt.datetime.now(dt.timezone.utc)
    init_ray(cfg)

    judgement, choice, metrics_version = None, None, None
    matured = data.take(np.array(pc.fill_null(rows[C.MATURED], False).to_pylist(), dtype=bool))
    try:
        _, valid, test = time_split(matured, ads.validation_share, ads.test_share)
    except TooFewImpressionsError as exc:
        log.warning("the plan is not judged for %s: %s", run_date, exc)
    else:
        choice = choose_settings(cfg, matured.take(matured.day < valid.day.min()), valid, bundle.score)
        cfg = choice.cfg
        log.info("plan settings chosen on %d validation impressions: %s", len(valid), choice.settings or "as set")
        market, policy = make_plan(cfg, matured.take(matured.day < test.day.min()), bundle.score)
        judgement = judge(cfg, market, policy, test)
        log.info("plan judged on %d test impressions: %s", len(test), judgement.estimates)
        kept = read_model_metrics(lake, run_date, S.TASK_ADS)
        kept = kept.filter(pc.not_equal(kept[C.MODEL_NAME], PLAN_MODEL))
        new = [judgement_rows(judgement, run_date, test.day.min(), planned_at)]
        if choice.judgement is not None:
            new.append(judgement_rows(choice.judgement, run_date, valid.day.min(), planned_at, VALIDATION))
        new = pa.concat_tables(new)
        metrics_version = write_model_metrics(cfg, lake, pa.concat_tables([kept.select(new.schema.names).cast(new.schema), new]),
                                              S.TASK_ADS, run_date).version  # fmt: skip

    market, policy = make_plan(cfg, data, bundle.score)
    table = plan_table(market, policy, run_date, model_name, str(info.version), planned_at)
    written = lake.ray_write(ray.data.from_arrow(table), S.AD_PLAN, mode="replace", run_dates=[run_date])
    log.info("wrote %s v%d: %d campaign x placement rows", written.table, written.version, written.rows)
    return PlanResult(run_date, str(info.version), model_name, market, policy, choice, judgement, written.version, metrics_version)
