"""The fraud run, batch fraud scores and ``POST /fraud/score`` on a small synthetic shop.

One shop is generated per module and its payments, orders and chargebacks ingested
and featurised; the run trains every model on it once. Its payments carry two fields of the shop's own (a numeric one and a
category), so the models read them too. The endpoint must give the batch job's scores
for the same payments.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from helpers import get_json, post_json
from shoplake import columns as C
from shoplake.datagen.synthetic import ShopParams, generate_shop
from shoplake.features.pit import run_midnight
from shoplake.features.run import build_features
from shoplake.forecast.schemas import TASK_FORECASTING
from shoplake.fraud.bundle import FraudBundle
from shoplake.fraud.pipeline import FEATURES as FRAUD_NODE
from shoplake.fraud.schemas import DECISIONS, DECLINE, FRAUD_SCORES, REVIEW, TASK_FRAUD, TRANSACTIONS
from shoplake.fraud.score import payments_of_day, score_fraud
from shoplake.fraud.serve import FraudScorer, PaymentIn
from shoplake.fraud.train import run_fraud
from shoplake.ingest.run import ingest
from shoplake.lake import Lake
from shoplake.registry import list_versions
from shoplake.train.model_metrics import read_model_metrics

SHOP = ShopParams(
    days=56, users=150, items=60, seed=11, start=dt.date(2024, 1, 1), fraud_rate=0.12,
    sessions_per_user_day=0.3, chargeback_delay_days=(2, 9),
)  # fmt: skip
D = SHOP.start + dt.timedelta(days=SHOP.days)
#: The shop's own payment fields: a score and a channel, random (the models must read them, not gain from them).
OWN_FIELDS = ("device_risk", "channel")
DECLARED = (
    "landing.extra_fields={payments: [{name: device_risk, type: double, role: feature}, "
    "{name: channel, type: string, role: category, values: [web, app]}]}"
)
SETTINGS = (
    "lake.engine=delta-rs", "fraud.maturity_days=10", "fraud.gbt_rounds=40", "fraud.nn_epochs=3", "fraud.nn_hidden=16",
    "fraud.review_capacity_per_day=5", DECLARED,
)  # fmt: skip
PAYMENT_FIELDS = (*PaymentIn.model_fields, *OWN_FIELDS)


def _add_own_fields(landing: str, seed: int = 2) -> None:
    """Give every payment of the generated shop a random device_risk and channel."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    for path in sorted((Path(landing) / "payments").glob("*.csv")):
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={C.PAYMENT_TS: pa.string(), C.AMOUNT: pa.string()}))
        k = table.num_rows
        table = table.append_column("device_risk", pa.array(rng.uniform(0, 1, k).round(3))).append_column(
            "channel", pa.array(rng.choice(["web", "app"], k))
        )
        pacsv.write_csv(table, path)


@pytest.fixture(scope="module")
def shop(tmp_path_factory, spark, ray_local):
    """A featurised synthetic shop and one fraud run over it: ``(cfg, lake, result, scored)``."""
    from helpers import TEST_OVERRIDES
    from shoplake.config import load_config

    root = tmp_path_factory.mktemp("fraud")
    cfg = load_config(
        "local", [*TEST_OVERRIDES, f"lake.root={root}/lake", f"landing.root={root}/landing", f"runs_dir={root}/runs", *SETTINGS]
    )
    generate_shop(cfg.landing.root, SHOP)
    _add_own_fields(cfg.landing.root)
    lake = Lake(cfg, spark)
    # Only what the fraud features read: the shop's other sources and feature nodes would add minutes and nothing here.
    ingest(cfg, lake, [SHOP.start + dt.timedelta(days=i) for i in range(SHOP.days)], FRAUD_NODE.sources())
    build_features(cfg, lake, [D], nodes=[FRAUD_NODE])
    result = run_fraud(cfg, lake, D, name="fraud-test")
    scored = score_fraud(cfg, lake, D)
    return cfg, lake, result, scored


