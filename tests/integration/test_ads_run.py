"""The ads run on a small synthetic shop: features, every model side by side, calibration against the planted truth.

One shop is generated, ingested and featurised per module; the run trains every model
on it once, with the real text encoder.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from shoplake import columns as C
from shoplake.ads import metrics as M
from shoplake.ads import schemas as S
from shoplake.ads.bundle import AdsBundle
from shoplake.ads.data import from_rows
from shoplake.ads.models import MODEL_KINDS
from shoplake.ads.pipeline import FEATURES
from shoplake.ads.train import CONVERSION, load_matured, run_ads
from shoplake.datagen.shop.common import GROUND_TRUTH_FILE
from shoplake.datagen.synthetic import ShopParams, generate_shop
from shoplake.evaluation import TEST, VALIDATION
from shoplake.features.run import build_features
from shoplake.ingest.landing import AD_EVENTS, EVENTS, PRODUCTS
from shoplake.ingest.run import ingest
from shoplake.lake import Lake
from shoplake.registry import list_versions
from shoplake.train.model_metrics import read_model_metrics

SHOP = ShopParams(
    days=36, users=120, items=50, seed=13, start=dt.date(2024, 1, 1), sessions_per_user_day=0.8, ad_impressions_per_session=8.0
)
D = SHOP.start + dt.timedelta(days=SHOP.days)
# Minutes of Spark, the text encoder and Ray Train: with the slow tests.
pytestmark = pytest.mark.slow

SETTINGS = ("lake.engine=delta-rs", "ads.history_days=40", "ads.epochs=5", "ads.gbt_rounds=60", "ads.hidden=32", "ads.hash_buckets=16384")


@pytest.fixture(scope="module")
def shop(tmp_path_factory, spark, ray_local):
    """A featurised synthetic shop and one ads run over it: ``(cfg, lake, result, truth)``."""
    from helpers import TEST_OVERRIDES
    from shoplake.config import load_config

    root = tmp_path_factory.mktemp("ads")
    cfg = load_config(
        "local", [*TEST_OVERRIDES, f"lake.root={root}/lake", f"landing.root={root}/landing", f"runs_dir={root}/runs", *SETTINGS]
    )
    generate_shop(cfg.landing.root, SHOP)
    lake = Lake(cfg, spark)
    ingest(cfg, lake, [SHOP.start + dt.timedelta(days=i) for i in range(SHOP.days)], [AD_EVENTS.name, PRODUCTS.name, EVENTS.name])
    build_features(cfg, lake, [D], nodes=[FEATURES])
    result = run_ads(cfg, lake, D, name="ads-test")
    truth = json.loads((Path(cfg.landing.root) / GROUND_TRUTH_FILE).read_text())["ads"]
    return cfg, lake, result, truth


def test_features_hold_every_impression_of_the_window_with_its_labels(shop):
    cfg, lake, _, truth = shop
    rows = lake.to_arrow(S.AD_FEATURES, run_date=D)
    assert rows.num_rows == len(truth["impressions"])
    matured = pc.sum(pc.cast(rows[C.MATURED], "int64")).as_py()
    assert 0 < matured < rows.num_rows and pc.all(pc.is_valid(rows[C.PROPENSITY])).as_py()
    items = lake.to_arrow(S.AD_ITEMS, run_date=D)
    assert pc.all(pc.is_valid(items[S.AD_TEXT])).as_py() and items.num_rows == len(truth["items"])


def test_every_model_is_measured_on_both_splits_and_the_champion_is_registered(shop):
    cfg, lake, result, _ = shop
    assert set(result.evaluations) == set(MODEL_KINDS) and result.champion in MODEL_KINDS
    rows = read_model_metrics(lake, D, task=S.TASK_ADS).to_pylist()
    slices = {r[C.SLICE] for r in rows}
    assert {VALIDATION, TEST, "test/search_top", "test/email"} <= slices
    names = {r[C.METRIC] for r in rows}
    assert {f"{t}_{m}" for t in ("click", CONVERSION) for m in M.METRICS} <= names
    versions = list_versions(cfg, cfg.ads.registered_model)
    assert versions[0].kind == result.champion and cfg.registry.serving_alias in versions[0].aliases
    assert result.deep_losses[-1] < result.deep_losses[0]


def test_the_champion_is_calibrated_against_the_planted_probabilities(shop):
    cfg, lake, result, truth = shop
    bundle = AdsBundle.load(result.bundle_path)
    rows, _, _, _ = load_matured(lake, D)
    data = from_rows(rows, bundle.item_text, len(next(iter(bundle.item_text.values()))))
    test = data.take(data.day >= result.splits[TEST][3])
    scores = bundle.score(test)
    planted = np.array([truth["impressions"][i] for i in test.ids])
    true_ctr, true_ctcvr = planted[:, 0], planted[:, 0] * planted[:, 1]
    assert M.expected_calibration_error(true_ctr, scores.p_ctr) < 0.01
    assert M.expected_calibration_error(true_ctcvr, scores.p_ctcvr) < 0.01
    # Closer to the truth than the shop's click-through per placement alone.
    by_placement = {p: test.click[test.placement == p].mean() for p in set(test.placement.tolist())}
    flat = np.array([by_placement[p] for p in test.placement])
    assert np.abs(scores.p_ctr - true_ctr).mean() < np.abs(flat - true_ctr).mean()


def test_the_plan_step_plans_within_every_budget_judges_the_plan_and_a_rerun_replaces_it(shop):
    from shoplake.ads.planning import PLAN_MODEL, plan_ads

    cfg, lake, result, _ = shop
    first = plan_ads(cfg, lake, D)
    rows = lake.to_arrow(S.AD_PLAN, run_date=D)
    assert rows.schema.names == S.AD_PLAN.arrow_schema().names and rows.num_rows > 0
    plan = rows.to_pylist()
    for campaign in {r[C.CAMPAIGN_ID] for r in plan}:
        mine = [r for r in plan if r[C.CAMPAIGN_ID] == campaign]
        assert sum(r[S.PLAN_SPEND] for r in mine) <= mine[0][S.DAILY_BUDGET] + 1e-6
    # Every planned slot is filled: the impressions add up to the traffic the plan was made for.
    assert sum(r[S.PLAN_IMPRESSIONS] for r in plan) == pytest.approx(first.market.traffic.sum())
    assert {r[C.MODEL_VERSION] for r in plan} == {result.model_version}
    metrics = read_model_metrics(lake, D, task=S.TASK_ADS).to_pylist()
    judged = {r[C.METRIC]: r[C.VALUE] for r in metrics if r[C.MODEL_NAME] == PLAN_MODEL and r[C.SLICE] == TEST}
    assert judged["value_ips_low"] <= judged["value_ips"] <= judged["value_ips_high"] and "value_dr" in judged
    assert judged["margin_dr_low"] <= judged["margin_dr"] <= judged["margin_dr_high"]
    assert judged["value_dr"] - judged["value_logged"] == pytest.approx(judged["margin_dr"], abs=1e-9)
    assert {r[C.MODEL_NAME] for r in metrics} >= set(result.evaluations)  # the training run's rows are kept
    # The settings were chosen among ads.plan_search on validation; the chosen plan's validation figures are kept beside.
    tried = [settings for settings, _ in first.choice.tried]
    assert len(tried) == len(cfg.ads.plan_search["plan_exploration"]) * len(cfg.ads.plan_search["plan_max_ratio"])
    assert first.choice.settings in tried and first.policy.epsilon == first.choice.settings["plan_exploration"]
    settings = first.choice.settings
    assert (judged["exploration"], judged["max_ratio"]) == (settings["plan_exploration"], settings["plan_max_ratio"])
    assert {(r[S.EXPLORATION], r[S.MAX_RATIO]) for r in plan} == {(settings["plan_exploration"], settings["plan_max_ratio"])}
    chosen = {r[C.METRIC]: r[C.VALUE] for r in metrics if r[C.MODEL_NAME] == PLAN_MODEL and r[C.SLICE] == VALIDATION}
    assert chosen["margin_dr_low"] == pytest.approx(max(j.estimates.dr_margin.low for _, j in first.choice.tried if j is not None))
    # Exploration gives the logged ads of the judged slots a positive probability (all but ads the plan's days did not show).
    assert (first.judgement.target > 0).mean() > 0.9 and first.judgement.estimates.effective_n > 0

    again = plan_ads(cfg, lake, D)
    assert again.plan_version > first.plan_version
    assert lake.to_arrow(S.AD_PLAN, run_date=D).num_rows == rows.num_rows
    assert len(read_model_metrics(lake, D, task=S.TASK_ADS).to_pylist()) == len(metrics)


def test_the_plan_step_warns_without_a_registered_model(shop):
    from shoplake.ads.pipeline import STEPS
    from shoplake.train.tune import with_settings

    cfg, lake, _, _ = shop
    said = []

    class Context:
        run_date = D

        def __init__(self):
            self.cfg, self.lake = with_settings(cfg, "ads", {"registered_model": "shoplake-ads-unknown"}), lake

        def bar(self, description, total):
            return lambda text, done=False: said.append(text)

        def warn(self, text):
            said.append(f"warning: {text}")

        def say(self, text):
            said.append(text)

    step = next(s for s in STEPS if s.name == "plan-ads")
    assert step.after == ("train-ads",)
    step.nightly(Context())
    assert any(text.startswith("warning: no ad plan") for text in said)
