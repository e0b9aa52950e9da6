"""A shop's own data for fraud: declared payment fields through features, training, scoring and serving; its own labelled table.

One synthetic shop is generated per module, its payments given fields of the shop's own
(a planted risk score, a flag, a channel, a terminal id, an undeclared coupon) and its
chargebacks replaced by random fraud labels: the built-in features cannot find those,
the planted score alone separates them. The shop is ingested, featurised, trained on
and scored once. Minutes of Spark and Ray Train: ``make test-slow``; the default
suite covers the declared fields in ``test_fraud_run.py`` and the own table in
``test_fraud_feature_table.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from fastapi.exceptions import RequestValidationError

from helpers import TEST_OVERRIDES, post_json
from shoplake import columns as C
from shoplake.config import FraudFeatureTableConfig, load_config
from shoplake.datagen.synthetic import ShopParams, generate_shop
from shoplake.features.pit import run_midnight
from shoplake.features.run import build_features
from shoplake.fraud import metrics as M
from shoplake.fraud.bundle import FraudBundle
from shoplake.fraud.dataset import time_split, training_data
from shoplake.fraud.declarations import FEATURE_NAMES
from shoplake.fraud.feature_table import SOURCE_JOINED
from shoplake.fraud.models.gbt import train_gbt
from shoplake.fraud.routes import fraud_score
from shoplake.fraud.schemas import FRAUD_SCORES, TRANSACTIONS, TXN_FEATURES
from shoplake.fraud.score import score_fraud, scoring_rows
from shoplake.fraud.serve import FraudScorer
from shoplake.fraud.train import run_fraud
from shoplake.ingest.run import ingest
from shoplake.lake import Lake
from shoplake.serve.http import validation_message

pytestmark = pytest.mark.slow

SHOP = ShopParams(days=56, users=150, items=60, seed=11, start=dt.date(2024, 1, 1), sessions_per_user_day=0.3)
D = SHOP.start + dt.timedelta(days=SHOP.days)
FRAUD_RATE = 0.1
RISK, TRUSTED, CHANNEL, TERMINAL = "shop_risk", "trusted", "channel", "terminal"
DECLARED = (
    f"landing.extra_fields={{payments: [{{name: {RISK}, type: double, role: feature, min: 0, max: 1}}, "
    f"{{name: {TRUSTED}, type: boolean, role: feature}}, {{name: {CHANNEL}, type: string, role: category, values: [web, app]}}, "
    f"{{name: {TERMINAL}, type: string, role: id}}]}}"
)
SETTINGS = (
    "lake.engine=delta-rs", "fraud.maturity_days=10", "fraud.gbt_rounds=40", "fraud.nn_epochs=3", "fraud.nn_hidden=16",
    "fraud.review_capacity_per_day=5", DECLARED,
)  # fmt: skip
#: A payment whose risk score does not parse: quarantined, never in silver.
BAD_PAYMENT_VALUE = "n/a"


def _plant(landing: Path, seed: int = 5) -> dict[str, dict]:
    """Give every payment the shop's own fields and random fraud labels (chargebacks of reason fraud 3 days later).

    Returns:
        Per payment id, its planted values and label.
    """
    rng = np.random.default_rng(seed)
    planted: dict[str, dict] = {}
    files = sorted((landing / "payments").glob("*.csv"))
    for n, path in enumerate(files):
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=False, column_types={
            C.PAYMENT_ID: pa.string(), C.PAYMENT_TS: pa.string(), C.AMOUNT: pa.string()}))  # fmt: skip
        k = table.num_rows
        fraud = rng.random(k) < FRAUD_RATE
        if n == len(files) - 1 and k:
            fraud[0] = True  # the scored day has a planted fraud (unlabelled yet: its chargeback comes later)
        risk = np.where(fraud, rng.uniform(0.8, 1.0, k), rng.uniform(0.0, 0.75, k)).round(4)
        risk_text = [str(v) for v in risk]
        if n == 1 and k:
            risk_text[0] = BAD_PAYMENT_VALUE
        trusted = rng.random(k) < 0.5
        channel = rng.choice(["web", "app"], k)
        table = (
            table.append_column(RISK, pa.array(risk_text))
            .append_column("coupon", pa.array(["SAVE5"] * k))
            .append_column(TRUSTED, pa.array(["true" if t else "false" for t in trusted]))
            .append_column(CHANNEL, pa.array(channel))
            .append_column(TERMINAL, pa.array([f"t{i % 7}" for i in range(k)]))
        )
        pacsv.write_csv(table, path)
        for i, pid in enumerate(table[C.PAYMENT_ID].to_pylist()):
            planted[pid] = {
                RISK: None if risk_text[i] == BAD_PAYMENT_VALUE else float(risk[i]), TRUSTED: bool(trusted[i]),
                CHANNEL: str(channel[i]), "fraud": bool(fraud[i]), "ts": table[C.PAYMENT_TS][i].as_py(),
                C.AMOUNT: table[C.AMOUNT][i].as_py(),
            }  # fmt: skip
    shutil.rmtree(landing / "chargebacks")
    last = SHOP.start + dt.timedelta(days=SHOP.days - 1)
    lines = ["chargeback_id,payment_id,reason_code,amount,chargeback_ts"]
    for pid, p in planted.items():
        reported = dt.datetime.fromisoformat(p["ts"].replace("Z", "+00:00")) + dt.timedelta(days=3)
        if p["fraud"] and reported.date() <= last:
            lines.append(f"cb-{pid},{pid},fraud,{p[C.AMOUNT]},{reported:%Y-%m-%dT%H:%M:%SZ}")
    (landing / "chargebacks").mkdir()
    (landing / "chargebacks" / f"{SHOP.start}_{last}.csv").write_text("\n".join(lines) + "\n")
    return planted


@pytest.fixture(scope="module")
def shop(tmp_path_factory, spark, ray_local):
    """The featurised shop with its own fields and one fraud run: ``(cfg, lake, result, scored, planted)``."""
    root = tmp_path_factory.mktemp("fraud-own")
    cfg = load_config(
        "local", [*TEST_OVERRIDES, f"lake.root={root}/lake", f"landing.root={root}/landing", f"runs_dir={root}/runs", *SETTINGS]
    )
    generate_shop(cfg.landing.root, SHOP)
    planted = _plant(Path(cfg.landing.root))
    lake = Lake(cfg, spark)
    ingest(cfg, lake, [SHOP.start + dt.timedelta(days=i) for i in range(SHOP.days)], sources=["payments", "orders", "chargebacks"])
    build_features(cfg, lake, [D])
    result = run_fraud(cfg, lake, D, name="fraud-own")
    scored = score_fraud(cfg, lake, D)
    return cfg, lake, result, scored, planted


def test_declared_fields_reach_bronze_typed_and_a_bad_value_is_quarantined(shop):
    _, lake, _, _, planted = shop
    bronze = lake.to_arrow("bronze.payments", columns=[C.PAYMENT_ID, RISK, TRUSTED, CHANNEL, TERMINAL])
    assert [str(bronze.schema.field(n).type) for n in (RISK, TRUSTED, CHANNEL, TERMINAL)] == ["double", "bool", "string", "string"]
    row = bronze.slice(0, 1).to_pylist()[0]
    assert (row[RISK], row[TRUSTED], row[CHANNEL]) == tuple(planted[row[C.PAYMENT_ID]][k] for k in (RISK, TRUSTED, CHANNEL))
    assert "coupon" not in lake.to_arrow("bronze.payments").column_names
    bad = lake.read("quarantine.payments").collect()
    assert [r._reason for r in bad] == [f"{RISK}: not a double ('{BAD_PAYMENT_VALUE}')"]


def test_extra_features_are_the_payments_own_values_in_the_feature_tables(shop):
    _, lake, _, _, planted = shop
    silver = lake.to_arrow(TRANSACTIONS, run_date=D)
    assert {RISK, TRUSTED, CHANNEL} <= set(silver.column_names) and TERMINAL not in silver.column_names
    gold = lake.to_arrow(TXN_FEATURES, run_date=D)
    assert "new_channel_for_user" in gold.column_names and TERMINAL not in gold.column_names
    for r in gold.to_pylist():
        p = planted[r[C.PAYMENT_ID]]
        assert r[RISK] == p[RISK] and r[TRUSTED] == float(p[TRUSTED])
    by_user: dict[str, set] = {}
    for r in sorted(
        silver.join(gold.select([C.PAYMENT_ID, "new_channel_for_user"]), C.PAYMENT_ID).to_pylist(), key=lambda r: r[C.PAYMENT_TS]
    ):
        seen = by_user.setdefault(r[C.USER_ID], set())
        assert r["new_channel_for_user"] == float(r[CHANNEL] not in seen)
        seen.add(r[CHANNEL])


def test_a_planted_feature_lets_the_models_find_fraud_the_built_in_features_cannot(shop):
    cfg, lake, result, _, _ = shop
    assert result.pr_auc("gbt") > 0.95
    assert result.pr_auc("rules") < 0.4 and result.pr_auc("tabular_nn") > result.pr_auc("rules")
    for model in ("gbt", "tabular_nn"):
        assert result.evaluations[model].fitted.feature_names[-3:] == (RISK, TRUSTED, "new_channel_for_user")
    # The same trees on the built-in features alone find little of it.
    data = training_data(cfg, lake, D)
    built_in = data.rows.select([c for c in data.rows.column_names if c not in (RISK, TRUSTED, "new_channel_for_user")])
    train, valid, test = time_split(built_in, cfg.fraud.validation_share, cfg.fraud.test_share, FEATURE_NAMES)
    plain = train_gbt(cfg, train.X, train.y, valid.X, valid.y, "fraud-own-built-in")
    assert M.average_precision(test.y, plain.predict(test.X)) < 0.5


def test_the_bundle_records_its_features_and_batch_scores_give_the_planted_reason(shop):
    _, lake, result, scored, planted = shop
    bundle = FraudBundle.load(result.bundle_path)
    assert bundle.feature_names[: len(FEATURE_NAMES)] == FEATURE_NAMES
    assert bundle.feature_names[len(FEATURE_NAMES) :] == (RISK, TRUSTED, "new_channel_for_user")
    assert bundle.metadata["extra_fields"] == [RISK, TRUSTED, CHANNEL]
    rows = lake.to_arrow(FRAUD_SCORES, run_date=D).to_pylist()
    assert scored.rows == len(rows) > 0
    risky = [r for r in rows if planted[r[C.PAYMENT_ID]]["fraud"]]
    assert risky and all(r[C.REASON_FEATURES][0] == RISK for r in risky)
    assert all(r[C.SCORE] > max(s[C.SCORE] for s in rows if not planted[s[C.PAYMENT_ID]]["fraud"]) for r in risky)


def _bodies(lake, day: dt.date) -> list[dict]:
    rows = lake.to_arrow(TRANSACTIONS, run_date=D).sort_by([(C.PAYMENT_TS, "ascending"), (C.PAYMENT_ID, "ascending")])
    fields = ("payment_id", "order_id", "user_id", "amount", "card_id", "device_id", "ip_address", "billing_country",
              "shipping_country", "n_lines", "n_units", RISK, TRUSTED, CHANNEL)  # fmt: skip
    out = []
    for r in rows.to_pylist():
        if r[C.PAYMENT_TS] >= run_midnight(day):
            out.append({**{k: r[k] for k in fields}, C.PAYMENT_TS: r[C.PAYMENT_TS].isoformat(), TERMINAL: "t1"})
    return out


def test_online_scores_with_the_shops_fields_equal_the_batch_scores(shop):
    cfg, lake, _, _, _ = shop
    batch = {r[C.PAYMENT_ID]: r for r in lake.to_arrow(FRAUD_SCORES, run_date=D).to_pylist()}
    payments = _bodies(lake, D - dt.timedelta(days=1))
    assert len(payments) == len(batch) and any(p[RISK] > 0.8 for p in payments)
    scorer = FraudScorer(cfg, lake)
    for body in reversed(payments):
        online = scorer.score(scorer.parse(body))
        expected = batch[body[C.PAYMENT_ID]]
        assert online["score"] == pytest.approx(expected[C.SCORE], abs=1e-6)
        assert [r["feature"] for r in online["reasons"]] == expected[C.REASON_FEATURES]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({RISK: 1.5}, [f"field {RISK}", "less than or equal to 1"]),
        ({RISK: "high"}, [f"field {RISK}", "'high'"]),
        ({CHANNEL: "fax"}, [f"field {CHANNEL}", "'web' or 'app'"]),
        ({"coupon": "SAVE5"}, ["field coupon is not a known field"]),
    ],
)
def test_the_request_validates_the_shops_fields_naming_them(shop, change, words):
    cfg, lake, _, _, _ = shop
    scorer = FraudScorer(cfg, lake)
    body = {**_bodies(lake, D - dt.timedelta(days=1))[0], **change}
    with pytest.raises(RequestValidationError) as err:
        asyncio.run(fraud_score(body, scorer))
    message = validation_message(err.value.errors())
    for word in words:
        assert word in message


def test_a_model_reading_a_field_no_longer_declared_is_not_served(shop):
    cfg, lake, _, _, _ = shop
    undeclared = cfg.model_copy(update={"landing": cfg.landing.model_copy(update={"extra_fields": {}})})
    scorer = FraudScorer(undeclared, lake)
    assert scorer.model.bundle is None
    assert f"feature(s) {RISK}, {TRUSTED}, new_channel_for_user are neither built in" in scorer.problem


def test_fraud_score_over_http_takes_the_shops_fields(shop, serve_url):
    from ray import serve

    from shoplake.serve.app import build_app

    cfg, lake, _, _, _ = shop
    overrides = [f"lake.root={cfg.lake.root}", f"runs_dir={cfg.runs_dir}", DECLARED]
    serve.run(build_app({"env": "local", "overrides": overrides}), name="fraud-own", route_prefix="/")
    batch = {r[C.PAYMENT_ID]: r for r in lake.to_arrow(FRAUD_SCORES, run_date=D).to_pylist()}
    body = _bodies(lake, D - dt.timedelta(days=1))[-1]
    status, answer = post_json(f"{serve_url}/fraud/score", body)
    assert status == 200, answer
    assert answer["score"] == pytest.approx(batch[body[C.PAYMENT_ID]][C.SCORE], abs=1e-6)
    status, answer = post_json(f"{serve_url}/fraud/score", {**body, RISK: -0.5})
    assert status == 422 and f"field {RISK}" in answer["detail"]


def test_the_shops_own_table_joins_the_lakes_payments_by_id(shop, tmp_path):
    cfg, lake, _, _, planted = shop
    ids = sorted(planted)[::2]
    path = tmp_path / "vendor.parquet"
    pq.write_table(pa.table({"payment_id": ids, "payment_ts": ["2024-01-01T00:00:00Z"] * len(ids),
                             "vendor_score": [float(i) for i in range(len(ids))], "label": [1] * len(ids)}), path)  # fmt: skip
    table = FraudFeatureTableConfig(uri=str(path), format="parquet", mode="join")
    joined = cfg.model_copy(update={"fraud": cfg.fraud.model_copy(update={"feature_table": table})})
    data = training_data(joined, lake, D)
    assert data.source == SOURCE_JOINED and data.feature_names[-1] == "vendor_score" and "label" not in data.feature_names[-2:]
    plain = training_data(cfg, lake, D)
    assert set(data.rows[C.PAYMENT_ID].to_pylist()) == set(plain.rows[C.PAYMENT_ID].to_pylist()) & set(ids)
    assert data.rows[C.LABEL].to_pylist() == [r[C.LABEL] for r in plain.rows.to_pylist() if r[C.PAYMENT_ID] in set(ids)]
    scores, _, what = scoring_rows(joined, lake, D)
    assert "joined with" in what and set(scores[C.PAYMENT_ID].to_pylist()) <= set(ids)