def test_run_reports_every_model_on_both_splits_and_registers_the_champion(shop):
    cfg, lake, result, _ = shop
    train, valid, test = (result.splits[s] for s in ("train", "validation", "test"))
    assert train[2] < valid[2] < test[2] < D - dt.timedelta(days=cfg.fraud.maturity_days - 1)
    assert train[1] > 0 and valid[1] > 0 and test[1] > 0

    rows = read_model_metrics(lake, D, TASK_FRAUD).to_pylist()
    models = {r[C.MODEL_NAME] for r in rows}
    assert models == {"rules", "gbt", "tabular_nn"}
    for model in models:
        for split, (payments, _, first_day) in (("validation", valid), ("test", test)):
            mine = {r[C.METRIC]: r for r in rows if r[C.MODEL_NAME] == model and r[C.SLICE] == split}
            assert {"pr_auc", "roc_auc", "recall@1%fpr", "precision@capacity", "review_threshold", "decline_threshold"} <= set(mine)
            assert all(r[C.N_EVALUATED] == payments and r[C.CUTOFF_DATE] == first_day for r in mine.values())
            assert 0.0 <= mine["pr_auc"][C.VALUE] <= 1.0
            assert mine["pr_auc_low"][C.VALUE] <= mine["pr_auc"][C.VALUE] <= mine["pr_auc_high"][C.VALUE]
    # Only the fraud task's rows are the run's: other tasks of the day are left alone.
    assert not read_model_metrics(lake, D, TASK_FORECASTING).num_rows

    best = max(("gbt", "tabular_nn"), key=lambda m: result.evaluations[m].metrics["validation"]["pr_auc"])
    assert result.champion == best
    versions = list_versions(cfg, registered_model=cfg.fraud.registered_model)
    assert [v.version for v in versions] == [result.model_version]
    assert versions[0].kind == best and cfg.registry.serving_alias in versions[0].aliases
    bundle = FraudBundle.load(result.bundle_path)
    assert bundle.kind == best
    assert (bundle.review_threshold, bundle.decline_threshold) == (
        result.evaluations[best].review_threshold, result.evaluations[best].decline_threshold,
    )  # fmt: skip
    svg = open(result.chart_path, encoding="utf-8").read()
    assert all(model in svg for model in models)


def test_the_champion_beats_the_rules_on_the_test_split(shop):
    _, _, result, _ = shop
    champion = result.evaluations[result.champion].metrics["test"]["pr_auc"]
    assert champion > result.evaluations["rules"].metrics["test"]["pr_auc"]
    # The champion is set against the best other model of validation, with the interval of the difference.
    other, diff = result.versus
    valid = {m: ev.metrics["validation"]["pr_auc"] for m, ev in result.evaluations.items() if m != result.champion}
    assert other == max(valid, key=valid.get)
    test_diff = champion - result.evaluations[other].metrics["test"]["pr_auc"]
    assert diff.value == pytest.approx(test_diff) and diff.low <= diff.value <= diff.high
    assert result.versus_line().startswith(f"test PR-AUC: {result.champion} ") and diff.verdict() in result.versus_line()


