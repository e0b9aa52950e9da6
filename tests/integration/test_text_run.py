"""The support and categorization runs on hand-made gold text tables: every model compared, the champion registered.

One lake per module; the support run trains the TF-IDF baseline and the fine-tuned
encoder (2 Ray Train workers) side by side, the categorization run the baseline only.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from shoplake import columns as C
from shoplake.categorize.schemas import PRODUCT_TEXT, TASK_CATEGORIZATION
from shoplake.categorize.train import run_categorization
from shoplake.lake import Lake
from shoplake.registry import list_versions
from shoplake.support.schemas import SUPPORT_TRAINING, TASK_SUPPORT
from shoplake.support.train import run_support
from shoplake.text import metrics as M
from shoplake.text.bundle import TextBundle
from shoplake.text.run import TooFewTextsError
from shoplake.train.model_metrics import read_model_metrics

D = dt.date(2024, 3, 31)
SETTINGS = (
    "lake.engine=delta-rs", "support.models=[tfidf_lr,fine_tuned]", "support.out_of_scope_intents=[complaint]",
    "support.min_answered=0.9", "fine_tuning.epochs=2", "fine_tuning.lr=2e-4", "fine_tuning.batch_size=8",
    "fine_tuning.max_length=24", "fine_tuning.min_steps=1", "categorization.models=[tfidf_lr]",
)  # fmt: skip
MESSAGES = {
    "cancel_order": ["please cancel order o{n:08d}", "I want to cancel my purchase o{n:08d}", "cancel it, I changed my mind"],
    "track_order": ["where is my parcel o{n:08d}", "track order o{n:08d} for me", "my package has not arrived"],
    "get_refund": ["I want my money back", "refund order o{n:08d} please", "how do I get a refund"],
    "complaint": ["your courier was rude", "terrible service, I am angry", "the quality is awful"],
}
RESOLUTIONS = {
    "cancel_order": "I've cancelled order o{n:08d}; the refund follows within 5 days.",
    "track_order": "Order o{n:08d} has shipped and arrives within 3 days.",
    "get_refund": "Your refund is on its way to the original payment method.",
    "complaint": "A team member will call you back.",
}


def support_rows() -> pa.Table:
    rows = []
    for intent, templates in MESSAGES.items():
        for n in range(30):
            split = "train" if n < 20 else ("validation" if n < 25 else "test")
            rows.append({
                C.TICKET_ID: f"t-{intent}-{n}", C.TEXT: templates[n % 3].format(n=n + 100), C.INTENT: intent,
                C.RESOLUTION: RESOLUTIONS[intent].format(n=n + 100), C.ORDER_ID: f"o{n + 100:08d}" if "{n" in templates[n % 3] else None,
                C.SPLIT: split, C.RUN_DATE: D,
            })  # fmt: skip
    return pa.Table.from_pylist(rows, schema=SUPPORT_TRAINING.arrow_schema())


def product_rows(categories: tuple[str, ...]) -> pa.Table:
    words = {"shoes": ["running shoe", "leather boot", "canvas sneaker"], "kitchen": ["frying pan", "chef knife", "mixing bowl"]}
    rows = []
    for category in categories:
        for n in range(20):
            title = f"{words[category][n % 3]} model {n}"
            split = "train" if n < 14 else ("validation" if n < 17 else "test")
            rows.append({C.ITEM_ID: f"{category}-{n}", C.TITLE: title, C.DESCRIPTION: None, C.BRAND: None, C.CATEGORY: category,
                         C.TEXT: title, C.SPLIT: split, C.RUN_DATE: D})  # fmt: skip
    return pa.Table.from_pylist(rows, schema=PRODUCT_TEXT.arrow_schema())


@pytest.fixture(scope="module")
def shop(tmp_path_factory, spark, ray_local):
    from helpers import TEST_OVERRIDES
    from shoplake.config import load_config

    root = tmp_path_factory.mktemp("text")
    cfg = load_config(
        "local", [*TEST_OVERRIDES, f"lake.root={root}/lake", f"landing.root={root}/landing", f"runs_dir={root}/runs", *SETTINGS]
    )
    lake = Lake(cfg, spark)
    lake.write(spark.createDataFrame(support_rows().to_pandas()), SUPPORT_TRAINING, mode="replace", run_dates=[D])
    result = run_support(cfg, lake, D, name="support-test")
    return cfg, lake, result


def test_every_model_is_measured_on_both_splits_with_the_handoff(shop):
    cfg, lake, result = shop
    assert set(result.evaluations) == {"tfidf_lr", "fine_tuned"}
    assert result.labels == ("cancel_order", "get_refund", "track_order")
    assert result.sizes == {"train": (60, 0), "validation": (15, 5), "test": (15, 5)}
    rows = [r for r in read_model_metrics(lake, D).to_pylist() if r[C.TASK] == TASK_SUPPORT]
    got = {(r[C.MODEL_NAME], r[C.SLICE], r[C.METRIC]) for r in rows}
    for model in ("tfidf_lr", "fine_tuned"):
        for split in ("validation", "test"):
            for metric in (M.ACCURACY, M.MACRO_F1, M.ANSWERED_IN_SCOPE, M.HANDOFF_OUT_OF_SCOPE, M.HANDOFF_THRESHOLD):
                assert (model, split, metric) in got
    # The threshold answers at least the share asked on validation.
    for ev in result.evaluations.values():
        assert ev.metrics["validation"][M.ANSWERED_IN_SCOPE] >= 0.9
    assert all(r[C.N_EVALUATED] == 15 for r in rows)


def test_fine_tuning_ran_on_two_workers_and_lowered_the_loss(shop):
    ev = shop[2].evaluations["fine_tuned"]
    assert len(ev.losses) == 2 and ev.losses[1] < ev.losses[0]
    assert ev.examples_per_s and ev.examples_per_s > 0


def test_the_champion_is_registered_with_answers_that_fill_the_order_number(shop):
    cfg, lake, result = shop
    versions = list_versions(cfg, cfg.support.registered_model)
    assert [v.version for v in versions] == [result.model_version]
    assert versions[0].kind == result.champion
    bundle = TextBundle.load(result.bundle_path)
    assert bundle.task == "support" and bundle.kind == result.champion
    assert bundle.threshold == pytest.approx(result.evaluations[result.champion].threshold)
    assert set(bundle.answers.intents) == {"cancel_order", "get_refund", "track_order"}  # never the out-of-scope intent
    pred = bundle.predict(["please cancel order o00000777"])
    assert pred.labels == ["cancel_order"]
    answer = bundle.answers.answer("cancel_order", bundle.classifier.embed(["please cancel order o00000777"])[0], {"order_id": "o00000777"})
    assert answer.text == "I've cancelled order o00000777; the refund follows within 5 days."


def test_categorization_registers_its_own_model_and_needs_two_categories(shop, spark):
    cfg, lake, _ = shop
    lake.write(spark.createDataFrame(product_rows(("shoes",)).to_pandas()), PRODUCT_TEXT, mode="replace", run_dates=[D])
    with pytest.raises(TooFewTextsError, match="1 label"):
        run_categorization(cfg, lake, D, name="categories-one")
    lake.write(spark.createDataFrame(product_rows(("shoes", "kitchen")).to_pandas()), PRODUCT_TEXT, mode="replace", run_dates=[D])
    result = run_categorization(cfg, lake, D, name="categories-test")
    assert result.champion == "tfidf_lr" and result.evaluations["tfidf_lr"].metrics["test"][M.ACCURACY] == 1.0
    assert [v.version for v in list_versions(cfg, cfg.categorization.registered_model)] == [result.model_version]
    tasks = {r[C.TASK] for r in read_model_metrics(lake, D).to_pylist()}
    assert tasks == {TASK_SUPPORT, TASK_CATEGORIZATION}
