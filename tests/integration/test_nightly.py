"""The nightly flow end to end on a small synthetic shop: ingest, features, train, evaluate, register, score, forecast, fraud, text."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from shoplake import columns as C
from shoplake.categorize.schemas import PRODUCT_CATEGORIES, PRODUCT_TEXT, TASK_CATEGORIZATION
from shoplake.cli import cmd_metrics
from shoplake.datagen.synthetic import ShopParams, generate_shop
from shoplake.forecast.schemas import FORECASTS, ITEM_DAILY_SALES, REPLENISHMENT_PLAN, TASK_FORECASTING
from shoplake.fraud.schemas import FRAUD_SCORES, TXN_FEATURES
from shoplake.pipeline import run_nightly
from shoplake.recommend.bundle import load_serving_bundle
from shoplake.recommend.schemas import RECOMMENDATIONS, TASK_RECOMMENDATION, USER_ITEM_MATRIX
from shoplake.support.schemas import TASK_SUPPORT
from shoplake.train.model_metrics import MODEL_METRICS

SHOP = ShopParams(days=28, users=60, items=40, seed=3, start=dt.date(2024, 1, 1), tickets_per_order=1.0)
SMALL = (
    "recommender.holdout_days=7",
    "recommender.k=5",
    "training.epochs=2",
    "sequence_model.epochs=2",
    "sequence_model.dim=16",
    "sequence_model.layers=1",
    "sequence_model.heads=1",
    "sequence_model.max_len=10",
    "forecasting.horizon_days=7",
    "forecasting.history_days=7",
    "forecasting.backtest_origins=2",
    "forecasting.min_history_days=7",
    "forecasting.epochs=2",
    "forecasting.windows_per_epoch=2000",
    "forecasting.hidden=16",
    "fine_tuning.epochs=1",
    "fine_tuning.max_length=32",
    "fine_tuning.min_steps=1",
)


@pytest.mark.slow  # about 4 minutes; every step has its own integration test in the default suite
def test_nightly_trains_scores_and_reports_every_model(make_cfg, spark, ray_local, capsys):
    cfg = make_cfg("lake.engine=delta-rs", *SMALL)
    generate_shop(cfg.landing.root, SHOP)
    days = [SHOP.start + dt.timedelta(days=i) for i in range(SHOP.days)]
    run_nightly(cfg, days)

    from shoplake.lake import Lake

    lake = Lake(cfg)
    run_date = days[-1] + dt.timedelta(days=1)
    # The features of the run date only: the recommendation run cuts its holdouts from them by event time.
    assert run_date in lake.run_dates(USER_ITEM_MATRIX)
    rows = lake.to_arrow(MODEL_METRICS, run_date=run_date).to_pylist()
    metrics = [r for r in rows if r[C.TASK] == TASK_RECOMMENDATION]
    assert {r[C.MODEL_NAME] for r in metrics} == set(cfg.recommender.models)
    forecast_metrics = [r for r in rows if r[C.TASK] == TASK_FORECASTING]
    assert {(r[C.CUTOFF_DATE], r[C.MODEL_NAME]) for r in forecast_metrics} == {
        (run_date - dt.timedelta(days=d), m) for d in (14, 7) for m in cfg.forecasting.models
    }
    ndcg = {r[C.MODEL_NAME]: r[C.VALUE] for r in metrics if r[C.METRIC] == "ndcg@10" and r[C.SLICE].endswith("/test/all")}
    assert all(0.0 <= v <= 1.0 for v in ndcg.values()), ndcg

    bundle, info = load_serving_bundle(cfg)
    from shoplake.recommend.report import recommend_champion

    assert bundle.kind == recommend_champion(metrics) is not None  # measured on validation, whichever it is
    recs = lake.to_arrow(RECOMMENDATIONS, run_date=run_date).to_pylist()
    assert {r[C.MODEL_VERSION] for r in recs} == {info.version}
    by_user: dict[str, list] = {}
    for r in recs:
        by_user.setdefault(r[C.USER_ID], []).append(r)
    assert set(by_user) == set(bundle.user_ids.ids)
    assert all(sorted(r[C.RANK] for r in rows) == [1, 2, 3, 4, 5] for rows in by_user.values())
    # Every item sold before the run date is forecast and planned.
    sold = {r[C.ITEM_ID] for r in lake.to_arrow(ITEM_DAILY_SALES, run_date=run_date).to_pylist()}
    forecasts = lake.to_arrow(FORECASTS, run_date=run_date)
    assert forecasts.num_rows == len(sold) * 7 and set(forecasts[C.ITEM_ID].to_pylist()) == sold
    assert set(lake.to_arrow(REPLENISHMENT_PLAN, run_date=run_date)[C.ITEM_ID].to_pylist()) == sold
    # The tables `shoplake nightly` prints at its end (those of `shoplake metrics`) compare every model.
    cmd_metrics(cfg, argparse.Namespace(run_date=run_date))
    printed = capsys.readouterr().out
    assert all(model in printed for model in cfg.recommender.models) and "ndcg@10" in printed, printed
    assert all(model in printed for model in cfg.forecasting.models) and "wrmsse" in printed, printed
    # Four weeks hold no payment older than fraud.maturity_days (30): the fraud step says so and the night goes on.
    assert lake.run_dates(TXN_FEATURES) == [run_date - dt.timedelta(days=d) for d in (14, 7, 0)]
    assert "fraud models not trained" in printed and "no fraud scores" in printed, printed
    assert not lake.exists(FRAUD_SCORES)
    # The support and category models are compared, and every product gets a category.
    text_models = {(r[C.TASK], r[C.MODEL_NAME]) for r in rows if r[C.TASK] in (TASK_SUPPORT, TASK_CATEGORIZATION)}
    assert text_models == {(t, m) for t in (TASK_SUPPORT, TASK_CATEGORIZATION) for m in ("tfidf_lr", "frozen_lr", "fine_tuned")}
    products = set(lake.to_arrow(PRODUCT_TEXT, run_date=run_date)[C.ITEM_ID].to_pylist())
    assert set(lake.to_arrow(PRODUCT_CATEGORIES, run_date=run_date)[C.ITEM_ID].to_pylist()) == products
    assert "support models" in printed and "macro-F1" in printed, printed


MODEL_STEPS = ("train-fraud", "score-fraud", "train-support", "train-categorizer", "score-categories")


def test_model_steps_are_skipped_without_their_tables(cfg, lake, capsys):
    # A shop without payments, support tickets or products (Online Retail has no payments).
    ran = run_nightly(cfg, [dt.date(2024, 2, 29)], only=MODEL_STEPS)
    out = " ".join(capsys.readouterr().out.split())
    assert ran == []
    for step, table in zip(MODEL_STEPS, ("txn_features", "txn_features", "support_training", "product_text", "product_text")):
        assert f"{step} skipped: no gold.{table} for 2024-03-01" in out
    assert not lake.exists(PRODUCT_CATEGORIES) and not lake.exists(FRAUD_SCORES)