def test_scores_of_the_last_day_follow_the_thresholds(shop):
    cfg, lake, result, scored = shop
    day = payments_of_day(lake, D)
    rows = lake.to_arrow(FRAUD_SCORES, run_date=D)
    assert rows.schema == FRAUD_SCORES.arrow_schema()
    assert scored.rows == rows.num_rows == day.num_rows > 0
    assert sorted(rows[C.PAYMENT_ID].to_pylist()) == sorted(day[C.PAYMENT_ID].to_pylist())
    assert pc.min(rows[C.PAYMENT_TS]).as_py() >= run_midnight(D - dt.timedelta(days=1))
    bundle = FraudBundle.load(result.bundle_path)
    for r in rows.to_pylist():
        expected = DECLINE if r[C.SCORE] >= bundle.decline_threshold else REVIEW if r[C.SCORE] >= bundle.review_threshold else "approve"
        assert r[C.DECISION] == expected
        assert 0.0 <= r[C.SCORE] <= 1.0
        assert len(r[C.REASON_FEATURES]) == len(r[C.REASON_CONTRIBUTIONS]) <= 3
        assert r[C.REASON_CONTRIBUTIONS] == sorted(r[C.REASON_CONTRIBUTIONS], reverse=True)
        assert all(v > 0 for v in r[C.REASON_CONTRIBUTIONS])
        assert (r[C.MODEL_NAME], r[C.MODEL_VERSION]) == (result.champion, result.model_version)
    assert sum(scored.decisions.values()) == rows.num_rows and set(scored.decisions) == set(DECISIONS)


def test_rescoring_replaces_the_run_date(shop):
    cfg, lake, _, scored = shop
    before = lake.to_arrow(FRAUD_SCORES, run_date=D).sort_by(C.PAYMENT_ID)
    again = score_fraud(cfg, lake, D)
    after = lake.to_arrow(FRAUD_SCORES, run_date=D).sort_by(C.PAYMENT_ID)
    assert again.version == scored.version + 1 and after.num_rows == before.num_rows
    assert after[C.SCORE].to_pylist() == before[C.SCORE].to_pylist()
    assert lake.row_count(FRAUD_SCORES) == before.num_rows


def _payments(lake, day: dt.date) -> list[dict]:
    """The payments made on ``day``, as ``POST /fraud/score`` bodies, from silver.transactions."""
    rows = lake.to_arrow(TRANSACTIONS, run_date=D).sort_by([(C.PAYMENT_TS, "ascending"), (C.PAYMENT_ID, "ascending")])
    out = []
    for r in rows.to_pylist():
        if r[C.PAYMENT_TS] >= run_midnight(day):
            out.append({k: (r[k].isoformat() if k == C.PAYMENT_TS else r[k]) for k in PAYMENT_FIELDS})
    return out


def test_online_scores_equal_the_batch_scores(shop):
    cfg, lake, _, _ = shop
    batch = {r[C.PAYMENT_ID]: r for r in lake.to_arrow(FRAUD_SCORES, run_date=D).to_pylist()}
    payments = _payments(lake, D - dt.timedelta(days=1))
    assert len(payments) == len(batch)
    scorer = FraudScorer(cfg, lake)
    # The model reads the shop's own fields, and the bodies carry them.
    assert {"device_risk", "new_channel_for_user"} <= set(scorer.model.bundle.feature_names)
    assert all(body["device_risk"] is not None and body["channel"] for body in payments)
    # Scored in reverse time order: the state holds the whole day already, and only earlier payments count.
    for body in reversed(payments):
        online = scorer.score(scorer.parse(body))
        expected = batch[body[C.PAYMENT_ID]]
        assert online["score"] == pytest.approx(expected[C.SCORE], abs=1e-6)
        assert online["decision"] == expected[C.DECISION]
        assert [r["feature"] for r in online["reasons"]] == expected[C.REASON_FEATURES]


def test_a_new_payment_counts_for_the_next_one(shop):
    cfg, lake, _, _ = shop
    scorer = FraudScorer(cfg, lake)
    base = dict(_payments(lake, D - dt.timedelta(days=1))[0])
    ts = run_midnight(D) + dt.timedelta(hours=1)
    first = {**base, C.PAYMENT_ID: "new-1", C.CARD_ID: "card-new", C.DEVICE_ID: "dev-new", C.PAYMENT_TS: ts.isoformat()}
    second = {**first, C.PAYMENT_ID: "new-2", C.PAYMENT_TS: (ts + dt.timedelta(seconds=30)).isoformat()}
    assert scorer.state.features(scorer.parse(second).model_dump())["device_count_1h"] == 0
    scorer.score(scorer.parse(first))
    scorer.score(scorer.parse(first))  # the same payment again is not counted twice
    feats = scorer.state.features(scorer.parse(second).model_dump())
    assert feats["device_count_1h"] == 1 and feats["card_count_1h"] == 1


