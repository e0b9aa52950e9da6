"""A night with the lake on S3: ingest, features, one training run and one scoring run, through the nightly runner.

The lake root is ``s3://<bucket>/lake`` on a local S3-compatible server; the
configuration refers to the endpoint and credentials in the environment as ``${ENV}``,
as a shop's would. Only the landing files and the registry's database stay on local disk.
"""

from __future__ import annotations

import datetime as dt

import pytest

from shoplake.datagen.synthetic import ShopParams, generate_shop
from shoplake.lake import Lake
from shoplake.pipeline import run_nightly
from shoplake.recommend.bundle import load_serving_bundle
from shoplake.recommend.schemas import RECOMMENDATIONS, TASK_RECOMMENDATION, USER_ITEM_MATRIX
from shoplake.train.model_metrics import MODEL_METRICS

# The whole flow on S3 takes about a minute; the lake, the run manifest and Ray's reads and writes on S3 are
# tested in tests/unit/lake/test_object_storage.py in the default suite.
pytestmark = [pytest.mark.object_storage, pytest.mark.slow]

SHOP = ShopParams(days=10, users=40, items=30, seed=5, start=dt.date(2024, 1, 1), sessions_per_user_day=0.6)
STEPS = ["ingest", "features", "train-recommender", "score-recommendations"]
SETTINGS = (
    "lake.storage_options={AWS_ENDPOINT_URL: '${AWS_ENDPOINT_URL}', AWS_REGION: '${AWS_REGION}', "
    "AWS_ACCESS_KEY_ID: '${AWS_ACCESS_KEY_ID}', AWS_SECRET_ACCESS_KEY: '${AWS_SECRET_ACCESS_KEY}'}",
    "ingest.sources=[orders, events, products]",
    "recommender.models=[popularity, cooccurrence]",
    "recommender.main_model=popularity",
    "recommender.holdout_days=3",
    "recommender.k=5",
)


def test_ingest_features_training_and_scoring_with_the_lake_on_s3(make_cfg, s3_root, s3_keys, s3_spark, ray_local, test_engine, tmp_path):
    cfg = make_cfg(f"lake.root={s3_root}", f"lake.engine={test_engine}", f"registry.uri=sqlite:///{tmp_path}/mlflow.db", *SETTINGS)
    generate_shop(cfg.landing.root, SHOP)
    days = [SHOP.start + dt.timedelta(days=i) for i in range(SHOP.days)]
    run_date = days[-1] + dt.timedelta(days=1)

    assert run_nightly(cfg, days, only=STEPS) == STEPS

    lake = Lake(cfg, s3_spark)
    assert lake.engine.name == test_engine
    # Every table of the night is in the bucket; nothing of the lake is on local disk.
    tables = {key.split("/_delta_log/")[0] for key in s3_keys(s3_root) if "/_delta_log/" in key}
    assert {"bronze/orders", "bronze/events", "bronze/products", "ops/runs", "ops/model_metrics"} <= tables
    assert {"silver/interactions", "gold/user_item_matrix", "serving/recommendations"} <= tables
    assert not (tmp_path / "lake").exists()

    # Both multi-table runs completed, as the run manifest on S3 records them.
    assert lake.manifest.last_complete("ingest") is not None and lake.manifest.last_complete("features") is not None
    assert not lake.manifest.unfinished()
    assert lake.run_dates(USER_ITEM_MATRIX) == [run_date]

    # The training run's metrics and the registered model (its files under the lake root) ...
    metrics = lake.to_arrow(MODEL_METRICS, run_date=run_date).to_pylist()
    assert {r["model_name"] for r in metrics if r["task"] == TASK_RECOMMENDATION} == {"popularity", "cooccurrence"}
    assert any(key.startswith("_mlflow/artifacts/") for key in s3_keys(s3_root))
    bundle, info = load_serving_bundle(cfg)
    assert bundle.kind == "popularity"

    # ... and the scores the night wrote with it, read through Spark, delta-rs and Ray alike.
    scored = lake.read(RECOMMENDATIONS).where(f"run_date = '{run_date}'")
    users = scored.select("user_id").distinct().count()
    assert users == len(bundle.user_ids) and scored.count() == users * cfg.recommender.k
    assert {r.model_version for r in scored.select("model_version").distinct().collect()} == {info.version}
    assert lake.to_arrow(RECOMMENDATIONS, run_date=run_date).num_rows == scored.count()
    assert lake.ray_read(RECOMMENDATIONS).count() == scored.count()