@pytest.fixture(scope="module")
def served(shop, serve_url, tmp_path_factory):
    from ray import serve

    from shoplake.serve.app import build_app

    cfg, _, _, _ = shop
    overrides = [f"lake.root={cfg.lake.root}", f"runs_dir={cfg.runs_dir}", DECLARED]
    serve.run(build_app({"env": "local", "overrides": overrides}), name="fraud", route_prefix="/")
    empty = tmp_path_factory.mktemp("fraud-empty")
    serve.run(build_app({"env": "local", "overrides": [f"lake.root={empty}/lake", DECLARED]}), name="fraud-empty", route_prefix="/empty")
    return serve_url


def test_fraud_score_over_http(shop, served):
    cfg, lake, _, _ = shop
    batch = {r[C.PAYMENT_ID]: r for r in lake.to_arrow(FRAUD_SCORES, run_date=D).to_pylist()}
    body = _payments(lake, D - dt.timedelta(days=1))[-1]
    status, answer = post_json(f"{served}/fraud/score", body)
    assert status == 200, answer
    assert answer["payment_id"] == body[C.PAYMENT_ID]
    assert answer["score"] == pytest.approx(batch[body[C.PAYMENT_ID]][C.SCORE], abs=1e-6)
    assert answer["decision"] in DECISIONS and len(answer["reasons"]) <= 3
    status, health = get_json(f"{served}/health")
    assert status == 200 and health["fraud"]["loaded"] is True


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({C.AMOUNT: -3}, ["field amount", "greater than 0"]),
        ({C.AMOUNT: "a lot"}, ["field amount", "'a lot'"]),
        ({C.CARD_ID: None}, ["field card_id"]),
        ({C.PAYMENT_TS: "2024-02-25T10:00:00"}, ["field payment_ts", "timezone"]),
        ({C.PAYMENT_TS: "yesterday"}, ["field payment_ts"]),
        ({"coupon": "X"}, ["field coupon is not a known field"]),
        ({C.N_UNITS: -1}, ["field n_units"]),
        ({"device_risk": "high"}, ["field device_risk", "'high'"]),
        ({"channel": "fax"}, ["field channel", "'web' or 'app'"]),
    ],
)
def test_bad_payments_get_422_naming_the_field(shop, served, change, words):
    _, lake, _, _ = shop
    body = {**_payments(lake, D - dt.timedelta(days=1))[0], **change}
    status, answer = post_json(f"{served}/fraud/score", body)
    assert status == 422, answer
    for word in words:
        assert word in answer["detail"]


def test_missing_fields_bad_json_query_parameters_and_no_model(shop, served):
    _, lake, _, _ = shop
    body = dict(_payments(lake, D - dt.timedelta(days=1))[0])
    del body[C.USER_ID]
    status, answer = post_json(f"{served}/fraud/score", body)
    assert status == 422 and "field user_id is required" in answer["detail"]
    status, answer = post_json(f"{served}/fraud/score", None, raw=b"{not json")
    assert status == 422 and "not valid JSON" in answer["detail"]
    status, answer = post_json(f"{served}/fraud/score?debug=1", _payments(lake, D - dt.timedelta(days=1))[0])
    assert status == 400 and "debug" in answer["detail"]
    status, answer = post_json(f"{served}/empty/fraud/score", _payments(lake, D - dt.timedelta(days=1))[0])
    assert status == 503 and "fraud" in answer["detail"]


def test_each_model_declines_only_above_where_it_reviews(shop):
    _, _, result, _ = shop
    for ev in result.evaluations.values():
        assert ev.review_threshold <= ev.decline_threshold
    assert np.all(np.isfinite(result.evaluations[result.champion].test_scores))
